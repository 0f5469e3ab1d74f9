"""Floating point through the compiler and the runtime: ``systolica.matmul`` / ``Device`` with
bf16 / fp8 (ml_dtypes) operands, any pair, fp32 accumulators or ACT conversions, bit-exact (bit
patterns) against the golden model of the tile's accumulation order on the model, Amaranth and
Verilator backends; random shapes (non-multiples of R and C), edge values, the order itself,
clear errors, and the ``systolica gemm`` / ``demo`` commands."""

import ml_dtypes
import numpy as np
import pytest

import systolica
from systolica.cli import main
from systolica.compiler import CompileError, Linear, reference
from systolica.config import ArrayConfig, PsumConfig, SbufConfig, TileConfig
from systolica.model.fp import from_bits, gemm_fp, to_dtype
from systolica.runtime import Device
from systolica.testbench import backends
from systolica.testbench.fp import random_floats

FLOATS = ("bfloat16", "float8_e4m3", "float8_e5m2")
PAIRS = [("bfloat16", "bfloat16"), ("float8_e4m3", "float8_e4m3"),
         ("float8_e5m2", "float8_e5m2"), ("bfloat16", "float8_e4m3"),
         ("float8_e5m2", "bfloat16"), ("float8_e4m3", "float8_e5m2")]


def fp_config(moving="bfloat16", stationary="bfloat16", rows=4, cols=4):
    return TileConfig(array=ArrayConfig(rows=rows, cols=cols, moving_dtype=moving,
                                        stationary_dtype=stationary),
                      sbuf=SbufConfig(partitions=max(rows, cols), depth=256),
                      psum=PsumConfig(banks=2, bank_rows=16))


def bits(x):
    return np.asarray(x).view(f"u{np.asarray(x).dtype.itemsize}")


def assert_bits_equal(got, want):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    assert np.array_equal(bits(got), bits(want))


def float32_oracle(a, w, rows):
    """Written from docs/floating_point.md with scalar IEEE float32 arithmetic, independent of
    the model: per K tile of ``rows`` rows a column sum from -0 in row order, then the tiles
    added in order. Valid when every product is a finite fp32 number (moderate values)."""
    m, k = a.shape
    n = w.shape[1]
    out = np.zeros((m, n), dtype=np.float32)
    for i in range(m):
        for j in range(n):
            acc = None
            for k0 in range(0, k, rows):
                s = np.float32(-0.0)
                for kk in range(k0, min(k, k0 + rows)):
                    s = np.float32(s + np.float32(float(a[i, kk]) * float(w[kk, j])))
                acc = s if acc is None else np.float32(acc + s)
            out[i, j] = acc
    return out


@pytest.mark.parametrize("moving,stationary", PAIRS)
def test_matmul_default_device_picks_the_float_config(seed, moving, stationary):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    m, k, n = (int(x) for x in rng.integers(1, 30, 3))
    a = to_dtype(rng.standard_normal((m, k)) * 2, moving)
    b = to_dtype(rng.standard_normal((k, n)) * 2, stationary)
    got = systolica.matmul(a, b)
    device = systolica.runtime.device._DEFAULT_DEVICES[(moving, stationary)]
    array = device.config.array
    assert (array.moving_dtype, array.stationary_dtype) == (moving, stationary)
    assert got.dtype == np.float32
    assert_bits_equal(got, gemm_fp(a, b, array.rows))
    assert_bits_equal(got, float32_oracle(a, b, array.rows))


@pytest.mark.parametrize("out", ["float32", "bfloat16", "float8_e4m3", "float8_e5m2", "int8",
                                 "uint8", "int16"])
