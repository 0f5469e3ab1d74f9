"""Golden model of the floating-point datapath (docs/floating_point.md), written from the rules
in that document, not from the RTL.

Element types are ``bfloat16``, ``float8_e4m3`` (the "fn" variant: no infinities) and
``float8_e5m2`` (``ml_dtypes`` provides the NumPy dtypes); accumulation is fp32. Values cross
this module's interfaces as NumPy arrays of those dtypes; results are compared with the RTL as
bit patterns (``.view(np.uint32)`` / ``uint16`` / ``uint8``).

The arithmetic:

* a product ``a * w`` is exact (float64 holds every product of two of these types exactly);
* every addition is one IEEE-754 binary32 addition of two exact operands, rounded once, to
  nearest, ties to even, subnormals kept (no flush to zero), overflow to infinity;
* a NaN result is the canonical fp32 NaN ``0x7FC00000``; ``inf - inf`` and ``0 * inf`` are NaN;
* a column sum starts from ``-0.0`` (the additive identity, so a sum of zeros keeps IEEE's sign
  rule) and adds the products of rows ``k = 0, 1, ..., K-1`` in that order.

The exactly rounded sum of two floats is computed in float64 with *round to odd* (TwoSum gives
the exact error; an inexact float64 sum with an even last bit is moved one ulp towards the exact
value), then rounded to float32 by NumPy's round-to-nearest-even cast; round-to-odd at 53 bits
followed by rounding to 24 bits equals a single rounding (53 >= 24 + 2).
"""

import numpy as np

from systolica.codes import ACT_MODE_FLOAT, ACT_MODE_RANGE, ActMode
from systolica.config import FLOAT_FORMATS, dtype_numpy
from systolica.model.reference import psum_replay


__all__ = ["CANONICAL_NAN", "float_bits", "from_bits", "to_dtype", "add_fp32", "fma_fp32",
           "matmul_fp", "gemm_fp", "psum_accumulate_fp", "psum_reference_fp", "act_convert_fp",
           "max_finite", "float_dtype_name"]

#: The NaN every floating-point unit produces, per output type (bit patterns).
CANONICAL_NAN = {"float32": 0x7FC00000, "bfloat16": 0x7FC0, "float8_e4m3": 0x7F,
                 "float8_e5m2": 0x7E}

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def _np_dtype(name):
    return np.dtype(np.float32) if name == "float32" else dtype_numpy(name)


def float_bits(values, dtype):
    """The bit patterns (unsigned ints) of ``values`` converted to ``dtype`` (a dtype name)."""
    arr = np.asarray(values)
    target = _np_dtype(dtype)
    if arr.dtype != target:
        arr = arr.astype(target)
    return arr.view(_UINT[target.itemsize])


def from_bits(bits, dtype):
    """Values of ``dtype`` (name) from their bit patterns."""
    target = _np_dtype(dtype)
    return np.asarray(bits).astype(_UINT[target.itemsize]).view(target)


def to_dtype(values, dtype):
    """``values`` as an array of ``dtype`` (name); floats are converted by ``ml_dtypes``
    (round to nearest even)."""
    arr = np.asarray(values)
    target = _np_dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return arr if arr.dtype == target else arr.astype(target)


def float_dtype_name(dtype):
    """The element-type name (``bfloat16``, ``float8_e4m3``, ``float8_e5m2``) of a NumPy dtype,
    or ``None`` when it is none of them. ``ml_dtypes.float8_e4m3fn`` is ``float8_e4m3``;
    ``ml_dtypes.float8_e4m3`` (the IEEE-like variant with infinities) is not supported."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    for name in FLOAT_FORMATS:
        if dt == dtype_numpy(name):
            return name
    return None


def max_finite(dtype):
    """The largest finite value of a floating-point type (name), as a float."""
    import ml_dtypes
    return float(ml_dtypes.finfo(_np_dtype(dtype)).max)


def _canonical(result32):
    """float32 array with every NaN replaced by the canonical NaN."""
    bits = result32.view(np.uint32).copy()
    bits[np.isnan(result32)] = CANONICAL_NAN["float32"]
    return bits.view(np.float32)


def _sum_round_to_odd(x, y):
    """``x + y`` (float64 arrays, finite) rounded to float64 with round to odd."""
    s = x + y
    bb = s - x
    err = (x - (s - bb)) + (y - bb)
    even = (s.view(np.uint64) & np.uint64(1)) == 0
    adjust = (err != 0) & even
    toward = np.where(err > 0, np.inf, -np.inf)
    return np.where(adjust, np.nextafter(s, toward), s)


def add_fp32(x, y):
    """The exactly rounded fp32 sum of ``x`` (float32) and ``y`` (float64 values that are exact:
    an fp32 value or a product), round to nearest even, canonical NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        y = np.asarray(y).astype(np.float64)
        x, y = np.broadcast_arrays(x, y)
        finite = np.isfinite(x) & np.isfinite(y)
        s = np.where(finite, _sum_round_to_odd(np.where(finite, x, 0), np.where(finite, y, 0)),
                     x + y)
        return _canonical(s.astype(np.float32))


