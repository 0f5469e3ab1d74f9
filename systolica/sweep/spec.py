"""The sweep specification: what to vary, what to measure, where to write.

A spec is a TOML file (or the same dict, or CLI flags) with these tables; only ``[parameters]``
is required::

    [sweep]
    block = "tensor_engine"          # a name from `systolica blocks`
    mode = "grid"                    # grid: every combination; random: `samples` draws
    samples = 20                     # random mode only
    seed = 1                         # random mode only
    measure = ["synth", "gemm"]      # measurement kinds (systolica.sweep.measurements)
    skip_invalid = false             # true: drop combinations the configs reject
    base = "my.toml"                 # optional config file every point starts from

    [parameters]                     # SECTION.FIELD = values
    array.rows = [2, 4, 8]
    array.multiplier_stages = { min = 0, max = 2 }         # step = 1 by default
    sbuf.depth = { min = 64, max = 4096, scale = "log2" }  # 64, 128, ..., 4096

    [tie]                            # fields that follow a parameter
    array.cols = "array.rows"

    [base.array]                     # fixed config overrides (tables as in default.toml)
    moving_dtype = "uint8"

    [synth]  /  [gemm]               # settings of each measurement

    [output]
    dir = "results"                  # relative to the spec's folder; -o overrides

    [plots]
    x = "array.rows"                 # default: the first parameter
    metrics = ["luts", "fmax_mhz"]   # default: every measured headline metric
    [pareto]
    area = "luts"
    throughput = "macs_per_cycle"

Everything is checked by :func:`parse_spec` and :func:`systolica.sweep.points.expand` before any
work starts; errors are :class:`SweepError` and name the offending key.
"""

import math
import os
import tomllib
from dataclasses import dataclass, field, replace


__all__ = ["SweepError", "Values", "SweepSpec", "read_spec", "load_spec", "parse_spec",
           "relative_to"]


class SweepError(ValueError):
    """A sweep spec, or the environment it needs, is unusable; the message says which key."""


SWEEP_KEYS = {"block", "mode", "samples", "seed", "measure", "skip_invalid", "base"}
TOP_TABLES = {"sweep", "parameters", "tie", "base", "plots", "pareto", "output"}
RANGE_KEYS = {"min", "max", "step", "scale"}
GRID_LIMIT = 100_000    # more combinations than this: a random sample is what is wanted


