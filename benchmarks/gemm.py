"""GEMM benchmark of the compiler and runtime: ``C = A @ B`` (int8 -> int32 unless told) compiled
for an R x C tile, run on a backend, checked bit-exactly against NumPy; prints JSON.

    python benchmarks/gemm.py --rows 8 --cols 8 --m 256 --k 256 --n 256 --backend model

``cycles`` is measured (the tile's CYCLES register) on the RTL backends; on ``model`` it is the
performance model's estimate (``cycles_measured`` says which). ``predicted_cycles`` is always the
performance model's; ``closed_form_cycles`` the plan's closed-form estimate. Without options the
tile is the default config (``systolica/default.toml``: 8 x 8, SBUF depth 2,048); ``--rows``,
``--cols``, ``--dtype``, ``--word-bytes`` and ``--sbuf-reads`` change only what they name.
``--sbuf-depth N`` sets the SBUF depth; ``--sbuf-depth auto`` takes the smallest of 256 ... 4,096
at which a larger one would not make the estimate 1 % better (with ``--mesh``: would not
lower the DRAM data traffic). ``sbuf_depth`` reports the depth and
``sbuf_depth_from`` where it came from (``config``, ``option`` or ``auto``).

``--config F.toml`` takes the whole tile config from a file (``configs/tile16x16.toml`` is the
16 x 16 tile's: 16 SBUF reads in flight); ``--rows``/``--cols`` and the other config options
are then ignored unless given (``--sbuf-depth`` overrides the depth).

    python benchmarks/gemm.py --config configs/tile16x16.toml --m 256 --k 256 --n 256 \
        --backend verilator

``--mesh XxY`` splits the GEMM over a chip of X x Y such tiles (``systolica.compiler.mesh``; the
tiles get ``--dma-queues`` DMA queues, default 3 with a mesh: the A and B rings on their own
queues; with ``--config``, at least 3) and adds ``mesh, tiles, speedup_vs_one_tile`` (one tile of the same config, both by the
performance model on ``model``), ``tile_cycles``, ``forwarding``, ``noc_flits`` and
``lost_flits`` (the chip model's accounting), ``dram_bytes`` (data + program images),
``data_dram_bytes``, ``program_bytes``, ``min_dram_bytes`` and ``dram_ratio`` (``dram_bytes``
over the minimum; one tile reports the same four DRAM fields).
"""

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from systolica.compiler import CompileError, compile_gemm
from systolica.config import (ArrayConfig, ChipConfig, ConfigError, DmaConfig, NocConfig,
                              PsumConfig, SbufConfig, TileConfig, dtype_range, load_toml)
from systolica.runtime import Device


def bench_config(rows, cols, depth, word_bytes=8, dtype="int8", sbuf_reads=None, dma_queues=2):
    dma = DmaConfig(data_width=8 * word_bytes, queues=dma_queues)
    if sbuf_reads is not None:
        dma = dataclasses.replace(dma, sbuf_reads=sbuf_reads)
    return TileConfig(array=ArrayConfig(rows=rows, cols=cols, moving_dtype=dtype,
                                        stationary_dtype=dtype),
                      sbuf=SbufConfig(partitions=max(rows, cols), depth=depth,
                                      word_bytes=word_bytes),
                      psum=PsumConfig(), dma=dma)


def parse_mesh(text):
    try:
        x, y = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mesh must be XxY (e.g. 4x4); got {text!r}") from None
    if not (1 <= x <= 16 and 1 <= y <= 16):
        raise argparse.ArgumentTypeError(f"--mesh sizes must be in 1..16; got {text!r}")
    return x, y


def with_depth(config, depth):
    return dataclasses.replace(config, sbuf=dataclasses.replace(config.sbuf, depth=depth))


def parse_depth(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sbuf-depth must be an integer or auto; "
                                         f"got {text!r}") from None