def test_act_conversions_with_scale(seed, out):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    moving, stationary = PAIRS[int(rng.integers(len(PAIRS)))]
    config = fp_config(moving, stationary)
    m, k, n = int(rng.integers(1, 20)), int(rng.integers(1, 14)), int(rng.integers(1, 11))
    a = to_dtype(rng.standard_normal((m, k)) * 4, moving)
    b = to_dtype(rng.standard_normal((k, n)) * 4, stationary)
    scale = rng.integers(-(1 << 10), 1 << 10, n)
    shift = rng.integers(0, 12, n)
    relu = bool(rng.integers(2))
    zero_point = int(rng.integers(-5, 6)) if out in ("int8", "int16") else 0
    layer = dict(out_dtype=out, scale=scale, shift=shift, relu=relu, zero_point=zero_point)
    device = Device(config, seed=seed)
    got = device.matmul(a, b, **layer)
    assert_bits_equal(got, reference([Linear(b, **layer)], a, config))


def test_edge_values_subnormals_inf_nan_signed_zeros(seed):
    """Random bit patterns (every exponent, subnormals) with 40 % edge values (signed zeros,
    subnormals, max finite, infinities, NaN): raw fp32 and converted outputs."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    for moving, stationary in PAIRS[:4]:
        config = fp_config(moving, stationary)
        a = random_floats(rng, moving, (9, 11), edge_fraction=0.4)
        b = random_floats(rng, stationary, (11, 6), edge_fraction=0.4)
        device = Device(config, seed=seed)
        raw = device.matmul(a, b)
        want = gemm_fp(a, b, config.array.rows)
        assert_bits_equal(raw, want)
        assert np.isnan(raw).any() and np.all(bits(raw)[np.isnan(raw)] == 0x7FC00000)
        low = device.matmul(a, b, out_dtype=moving, scale=3, shift=2)
        assert_bits_equal(low, reference([Linear(b, out_dtype=moving, scale=3, shift=2)], a,
                                         config))


def order_case():
    """K = 5 on 4 rows: tile 0 is 2**24 + 1 + 1 + 1 (each +1 is a tie, rounded to the even
    2**24), tile 1 is -2**24; PSUM adds them: +0, where the exact sum is 3. Then overflow
    (max + max = inf), cancellation (x - x = +0), -0 + -0 = -0, inf + finite = inf and
    inf - inf = NaN."""
    big = float(2 ** 24)
    a = np.array([[big, 1, 1, 1, -big],
                  [3.0e38, 3.0e38, 0, 0, 0],
                  [1.5, -1.5, 0, 0, 0],
                  [-0.0, -0.0, -0.0, -0.0, -0.0],
                  [0.0, np.inf, 1, 1, 1],
                  [np.inf, 1, 1, 1, -np.inf]], dtype=np.float64)
    w = np.ones((5, 3))
    w[:, 2] = [1, 1, 1, 1, 0.5]
    a16, w16 = to_dtype(a, "bfloat16"), to_dtype(w, "bfloat16")
    want = np.zeros((6, 3), dtype=np.float32)
    want[1] = np.inf                               # overflow
    want[3] = -0.0
    want[4] = np.inf
    want[5] = np.nan                               # inf (tile 0) + -inf (tile 1)
    return a16, w16, want


def check_order_case(got):
    _, _, want = order_case()
    assert got.dtype == np.float32
    assert np.array_equal(bits(got[0, :2]), np.zeros(2, np.uint32))   # +0, not 3
    assert bits(got)[0, 2] == bits(np.float32(2 ** 23))                 # 2**24 - 2**23
    assert np.array_equal(bits(got[2]), np.zeros(3, np.uint32))       # 1.5 - 1.5 = +0
    assert np.array_equal(bits(got[[1, 3, 4]]), bits(want[[1, 3, 4]]))
    assert np.all(bits(got[5]) == 0x7FC00000)


def test_accumulation_order_overflow_cancellation_on_the_model():
    a, w, _ = order_case()
    config = fp_config()
    got = Device(config).matmul(a, w)
    check_order_case(got)
    assert_bits_equal(got, gemm_fp(a, w, 4))


@pytest.mark.parametrize("options", [dict(m_block=3), dict(k_chunk=1), dict(n_group=1),
                                     dict(w_resident=False, k_chunk=1)])
def test_plans_keep_the_order(seed, options):
    """Any tiling of M, N and K chunks gives the same bits: the K tiles are always added in
    ascending order."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    config = fp_config("float8_e5m2", "bfloat16")
    a = random_floats(rng, "float8_e5m2", (13, 15), edge_fraction=0.2, specials=False)
    b = random_floats(rng, "bfloat16", (15, 9), edge_fraction=0.2, specials=False)
    got = Device(config).matmul(a, b, **options)
    assert_bits_equal(got, gemm_fp(a, b, 4))


