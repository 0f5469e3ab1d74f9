"""Simulation speed of the tensor engine on the Amaranth simulator and on the compiled (Verilator)
backend, for a streaming GEMM workload checked against NumPy on both. Prints one JSON object.

    python benchmarks/simspeed.py --rows 16 --cols 16

Figures (all rates are simulated clock cycles per second of wall time):
* ``pysim_cycles_per_s``: ``run_matmuls(backend="amaranth")`` (simulator set-up included).
* ``compiled_cycles_per_s``: the compiled backend driven the way it is meant for long runs --
  operands packed from NumPy arrays into the C++ stream sources, results unpacked from the C++
  sink into NumPy arrays and checked against ``matmul_reference`` -- on ``--compiled-cycles``
  cycles; packing, the C++ run, unpacking and the check are timed, the build is not (it is
  ``build_seconds``).
* ``run_matmuls_cycles_per_s``: ``run_matmuls(backend="verilator")`` on the same workload: the
  same C++ run, plus the per-beat Python dicts ``run_matmuls`` makes and reads.
* ``testbench_cycles_per_s``: Amaranth-style async test benches (``StreamSource`` /
  ``StreamSink`` / ``check_stream_protocol``) unchanged on the compiled backend
  (``sim.run_simulation(backend="verilator")``): Python takes part in every cycle.
* ``compiled_core_cycles_per_s``: the C++ run loop alone (``CompiledSim.run``).
* ``raw_model_cycles_per_s``: bare clock edges of the Verilated model with constant inputs and no
  harness work -- about what a hand-written C++ driver gets.
* ``speedup``: compiled_cycles_per_s / pysim_cycles_per_s (``run_matmuls_speedup`` likewise).
* ``build_seconds``: Verilog export + Verilator + C++ compile of the model, into an empty cache
  (``--reuse-cache`` reuses ``$SYSTOLICA_CACHE`` instead and then reports 0 when cached).
* ``same_cycles_as_pysim``: both backends, same seed and workload: every acceptance cycle equal.
* ``load_average``: the machine's 1-minute load when done (other work skews the rates).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np


def workload(config, cycles, rng):
    """Back-to-back full-size matmuls (K = rows, N = cols, M = 4 * rows), about ``cycles``
    moving beats in all."""
    from systolica.testbench.tensor_engine import random_job
    m = 4 * config.rows
    count = max(1, round(cycles / m))
    return [random_job(config, rng, m=m, k=config.rows, n=config.cols) for _ in range(count)]


def check(config, jobs, run):
    from systolica.testbench.tensor_engine import expected_results
    return all(np.array_equal(got, want)
               for got, want in zip(run.results, expected_results(config, jobs)))


def beat_columns(config, jobs):
    """The ``weights`` and ``moving`` payloads of ``jobs`` (all with K = rows, reload, address 0)
    as NumPy columns for ``PayloadCodec.pack_columns`` -- the array form of ``engine_beats``."""
    addr_mask = (1 << config.result_addr_bits) - 1
    w = np.concatenate([job.w for job in jobs])
    w_last = np.concatenate([np.arange(len(job.w)) == len(job.w) - 1 for job in jobs])
    a = np.concatenate([job.a for job in jobs])
    row = np.concatenate([np.arange(len(job.a)) for job in jobs])
    m = np.concatenate([np.full(len(job.a), len(job.a)) for job in jobs])
    weights = {"data": w, "last": w_last}
    moving = {"data": a, "start": row == 0, "tag.addr": row & addr_mask,
              "tag.accumulate": np.zeros(len(a), dtype=np.int64), "tag.last": row == m - 1}
    return weights, moving


def run_arrays(model, config, jobs, max_cycles, stall, seed):
    """Run ``jobs`` on ``model`` with NumPy-packed streams (stall masks drawn from ``seed``);
    returns (cycles, results ok, seconds in the C++ loop)."""
    from systolica.testbench.compiled import PayloadCodec
    from systolica.model.reference import matmul_reference
    from systolica.testbench.streams import StallPattern
    streams = model.streams
    weights, moving = beat_columns(config, jobs)
    n = len(moving["data"])
    masks = [StallPattern(stall, np.random.default_rng([seed, i])) for i in range(3)]
    with model.open() as sim:
        sim.add_source("weights", PayloadCodec(streams["weights"].layout).pack_columns(weights),
                       masks[0])
        sim.add_source("moving", PayloadCodec(streams["moving"].layout).pack_columns(moving),
                       masks[1])
        sim.add_sink("result", n, masks[2])
        start = time.perf_counter()
        cycles = sim.run(max_cycles=max_cycles, wait_while="busy")
        core_seconds = time.perf_counter() - start
        rows, _ = sim.sink_result("result", raw=True)
    result = PayloadCodec(streams["result"].layout).unpack_columns(rows)["data"]
    ok, pos = True, 0
    for job in jobs:
        m, k_n = len(job.a), job.w.shape[1]
        ok &= np.array_equal(result[pos:pos + m, :k_n],
                             matmul_reference(job.a, job.w, config.acc_bits))
        pos += m
    return cycles, bool(ok), core_seconds


def run_testbenches(config, jobs, seed, stall):
    """The tensor engine driven by Amaranth-style async test benches (StreamSource, StreamSink,
    the protocol checker) on the compiled backend through ``sim.run_simulation``: Python
    runs every cycle. Returns (result acceptance cycles, results ok, cycles)."""
    from systolica.hdl.tensor_engine import TensorEngine
    from systolica.testbench.sim import run_simulation
    from systolica.testbench.streams import StreamSink, StreamSource, check_stream_protocol
    from systolica.testbench.tensor_engine import engine_beats, expected_results
    engine = TensorEngine(config=config)
    weight_beats, moving_beats = engine_beats(config, jobs)
    seeds = np.random.default_rng(seed).integers(1 << 32, size=3)
    ends = [cls(stream, stall=stall, rng=np.random.default_rng(s)) for cls, stream, s in zip(
        (StreamSource, StreamSource, StreamSink), (engine.weights, engine.moving, engine.result),
        seeds)]
    out = {}

    async def feed(ctx):
        await ends[0].send(ctx, weight_beats)

    async def feed_moving(ctx):
        await ends[1].send(ctx, moving_beats)

    async def collect(ctx):
        out["payloads"], out["cycles"] = await ends[2].receive(ctx, len(moving_beats))

    cycles = run_simulation(
        engine, [feed, feed_moving, collect], max_cycles=20 * len(moving_beats) + 1000,
        processes=[check_stream_protocol(engine.result, "result")], backend="verilator",
        memo_key=("TensorEngine", config))
    got = np.array([p["data"] for p in out["payloads"]], dtype=np.int64)
    want = np.concatenate(expected_results(config, jobs))    # all jobs have N = cols
    return out["cycles"], bool(np.array_equal(got, want)), cycles


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--stall", type=float, default=0.0,
                        help="stall probability on every stream (default 0: streaming)")
    parser.add_argument("--pysim-cycles", type=int, default=None,
                        help="cycles of the Amaranth-simulator run (default ~4 s worth)")
    parser.add_argument("--compiled-cycles", type=int, default=200_000,
                        help="cycles of the compiled run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--opt", default="-O3", help="C++ optimisation of the model")
    parser.add_argument("--reuse-cache", action="store_true",
                        help="use $SYSTOLICA_CACHE instead of a fresh cache (build_seconds 0)")
    args = parser.parse_args(argv)

    from systolica.config import ArrayConfig
    from systolica.hdl.tensor_engine import TensorEngine
    from systolica.testbench import backends
    from systolica.testbench.compiled import PayloadCodec
    from systolica.testbench.tensor_engine import engine_beats, run_matmuls

    config = ArrayConfig(rows=args.rows, cols=args.cols)
    rng = np.random.default_rng(args.seed)
    stalls = dict(stall_moving=args.stall, stall_weights=args.stall, stall_result=args.stall)
    pysim_cycles = args.pysim_cycles or max(200, min(5000, 400_000 // (args.rows * args.cols)))

    # Amaranth simulator
    jobs = workload(config, pysim_cycles, rng)
    start = time.perf_counter()
    run = run_matmuls(config, jobs, seed=args.seed, backend="amaranth", **stalls)
    pysim_seconds = time.perf_counter() - start
    pysim_ok = check(config, jobs, run)
    result = {
        "rows": args.rows, "cols": args.cols, "stall": args.stall,
        "pysim_cycles": run.sim_cycles, "pysim_seconds": round(pysim_seconds, 3),
        "pysim_cycles_per_s": round(run.sim_cycles / pysim_seconds, 1),
        "pysim_matches_numpy": pysim_ok,
    }

    # Compiled: build (into a fresh cache unless --reuse-cache)
    tmp = None
    if not args.reuse_cache:
        tmp = tempfile.TemporaryDirectory(prefix="systolica-simspeed-")
        os.environ["SYSTOLICA_CACHE"] = tmp.name
    try:
        engine = TensorEngine(config=config)
        start = time.perf_counter()
        model = backends.compiled_model(engine, memo_key=("TensorEngine", config), opt=args.opt)
        build_seconds = time.perf_counter() - start
        result.update(build_seconds=round(build_seconds if not model.info.cached else 0.0, 2),
                      build_cached=model.info.cached, verilator=model.info.toolchain.version)

        # Same seed and workload on both backends: identical cycle counts.
        same = run_matmuls(config, jobs, seed=args.seed, backend="verilator", **stalls)
        result["same_cycles_as_pysim"] = (same.result_cycles == run.result_cycles
                                          and same.sim_cycles == run.sim_cycles)
        # Amaranth-style test benches on the compiled backend, Python in every cycle.
        start = time.perf_counter()
        tb_cycles, tb_ok, tb_sim_cycles = run_testbenches(config, jobs, args.seed, args.stall)
        tb_seconds = time.perf_counter() - start
        result.update(testbench_cycles_per_s=round(tb_sim_cycles / tb_seconds, 1),
                      testbench_matches_numpy=tb_ok)
        # The array form of the beats is the same bits as engine_beats' dicts.
        codec = {name: PayloadCodec(s.layout) for name, s in model.streams.items()}
        w_cols, m_cols = beat_columns(config, jobs)
        w_dicts, m_dicts = engine_beats(config, jobs)
        assert np.array_equal(codec["weights"].pack_columns(w_cols), codec["weights"].pack(w_dicts))
        assert np.array_equal(codec["moving"].pack_columns(m_cols), codec["moving"].pack(m_dicts))

        jobs = workload(config, args.compiled_cycles, rng)
        max_cycles = int(20 * args.compiled_cycles / (1 - args.stall)) + 10_000
        start = time.perf_counter()
        cycles, compiled_ok, core_seconds = run_arrays(model, config, jobs, max_cycles,
                                                       args.stall, args.seed)
        compiled_seconds = time.perf_counter() - start
        result.update(
            compiled_cycles=cycles, compiled_seconds=round(compiled_seconds, 3),
            compiled_cycles_per_s=round(cycles / compiled_seconds, 1),
            compiled_matches_numpy=compiled_ok,
            compiled_core_cycles_per_s=round(cycles / core_seconds, 1))

        start = time.perf_counter()
        crun = run_matmuls(config, jobs, seed=args.seed, backend="verilator", **stalls)
        rm_seconds = time.perf_counter() - start
        compiled_ok &= check(config, jobs, crun)
        result.update(run_matmuls_seconds=round(rm_seconds, 3),
                      run_matmuls_cycles_per_s=round(crun.sim_cycles / rm_seconds, 1))

        with model.open() as sim:
            raw_cycles = max(cycles, 100_000)
            start = time.perf_counter()
            sim.tick(raw_cycles)
            raw_seconds = time.perf_counter() - start
        result["raw_model_cycles_per_s"] = round(raw_cycles / raw_seconds, 1)
    finally:
        if tmp is not None:
            tmp.cleanup()

    rate = result["pysim_cycles_per_s"]
    result["speedup"] = round(result["compiled_cycles_per_s"] / rate, 1)
    result["run_matmuls_speedup"] = round(result["run_matmuls_cycles_per_s"] / rate, 1)
    result["core_speedup"] = round(result["compiled_core_cycles_per_s"] / rate, 1)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "processor": platform.machine(),
                         "load_average": round(os.getloadavg()[0], 2)}
    print(json.dumps(result))
    return 0 if (pysim_ok and compiled_ok and result["same_cycles_as_pysim"]
                 and result["testbench_matches_numpy"]) else 1


if __name__ == "__main__":
    sys.exit(main())
