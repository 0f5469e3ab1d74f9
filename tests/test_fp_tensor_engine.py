# amaranth: UnusedElaboratable=no
"""The floating-point tensor engine against the NumPy model (systolica.model.fp), compared as
fp32 bit patterns: every dtype pair, random and edge-case data (subnormals, infinities, NaN,
signed zeros, overflow, cancellation), K < R with stale special weights, back to back, random
stalls on every stream, both simulator backends, one vector per cycle."""

import numpy as np
import pytest

from systolica.config import ArrayConfig, ConfigError
from systolica.model.fp import from_bits, matmul_fp, to_dtype
from systolica.testbench import backends
from systolica.testbench.fp import edge_bits, random_floats
from systolica.testbench.tensor_engine import (
    MatmulJob, expected_results, random_job, run_matmuls)


PAIRS = [("bfloat16", "bfloat16"), ("float8_e4m3", "float8_e4m3"),
         ("float8_e5m2", "float8_e5m2"), ("bfloat16", "float8_e5m2"),
         ("float8_e4m3", "float8_e5m2")]


def fp_config(moving="bfloat16", stationary="bfloat16", **kwargs):
    return ArrayConfig(moving_dtype=moving, stationary_dtype=stationary,
                       **{"rows": 4, "cols": 3, **kwargs})


def assert_bits(config, jobs, run):
    for i, (got, want) in enumerate(zip(run.results, expected_results(config, jobs))):
        assert got.dtype == np.float32
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
            f"job {i}: got\n{got.view(np.uint32)}\nwant\n{want.view(np.uint32)}"


@pytest.mark.parametrize("moving,stationary", PAIRS)
def test_random_and_edge_gemms_with_stalls(seed, moving, stationary):
    print(f"seed={seed}")
    config = fp_config(moving, stationary)
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng), random_job(config, rng, extreme=True),
            random_job(config, rng, extreme=True), random_job(config, rng)]
    run = run_matmuls(config, jobs, seed=seed, stall_moving=0.3, stall_weights=0.3,
                      stall_result=0.4)
    assert_bits(config, jobs, run)


def test_every_edge_value_pair_and_cancellation():
    """Each edge value of bf16 against each other; columns that cancel exactly (+0 sums), sums
    of zeros of either sign, overflow to infinity, inf - inf = NaN, subnormal products."""
    config = fp_config(rows=4, cols=4)
    edges = from_bits(np.array(edge_bits("bfloat16")), "bfloat16")
    big = to_dtype(np.array([3e38, 3e38, -3e38, 1.0]), "bfloat16")
    jobs = []
    for row in range(0, len(edges), 4):
        w = np.repeat(np.resize(edges[row:row + 4], 4)[:, None], 4, axis=1)
        jobs.append(MatmulJob(a=np.resize(edges, (len(edges), 4)), w=w))
    x = to_dtype(np.array([[1.5, -1.5, 2.0 ** -130, -(2.0 ** -130)]]), "bfloat16")
    jobs.append(MatmulJob(a=x, w=to_dtype(np.ones((4, 4)), "bfloat16")))            # +0, 2**-260
    jobs.append(MatmulJob(a=to_dtype(-np.zeros((2, 4)), "bfloat16"),
                          w=to_dtype(np.array([[0.0, -0.0, 1.0, -1.0]] * 4), "bfloat16")))
    jobs.append(MatmulJob(a=big[None, :], w=to_dtype(np.full((4, 2), 3e38), "bfloat16")))
    run = run_matmuls(config, jobs, stall_result=0.2)
    assert_bits(config, jobs, run)
    want = matmul_fp(jobs[-3].a, jobs[-3].w)
    assert np.all(want.view(np.uint32) == 0)                  # exact cancellation: +0
    assert np.all(np.signbit(matmul_fp(jobs[-2].a, jobs[-2].w)[:, 0:2]) == [True, False])


def test_stale_special_weights_beyond_k_add_nothing():
    """A W of K = R rows of inf / NaN, then W with K = 1: rows >= K must contribute nothing
    (not 0 * inf = NaN, not +0 changing the sign of a -0 result)."""
    config = fp_config(rows=4, cols=2)
    inf_w = to_dtype(np.array([[np.inf, np.nan]] * 4), "bfloat16")
    a4 = to_dtype(np.ones((3, 4)), "bfloat16")
    a1 = to_dtype(np.array([[-0.0], [2.0], [-1.0]]), "bfloat16")
    w1 = to_dtype(np.array([[1.0, 3.0]]), "bfloat16")
    jobs = [MatmulJob(a=a4, w=inf_w), MatmulJob(a=a1, w=w1)]
    run = run_matmuls(config, jobs, stall_weights=0.2)
    assert_bits(config, jobs, run)
    assert np.signbit(run.results[1][0]).all()          # -0 * 1 summed from -0: -0


def test_back_to_back_one_vector_per_cycle():
    """Back-to-back bf16 matmuls with different W loaded in the background: one result per
    cycle from the first to the last."""
    config = fp_config(rows=4, cols=4)
    rng = np.random.default_rng(3)
    jobs = [random_job(config, rng, m=8, k=4, n=4) for _ in range(4)]
    run = run_matmuls(config, jobs)
    assert_bits(config, jobs, run)
    assert run.steady_cycles == sum(len(j.a) for j in jobs)


@pytest.mark.parametrize("stages", [dict(multiplier_stages=0, rows_per_stage=2),
                                    dict(multiplier_stages=1, cols_per_stage=3)])
def test_pipeline_variants(seed, stages):
    config = fp_config("float8_e4m3", "bfloat16", **stages)
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng, extreme=bool(i % 2)) for i in range(3)]
    run = run_matmuls(config, jobs, seed=seed, stall_result=0.3)
    assert_bits(config, jobs, run)


def test_both_backends_identical(seed):
    ok, reason = backends.backend_available("verilator")
    if not ok:
        pytest.skip(reason)
    config = fp_config("bfloat16", "float8_e5m2")
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng), random_job(config, rng, extreme=True)]
    jobs.append(MatmulJob(a=jobs[-1].a[:2], w=jobs[-1].w, reload=False, accumulate=True, addr=5))
    stalls = dict(stall_moving=0.3, stall_weights=0.3, stall_result=0.4)
    runs = {b: run_matmuls(config, jobs, seed=seed, backend=b, **stalls)
            for b in backends.BACKENDS}
    for run in runs.values():
        assert_bits(config, jobs, run)
    assert runs["verilator"].result_cycles == runs["amaranth"].result_cycles


def test_bad_float_input_and_configs():
    config = fp_config()
    with pytest.raises(ValueError, match="a has values that bfloat16 does not hold exactly"):
        run_matmuls(config, [MatmulJob(a=np.full((1, 4), 1.001), w=np.ones((4, 3)))])
    with pytest.raises(ValueError, match="w must hold floating-point values"):
        run_matmuls(config, [MatmulJob(a=np.ones((1, 4)), w=np.ones((4, 3), dtype=np.int8))])
    with pytest.raises(ConfigError, match="stationary_dtype must be a floating-point type"):
        ArrayConfig(moving_dtype="bfloat16", stationary_dtype="int8")
    with pytest.raises(ConfigError, match="acc_bits must be 32"):
        ArrayConfig(moving_dtype="float8_e4m3", stationary_dtype="float8_e4m3", acc_bits=40)


def test_random_floats_cover_specials():
    rng = np.random.default_rng(0)
    v = random_floats(rng, "float8_e5m2", 4000, edge_fraction=0.3).astype(np.float64)
    assert np.isnan(v).any() and np.isinf(v).any() and (v == 0).any()
