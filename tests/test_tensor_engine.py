# amaranth: UnusedElaboratable=no
"""The tensor engine against the NumPy reference: random shapes and values, every dtype pairing,
extreme values, pipeline variants, back-to-back matmuls, stalls on every stream, bad input."""

import itertools

import numpy as np
import pytest

from systolica.config import ArrayConfig, ConfigError, DTYPES, dtype_range, is_float_dtype
from systolica.hdl.tensor_engine import TensorEngine, psum_bits
from systolica.model.reference import matmul_reference
from systolica.testbench.sim import SimulationTimeout, run_simulation
from systolica.testbench.streams import StreamSink
from systolica.testbench.tensor_engine import (
    MatmulJob, engine_beats, expected_results, random_job, run_matmuls)

INT_DTYPES = [name for name in DTYPES if not is_float_dtype(name)]   # tests/test_fp_*.py: floats


def assert_results(config, jobs, run):
    for i, (got, want) in enumerate(zip(run.results, expected_results(config, jobs))):
        assert np.array_equal(got, want), f"job {i}: got\n{got}\nwant\n{want}"


@pytest.mark.parametrize("moving_dtype,stationary_dtype",
                         list(itertools.product(INT_DTYPES, INT_DTYPES)))
def test_random_gemms_every_dtype_pair_with_stalls(seed, moving_dtype, stationary_dtype):
    config = ArrayConfig(rows=4, cols=3, moving_dtype=moving_dtype,
                         stationary_dtype=stationary_dtype)
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng) for _ in range(3)]
    run = run_matmuls(config, jobs, seed=seed, stall_moving=0.3, stall_weights=0.3,
                      stall_result=0.3)
    assert_results(config, jobs, run)


@pytest.mark.parametrize("rows,cols,rows_per_stage,cols_per_stage,multiplier_stages", [
    (5, 4, 1, 1, 0),
    (5, 4, 2, 1, 1),
    (5, 4, 1, 1, 2),
    (5, 4, 3, 3, 0),
    (4, 5, 4, 5, 1),        # fully combinational columns and rows
    (4, 5, 2, 2, 2),
    (1, 1, 1, 1, 1),        # smallest array
    (1, 1, 1, 1, 2),
    (1, 6, 1, 2, 1),
    (6, 1, 2, 1, 0),
])
def test_pipeline_variants(seed, rows, cols, rows_per_stage, cols_per_stage, multiplier_stages):
    config = ArrayConfig(rows=rows, cols=cols, rows_per_stage=rows_per_stage,
                         cols_per_stage=cols_per_stage, multiplier_stages=multiplier_stages)
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng) for _ in range(3)]
    run = run_matmuls(config, jobs, seed=seed, stall_moving=0.2, stall_weights=0.2,
                      stall_result=0.2)
    assert_results(config, jobs, run)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_extreme_values(seed, dtype):
    config = ArrayConfig(rows=4, cols=4, moving_dtype=dtype, stationary_dtype=dtype)
    rng = np.random.default_rng(seed)
    lo, hi = dtype_range(dtype)
    jobs = [
        MatmulJob(a=np.full((5, 4), lo), w=np.full((4, 4), lo)),
        MatmulJob(a=np.full((3, 4), hi), w=np.full((4, 4), hi)),
        MatmulJob(a=np.full((2, 4), lo), w=np.full((4, 4), hi)),
        MatmulJob(a=np.zeros((2, 4), dtype=np.int64), w=np.full((4, 4), hi)),
        random_job(config, rng, extreme=True),
    ]
    run = run_matmuls(config, jobs, seed=seed, stall_result=0.2)
    assert_results(config, jobs, run)


def test_int16_products_wrap_int32():
    # (-32768)**2 * 4 = 2**32: the int32 accumulator wraps to 0; (32767)**2 * 4 wraps negative.
    config = ArrayConfig(rows=4, cols=2, moving_dtype="int16", stationary_dtype="int16")
    jobs = [MatmulJob(a=np.full((1, 4), -32768), w=np.full((4, 2), -32768)),
            MatmulJob(a=np.full((1, 3), -32768), w=np.full((3, 2), -32768)),
            MatmulJob(a=np.full((1, 4), 32767), w=np.full((4, 2), 32767))]
    run = run_matmuls(config, jobs)
    assert run.results[0].tolist() == [[0, 0]]
    assert run.results[1].tolist() == [[-(1 << 31) + (1 << 30), -(1 << 31) + (1 << 30)]]
    assert np.array_equal(run.results[2], matmul_reference(jobs[2].a, jobs[2].w))
    assert run.results[2][0, 0] < 0


