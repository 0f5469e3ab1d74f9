"""Tile benchmark: the double-buffered GEMM of ``systolica.model.programs.gemm_program`` DRAM ->
DRAM on the whole tile (sequencer + datapath + DMA + AxiRam DRAM), checked bit-exactly against
NumPy and against the instruction-level model's DRAM; prints one JSON object.

    python benchmarks/tile.py --rows 8 --cols 8 --m 128 --k 128 --n 128 [--backend verilator]

Operands are stored transposed (A as A^T, B as B^T: every partition's run is contiguous in
DRAM) and C comes back as C^T (N x M int32), for the same reason. The SBUF depth is the smallest power of two that holds a
whole-bank M block (``--sbuf-depth`` overrides), PSUM has 2 banks of max(16, M) rows (at most
128). Figures: ``cycles`` (the CYCLES register, start to done), ``utilization`` = useful MACs /
(R * C * cycles), ``busy`` (each queue's BUSY_CYCLES / cycles: cycles with a command in flight),
``sim_cycles_per_s`` (tile cycles -- the CYCLES register, start to done -- / wall time of the
whole run_tile call: the DRAM image, register programming, the run, reading every register,
the final DRAM, SBUF and PSUM; the Verilator build or cache lookup is done by an earlier
warm-up call and not included; ``simulated_cycles`` also counts the register accesses before
and after), ``run_cycles_per_s`` (Verilator: the C++ cycle loop of
the run alone), ``sim_seconds`` (that wall time), ``load_average`` (the machine's 1-minute load
average at the end: the rates depend on it), ``cpu_cycles_per_s`` (tile cycles / the CPU
seconds this process spent in the run_tile call: what the call gets from one core it has to
itself, about, on a machine too loaded for wall time to say),
``dram_bytes`` (operands, result and program image).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from systolica.codes import EngineState
from systolica.config import ArrayConfig, DmaConfig, PsumConfig, SbufConfig, TileConfig
from systolica.model.programs import gemm_program
from systolica.model.tile import TileModel
from systolica.testbench.tile import run_tile


def bench_config(rows, cols, m, k, sbuf_depth=None):
    bank_rows = min(128, max(16, 1 << (m - 1).bit_length()))
    mb = min(m, bank_rows)
    k_tiles = -(-k // rows)
    per_partition = 2 * k_tiles * rows + k_tiles * mb + 2 * 4 * mb + 64
    depth = sbuf_depth or 1 << max(4, (-(-per_partition // 8) - 1).bit_length())
    return TileConfig(array=ArrayConfig(rows=rows, cols=cols),
                      sbuf=SbufConfig(partitions=max(rows, cols), depth=depth),
                      psum=PsumConfig(banks=2, bank_rows=bank_rows), dma=DmaConfig())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (("rows", 8), ("cols", 8), ("m", 32), ("k", 32), ("n", 32)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--backend", default="amaranth", choices=("amaranth", "verilator"))
    parser.add_argument("--sbuf-depth", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    R, C, m, k, n = args.rows, args.cols, args.m, args.k, args.n
    cfg = bench_config(R, C, m, k, args.sbuf_depth)
    rng = np.random.default_rng(args.seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a_addr = 1 << 16
    w_addr = a_addr + -(-m * k // 64) * 64
    c_addr = w_addr + -(-k * n // 64) * 64
    dram_bytes = 1 << (c_addr + 4 * m * n - 1).bit_length()
    program, plan = gemm_program(cfg, m, k, n, a_addr=a_addr, b_addr=w_addr, c_addr=c_addr,
                                 transposed=True, c_transposed=True)
    if len(program.encode()) > a_addr:
        sys.exit("benchmarks/tile.py: the program image does not fit below the operands")
    data = {a_addr: a.T.copy().tobytes(), w_addr: w.T.copy().tobytes()}
    max_cycles = 50 * m * k * n // (R * C) + 100_000
    if args.backend == "verilator":      # build (or load the cached build) outside the timing
        run_tile(cfg, program, data=data, dram_bytes=dram_bytes, max_cycles=max_cycles,
                 backend="verilator", lengths={q: 0 for q in program.queues})
    started, cpu_started = time.perf_counter(), time.process_time()
    run = run_tile(cfg, program, data=data, dram_bytes=dram_bytes, max_cycles=max_cycles,
                   backend=args.backend)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    c = run.dram[c_addr:c_addr + 4 * m * n].view(np.int32).reshape(n, m).T
    exact = bool(np.array_equal(c, a.astype(np.int32) @ w.astype(np.int32)))
    model = TileModel(cfg, dram_bytes=dram_bytes)
    for addr, values in data.items():
        model.dram[addr:addr + len(values)] = np.frombuffer(values, np.uint8)
    model.run(program).check()
    same_as_model = bool(np.array_equal(run.dram[c_addr:c_addr + 4 * m * n],
                                        model.dram[c_addr:c_addr + 4 * m * n]))
    done = all(q["state"] is EngineState.DONE for q in run.queues.values())
    macs = m * k * n
    cycles = run.tile_cycles
    out = {
        "rows": R, "cols": C, "m": m, "k": k, "n": n, "backend": args.backend,
        "sbuf_depth": cfg.sbuf.depth, "psum_bank_rows": cfg.psum.bank_rows,
        "m_block": plan.m_block, "cycles": cycles, "useful_macs": macs,
        "utilization": round(macs / (R * C * cycles), 4),
        "bit_exact": exact and done and same_as_model,
        "busy": {name: round(q["busy_cycles"] / cycles, 3) for name, q in run.queues.items()},
        "sim_cycles_per_s": round(cycles / seconds, 1), "simulated_cycles": run.cycles,
        "sim_seconds": round(seconds, 3), "load_average": round(os.getloadavg()[0], 2),
        "cpu_cycles_per_s": round(cycles / cpu_seconds, 1),
        "instructions": program.instructions,
        "dram_bytes": m * k + k * n + 4 * m * n + len(program.encode()),
    }
    if "run_seconds" in run.extra:
        out["run_cycles_per_s"] = round(run.extra["run_cycles"] / run.extra["run_seconds"], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
