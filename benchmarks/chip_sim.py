"""Chip simulation speed on Verilator: every tile of an X x Y chip runs its own double-buffered
GEMM (``gemm_program``, M x K x N int8 -> int32, its operands and result in its own region of
the one shared DRAM) at once, through ``run_chip(backend="verilator")``; checked bit-exactly
against NumPy; prints one JSON object.

    python benchmarks/chip_sim.py --mesh 4x4 --m 128 --k 512 --n 128

(4x4 tiles x 128 x 512 x 128 is the work of a 512^3 GEMM split over the mesh, without the
operand sharing.) Figures: ``cycles`` (chip cycles from start until every tile is done: the run
of the C++ loop), ``sim_cycles_per_s`` (chip cycles / wall time of the whole run_chip call:
the DRAM image, register programming through the host windows, the run, reading every tile's
registers, SBUF and PSUM), ``run_cycles_per_s`` (the C++ loop alone), ``tile_cycles_per_s``
(``sim_cycles_per_s`` x tiles: tile-cycles simulated per second), ``cpu_cycles_per_s`` (chip
cycles / CPU seconds of this process in the run_chip call: about what one core of its own
gives, on a machine too loaded for wall time to say), ``build_seconds`` (Verilog
export + Verilator + C++ compile of this call, 0 when cached), ``load_average`` (1-minute, at
the end). The build or cache lookup happens in a warm-up call that is not timed.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from systolica.config import ArrayConfig, ChipConfig, PsumConfig, SbufConfig, TileConfig
from systolica.model.programs import gemm_program


def _mesh(text):
    try:
        x, y = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mesh must look like 2x2; got {text!r}") from None
    if x < 1 or y < 1:
        raise argparse.ArgumentTypeError(f"--mesh sides must be >= 1; got {text!r}")
    return x, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mesh", type=_mesh, default=(2, 2))
    for name, default in (("rows", 8), ("cols", 8), ("m", 64), ("k", 64), ("n", 64)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from systolica.testbench.chip import chip_program, run_chip
    from systolica.testbench.chip_compiled import compiled_chip
    (mx, my), R, C, m, k, n = args.mesh, args.rows, args.cols, args.m, args.k, args.n
    bank_rows = min(128, max(16, 1 << (m - 1).bit_length()))
    mb, kt = min(m, bank_rows), -(-k // R)
    per_partition = 2 * kt * R + kt * mb + 8 * mb + 64
    depth = 1 << max(4, (-(-per_partition // 8) - 1).bit_length())
    tile = TileConfig(array=ArrayConfig(rows=R, cols=C),
                      sbuf=SbufConfig(partitions=max(R, C), depth=depth),
                      psum=PsumConfig(banks=2, bank_rows=bank_rows))
    from systolica.config import NocConfig
    chip = ChipConfig(tile=tile, noc=NocConfig(width=mx, height=my))
    rng = np.random.default_rng(args.seed)
    region = 1 << (m * k + k * n + 4 * m * n + (1 << 16) - 1).bit_length()
    programs, data, expected = {}, {}, {}
    for i, pos in enumerate((x, y) for y in range(my) for x in range(mx)):
        base = (i + 1) * region
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        w = rng.integers(-128, 128, (k, n), dtype=np.int8)
        a_addr, w_addr = base, base + -(-m * k // 64) * 64
        c_addr = w_addr + -(-k * n // 64) * 64
        program, _ = gemm_program(tile, m, k, n, a_addr=a_addr, b_addr=w_addr, c_addr=c_addr,
                                  transposed=True, c_transposed=True)
        programs[pos] = chip_program(chip, program)
        data.update({a_addr: a.T.copy().tobytes(), w_addr: w.T.copy().tobytes()})
        expected[pos] = (c_addr, a.astype(np.int32) @ w.astype(np.int32))
    dram_bytes = (len(programs) + 1) * region
    started = time.perf_counter()
    _, model = compiled_chip(chip)            # build or cache lookup, not timed
    build_seconds = round(time.perf_counter() - started, 1)
    max_cycles = 50 * m * k * n // (R * C) + 200_000
    started, cpu_started = time.perf_counter(), time.process_time()
    run = run_chip(chip, programs, dram=data, dram_bytes=dram_bytes, max_cycles=max_cycles,
                   backend="verilator", read_semaphores=False)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    exact = True
    for pos, (c_addr, c) in expected.items():
        got = run.dram[c_addr:c_addr + c.nbytes].view(np.int32).reshape(n, m).T
        exact = exact and np.array_equal(got, c) and run.tiles[pos].status["done"] == 1
    cycles = run.extra["run_cycles"]
    tiles = mx * my
    print(json.dumps({
        "mesh": f"{mx}x{my}", "tiles": tiles, "rows": R, "cols": C, "m": m, "k": k, "n": n,
        "cycles": cycles, "max_tile_cycles": max(t.tile_cycles for t in run.tiles.values()),
        "bit_exact": bool(exact),
        "sim_seconds": round(seconds, 2), "sim_cycles_per_s": round(cycles / seconds, 1),
        "run_cycles_per_s": round(cycles / run.extra["run_seconds"], 1),
        "tile_cycles_per_s": round(tiles * cycles / seconds, 1),
        "cpu_cycles_per_s": round(cycles / cpu_seconds, 1),
        "build_seconds": build_seconds if not model.info.cached else 0.0,
        "dram_bytes": sum(p["bytes"] for p in run.extra["dram_ports"].values()),
        "load_average": round(os.getloadavg()[0], 2),
    }))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