@dataclass(frozen=True)
class Values:
    """The values of one swept parameter: an explicit list, or an integer range."""

    path: str
    items: tuple = None             # explicit values
    lo: int = None                  # integer range lo..hi, linear with `step` or powers of two
    hi: int = None
    step: int = 1
    log2: bool = False

    def __len__(self):
        if self.items is not None:
            return len(self.items)
        if self.log2:
            return int(math.log2(self.hi // self.lo)) + 1
        return (self.hi - self.lo) // self.step + 1

    def __getitem__(self, i):
        if self.items is not None:
            return self.items[i]
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.lo << i if self.log2 else self.lo + i * self.step

    def all(self):
        return [self[i] for i in range(len(self))]


@dataclass(frozen=True)
class SweepSpec:
    parameters: tuple               # of Values, in spec order
    block: str = "tensor_engine"
    mode: str = "grid"
    samples: int = None
    seed: int = 0
    measure: tuple = ("synth",)
    skip_invalid: bool = False
    base_file: str = None           # config TOML every point starts from
    base: dict = field(default_factory=dict)        # {section: {field: value}}
    ties: dict = field(default_factory=dict)        # {path: path it follows}
    settings: dict = field(default_factory=dict)    # {measurement: {key: value}}
    plots: dict = field(default_factory=dict)       # x, metrics
    pareto: dict = field(default_factory=dict)      # area, throughput
    output: dict = field(default_factory=dict)      # dir

    @property
    def names(self):
        return tuple(v.path for v in self.parameters)


def read_spec(path):
    """The raw dict of a spec file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SweepError(f"sweep spec {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"sweep spec {path} is not valid TOML: {error}") from None


def relative_to(spec, path):
    """``spec`` with its relative ``base`` file taken relative to the folder of ``path``."""
    if spec.base_file and not os.path.isabs(spec.base_file):
        folder = os.path.dirname(os.path.abspath(path))
        spec = replace(spec, base_file=os.path.join(folder, spec.base_file))
    return spec


def load_spec(path):
    """Read and check a spec file."""
    return relative_to(parse_spec(read_spec(path)), path)


def flatten(table, prefix=""):
    """``{"array": {"rows": [..]}}`` -> ``{"array.rows": [..]}``; range tables stay whole."""
    flat = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not (set(value) & {"min", "max"}):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def parse_values(path, raw):
    """One ``[parameters]`` entry -> :class:`Values`."""
    where = f"[parameters] {path}"
    if isinstance(raw, list):
        if not raw:
            raise SweepError(f"{where}: the list of values is empty")
        if len(set(map(repr, raw))) != len(raw):
            raise SweepError(f"{where}: repeated values in {raw}")
        return Values(path, items=tuple(raw))
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - RANGE_KEYS)
        if unknown:
            raise SweepError(f"{where}: unknown range key(s) {', '.join(unknown)}; "
                             f"a range has {', '.join(sorted(RANGE_KEYS))}")
        lo, hi, step = raw.get("min"), raw.get("max"), raw.get("step", 1)
        scale = raw.get("scale", "linear")
        for name, value in (("min", lo), ("max", hi), ("step", step)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise SweepError(f"{where}: range {name} must be an integer; got {value!r}")
        if hi < lo:
            raise SweepError(f"{where}: range max {hi} is below min {lo}")
        if scale not in ("linear", "log2"):
            raise SweepError(f"{where}: scale must be linear or log2; got {scale!r}")
        if scale == "log2":
            if lo < 1 or lo & (lo - 1) or hi & (hi - 1):
                raise SweepError(f"{where}: a log2 range needs powers of two; got {lo}..{hi}")
            return Values(path, lo=lo, hi=hi, log2=True)
        if step < 1:
            raise SweepError(f"{where}: range step must be >= 1; got {step}")
        return Values(path, lo=lo, hi=hi, step=step)
    # A single value: a fixed parameter that still shows in the results.
    if isinstance(raw, (int, float, str, bool)):
        return Values(path, items=(raw,))
    raise SweepError(f"{where}: expected a list of values or a {{min, max}} range; got {raw!r}")


def _expect(cond, message):
    if not cond:
        raise SweepError(message)


def _int_setting(table, key, where, *, lo):
    value = table[key]
    _expect(isinstance(value, int) and not isinstance(value, bool) and value >= lo,
            f"{where}.{key} must be an integer >= {lo}; got {value!r}")
    return value


def parse_spec(data):
    """A spec dict (as read from TOML) -> :class:`SweepSpec`. Checks the spec's own shape; the
    config fields and measurement settings are checked by :func:`points.expand`."""
    from .measurements import MEASUREMENTS

    measurement_tables = set(MEASUREMENTS)
    unknown = sorted(set(data) - TOP_TABLES - measurement_tables)
    _expect(not unknown, f"unknown table(s) {', '.join(f'[{t}]' for t in unknown)} in the sweep "
            f"spec; known: {', '.join(f'[{t}]' for t in sorted(TOP_TABLES | measurement_tables))}")
    for name, table in data.items():
        _expect(isinstance(table, dict), f"[{name}] must be a table")

    sweep = data.get("sweep", {})
    unknown = sorted(set(sweep) - SWEEP_KEYS)
    _expect(not unknown, f"unknown key(s) {', '.join(unknown)} in [sweep]; "
            f"known: {', '.join(sorted(SWEEP_KEYS))}")
    mode = sweep.get("mode", "grid")
    _expect(mode in ("grid", "random"), f"[sweep] mode must be grid or random; got {mode!r}")
    samples = None
    if mode == "random":
        _expect("samples" in sweep, "[sweep] mode = random needs samples = N")
        samples = _int_setting(sweep, "samples", "[sweep]", lo=1)
    else:
        _expect("samples" not in sweep, "[sweep] samples only applies to mode = random")
    seed = _int_setting(sweep, "seed", "[sweep]", lo=0) if "seed" in sweep else 0
    measure = sweep.get("measure", ["synth"])
    if isinstance(measure, str):
        measure = [measure]
    _expect(isinstance(measure, list) and measure,
            f"[sweep] measure must be a non-empty list; got {measure!r}")
    for name in measure:
        _expect(name in MEASUREMENTS, f"[sweep] measure: unknown measurement {name!r}; "
                f"known: {', '.join(sorted(MEASUREMENTS))}")
    _expect(len(set(measure)) == len(measure), f"[sweep] measure lists one twice: {measure}")
    skip_invalid = sweep.get("skip_invalid", False)
    _expect(isinstance(skip_invalid, bool), "[sweep] skip_invalid must be true or false")
    block = sweep.get("block", "tensor_engine")
    _expect(isinstance(block, str), f"[sweep] block must be a block name; got {block!r}")
    base_file = sweep.get("base")
    _expect(base_file is None or isinstance(base_file, str),
            "[sweep] base must be the path of a config TOML file")

    raw_parameters = flatten(data.get("parameters", {}))
    _expect(raw_parameters, "the sweep spec has no [parameters]: nothing to sweep")
    parameters = tuple(parse_values(path, raw) for path, raw in raw_parameters.items())
    size = math.prod(len(v) for v in parameters)
    _expect(mode == "random" or size <= GRID_LIMIT,
            f"the grid has {size:,} points (more than {GRID_LIMIT:,}); use mode = random")

    ties = flatten(data.get("tie", {}))
    for path, source in ties.items():
        _expect(isinstance(source, str), f"[tie] {path} must name the field it follows, as a "
                f"string (e.g. \"array.rows\"); got {source!r}")
        _expect(path not in raw_parameters, f"[tie] {path} is also a swept parameter")

    base = data.get("base", {})
    for section, table in base.items():
        _expect(isinstance(table, dict), f"[base.{section}] must be a table of config fields")

    output = dict(data.get("output", {}))
    _expect(set(output) <= {"dir"} and isinstance(output.get("dir", ""), str),
            f"[output] has one key, dir = \"FOLDER\"; got {output}")

    settings = {name: dict(data.get(name, {})) for name in measure}
    for name in set(data) & measurement_tables - set(measure):
        raise SweepError(f"[{name}] sets a measurement that [sweep] measure does not list")
    return SweepSpec(
        parameters=parameters, block=block, mode=mode, samples=samples, seed=seed,
        measure=tuple(measure), skip_invalid=skip_invalid, base_file=base_file, base=base,
        ties=ties, settings=settings, plots=dict(data.get("plots", {})),
        pareto=dict(data.get("pareto", {})), output=output)
