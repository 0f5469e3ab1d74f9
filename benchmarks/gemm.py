"""GEMM benchmark of the compiler and runtime: ``C = A @ B`` (int8 -> int32 unless told) compiled
for an R x C tile, run on a backend, checked bit-exactly against NumPy; prints JSON.

    python benchmarks/gemm.py --rows 8 --cols 8 --m 256 --k 256 --n 256 --backend model

``cycles`` is measured (the tile's CYCLES register) on the RTL backends; on ``model`` it is the
performance model's estimate (``cycles_measured`` says which). ``predicted_cycles`` is always the
performance model's; ``closed_form_cycles`` the plan's closed-form estimate. ``--sbuf-depth auto``
(the default without ``--config``) takes the smallest SBUF depth (>= the default 256) at which a
larger one would not make the estimate 1 % better, and reports it as ``sbuf_depth``.

``--config F.toml`` takes the whole tile config from a file (``configs/tile16x16.toml`` is the
16 x 16 tile's: 128-bit DMA, 16 SBUF reads in flight, a deeper SBUF); ``--rows``/``--cols`` and
the other config options are then ignored unless given (``--sbuf-depth N`` overrides the depth).

    python benchmarks/gemm.py --config configs/tile16x16.toml --m 256 --k 256 --n 256 \
        --backend verilator
"""

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from systolica.compiler import CompileError, compile_gemm
from systolica.config import (ArrayConfig, ConfigError, DmaConfig, PsumConfig, SbufConfig,
                              TileConfig, dtype_range, load_toml)
from systolica.runtime import Device


def bench_config(rows, cols, depth, word_bytes=8, dtype="int8", sbuf_reads=None):
    dma = DmaConfig(data_width=8 * word_bytes)
    if sbuf_reads is not None:
        dma = dataclasses.replace(dma, sbuf_reads=sbuf_reads)
    return TileConfig(array=ArrayConfig(rows=rows, cols=cols, moving_dtype=dtype,
                                        stationary_dtype=dtype),
                      sbuf=SbufConfig(partitions=max(rows, cols), depth=depth,
                                      word_bytes=word_bytes),
                      psum=PsumConfig(), dma=dma)


def with_depth(config, depth):
    return dataclasses.replace(config, sbuf=dataclasses.replace(config.sbuf, depth=depth))


def choose_depth(base, m, k, n):
    """The smallest SBUF depth whose plan is within 1 % of the best of the depths tried."""
    estimates = {}
    for depth in (256, 512, 1024, 2048, 4096):
        try:
            estimates[depth] = compile_gemm(with_depth(base, depth), m, k, n).predict().cycles
        except CompileError:
            continue
    best = min(estimates.values())
    return min(d for d, e in estimates.items() if e <= best * 1.01)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (("rows", 8), ("cols", 8), ("m", 256), ("k", 256), ("n", 256)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--backend", choices=("model", "amaranth", "verilator"), default="model")
    p.add_argument("--sbuf-depth", default="auto", help="SBUF depth, or auto")
    p.add_argument("--dtype", choices=("int8", "uint8", "int16"), default="int8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--word-bytes", type=int, default=8,
                   help="SBUF word and DMA bus bytes (dma.data_width = 8 x this; default 8)")
    p.add_argument("--sbuf-reads", type=int, default=None,
                   help="dma.sbuf_reads: SBUF reads the DMA keeps in flight (default: config's)")
    p.add_argument("--config", metavar="F.toml", default=None,
                   help="take the tile config from this TOML file (e.g. configs/tile16x16.toml)")
    args = p.parse_args(argv)
    if args.config:
        try:
            base = TileConfig.from_sections(load_toml(args.config))
        except ConfigError as error:
            p.error(str(error))
        if args.sbuf_reads is not None:
            base = dataclasses.replace(base, dma=dataclasses.replace(base.dma,
                                                                     sbuf_reads=args.sbuf_reads))
        args.rows, args.cols = base.array.rows, base.array.cols
        args.dtype = base.array.moving_dtype
        if args.sbuf_depth == "auto" and "--sbuf-depth" not in (argv or sys.argv):
            args.sbuf_depth = str(base.sbuf.depth)
    else:
        base = bench_config(args.rows, args.cols, 256, args.word_bytes, args.dtype,
                            args.sbuf_reads)
    depth = (choose_depth(base, args.m, args.k, args.n)
             if args.sbuf_depth == "auto" else int(args.sbuf_depth))
    config = with_depth(base, depth)
    rng = np.random.default_rng(args.seed)
    lo, hi = dtype_range(args.dtype)
    a = rng.integers(lo, hi + 1, (args.m, args.k))
    b = rng.integers(lo, hi + 1, (args.k, args.n))
    device = Device(config, backend=args.backend, progress=sys.stderr.isatty())
    start = time.monotonic()
    c = device.matmul(a, b)
    wall = time.monotonic() - start
    e = device.last
    plan = e.compiled.plans[0]
    print(json.dumps({
        "m": args.m, "k": args.k, "n": args.n, "rows": args.rows, "cols": args.cols,
        "dtype": args.dtype, "backend": args.backend, "sbuf_depth": depth,
        "dma_data_width": config.dma.data_width, "sbuf_reads": config.dma.sbuf_reads,
        "config": args.config,
        "cycles": e.cycles, "cycles_measured": e.measured,
        "predicted_cycles": e.predicted_cycles,
        "prediction_error": round(e.prediction_error, 4) if e.measured else None,
        "closed_form_cycles": plan.predicted_cycles,
        "useful_macs": e.useful_macs, "utilization": round(e.utilization, 4),
        "engine_utilization": {q: round(u, 4) for q, u in e.engine_utilization().items()},
        "dram_bytes": e.compiled.dram_traffic, "min_dram_bytes": e.compiled.min_dram_bytes,
        "instructions": e.compiled.instructions,
        "bit_exact": bool(np.array_equal(c, a @ b)), "wall_seconds": round(wall, 2),
        "plan": plan.to_dict(),
    }, indent=2))


if __name__ == "__main__":
    main()
