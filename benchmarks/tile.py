"""Tile benchmark: a hand-scheduled, double-buffered GEMM DRAM -> DRAM on the whole tile
(sequencer + datapath + DMA + AxiRam DRAM), checked bit-exactly against NumPy; prints JSON.

    python benchmarks/tile.py --rows 8 --cols 8 --m 128 --k 128 --n 128

DRAM layouts (the SBUF's channel-on-partition layout, so every DMA run is contiguous): A is given
as A^T (K x M int8), W as W^T (N x K int8), C comes back as C^T (N x M int32). The schedule: dma0
loads all of A (one copy per K block), then W blocks into two SBUF slots; the PE loads W(kb, nb)
and multiplies A's K block into PSUM bank nb % 2 (accumulating over kb); the ACT unit moves a
finished bank to one of two C slots (int32 pass-through); dma1 stores it. Semaphores: 0 A block
loaded, 1 W slot full, 2 W slot free, 3 PSUM bank full, 4 PSUM bank free, 5 C slot full, 6 C slot
free.
"""

import argparse
import json
import sys
import time

import numpy as np

from systolica import isa
from systolica.codes import ActMode, EngineState
from systolica.config import ArrayConfig, DmaConfig, PsumConfig, SbufConfig, TileConfig
from systolica.testbench.tile import run_tile


def bench_config(rows, cols, m, k):
    partitions = max(rows, cols)
    need = k // rows * m + 2 * rows + 2 * 4 * m        # A blocks, 2 W slots, 2 C slots
    depth = 1 << max(4, (need // 8 - 1).bit_length())
    return TileConfig(array=ArrayConfig(rows=rows, cols=cols),
                      sbuf=SbufConfig(partitions=partitions, depth=depth),
                      psum=PsumConfig(banks=2, bank_rows=max(16, 1 << (m - 1).bit_length())),
                      dma=DmaConfig())


def gemm_program(cfg, m, k, n, a_addr, w_addr, c_addr):
    R, C = cfg.array.rows, cfg.array.cols
    PB = cfg.sbuf.partition_bytes
    kb_n, nb_n = k // R, n // C
    a_off = 0
    w_off = kb_n * m
    c_off = -(-(w_off + 2 * R) // 4) * 4
    bank = cfg.psum.bank_rows
    dma0, dma1, pe, act = [], [], [], []
    for kb in range(kb_n):      # A^T rows kb*R.. -> partitions 0..R-1, bytes a_off + kb*m ..
        dma0.append(isa.dma_copy(isa.dram(a_addr + kb * R * m, (m, R), (1, m)),
                                 isa.sbuf(a_off + kb * m, (m, R), (1, PB)), signals=[(0, 1)]))
    i = 0
    for nb in range(nb_n):
        for kb in range(kb_n):
            slot = i % 2
            # W^T[nb*C + c, kb*R + r] -> partition c, byte w_off + slot*R + r
            src = isa.dram(w_addr + (nb * C) * k + kb * R, (R, C), (1, k))
            waits = [(2, 1)] if i >= 2 else []
            dma0.append(isa.dma_copy(src, isa.sbuf(w_off + slot * R, (R, C), (1, PB)),
                                     waits=waits, signals=[(1, 1)]))
            pe_waits = [(1, 1)] + ([(0, kb_n)] if i == 0 else [])
            pe.append(isa.load_stationary(w_off + slot * R, R, C, waits=pe_waits,
                                          signals=[(2, 1)]))
            mwaits = [(4, 1)] if kb == 0 and nb >= 2 else []
            msigs = [(3, 1)] if kb == kb_n - 1 else []
            pe.append(isa.multiply_moving(a_off + kb * m, m, (nb % 2) * bank,
                                          accumulate=kb > 0, waits=mwaits, signals=msigs))
            i += 1
        cslot = nb % 2
        awaits = [(3, 1)] + ([(6, 1)] if nb >= 2 else [])
        act.append(isa.act((nb % 2) * bank, m, (c_off + cslot * 4 * m) // 4, C,
                           mode=ActMode.INT32, waits=awaits, signals=[(4, 1), (5, 1)]))
        dma1.append(isa.dma_copy(isa.sbuf(c_off + cslot * 4 * m, (m, C), (4, PB)),
                                 isa.dram(c_addr + nb * C * m * 4, (m, C), (4, 4 * m)), 4,
                                 waits=[(5, 1)], signals=[(6, 1)]))
    return isa.Program.build(cfg, {"dma0": dma0, "dma1": dma1, "pe": pe, "act": act})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (("rows", 8), ("cols", 8), ("m", 32), ("k", 32), ("n", 32)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--backend", default="amaranth", choices=("amaranth", "verilator"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.backend != "amaranth":
        sys.exit("benchmarks/tile.py: only the amaranth backend runs the tile so far")
    R, C, m, k, n = args.rows, args.cols, args.m, args.k, args.n
    if k % R or n % C:
        sys.exit("benchmarks/tile.py: --k must be a multiple of --rows and --n of --cols")
    cfg = bench_config(R, C, m, k)
    rng = np.random.default_rng(args.seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a_addr = 1 << 16
    w_addr = a_addr + m * k
    c_addr = -(-(w_addr + k * n) // 64) * 64
    dram_bytes = 1 << (c_addr + 4 * m * n - 1).bit_length()
    program = gemm_program(cfg, m, k, n, a_addr, w_addr, c_addr)
    started = time.perf_counter()
    run = run_tile(cfg, program, data={a_addr: a.T.copy().tobytes(), w_addr: w.T.copy().tobytes()},
                   dram_bytes=dram_bytes, max_cycles=50 * m * k * n // (R * C) + 100_000)
    seconds = time.perf_counter() - started
    c_t = run.dram[c_addr:c_addr + 4 * m * n].view(np.int32).reshape(n, m)
    exact = bool(np.array_equal(c_t.T, a.astype(np.int32) @ w.astype(np.int32)))
    done = all(q["state"] is EngineState.DONE for q in run.queues.values())
    macs = m * k * n
    print(json.dumps({
        "rows": R, "cols": C, "m": m, "k": k, "n": n, "backend": args.backend,
        "sbuf_depth": cfg.sbuf.depth, "psum_bank_rows": cfg.psum.bank_rows,
        "cycles": run.tile_cycles, "useful_macs": macs,
        "utilization": round(macs / (R * C * run.tile_cycles), 4),
        "bit_exact": exact and done, "sim_cycles_per_s": round(run.cycles / seconds, 1),
        "instructions": program.instructions,
        "dram_bytes": m * k + k * n + 4 * m * n + len(program.encode()),
    }))


if __name__ == "__main__":
    main()