def test_narrow_accumulator_wraps(seed):
    # int8 with a 16-bit accumulator: -128 * -128 * 2 = 32768 wraps to -32768.
    config = ArrayConfig(rows=3, cols=3, acc_bits=16)
    jobs = [MatmulJob(a=np.full((2, 2), -128), w=np.full((2, 3), -128)),
            random_job(config, np.random.default_rng(seed), extreme=True)]
    run = run_matmuls(config, jobs)
    assert run.results[0].tolist() == [[-32768] * 3] * 2
    assert_results(config, jobs, run)


def test_back_to_back_different_weights_no_bubble(seed):
    # With M >= K the next W loads in the background: results leave one per cycle, no gaps.
    config = ArrayConfig(rows=4, cols=4)
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng, m=4, k=4, n=4) for _ in range(5)]
    run = run_matmuls(config, jobs)
    assert_results(config, jobs, run)
    gaps = np.diff(run.result_cycles)
    assert np.all(gaps == 1), f"bubbles between results: {run.result_cycles}"
    assert run.steady_cycles == sum(len(job.a) for job in jobs)


def test_weight_reuse_and_tags(seed):
    config = ArrayConfig(rows=3, cols=4, result_addr_bits=4)
    rng = np.random.default_rng(seed)
    first = random_job(config, rng, m=5, addr=11, accumulate=False)   # rows 11..15: the last
    reuse = MatmulJob(a=random_job(config, rng, m=4, k=first.a.shape[1]).a, w=first.w,
                      addr=3, accumulate=True, reload=False)
    jobs = [first, reuse, random_job(config, rng, m=2, addr=7)]
    run = run_matmuls(config, jobs, seed=seed, stall_moving=0.3, stall_result=0.3)
    assert_results(config, jobs, run)
    want_tags = []
    for job in jobs:
        for i in range(len(job.a)):
            want_tags.append({"addr": (job.addr + i) % 16, "accumulate": int(job.accumulate),
                              "last": int(i == len(job.a) - 1)})
    assert run.tags == want_tags


def test_latency_matches_geometry():
    for kwargs in ({}, {"rows_per_stage": 2}, {"cols_per_stage": 3, "multiplier_stages": 0},
                   {"multiplier_stages": 2}):
        config = ArrayConfig(rows=4, cols=3, **kwargs)
        engine = TensorEngine(config=config)
        job = MatmulJob(a=np.ones((1, 4), dtype=np.int64), w=np.ones((4, 3), dtype=np.int64))
        run = run_matmuls(config, [job], engine=engine)
        # The result is taken one cycle after it enters the output buffer.
        assert run.result_cycles[0] - run.moving_cycles[0] == engine.latency + 1


def test_weights_overflow_sets_error_and_engine_keeps_working(seed):
    config = ArrayConfig(rows=3, cols=3)
    rng = np.random.default_rng(seed)
    bad_w = random_job(config, rng, m=1, k=3, n=3).w
    jobs = [random_job(config, rng, m=3, k=3), MatmulJob(a=random_job(config, rng, m=4, k=3).a,
                                                         w=bad_w),
            random_job(config, rng, m=3)]
    weight_beats, _ = engine_beats(config, jobs)
    # Job 1's W is sent with two extra rows: rows beyond R are dropped and flagged.
    bad_rows = [{"data": [1, 2, 3], "last": 0}, {"data": [4, 5, 6], "last": 1}]
    first_k = jobs[0].w.shape[0]
    weight_beats[first_k + 2]["last"] = 0
    weight_beats[first_k + 3:first_k + 3] = bad_rows
    run = run_matmuls(config, jobs, weight_beats=weight_beats, seed=seed, stall_weights=0.3)
    assert_results(config, jobs, run)
    assert run.weights_overflow == 1


def test_busy_and_error_clear():
    config = ArrayConfig(rows=2, cols=2)
    engine = TensorEngine(config=config)

    async def bench(ctx):
        assert not ctx.get(engine.busy)
        for row in range(3):     # one row too many
            ctx.set(engine.weights.valid, 1)
            ctx.set(engine.weights.payload, {"data": [1, 1], "last": int(row == 2)})
            await ctx.tick().until(engine.weights.ready)
        ctx.set(engine.weights.valid, 0)
        await ctx.tick()
        assert ctx.get(engine.weights_overflow)
        ctx.set(engine.clear_errors, 1)
        await ctx.tick()
        ctx.set(engine.clear_errors, 0)
        assert not ctx.get(engine.weights_overflow)
        ctx.set(engine.moving.valid, 1)
        ctx.set(engine.moving.payload, {"data": [2, 3], "start": 1, "tag": {"addr": 0}})
        await ctx.tick().until(engine.moving.ready)
        ctx.set(engine.moving.valid, 0)
        assert ctx.get(engine.busy)
        payloads, _ = await StreamSink(engine.result).receive(ctx, 1)
        assert payloads[0]["data"] == [5, 5]
        await ctx.tick()
        assert not ctx.get(engine.busy)

    run_simulation(engine, [bench], max_cycles=100)


