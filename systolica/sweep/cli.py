"""``systolica sweep [SPEC.toml] [flags]``: the sweep command.

Flags add to (or override) the spec file, so a sweep can come from a file, from flags alone, or
both. Errors in the spec, the configs or the environment print one line and exit 2 before any
work starts; an interrupt exits 130 and keeps what was measured in the cache.
"""

import argparse
import os
import sys
import tomllib

from .spec import SweepError


__all__ = ["add_sweep_parser", "run_sweep_command"]


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not Linux
        return os.cpu_count() or 1


def add_sweep_parser(subparsers):
    p = subparsers.add_parser(
        "sweep", help="measure a grid or random sample of configs (area, Fmax, GEMM cycles); "
        "tables, plots, cache", description="Design-space sweep; see docs/sweeps.md.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="sweep spec (optional with "
                   "--param)")
    p.add_argument("--param", action="append", default=[], metavar="SECTION.FIELD=VALUES",
                   help="a swept parameter: 2,4,8 or 2..16 or 2..16:2 (step) or "
                        "64..4096:log2 (powers of two); repeatable")
    p.add_argument("--tie", action="append", default=[], metavar="FIELD=PARAM",
                   help="a field that follows a parameter, e.g. array.cols=array.rows")
    p.add_argument("--block", help="block to build (default tensor_engine; systolica blocks)")
    p.add_argument("--measure", help="comma-separated measurements: synth, gemm")
    p.add_argument("--target", choices=("ecp5", "ice40", "generic"), help="synth target")
    p.add_argument("--pnr", action="store_true", help="synth: also place and route (Fmax)")
    p.add_argument("--samples", type=int, help="random sample of N points instead of the grid")
    p.add_argument("--seed", type=int, help="seed of the random sample")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="any other spec key, e.g. gemm.back_to_back=8 or "
                        "sweep.skip_invalid=true; repeatable")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: [output] dir, "
                   "else sweep-<spec name>)")
    p.add_argument("-j", "--jobs", type=int, default=_cpus(),
                   help=f"local worker processes (default: the CPUs, here {_cpus()})")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="run on this Dask distributed scheduler instead of locally")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the Dask scheduler (default 10)")
    p.add_argument("--cache", metavar="DIR", help="result cache (default "
                   "$SYSTOLICA_CACHE/sweep, i.e. ~/.cache/systolica/sweep)")
    p.add_argument("--no-cache", action="store_true", help="measure everything, store nothing")
    p.add_argument("--retry-failed", action="store_true",
                   help="measure again the points whose failure is cached")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything and list the points; measure nothing")
    p.set_defaults(run_command=run_sweep_command)
    return p


def _scalar(text):
    """A TOML scalar (2, 1.5, true, "x"), else the text itself (int8 -> "int8")."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _split(flag, text):
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise SweepError(f"{flag} {text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def _values(text):
    """--param values: ``a,b,c``, ``lo..hi``, ``lo..hi:step``, ``lo..hi:log2``."""
    if ".." in text and "," not in text:
        lo, _, rest = text.partition("..")
        hi, _, step = rest.partition(":")
        table = {"min": _scalar(lo), "max": _scalar(hi)}
        if step == "log2":
            table["scale"] = "log2"
        elif step:
            table["step"] = _scalar(step)
        return table
    return [_scalar(item.strip()) for item in text.split(",")]


def spec_data(args):
    """The spec file's dict with the flags applied."""
    from .spec import read_spec
    data = read_spec(args.spec) if args.spec else {}
    table = lambda name: data.setdefault(name, {})    # noqa: E731
    for text in args.param:
        path, values = _split("--param", text)
        table("parameters")[path] = _values(values)
    for text in args.tie:
        path, source = _split("--tie", text)
        table("tie")[path] = source
    if args.block:
        table("sweep")["block"] = args.block
    if args.measure:
        table("sweep")["measure"] = [m.strip() for m in args.measure.split(",") if m.strip()]
    if args.samples is not None:
        table("sweep").update(mode="random", samples=args.samples)
    if args.seed is not None:
        table("sweep")["seed"] = args.seed
    if args.target:
        table("synth")["target"] = args.target
    if args.pnr:
        table("synth")["pnr"] = True
    for text in args.set:
        path, value = _split("--set", text)
        name, _, key = path.partition(".")
        if not key:
            raise SweepError(f"--set {text!r}: expected TABLE.KEY=VALUE")
        table(name)[key] = _values(value) if name == "parameters" else _scalar(value)
    return data


def _output_dir(args, spec):
    if args.output:
        return args.output
    if "dir" in spec.output:
        folder = os.path.dirname(os.path.abspath(args.spec)) if args.spec else "."
        return os.path.join(folder, spec.output["dir"])
    stem = os.path.splitext(os.path.basename(args.spec))[0] if args.spec else "results"
    return f"sweep-{stem}"


def _dry_run(spec):
    from .points import expand
    plan = expand(spec)
    print(f"{len(plan.points)} points (grid of {plan.space}), {len(plan.skipped)} skipped; "
          f"measure: {', '.join(spec.measure)}")
    for point in plan.points:
        print(f"  {point.index:4d}  {point.label()}")
    return 0


def run_sweep_command(args):
    from systolica.config import ConfigError
    from .spec import parse_spec, relative_to
    try:
        spec = parse_spec(spec_data(args))
        if args.spec:
            spec = relative_to(spec, args.spec)
        if args.dry_run:
            return _dry_run(spec)
        from .runner import DEFAULT_CACHE, run_sweep
        output = _output_dir(args, spec)
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        result = run_sweep(spec, jobs=args.jobs, scheduler=args.scheduler,
                           cache=None if args.no_cache else (args.cache or DEFAULT_CACHE),
                           output_dir=output, plots=not args.no_plots, progress=progress,
                           retry_failed=args.retry_failed, connect_timeout=args.connect_timeout)
    except (SweepError, ConfigError) as error:
        print(f"systolica sweep: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("systolica sweep: interrupted; finished measurements are cached: run the same "
              "command to resume", file=sys.stderr)
        return 130
    print(result.summary())
    for path in result.files:
        print(f"wrote {path}")
    return 0
