"""Performance model against the tile RTL: compiled GEMMs (int8 -> int32) run on the Amaranth
simulation (or Verilator) of the tile; prints one JSON object with, per shape, the measured
cycles (CYCLES register), the prediction of ``systolica.compiler.perf.predict`` and its error.

    python benchmarks/perf_model.py                       # the shapes of docs/compiler.md
    python benchmarks/perf_model.py --rows 16 --sbuf-depth 512 --sbuf-reads 16 --shapes 64x64x64
    python benchmarks/perf_model.py --config configs/tile16x16.toml --shapes 256x256x256 \
        --backend verilator

Without ``--rows`` it runs the default set: 4x4 (SBUF 64 words) 16^3, 32^3, 37x23x11, 64x32x32;
8x8 (256 words) 64^3 with 4 and 16 SBUF reads in flight, 128x64x96 (512 words, 16 reads); 16x16
(512 words) 64^3 with 4 and 16 reads, and with 16 reads and a 128-bit DMA. ``max_abs_error`` is the largest |error| of the run.
"""

import argparse
import json
import sys
import time

import numpy as np

from systolica.config import (ArrayConfig, ConfigError, DmaConfig, PsumConfig, SbufConfig,
                              TileConfig, load_toml)
from systolica.runtime import Device

DEFAULT_SET = [     # rows = cols, SBUF depth, dma.sbuf_reads, (m, k, n), SBUF word / DMA bytes
    (4, 64, 4, (16, 16, 16), 8), (4, 64, 4, (32, 32, 32), 8), (4, 64, 4, (37, 23, 11), 8),
    (4, 64, 4, (64, 32, 32), 8),
    (8, 256, 4, (64, 64, 64), 8), (8, 256, 16, (64, 64, 64), 8),
    (8, 512, 16, (128, 64, 96), 8),
    (16, 512, 4, (64, 64, 64), 8), (16, 512, 16, (64, 64, 64), 8),
    (16, 512, 16, (64, 64, 64), 16),
]


def config(rows, depth, sbuf_reads, word_bytes=8):
    return TileConfig(array=ArrayConfig(rows=rows, cols=rows),
                      sbuf=SbufConfig(partitions=rows, depth=depth, word_bytes=word_bytes),
                      psum=PsumConfig(),
                      dma=DmaConfig(data_width=8 * word_bytes, sbuf_reads=sbuf_reads))


def measure(rows, depth, sbuf_reads, shape, backend, word_bytes=8, seed=0, tile=None):
    """One GEMM on ``tile`` (default: :func:`config` of the other arguments)."""
    m, k, n = shape
    tile = tile or config(rows, depth, sbuf_reads, word_bytes)
    rows, depth = tile.array.rows, tile.sbuf.depth
    sbuf_reads, word_bytes = tile.dma.sbuf_reads, tile.dma.data_width // 8
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    device = Device(tile, backend=backend, seed=seed)
    start = time.monotonic()
    c = device.matmul(a, b)
    e = device.last
    plan = e.compiled.plans[0]
    return {"rows": rows, "cols": tile.array.cols, "m": m, "k": k, "n": n, "sbuf_depth": depth,
            "sbuf_reads": sbuf_reads, "dma_data_width": 8 * word_bytes, "cycles": e.cycles,
            "predicted_cycles": e.predicted_cycles, "error": round(e.prediction_error, 4),
            "utilization": round(e.utilization, 4), "instructions": e.compiled.instructions,
            "plan": {"m_block": plan.m_block, "k_chunk": plan.k_chunk, "n_group": plan.n_group,
                     "w_resident": plan.w_resident},
            "bit_exact": bool(np.array_equal(c, a @ b)),
            "wall_seconds": round(time.monotonic() - start, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=None, help="R = C of the tile (default: the set)")
    p.add_argument("--sbuf-depth", type=int, default=256)
    p.add_argument("--sbuf-reads", type=int, default=4)
    p.add_argument("--word-bytes", type=int, default=8)
    p.add_argument("--shapes", default="64x64x64", help="MxKxN[,MxKxN...] with --rows")
    p.add_argument("--config", metavar="F.toml", default=None,
                   help="the tile config from this TOML file (with --shapes; --rows and the "
                        "SBUF/DMA options are then ignored)")
    p.add_argument("--backend", choices=("amaranth", "verilator"), default="amaranth")
    args = p.parse_args(argv)
    tile = None
    if args.config:
        try:
            tile = TileConfig.from_sections(load_toml(args.config))
        except (ConfigError, OSError) as error:
            p.error(str(error))
        args.rows = tile.array.rows
    if args.rows is None:
        runs = DEFAULT_SET
    else:
        try:
            shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
        except ValueError:
            p.error(f"--shapes must be MxKxN[,MxKxN...]; got {args.shapes!r}")
        runs = [(args.rows, args.sbuf_depth, args.sbuf_reads, s, args.word_bytes)
                for s in shapes]
    results = []
    for rows, depth, reads, shape, wb in runs:
        results.append(measure(rows, depth, reads, shape, args.backend, wb, tile=tile))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"backend": args.backend, "runs": results,
                      "max_abs_error": max(abs(r["error"]) for r in results)}, indent=2))


if __name__ == "__main__":
    main()