def choose_depth(base, m, k, n, mesh=None):
    """The smallest SBUF depth whose plan is within 1 % of the best of the depths tried. On a
    ``mesh`` (x, y): the smallest depth whose mesh plan moves the fewest DRAM data bytes (what
    a small SBUF re-reads crosses the NoC and the DRAM ports of every tile; the tile's own
    estimate does not see it)."""
    from systolica.compiler import plan_mesh_gemm
    estimates = {}
    for depth in (256, 512, 1024, 2048, 4096):
        try:
            if mesh:
                chip = ChipConfig(tile=with_depth(base, depth),
                                  noc=NocConfig(width=mesh[0], height=mesh[1]))
                estimates[depth] = plan_mesh_gemm(chip, m, k, n).dram_bytes
            else:
                estimates[depth] = compile_gemm(with_depth(base, depth), m, k, n).predict().cycles
        except CompileError:
            continue
    best = min(estimates.values())
    return min(d for d, e in estimates.items() if e <= best * (1 if mesh else 1.01))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (("rows", 8), ("cols", 8), ("m", 256), ("k", 256), ("n", 256)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--backend", choices=("model", "amaranth", "verilator"), default="model")
    p.add_argument("--sbuf-depth", type=parse_depth, default=None,
                   help="SBUF depth in words, or auto (the smallest of 256..4096 within 1 %% of "
                        "the best estimate); default: the config's")
    p.add_argument("--dtype", choices=("int8", "uint8", "int16"), default="int8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--word-bytes", type=int, default=8,
                   help="SBUF word and DMA bus bytes (dma.data_width = 8 x this; default 8)")
    p.add_argument("--sbuf-reads", type=int, default=None,
                   help="dma.sbuf_reads: SBUF reads the DMA keeps in flight (default: config's)")
    p.add_argument("--config", metavar="F.toml", default=None,
                   help="take the tile config from this TOML file (e.g. configs/tile16x16.toml)")
    p.add_argument("--mesh", type=parse_mesh, default=None,
                   help="split the GEMM over an XxY chip of these tiles (e.g. 4x4)")
    p.add_argument("--dma-queues", type=int, default=None,
                   help="DMA queues per tile (default 2; 3 with --mesh)")
    p.add_argument("--baseline-cycles", type=int, default=None,
                   help="with --mesh: one tile's cycles for this GEMM, measured earlier on this "
                        "backend (skips the one-tile run)")
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
    else:
        base = bench_config(args.rows, args.cols, SbufConfig().depth, args.word_bytes, args.dtype,
                            args.sbuf_reads)
    queues = args.dma_queues or (max(3, base.dma.queues) if args.mesh else None)
    if queues:
        base = dataclasses.replace(base, dma=dataclasses.replace(base.dma, queues=queues))
    if args.sbuf_depth is None:
        depth, depth_from = base.sbuf.depth, "config"
    elif args.sbuf_depth == "auto":
        depth, depth_from = choose_depth(base, args.m, args.k, args.n, args.mesh), "auto"
    else:
        depth, depth_from = args.sbuf_depth, "option"
    try:
        config = with_depth(base, depth)
    except ConfigError as error:
        p.error(str(error))
    args.sbuf_depth_from = depth_from
    if args.mesh:
        return bench_mesh(args, config, depth)
    a, b, c, e, wall = run_gemm(args, config)
    plan = e.compiled.plans[0]
    print(json.dumps({
        "m": args.m, "k": args.k, "n": args.n, "rows": args.rows, "cols": args.cols,
        "dtype": args.dtype, "backend": args.backend, "sbuf_depth": depth,
        "sbuf_depth_from": args.sbuf_depth_from,
        "dma_data_width": config.dma.data_width, "sbuf_reads": config.dma.sbuf_reads,
        "config": args.config,
        "cycles": e.cycles, "cycles_measured": e.measured,
        "predicted_cycles": e.predicted_cycles,
        "prediction_error": round(e.prediction_error, 4) if e.measured else None,
        "closed_form_cycles": plan.predicted_cycles,
        "useful_macs": e.useful_macs, "utilization": round(e.utilization, 4),
        "engine_utilization": {q: round(u, 4) for q, u in e.engine_utilization().items()},
        "dram_bytes": e.compiled.dram_traffic,
        "data_dram_bytes": e.compiled.dram_traffic - e.compiled.program_bytes,
        "program_bytes": e.compiled.program_bytes, "min_dram_bytes": e.compiled.min_dram_bytes,
        "dram_ratio": round(e.compiled.dram_traffic / e.compiled.min_dram_bytes, 4),
        "instructions": e.compiled.instructions,
        "bit_exact": bool(np.array_equal(c, a @ b)), "wall_seconds": round(wall, 2),
        "plan": plan.to_dict(),
    }, indent=2))


def run_gemm(args, config):
    """Random A and B of the benchmark's shape and dtype, multiplied on a device of ``config``
    (a tile or a chip): ``(a, b, c, execution, wall seconds)``."""
    rng = np.random.default_rng(args.seed)
    lo, hi = dtype_range(args.dtype)
    a = rng.integers(lo, hi + 1, (args.m, args.k))
    b = rng.integers(lo, hi + 1, (args.k, args.n))
    device = Device(config, backend=args.backend, progress=sys.stderr.isatty())
    start = time.monotonic()
    c = device.matmul(a, b)
    return a, b, c, device.last, time.monotonic() - start


def one_port_bound(compiled, tile):
    """Cycles the chip's DRAM traffic needs through one AXI port of ``dma.data_width`` (reads
    and writes on their own channels)."""
    plan = compiled.plan
    out_bytes = plan.m * plan.n * np.dtype(compiled.output_dtype).itemsize
    writes = compiled.c_blocks and sum(c.nbytes for c in compiled.c_blocks.values())
    reads = plan.dram_bytes - writes + compiled.program_bytes
    bus = tile.dma.data_width // 8
    return int(max(reads, writes, out_bytes) // bus)


def one_tile_baseline(args, tile):
    """The same GEMM on one tile of the same config, on the same backend: ``(cycles, measured,
    predicted cycles, bit exact, wall seconds)`` (``--baseline-cycles`` skips the run)."""
    predicted = compile_gemm(tile, args.m, args.k, args.n).predict().cycles
    if args.baseline_cycles is not None:
        return args.baseline_cycles, args.backend != "model", predicted, None, 0.0
    if args.backend == "model":
        return predicted, False, predicted, None, 0.0
    a, b, c, e, wall = run_gemm(args, tile)
    return e.cycles, e.measured, predicted, bool(np.array_equal(c, a @ b)), wall


def queue_busy(measured, predicted):
    """``{queue: {"measured", "predicted"}}``: each queue's busy cycles on its busiest tile
    (``measured`` None on model)."""
    out = {}
    for source, name in ((predicted, "predicted"), (measured or {}, "measured")):
        for key, busy in source.items():
            queue = key.partition("/")[2]
            entry = out.setdefault(queue, {"measured": None, "predicted": None})
            entry[name] = max(entry[name] or 0, int(busy))
    return out


def bench_mesh(args, tile, depth):
    chip = ChipConfig(tile=tile, noc=NocConfig(width=args.mesh[0], height=args.mesh[1]))
    a, b, c, e, wall = run_gemm(args, chip)
    one_cycles, one_measured, one_predicted, one_exact, one_wall = one_tile_baseline(args, tile)
    plan = e.compiled.plan
    timeline = e.extra["timeline"]
    rtl = e.extra.get("rtl", {})
    print(json.dumps({
        "m": args.m, "k": args.k, "n": args.n, "rows": args.rows, "cols": args.cols,
        "dtype": args.dtype, "backend": args.backend, "sbuf_depth": depth,
        "sbuf_depth_from": args.sbuf_depth_from,
        "dma_data_width": tile.dma.data_width, "dma_queues": tile.dma.queues,
        "mesh": f"{args.mesh[0]}x{args.mesh[1]}", "tiles": e.tiles,
        "cycles": e.cycles, "cycles_measured": e.measured,
        "predicted_cycles": e.predicted_cycles,
        "prediction_error": round(e.prediction_error, 4) if e.measured else None,
        "one_tile_cycles": one_cycles, "one_tile_cycles_measured": one_measured,
        "one_tile_predicted_cycles": one_predicted, "one_tile_bit_exact": one_exact,
        "one_tile_wall_seconds": round(one_wall, 2),
        # measured chip / measured tile on an RTL backend (both predictions on model)
        "speedup_vs_one_tile": round(one_cycles / e.cycles, 3),
        "predicted_speedup_vs_one_tile": round(one_predicted / e.predicted_cycles, 3),
        "useful_macs": e.useful_macs, "utilization": round(e.utilization, 4),
        "tile_cycles": {f"{x},{y}": c for (x, y), c in e.tile_cycles.items()},
        "forwarding": timeline.forwarding(),
        "noc_flits": e.noc_flits, "lost_flits": e.lost_flits,
        # flits the programs send (the plan's count): sent == received == expected means no
        # flit lost or duplicated
        "expected_flits": plan.noc_flits,
        "received_flits": rtl.get("received_flits"),
        "build_seconds": rtl.get("build_seconds"), "build_cached": rtl.get("build_cached"),
        "sim_seconds": rtl.get("sim_seconds"),
        # what the RTL's DRAM ports moved (data and instruction fetch; None on model)
        "measured_dram_bytes": rtl.get("dram_bytes"),
        # per queue, the busiest tile: measured (BUSY_CYCLES registers) and predicted
        "queue_busy": queue_busy(rtl.get("busy_cycles"), e.busy_cycles),
        "dram_bytes": e.dram_bytes, "data_dram_bytes": plan.dram_bytes,
        "program_bytes": e.compiled.program_bytes, "min_dram_bytes": e.min_dram_bytes,
        "data_dram_ratio": round(plan.dram_bytes / plan.min_dram_bytes, 4),
        "dram_ratio": round(e.dram_bytes / e.min_dram_bytes, 4),
        # The model gives every tile its own DRAM bandwidth; behind ONE shared AXI port of the
        # tile's width (the chip test bench's AxiRam), reads (data + program fetch) and writes
        # cannot take fewer cycles than this:
        "one_port_dram_bound_cycles": one_port_bound(e.compiled, tile),
        "instructions": e.compiled.instructions,
        "bit_exact": bool(np.array_equal(c, a @ b)), "wall_seconds": round(wall, 2),
        "plan": plan.to_dict(),
    }, indent=2))


if __name__ == "__main__":
    main()
