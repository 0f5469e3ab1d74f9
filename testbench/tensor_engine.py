"""Host-side driver for the tensor engine in simulation: turns matmul jobs into stream beats, runs
them with random stalls and a watchdog, and returns NumPy results plus cycle statistics."""

from dataclasses import dataclass, field

import numpy as np

from systolica.config import ArrayConfig, dtype_range, is_float_dtype
from systolica.hdl.tensor_engine import TensorEngine
from systolica.model.fp import float_bits, from_bits, matmul_fp, to_dtype
from systolica.model.reference import matmul_reference
from .backends import resolve_backend, run_streams
from .fp import random_floats
from .sim import run_simulation
from .streams import StreamSink, StreamSource, check_stream_protocol


__all__ = ["MatmulJob", "MatmulRun", "engine_beats", "run_matmuls", "random_job"]


@dataclass
class MatmulJob:
    """``a @ w`` on the engine: ``a`` is M x K (moving), ``w`` is K x N (stationary), K <= rows,
    N <= cols. Floating-point configs take arrays of the configured dtypes (or any float arrays
    whose values those dtypes hold exactly). ``reload=False`` reuses the W already in the engine (``w`` must then be that W).
    Results are tagged with PSUM rows ``addr, addr+1, ...`` and the ``accumulate`` flag."""

    a: np.ndarray
    w: np.ndarray
    addr: int = 0
    accumulate: bool = False
    reload: bool = True

    def check(self, config: ArrayConfig):
        """``(a, w)``: int64 arrays, or for floating point the element bit patterns (int64)."""
        if config.is_float:
            a = _float_bits(self.a, "a", config.moving_dtype)
            w = _float_bits(self.w, "w", config.stationary_dtype)
        else:
            a, w = _integer_array(self.a, "a"), _integer_array(self.w, "w")
        if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
            raise ValueError(f"MatmulJob: a {a.shape} and w {w.shape} do not multiply")
        m, k = a.shape
        n = w.shape[1]
        if not (1 <= k <= config.rows):
            raise ValueError(f"MatmulJob: K={k} must be in [1, rows={config.rows}]")
        if not (1 <= n <= config.cols):
            raise ValueError(f"MatmulJob: N={n} must be in [1, cols={config.cols}]")
        if m < 1:
            raise ValueError(f"MatmulJob: M={m} must be >= 1")
        for name, arr, dtype in (("a", a, config.moving_dtype), ("w", w, config.stationary_dtype)):
            if is_float_dtype(dtype):
                continue
            lo, hi = dtype_range(dtype)
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise ValueError(f"MatmulJob: {name} has values outside {dtype} [{lo}, {hi}]")
        rows = 1 << config.result_addr_bits
        if isinstance(self.addr, bool) or not isinstance(self.addr, (int, np.integer)) \
                or not 0 <= self.addr < rows:
            raise ValueError(f"MatmulJob: addr must be an integer in [0, {rows}) (the PSUM "
                             f"address space of result_addr_bits={config.result_addr_bits}); "
                             f"got {self.addr!r}")
        if self.addr + m > rows:
            raise ValueError(f"MatmulJob: addr + M = {self.addr} + {m} reaches beyond the PSUM "
                             f"address space ({rows} rows); results would wrap")
        return a, w


def _float_bits(values, name, dtype):
    """The bit patterns (int64) of ``values`` as ``dtype``; values that ``dtype`` does not hold
    exactly are refused rather than rounded."""
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype.kind == "V"
            or arr.dtype == to_dtype(np.zeros(1), dtype).dtype):
        raise ValueError(f"MatmulJob: {name} must hold floating-point values for {dtype}; got "
                         f"dtype {arr.dtype}")
    converted = to_dtype(arr, dtype)
    if converted.dtype != arr.dtype:
        with np.errstate(invalid="ignore", over="ignore"):
            back, orig = converted.astype(np.float64), arr.astype(np.float64)
        if not np.array_equal(back, orig, equal_nan=True):
            raise ValueError(f"MatmulJob: {name} has values that {dtype} does not hold exactly")
    return float_bits(converted, dtype).astype(np.int64)


