"""Floating-point test data: random and edge-case bit patterns of bf16 / fp8 / fp32, as arrays
of their ``ml_dtypes`` / NumPy types (docs/floating_point.md)."""

import numpy as np

from systolica.config import FLOAT_FORMATS
from systolica.model.fp import from_bits


__all__ = ["edge_bits", "random_floats", "random_fp32"]


def edge_bits(dtype):
    """Bit patterns of the edge values of ``dtype`` (a float dtype name or ``float32``): signed
    zeros, smallest and largest subnormals, smallest normal, one, largest finite, infinities
    (when the type has them) and NaNs."""
    e_bits, m_bits = (8, 23) if dtype == "float32" else FLOAT_FORMATS[dtype]
    width = 1 + e_bits + m_bits
    mant_max = (1 << m_bits) - 1
    exp_max = (1 << e_bits) - 1
    bias = (1 << (e_bits - 1)) - 1
    magnitudes = [0, 1, mant_max, 1 << m_bits, bias << m_bits, (bias << m_bits) | 1]
    if dtype == "float8_e4m3":
        magnitudes += [(exp_max << m_bits) | (mant_max - 1), (exp_max << m_bits) | mant_max]
    else:
        magnitudes += [((exp_max - 1) << m_bits) | mant_max, exp_max << m_bits,
                       (exp_max << m_bits) | 1, (exp_max << m_bits) | mant_max]
    sign = 1 << (width - 1)
    return sorted({m | s for m in magnitudes for s in (0, sign)})


def _uint(dtype):
    return {8: np.uint8, 16: np.uint16, 32: np.uint32}[
        32 if dtype == "float32" else 1 + sum(FLOAT_FORMATS[dtype])]


def random_floats(rng, dtype, shape, *, edge_fraction=0.0, specials=True):
    """Random values of ``dtype``: uniformly random bit patterns (every exponent, subnormals
    included), a fraction ``edge_fraction`` replaced by edge values; ``specials=False`` draws
    only finite values."""
    width = 32 if dtype == "float32" else 1 + sum(FLOAT_FORMATS[dtype])
    bits = rng.integers(0, 1 << width, size=shape, dtype=np.uint64)
    if edge_fraction:
        edges = np.array(edge_bits(dtype), dtype=np.uint64)
        pick = rng.random(shape) < edge_fraction
        bits = np.where(pick, rng.choice(edges, size=shape), bits)
    values = from_bits(bits.astype(_uint(dtype)), dtype)
    if not specials:
        with np.errstate(invalid="ignore"):          # NaN patterns cast with a warning
            bad = ~np.isfinite(values.astype(np.float64))
        values = np.where(bad, from_bits(np.zeros(shape, dtype=_uint(dtype)), dtype), values)
        values = values.astype(from_bits(np.zeros(1, dtype=_uint(dtype)), dtype).dtype)
    return values


def random_fp32(rng, shape, *, edge_fraction=0.0):
    """Random fp32 values (random bit patterns, with edge values mixed in)."""
    return random_floats(rng, "float32", shape, edge_fraction=edge_fraction)
