"""PSUM of a floating-point engine: fp32 accumulation, each addition rounded to nearest even,
bit-exact against the NumPy model (edge values, cancellation, same row every cycle, stalls)."""

import numpy as np
import pytest

from systolica.config import ArrayConfig, PsumConfig
from systolica.model.fp import float_bits, psum_reference_fp
from systolica.testbench.fp import random_fp32

from test_psum import read_all, run_psum


ARRAY = ArrayConfig(rows=4, cols=4, result_addr_bits=5, moving_dtype="bfloat16",
                    stationary_dtype="bfloat16")
PSUM = PsumConfig(banks=2, bank_rows=8)


def fp_beats(rng, n, rows, cols, *, addrs=None, p_acc=0.8, edge_fraction=0.2):
    beats, last = [], {}
    for i in range(n):
        addr = int(rng.integers(rows)) if addrs is None else int(rng.choice(addrs))
        values = random_fp32(rng, cols, edge_fraction=edge_fraction)
        if addr in last and rng.random() < 0.2:     # cancel the row's previous beat exactly
            values = -last[addr]
        last[addr] = values
        beats.append({"data": [int(x) for x in float_bits(values, "float32")],
                      "tag": {"addr": addr, "accumulate": int(rng.random() < p_acc),
                              "last": int(i == n - 1)}})
    return beats


def _bits(rows):
    return np.array(rows, dtype=np.uint32)


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_fp32_accumulation_bit_exact(seed, stall):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    beats = fp_beats(rng, 150, PSUM.rows, ARRAY.cols)
    out = run_psum(PSUM, ARRAY, [(beats, []), ([], read_all(PSUM))], seed=seed, stall=stall)
    expected, _ = psum_reference_fp(beats, PSUM.rows, ARRAY.cols)
    assert np.array_equal(_bits(out["reads"][1]), expected.view(np.uint32))
    assert out["errors"] == {"result": 0, "read": 0}


def test_same_row_every_cycle_full_rate(seed):
    """Back-to-back fp32 accumulation into rows A, A, B, A...: one beat per cycle, exact."""
    rng = np.random.default_rng(seed)
    beats = fp_beats(rng, 60, PSUM.rows, ARRAY.cols, addrs=[3, 3, 3, 9], p_acc=0.95,
                     edge_fraction=0.05)
    out = run_psum(PSUM, ARRAY, [(beats, []), ([], read_all(PSUM))], seed=seed)
    cycles = out["result_cycles"][0]
    assert cycles == list(range(cycles[0], cycles[0] + len(beats))), "a result beat was stalled"
    expected, _ = psum_reference_fp(beats, PSUM.rows, ARRAY.cols)
    assert np.array_equal(_bits(out["reads"][1]), expected.view(np.uint32))