def _integer_array(values, name):
    """``values`` as an int64 array; a fractional, complex or non-numeric value is refused rather
    than truncated."""
    arr = np.asarray(values)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"MatmulJob: {name} must hold integers; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ValueError(f"MatmulJob: {name} must hold integers; it has fractional or non-finite "
                         f"values")
    return arr.astype(np.int64)


@dataclass
class MatmulRun:
    results: list                  # per job: M x N int64 array (float32 for floating point)
    tags: list                     # per result beat: tag dict
    result_cycles: list            # cycle at which each result beat was taken
    weight_cycles: list            # cycle at which each weight row was accepted
    moving_cycles: list            # cycle at which each moving beat was accepted
    sim_cycles: int
    weights_overflow: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def steady_cycles(self):
        """Cycles from the first result to the last result, inclusive."""
        return self.result_cycles[-1] - self.result_cycles[0] + 1

    @property
    def total_cycles(self):
        """Cycles from the start of the simulation to the last result, inclusive."""
        return self.result_cycles[-1] + 1


def engine_beats(config: ArrayConfig, jobs):
    """The ``weights`` and ``moving`` stream payloads (dicts) for a list of jobs. Raises
    ``ValueError`` for a job that does not fit ``config``, and for ``reload=False`` on a first job
    or with a ``w`` other than the one the engine holds (it would silently compute with that)."""
    weight_beats, moving_beats = [], []
    loaded = None           # the W in the engine (padded to cols), as the jobs leave it
    for index, job in enumerate(jobs):
        a, w = job.check(config)
        m, k = a.shape
        n = w.shape[1]
        padded_w = np.zeros((k, config.cols), dtype=np.int64)
        padded_w[:, :n] = w
        if job.reload:
            for row in range(k):
                weight_beats.append({"data": [int(x) for x in padded_w[row]],
                                     "last": int(row == k - 1)})
            loaded = padded_w
        elif loaded is None:
            raise ValueError(f"MatmulJob {index}: reload=False, but no W has been loaded yet")
        elif loaded.shape[0] != k or not np.array_equal(loaded[:, :n], w):   # (bit patterns)
            raise ValueError(f"MatmulJob {index}: reload=False, but w differs from the W the "
                             f"engine holds (from the last job with reload=True)")
        for i in range(m):
            padded = [int(x) for x in a[i]] + [0] * (config.rows - k)
            moving_beats.append({
                "data": padded,
                "start": int(job.reload and i == 0),
                "tag": {"addr": job.addr + i, "accumulate": int(job.accumulate),
                        "last": int(i == m - 1)},
            })
    return weight_beats, moving_beats