def fma_fp32(acc, a, w):
    """One PE: ``acc + a * w`` with the exact product and one rounding to fp32."""
    with np.errstate(invalid="ignore"):
        product = np.asarray(a).astype(np.float64) * np.asarray(w).astype(np.float64)
    return add_fp32(acc, product)


def matmul_fp(a, w):
    """``a @ w`` as the tensor engine computes it: ``a`` (M x K) and ``w`` (K x N) of
    floating-point dtypes, each column summed from ``-0.0`` over k = 0 .. K-1 in order, every
    addition rounded to fp32. Returns M x N float32."""
    a, w = np.asarray(a), np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"matmul_fp: shapes {a.shape} and {w.shape} do not multiply")
    with np.errstate(invalid="ignore"):
        a64, w64 = a.astype(np.float64), w.astype(np.float64)
    acc = np.full((a.shape[0], w.shape[1]), -0.0, dtype=np.float32)
    for k in range(a.shape[1]):
        with np.errstate(invalid="ignore"):
            product = a64[:, k:k + 1] * w64[k:k + 1, :]
        acc = add_fp32(acc, product)
    return acc


def gemm_fp(a, w, rows):
    """``a @ w`` as a tile computes it through the ISA (the compiler's schedule): K is split
    into tiles of ``rows`` rows (k = 0..rows-1, rows..2*rows-1, ...); each tile's product is
    formed by the array (:func:`matmul_fp`: column sums from ``-0.0``, row order) and written
    to PSUM (the first tile) or added into it (``round(old + new)``, the later tiles, in
    ascending k). Returns M x N float32."""
    a, w = np.asarray(a), np.asarray(w)
    if not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"gemm_fp: rows must be a positive integer; got {rows!r}")
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"gemm_fp: shapes {a.shape} and {w.shape} do not multiply")
    acc = None
    for k0 in range(0, a.shape[1], rows):
        part = matmul_fp(a[:, k0:k0 + rows], w[k0:k0 + rows])
        acc = part if acc is None else psum_accumulate_fp(acc, part)
    return acc


def psum_accumulate_fp(old, new):
    """PSUM's accumulate: ``old + new`` (fp32 arrays), one rounding, canonical NaN."""
    return add_fp32(np.asarray(old, dtype=np.float32), np.asarray(new, dtype=np.float32))


# --- ACT: fp32 -> (scale, shift) -> output type ------------------------------------------------

def _round_half_even_int(v):
    """Round float64 (exact) values to integers, ties to even."""
    return np.rint(v)


def act_convert_fp(x, scale, shift, *, mode, relu=False, zero_point=0):
    """The ACT unit on fp32 PSUM values ``x`` (..., N) with per-column integer ``scale`` and
    ``shift`` (N,): ``v = x * scale * 2**-shift`` exactly, then

    * floating-point modes: ``v`` rounded once to the output type (nearest, ties to even,
      subnormals kept); a magnitude beyond the largest finite value, infinities included,
      saturates to +-max finite; NaN gives the type's canonical NaN; ReLU turns every negative
      value and -0 into +0 (after rounding); ``zero_point`` is not used;
    * integer modes (INT8, UINT8, INT16): ``v`` rounded to an integer (ties to even), ReLU, plus
      ``zero_point``, saturated (infinities saturate; NaN gives ``zero_point`` saturated);
    * INT32: the fp32 bit pattern, unchanged (no scale).

    Returns an array of the output type (``ml_dtypes`` / float32 / integer)."""
    if not isinstance(mode, ActMode):
        raise TypeError(f"act_convert_fp: mode must be an ActMode; got {mode!r}")
    x = np.asarray(x, dtype=np.float32)
    if mode == ActMode.INT32:
        return x.view(np.int32).copy()
    scale = np.broadcast_to(np.asarray(scale, dtype=np.int64), x.shape)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), x.shape)
    x_bits = x.view(np.uint32)
    nan = np.isnan(x)
    sign = ((x_bits >> np.uint32(31)) & np.uint32(1)).astype(bool) ^ (scale < 0)
    # |x| * |scale| * 2**-shift exactly: an integer significand (< 2**56) and a power of two.
    mag_bits = (x_bits & np.uint32(0x7FFFFFFF)).astype(np.int64)
    exp_field = mag_bits >> 23
    frac = mag_bits & ((1 << 23) - 1)
    sig = np.where(exp_field > 0, frac | (1 << 23), frac)
    exp = np.maximum(exp_field, 1) - 127 - 23 - shift          # value = sig * 2**exp
    inf = (exp_field == 255) & ~nan
    prod = sig * np.abs(scale)                                 # exact in int64
    if mode in ACT_MODE_FLOAT:
        out_name = ACT_MODE_FLOAT[mode]
        bits = _round_to_format(prod, exp, sign, out_name)
        big = _UINT[_np_dtype(out_name).itemsize]
        max_bits = int(np.asarray(max_finite(out_name), dtype=_np_dtype(out_name)).view(big))
        sign_bit = 1 << (8 * _np_dtype(out_name).itemsize - 1)
        bits = np.where(inf, max_bits | np.where(sign, sign_bit, 0), bits)
        if relu:
            bits = np.where(bits & sign_bit, 0, bits)
        bits = np.where(nan, CANONICAL_NAN[out_name], bits)
        return from_bits(bits.astype(big), out_name)
    lo, hi = ACT_MODE_RANGE[mode]
    q = _round_int(prod, exp)
    q = np.where(sign, -q, q)
    q = np.where(inf, np.where(sign, lo - abs(zero_point) - 1, hi + abs(zero_point) + 1), q)
    q = np.where(nan, 0, q)
    if relu:
        q = np.maximum(q, 0)
    y = np.clip(q.astype(object) + int(zero_point), lo, hi).astype(np.int64)
    return y.astype({ActMode.INT8: np.int8, ActMode.UINT8: np.uint8,
                     ActMode.INT16: np.int16}[mode])