def test_watchdog_stops_a_hung_simulation():
    config = ArrayConfig(rows=2, cols=2)
    engine = TensorEngine(config=config)

    async def waits_forever(ctx):   # no moving beats are ever sent
        await StreamSink(engine.result).receive(ctx, 1)

    with pytest.raises(SimulationTimeout, match="50 cycles"):
        run_simulation(engine, [waits_forever], max_cycles=50)


@pytest.mark.parametrize("kwargs,name", [
    ({"rows": 0}, "rows"), ({"cols": 257}, "cols"), ({"moving_dtype": "int4"}, "moving_dtype"),
    ({"acc_bits": 8}, "acc_bits"), ({"moving_dtype": "int16", "stationary_dtype": "uint16",
                                     "acc_bits": 24}, "acc_bits"),
    ({"rows": 4, "rows_per_stage": 5}, "rows_per_stage"), ({"cols_per_stage": 0}, "cols_per_stage"),
    ({"multiplier_stages": 3}, "multiplier_stages"), ({"rows": 2.5}, "rows"),
])
def test_bad_config_names_the_parameter(kwargs, name):
    with pytest.raises(ConfigError, match=f"ArrayConfig.{name}"):
        ArrayConfig(**kwargs)


def test_bad_jobs_raise_before_simulation():
    config = ArrayConfig(rows=2, cols=2)
    with pytest.raises(ValueError, match="K=3"):
        run_matmuls(config, [MatmulJob(a=np.zeros((1, 3)), w=np.zeros((3, 2)))])
    with pytest.raises(ValueError, match="N=3"):
        run_matmuls(config, [MatmulJob(a=np.zeros((1, 2)), w=np.zeros((2, 3)))])
    with pytest.raises(ValueError, match="outside int8"):
        run_matmuls(config, [MatmulJob(a=np.full((1, 2), 200), w=np.zeros((2, 2)))])
    with pytest.raises(TypeError, match="ArrayConfig"):
        TensorEngine(config={"rows": 2})
    with pytest.raises(TypeError):
        TensorEngine(config)          # keyword only


@pytest.mark.parametrize("a, match", [
    (np.array([[0.5, 1.0]]), "a must hold integers.*fractional"),
    (np.array([[1.0, np.nan]]), "a must hold integers"),
    (np.array([[1 + 1j, 2]]), "a must hold integers; got dtype complex"),
    (np.array([[True, False]]), "a must hold integers; got dtype bool"),
    (np.array([["1", "2"]]), "a must hold integers"),
])
def test_non_integer_operands_are_refused(a, match):
    config = ArrayConfig(rows=2, cols=2)
    with pytest.raises(ValueError, match=match):
        run_matmuls(config, [MatmulJob(a=a, w=np.ones((2, 2), dtype=np.int64))])
    with pytest.raises(ValueError, match=match.replace("a must", "w must")):
        run_matmuls(config, [MatmulJob(a=np.ones((1, 2), dtype=np.int64), w=a.T)])


def test_integral_floats_are_accepted():
    config = ArrayConfig(rows=2, cols=2)
    job = MatmulJob(a=np.array([[2.0, -3.0]]), w=np.array([[1.0, 2.0], [3.0, 4.0]]))
    run = run_matmuls(config, [job])
    assert np.array_equal(run.results[0], [[-7, -8]])