def run_matmuls(config: ArrayConfig, jobs, *, seed=0, stall_moving=0.0, stall_weights=0.0,
                stall_result=0.0, max_cycles=None, engine=None, weight_beats=None, backend=None):
    """Run ``jobs`` back to back on a simulated :class:`TensorEngine` and return a
    :class:`MatmulRun`. Stall probabilities apply per cycle to each stream; ``seed`` drives them.
    ``weight_beats`` replaces the weight rows made from the jobs (for error tests).
    ``backend``: ``"amaranth"`` or ``"verilator"`` (default: ``$SYSTOLICA_SIM_BACKEND``, else
    amaranth; see :mod:`systolica.testbench.backends`); same seeds give the same cycles on both."""
    job_weight_beats, moving_beats = engine_beats(config, jobs)   # validates the jobs first
    engine = engine if engine is not None else TensorEngine(config=config)
    if weight_beats is None:
        weight_beats = job_weight_beats
    rng = np.random.default_rng(seed)
    sources = {
        "weights": StreamSource(engine.weights, stall=stall_weights,
                                rng=np.random.default_rng(rng.integers(1 << 32))),
        "moving": StreamSource(engine.moving, stall=stall_moving,
                               rng=np.random.default_rng(rng.integers(1 << 32))),
    }
    sink = StreamSink(engine.result, stall=stall_result,
                      rng=np.random.default_rng(rng.integers(1 << 32)))
    out = {}

    async def feed_weights(ctx):
        out["weight_cycles"] = await sources["weights"].send(ctx, weight_beats)

    async def feed_moving(ctx):
        out["moving_cycles"] = await sources["moving"].send(ctx, moving_beats)

    async def collect(ctx):
        out["payloads"], out["result_cycles"] = await sink.receive(ctx, len(moving_beats))
        # Let the engine settle (e.g. extra weight rows) before reading the error flag.
        while "weight_cycles" not in out or ctx.get(engine.busy):
            await ctx.tick()
        out["weights_overflow"] = ctx.get(engine.weights_overflow)

    if max_cycles is None:
        worst_stall = 1.0 / (1.0 - max(stall_moving, stall_weights, stall_result, 0.0))
        beats = len(weight_beats) + len(moving_beats)
        max_cycles = int(4 * worst_stall * (beats + 2 * engine.latency + 20) + 200)
    stats = {}      # simulator timing (Amaranth backend)
    if resolve_backend(backend) != "amaranth":
        same_design = type(engine) is TensorEngine and engine.config == config
        run = run_streams(
            engine, sources={"weights": (sources["weights"], weight_beats),
                             "moving": (sources["moving"], moving_beats)},
            sinks={"result": (sink, len(moving_beats))}, max_cycles=max_cycles, backend=backend,
            wait_while="busy", read=("weights_overflow",),
            memo_key=("TensorEngine", config) if same_design else None)
        out.update(weight_cycles=run.accepted["weights"], moving_cycles=run.accepted["moving"],
                   weights_overflow=run.outputs["weights_overflow"])
        out["payloads"], out["result_cycles"] = run.received["result"]
        sim_cycles = run.sim_cycles
    else:
        sim_cycles = run_simulation(
            engine, [feed_weights, feed_moving, collect], max_cycles=max_cycles,
            processes=[check_stream_protocol(engine.result, "tensor_engine.result")], stats=stats)

    results, tags, pos = [], [], 0
    for job in jobs:
        m, n = len(job.a), np.asarray(job.w).shape[1]
        beats = out["payloads"][pos:pos + m]
        pos += m
        result = np.array([b["data"][:n] for b in beats], dtype=np.int64).reshape(m, n)
        results.append(from_bits(result, "float32") if config.is_float else result)
        tags.extend(b["tag"] for b in beats)
    return MatmulRun(results=results, tags=tags, result_cycles=out["result_cycles"],
                     weight_cycles=out["weight_cycles"], moving_cycles=out["moving_cycles"],
                     sim_cycles=sim_cycles, weights_overflow=out["weights_overflow"], extra=stats)


def random_job(config: ArrayConfig, rng, *, m=None, k=None, n=None, extreme=False, **kwargs):
    """A job with random shape (unless given) and random values of the configured dtypes;
    ``extreme`` draws only the minimum and maximum of each integer type (floating point:
    random bit patterns with edge values mixed in; otherwise normally distributed values)."""
    m = m if m is not None else int(rng.integers(1, 3 * config.rows + 1))
    k = k if k is not None else int(rng.integers(1, config.rows + 1))
    n = n if n is not None else int(rng.integers(1, config.cols + 1))

    def values(shape, dtype):
        if is_float_dtype(dtype):
            if extreme:      # every bit pattern: subnormals, infinities, NaN, edge values
                return random_floats(rng, dtype, shape, edge_fraction=0.3)
            return to_dtype(rng.standard_normal(shape) * 4, dtype)
        lo, hi = dtype_range(dtype)
        if extreme:
            return rng.choice(np.array([lo, hi], dtype=np.int64), size=shape)
        return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)

    return MatmulJob(a=values((m, k), config.moving_dtype), w=values((k, n), config.stationary_dtype),
                     **kwargs)


def expected_results(config: ArrayConfig, jobs):
    """The golden model's result of each job (int64, or float32 for floating point: compare
    those as bit patterns, ``.view(np.uint32)``)."""
    if config.is_float:
        return [matmul_fp(from_bits(_float_bits(job.a, "a", config.moving_dtype),
                                    config.moving_dtype),
                          from_bits(_float_bits(job.w, "w", config.stationary_dtype),
                                    config.stationary_dtype)) for job in jobs]
    return [matmul_reference(job.a, job.w, config.acc_bits) for job in jobs]


__all__.append("expected_results")