def _round_int(sig, exp):
    """``sig * 2**exp`` (non-negative int64 sig) rounded to an integer, ties to even, as int64
    (saturated far beyond every integer output range)."""
    out = np.zeros(sig.shape, dtype=np.int64)
    for idx in np.ndindex(sig.shape):
        s, e = int(sig[idx]), int(exp[idx])
        if e >= 0:
            v = s << min(e, 40)
        else:
            r = -e
            q, rem = s >> r, s & ((1 << r) - 1)
            half = 1 << (r - 1)
            v = q + (rem > half or (rem == half and q & 1))
        out[idx] = min(v, 1 << 40)
    return out


def _round_to_format(sig, exp, sign, name):
    """Bit patterns of ``(-1)**sign * sig * 2**exp`` (non-negative int64 ``sig``) rounded to
    the floating-point type ``name`` (or float32): nearest, ties to even, subnormals kept,
    magnitudes beyond the largest finite value saturated to it."""
    if name == "float32":
        e_bits, m_bits = 8, 23
    else:
        e_bits, m_bits = FLOAT_FORMATS[name]
    bias = (1 << (e_bits - 1)) - 1
    width = 1 + e_bits + m_bits
    dt = _np_dtype(name)
    max_bits = int(np.asarray(max_finite(name), dtype=dt).view(_UINT[dt.itemsize]))
    emin = 1 - bias                                  # exponent of the smallest normal
    out = np.zeros(sig.shape, dtype=np.int64)
    for idx in np.ndindex(sig.shape):
        s, e = int(sig[idx]), int(exp[idx])
        if s == 0:
            mag = 0
        else:
            lead = s.bit_length() - 1 + e            # exponent of the leading one
            q = max(lead, emin) - m_bits             # weight of the result's last bit
            r = q - e
            if r <= 0:
                m = s << -r
            else:
                m, rem = s >> r, s & ((1 << r) - 1)
                half = 1 << (r - 1)
                m += rem > half or (rem == half and m & 1)
            # m * 2**q with m < 2**(m_bits+2); encode with the carry into the exponent field.
            if m >> (m_bits + 1):
                m >>= 1
                q += 1
            if m >> m_bits:
                biased = q + m_bits + bias
                mag = (biased << m_bits) | (m & ((1 << m_bits) - 1)) if biased < (1 << e_bits) \
                    else max_bits + 1
            else:
                mag = m
            mag = min(mag, max_bits)
        out[idx] = mag | (int(sign[idx]) << (width - 1))
    return out


def psum_reference_fp(beats, rows, cols, memory=None):
    """PSUM of a floating-point engine after ``beats`` (dicts ``{"data": [fp32 bit patterns],
    "tag": {"addr", "accumulate"}}``, in acceptance order): overwrite, or ``old + new`` rounded
    once to fp32. Beats addressed at ``rows`` or beyond are dropped. Returns ``(memory (rows x
    cols float32), number of dropped beats)``; a fresh PSUM holds +0.0."""
    mem = np.zeros((rows, cols), dtype=np.float32) if memory is None else memory.copy()
    return psum_replay(beats, mem,
                       lambda data: from_bits(np.asarray(data, dtype=np.uint32), "float32"),
                       psum_accumulate_fp)
