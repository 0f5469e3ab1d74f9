"""Chip benchmark: every tile of an X x Y chip runs its own (local) GEMM of
``systolica.model.programs.gemm_program`` at once, all from one shared DRAM (the test bench's
arbiter tree in front of one AxiRam), checked bit-exactly against NumPy; prints one JSON object.

    python benchmarks/chip.py --mesh 2x2 --rows 4 --cols 4 --m 16 --k 16 --n 16 \
        [--dram-model axiram|ports]

Figures: ``cycles`` (the chip's: start to the last tile done, from the slowest tile's CYCLES
register), ``tile_cycles`` per tile, ``alone_cycles`` (the same GEMM on tile (0, 0) of the same
chip with every other tile idle), ``dram_slowdown`` = slowest tile together / alone (what
sharing the DRAM costs: with ``--dram-model axiram`` every tile shares one AxiRam port, with
``ports`` each has its own port on the same memory), ``sim_cycles_per_s`` (chip cycles simulated / wall time of the
together run, DRAM load and readback included), ``bit_exact``.
"""

import argparse
import json
import sys
import time

import numpy as np

from systolica.config import ArrayConfig, ChipConfig, NocConfig, PsumConfig, SbufConfig, TileConfig
from systolica.model.programs import gemm_program
from systolica.testbench.chip import DRAM_MODELS, chip_program, run_chip

REGION = 0x4000          # DRAM bytes per tile's operands and result


def _mesh(text):
    try:
        x, y = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mesh must be XxY (e.g. 2x2); got {text!r}") from None
    return x, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", type=_mesh, default=(2, 2))
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dram-model", choices=DRAM_MODELS, default="axiram")
    args = parser.parse_args(argv)
    (width, height), rows, cols = args.mesh, args.rows, args.cols
    tile = TileConfig(array=ArrayConfig(rows=rows, cols=cols),
                      sbuf=SbufConfig(partitions=max(rows, cols), depth=64),
                      psum=PsumConfig(banks=2, bank_rows=max(16, min(128, args.m))))
    chip = ChipConfig(tile=tile, noc=NocConfig(width=width, height=height))
    rng = np.random.default_rng(args.seed)
    m, k, n = args.m, args.k, args.n
    positions = [(x, y) for y in range(height) for x in range(width)]
    programs, data, expected = {}, {}, {}
    for i, pos in enumerate(positions):
        base = REGION * (i + 1)
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        a_addr, b_addr = base, base + (-(-a.nbytes // 64)) * 64
        c_addr = b_addr + (-(-b.nbytes // 64)) * 64
        if c_addr + 4 * m * n > base + REGION:
            sys.exit(f"chip.py: the GEMM does not fit its {REGION}-byte DRAM region")
        program, _ = gemm_program(tile, m, k, n, a_addr=a_addr, b_addr=b_addr, c_addr=c_addr)
        programs[pos] = chip_program(chip, program)
        data.update({a_addr: a.tobytes(), b_addr: b.tobytes()})
        expected[pos] = (c_addr, a.astype(np.int32) @ b.astype(np.int32))
    dram_bytes = REGION * (len(positions) + 1)
    started = time.perf_counter()
    run = run_chip(chip, programs, dram=data, dram_bytes=dram_bytes, max_cycles=2_000_000,
                   read_semaphores=False, dram_model=args.dram_model)
    wall = time.perf_counter() - started
    exact = all(np.array_equal(np.frombuffer(run.dram[c:c + e.nbytes].tobytes(), np.int32)
                               .reshape(e.shape), e) for c, e in expected.values())
    alone = run_chip(chip, {(0, 0): programs[(0, 0)]}, dram=data, dram_bytes=dram_bytes,
                     max_cycles=2_000_000, read_semaphores=False, dram_model=args.dram_model)
    c0, e0 = expected[(0, 0)]
    exact = exact and np.array_equal(
        np.frombuffer(alone.dram[c0:c0 + e0.nbytes].tobytes(), np.int32).reshape(e0.shape), e0)
    tile_cycles = {f"{x},{y}": run.tiles[(x, y)].tile_cycles for (x, y) in positions}
    slowest = max(tile_cycles.values())
    alone_cycles = alone.tiles[(0, 0)].tile_cycles
    print(json.dumps({
        "mesh": f"{width}x{height}", "tiles": len(positions), "array": f"{rows}x{cols}",
        "dram_model": args.dram_model,
        "gemm": [m, k, n], "cycles": slowest, "tile_cycles": tile_cycles,
        "alone_cycles": alone_cycles, "dram_slowdown": round(slowest / alone_cycles, 3),
        "done_bitmap": run.chip["DONE"], "sim_cycles_per_s": round(run.cycles / wall, 1),
        "bit_exact": bool(exact)}))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
