# amaranth: UnusedElaboratable=no
"""ACT on fp32 PSUM (floating-point engines): scale, shift, one rounding to nearest even into
bf16 / fp8 / fp32 (saturating, canonical NaN, ReLU) or to int8 / uint8 / int16 (zero point,
saturation), INT32 raw pass-through, bit-exact against systolica.model.fp.act_convert_fp;
PSUM -> ACT -> SBUF with random stalls, one row per cycle."""

import numpy as np
import pytest

from systolica.codes import ACT_MODE_BYTES, ActMode
from systolica.config import ArrayConfig
from systolica.model.fp import act_convert_fp, float_bits, from_bits
from systolica.testbench.fp import random_fp32

from test_act import ACT, PSUM, SBUF, run_act


ARRAY = ArrayConfig(rows=4, cols=4, result_addr_bits=5, moving_dtype="bfloat16",
                    stationary_dtype="bfloat16")
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def fp_expected(model, acc, scale, shift, cmds, *, max_shift, depth, word_bytes):
    refused = 0
    for cmd in cmds:
        mode, size = cmd["mode"], ACT_MODE_BYTES[cmd["mode"]]
        cols = cmd["cols"]
        for i in range(cmd["rows"]):
            addr = cmd["psum_addr"] + i
            row = from_bits(np.asarray(acc[addr] if addr < len(acc) else [0] * 4,
                                       dtype=np.uint32), "float32")
            y = act_convert_fp(row[:cols], np.asarray(scale)[:cols],
                               np.minimum(shift, max_shift)[:cols], mode=mode,
                               relu=bool(cmd["relu"]), zero_point=cmd["zero_point"])
            offset = cmd["offset"] + i
            if offset * size // word_bytes >= depth:
                refused += 1
                continue
            for c in range(cols):
                model.store(c, offset, [y.view(_UINT[size])[c]], _UINT[size])
    return refused


def fp_acc(rng, rows, cols):
    """fp32 PSUM rows: random bit patterns, edge values, values near the output types' ranges."""
    acc = random_fp32(rng, (rows, cols), edge_fraction=0.25)
    near = (rng.standard_normal((rows, cols)) * 2.0 ** rng.integers(-30, 20, (rows, cols)))
    pick = rng.random((rows, cols)) < 0.5
    return float_bits(np.where(pick, near.astype(np.float32), acc), "float32").astype(np.int64)


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_every_mode_bit_exact(seed, stall):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    acc = fp_acc(rng, PSUM.rows, ARRAY.cols)
    cmds = []
    for i, mode in enumerate(ActMode):
        for relu in (0, 1):
            cmds.append({"psum_addr": int(rng.integers(0, PSUM.rows - 4)), "rows": 4,
                         "offset": 8 * (2 * i + relu) // ACT_MODE_BYTES[mode],
                         "cols": int(rng.integers(1, 5)), "mode": mode, "relu": relu,
                         "zero_point": int(rng.integers(-20, 20))})
    scale = [int(x) for x in rng.integers(-(1 << 15), 1 << 15, size=4)]
    scale[0] = 1
    shift = [0, int(rng.integers(0, 32)), 31, int(rng.integers(0, 10))]
    got, expected, errors, refused, _ = run_act(acc, scale, shift, cmds, seed=seed, stall=stall,
                                                array=ARRAY, expected_fn=fp_expected)
    assert refused == 0
    assert got == expected
    assert errors["act"] == 0


def test_model_conversion_rules():
    """Hand-checked conversions: ties to even, saturation, NaN, ReLU, subnormal outputs."""
    x = np.array([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 3.4e38, -np.inf, np.nan, -0.0, 2.0 ** -133,
                  -3.0], dtype=np.float32)
    one = np.ones(len(x), dtype=np.int64)
    zero = np.zeros(len(x), dtype=np.int64)
    bf = act_convert_fp(x, one, zero, mode=ActMode.BF16).view(np.uint16)
    # 1+2^-8 ties to 1.0; 1+3*2^-8 ties up to 1+2^-6; fp32 inf saturates; NaN canonical;
    # -0 stays; 2^-133 is bf16's smallest subnormal.
    assert [hex(b) for b in bf] == ["0x3f80", "0x3f82", "0x7f7f", "0xff7f", "0x7fc0", "0x8000",
                                    "0x1", "0xc040"]
    e4 = act_convert_fp(x, 500 * one, zero, mode=ActMode.FP8_E4M3, relu=True)
    assert list(e4.view(np.uint8)) == [0x7E, 0x7E, 0x7E, 0, 0x7F, 0, 0, 0]
    i8 = act_convert_fp(np.array([2.5, 3.5, -2.5, 1000.0, np.nan], dtype=np.float32),
                        [1] * 5, [0] * 5, mode=ActMode.INT8, zero_point=1)
    assert list(i8) == [3, 5, -1, 127, 1]
    scaled = act_convert_fp(np.array([3.0], dtype=np.float32), [-3], [2], mode=ActMode.FP32)
    assert scaled[0] == np.float32(-2.25)