def test_bf16_mlp_stays_in_float():
    rng = np.random.default_rng(5)
    config = fp_config()
    x = to_dtype(rng.standard_normal((7, 8)), "bfloat16")
    w1 = to_dtype(rng.standard_normal((8, 12)), "bfloat16")
    w2 = to_dtype(rng.standard_normal((12, 5)), "bfloat16")
    layers = [Linear(w1, out_dtype="bfloat16", scale=1, shift=0, relu=True),
              Linear(w2, out_dtype=ml_dtypes.float8_e4m3fn, scale=5, shift=3)]
    device = Device(config)
    got = device.run(layers, x)
    assert got.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    assert_bits_equal(got, reference(layers, x, config))


@pytest.mark.parametrize("call,error,message", [
    (lambda: systolica.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32)),
     TypeError, "got float32 (convert to ml_dtypes.bfloat16"),
    (lambda: systolica.matmul(np.ones((2, 2), ml_dtypes.float8_e4m3),
                              np.ones((2, 2), ml_dtypes.bfloat16)),
     TypeError, "the tile's float8_e4m3 is ml_dtypes.float8_e4m3fn"),
    (lambda: systolica.matmul(np.ones((2, 2), np.int8), np.ones((2, 2), ml_dtypes.bfloat16)),
     TypeError, "a is int8 and b is bfloat16: both operands must be floating point"),
    (lambda: Device(fp_config()).matmul(np.ones((2, 2), ml_dtypes.float8_e5m2),
                                        np.ones((2, 2), ml_dtypes.bfloat16)),
     TypeError, "a must have dtype bfloat16"),
    (lambda: Device(fp_config()).matmul(np.ones((2, 2), ml_dtypes.bfloat16),
                                        np.ones((2, 2), np.float32)),
     TypeError, "b must have dtype bfloat16 (ml_dtypes.bfloat16, the tile's); got float32"),
    (lambda: Device(fp_config()).run([Linear(np.ones((2, 2), np.float32))],
                                     np.ones((2, 2), ml_dtypes.bfloat16)),
     CompileError, "layers[0].weight must have dtype bfloat16"),
    (lambda: Device().matmul(np.ones((2, 2), ml_dtypes.bfloat16), np.ones((2, 2), np.int8)),
     TypeError, "a is bfloat16 but the device's tile is int8"),
    (lambda: Device(fp_config()).matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8)),
     TypeError, "b must have dtype bfloat16 (ml_dtypes.bfloat16, the tile's); got int8"),
    (lambda: Device(fp_config()).matmul(np.ones((2, 2), ml_dtypes.bfloat16),
                                        np.ones((2, 2), ml_dtypes.bfloat16), out_dtype="int32"),
     CompileError, "a floating-point tile accumulates in float32"),
    (lambda: systolica.matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8),
                              out_dtype="bfloat16"),
     CompileError, "float outputs need a floating-point tile"),
    (lambda: Device(fp_config()).matmul(np.ones((2, 2), ml_dtypes.bfloat16),
                                        np.ones((2, 2), ml_dtypes.bfloat16),
                                        out_dtype="bfloat16", zero_point=1),
     CompileError, "zero_point must be 0 for out_dtype bfloat16"),
    (lambda: reference([Linear(np.ones((2, 2), ml_dtypes.bfloat16))],
                       np.ones((2, 2), ml_dtypes.bfloat16)),
     CompileError, "needs the floating-point TileConfig"),
])
def test_bad_float_input_is_a_clear_error(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def rtl_case(seed):
    """A 2x2 tile (K = 5: three K tiles, N = 3: two N tiles) with edge values, and the order
    case."""
    rng = np.random.default_rng(seed)
    config = fp_config("bfloat16", "float8_e5m2", rows=2, cols=2)
    a = random_floats(rng, "bfloat16", (5, 5), edge_fraction=0.4)
    b = random_floats(rng, "float8_e5m2", (5, 3), edge_fraction=0.4)
    return config, a, b


@pytest.mark.parametrize("backend", [
    "amaranth", pytest.param("verilator", marks=pytest.mark.slow)])   # two tile builds, minutes
def test_rtl_backends_bit_exact(seed, backend):
    ok, reason = backends.backend_available(backend)
    if not ok:
        pytest.skip(reason)
    print(f"seed={seed}")
    config, a, b = rtl_case(seed)
    device = Device(config, backend=backend, seed=seed)
    assert_bits_equal(device.matmul(a, b), gemm_fp(a, b, 2))
    assert device.last.measured
    conv = dict(out_dtype="float8_e4m3", scale=[3, -7, 1], shift=[1, 2, 0], relu=False)
    assert_bits_equal(device.matmul(a, b, **conv), reference([Linear(b, **conv)], a, config))
    order = fp_config(rows=4, cols=4)
    a4, w4, _ = order_case()
    check_order_case(Device(order, backend=backend, seed=seed).matmul(a4, w4))


def test_cli_gemm_float(capsys):
    assert main(["gemm", "--m", "9", "--k", "11", "--n", "5", "--moving-dtype", "bfloat16",
                 "--stationary-dtype", "float8_e4m3", "--out-dtype", "float8_e5m2",
                 "--rows", "4", "--cols", "4", "--partitions", "4", "--bank-rows", "16"]) == 0
    out = capsys.readouterr().out
    assert "bfloat16 x float8_e4m3 -> float8_e5m2" in out and "bit-exact" in out


@pytest.mark.parametrize("argv,message", [
    (["--moving-dtype", "bfloat16", "--stationary-dtype", "bfloat16", "--out-dtype", "int32"],
     "a floating-point tile accumulates in float32"),
    (["--out-dtype", "bfloat16"], "float outputs need a floating-point tile"),
])
def test_cli_gemm_refuses_float_mismatch_in_one_line(capsys, argv, message):
    assert main(["gemm", "--m", "3", "--k", "3", "--n", "3", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_demo_float_engine_and_tile(capsys):
    assert main(["demo", "--rows", "2", "--cols", "2", "--m", "5", "--moving-dtype",
                 "float8_e4m3", "--stationary-dtype", "bfloat16", "--no-synth", "--seed", "3",
                 "--stall", "0.2"]) == 0
    out = capsys.readouterr().out
    assert out.count("bit-exact") == 3 and "MISMATCH" not in out
    assert "convert fp32 to float8_e4m3 with scale" in out


def test_from_bits_round_trip_of_outputs():
    """The DRAM unpacking of every float output type keeps bit patterns (NaN payloads too)."""
    for name in FLOATS:
        width = 16 if name == "bfloat16" else 8
        patterns = np.arange(1 << width, dtype=np.uint16 if width == 16 else np.uint8)
        values = from_bits(patterns, name)
        packed = systolica.compiler.CompiledProgram.pack(
            systolica.compiler.DramMatrix(0, 1, len(patterns), width // 8, transposed=False),
            values.reshape(1, -1))
        assert np.array_equal(np.frombuffer(packed, patterns.dtype), patterns)