def test_reload_false_must_reuse_the_loaded_w():
    config = ArrayConfig(rows=2, cols=2)
    w = np.array([[1, 2], [3, 4]])
    a = np.ones((1, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="MatmulJob 0: reload=False, but no W has been loaded"):
        run_matmuls(config, [MatmulJob(a=a, w=w, reload=False)])
    with pytest.raises(ValueError, match="MatmulJob 1: reload=False, but w differs"):
        run_matmuls(config, [MatmulJob(a=a, w=w), MatmulJob(a=a, w=w + 1, reload=False)])
    with pytest.raises(ValueError, match="MatmulJob 1: reload=False, but w differs"):
        run_matmuls(config, [MatmulJob(a=a, w=w), MatmulJob(a=a[:, :1], w=w[:1], reload=False)])
    # The same W (fewer columns of it is the same W) is fine.
    run = run_matmuls(config, [MatmulJob(a=a, w=w), MatmulJob(a=2 * a, w=w[:, :1], reload=False)])
    assert np.array_equal(run.results[1], [[8]])


@pytest.mark.parametrize("addr, m, match", [
    (1024, 1, "addr must be an integer in \\[0, 1024\\)"),
    (-1, 1, "addr must be an integer in \\[0, 1024\\)"),
    (2.0, 1, "addr must be an integer"),
    (1020, 5, "addr \\+ M = 1020 \\+ 5 reaches beyond the PSUM address space"),
])
def test_psum_addresses_out_of_range_are_refused(addr, m, match):
    config = ArrayConfig(rows=2, cols=2)      # result_addr_bits=10: 1024 PSUM rows
    job = MatmulJob(a=np.ones((m, 2), dtype=np.int64), w=np.ones((2, 2), dtype=np.int64),
                    addr=addr)
    with pytest.raises(ValueError, match=match):
        run_matmuls(config, [job])


@pytest.mark.slow
@pytest.mark.parametrize("size", [8, 16])
def test_large_arrays(seed, size):
    config = ArrayConfig(rows=size, cols=size)
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng, m=2 * size) for _ in range(3)]
    run = run_matmuls(config, jobs, seed=seed, stall_moving=0.1, stall_weights=0.1,
                      stall_result=0.1)
    assert_results(config, jobs, run)


def test_partial_sum_widths_hold_every_sum():
    # Narrowed partial sums must hold the extreme sums of k products exactly.
    config = ArrayConfig(rows=4, cols=1)
    assert [psum_bits(config, k) for k in (1, 2, 4)] == [16, 17, 18]   # 2**14 * k, signed
    wide = ArrayConfig(rows=2, cols=1, moving_dtype="uint16", stationary_dtype="uint16")
    assert psum_bits(wide, 1) == 32      # 65535**2 needs 33 signed bits: capped, wraps


def test_clear_errors_in_a_cycle_that_accepts_a_weight_row():
    """clear_errors is obeyed in a cycle in which a weight row is accepted, and an overflow in
    the very cycle of a clear stays flagged (it happened after the host decided to clear)."""
    config = ArrayConfig(rows=2, cols=2)
    engine = TensorEngine(config=config)

    async def send_row(ctx, last, clear=0):
        ctx.set(engine.weights.valid, 1)
        ctx.set(engine.weights.payload, {"data": [1, 1], "last": last})
        ctx.set(engine.clear_errors, clear)
        while not (await ctx.tick().sample(engine.weights.ready))[2]:
            pass
        ctx.set(engine.weights.valid, 0)
        ctx.set(engine.clear_errors, 0)

    async def switch(ctx):                         # a moving beat that takes the new W
        ctx.set(engine.moving.valid, 1)
        ctx.set(engine.moving.payload, {"data": [1, 1], "start": 1, "tag": {"addr": 0}})
        while not (await ctx.tick().sample(engine.moving.ready))[2]:
            pass
        ctx.set(engine.moving.valid, 0)

    async def bench(ctx):
        ctx.set(engine.result.ready, 1)
        for last in (0, 0, 1):                     # one row too many: overflow
            await send_row(ctx, last)
        assert ctx.get(engine.weights_overflow)
        await switch(ctx)
        await send_row(ctx, 0, clear=1)            # a good row accepted while clearing
        assert not ctx.get(engine.weights_overflow)
        await send_row(ctx, 1)
        await switch(ctx)
        await send_row(ctx, 0)
        await send_row(ctx, 0)
        await send_row(ctx, 1, clear=1)            # an overflowing row while clearing
        assert ctx.get(engine.weights_overflow)
        ctx.set(engine.clear_errors, 1)
        await ctx.tick()
        ctx.set(engine.clear_errors, 0)
        assert not ctx.get(engine.weights_overflow)

    run_simulation(engine, [bench], max_cycles=200)


@pytest.mark.parametrize("generation", ["2005", "2012"])
def test_icarus_k_below_rows_is_x_free(tmp_path, generation):
    """A K < R matmul from reset in Icarus Verilog (4-state): rows >= K of the never-written
    weight bank must not turn the result into X (0 * X is X), under -g2005 and -g2012."""
    import shutil
    import subprocess
    from pathlib import Path
    from systolica.synth.verilog import to_verilog
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    design = tmp_path / "engine.v"
    design.write_text(to_verilog(TensorEngine(config=ArrayConfig(rows=4, cols=2)),
                                 "systolica_tensor_engine"))
    bench = Path(__file__).parent / "verilog" / "tb_tensor_engine_k_lt_r.v"
    binary = tmp_path / "sim"
    subprocess.run(["iverilog", f"-g{generation}", "-o", str(binary), str(bench), str(design)],
                   check=True)
    out = subprocess.run(["vvp", "-n", str(binary)], capture_output=True, text=True, check=True)
    assert "PASS result 23 34" in out.stdout, out.stdout
