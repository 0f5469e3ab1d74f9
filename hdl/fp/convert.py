"""The ACT unit's conversion of fp32 PSUM values (combinational; docs/floating_point.md):
``v = x * scale * 2**-shift`` exactly, then rounded once, to nearest, ties to even, to a float
type (bf16, fp8 e4m3/e5m2, fp32; saturating to +-max finite, canonical NaN, ReLU to +0) or to
an integer (for the integer modes' zero point and saturation stage)."""

from amaranth.hdl import *

from systolica.codes import ACT_MODE_FLOAT, ActMode
from systolica.config import FLOAT_FORMATS
from .add import leading_zeros


__all__ = ["scale_fp32", "round_scaled"]

_FLOAT_BITS = {"float32": (8, 23), **FLOAT_FORMATS}
_NAN = {"float32": 0x7FC00000, "bfloat16": 0x7FC0, "float8_e4m3": 0x7F, "float8_e5m2": 0x7E}


def _max_finite_bits(name):
    e_bits, m_bits = _FLOAT_BITS[name]
    if name == "float8_e4m3":                       # S.1111.111 is NaN, no infinities
        return (((1 << e_bits) - 1) << m_bits) | ((1 << m_bits) - 2)
    return (((1 << e_bits) - 2) << m_bits) | ((1 << m_bits) - 1)


def scale_fp32(m, x, scale, shift, name):
    """Stage 1: ``x * scale * 2**-shift`` exactly as ``(sign, sig, exp, nan, inf)`` with value
    ``sig * 2**exp`` (``sig`` unsigned, 24 + scale bits)."""
    biased, frac = x[23:31], x[:23]
    magnitude = Signal(len(scale), name=f"{name}_scale_mag")
    m.d.comb += magnitude.eq(Mux(scale < 0, -scale, scale))
    sig = Signal(24 + len(scale), name=f"{name}_sig")
    m.d.comb += sig.eq(Cat(frac, biased != 0) * magnitude)
    exp = Signal(signed(12), name=f"{name}_exp")
    m.d.comb += exp.eq(Mux(biased == 0, 1, biased) - 150 - shift)
    sign = x[31] ^ (scale < 0)
    nan = (biased == 255) & (frac != 0)
    inf = (biased == 255) & (frac == 0)
    return sign, sig, exp, nan, inf


def _round_to_weight(m, sig, exp, q, cap_bits, name):
    """``sig * 2**(exp - q)`` rounded to an integer, ties to even: ``(value, too_big)`` where
    ``value`` has ``cap_bits`` bits and ``too_big`` says it did not fit."""
    width = len(sig)
    r = Signal(signed(13), name=f"{name}_r")
    m.d.comb += r.eq(q - exp)
    right = Mux(r > width + 1, width + 1, Mux(r < 0, 0, r))
    wide = Signal(2 * width + 1, name=f"{name}_wide")
    m.d.comb += wide.eq(Cat(C(0, width + 1), sig) >> right[:len(Const(width + 1).as_unsigned())])
    truncated = wide[width + 1:]
    guard, sticky = wide[width], wide[:width] != 0
    rounded = Signal(width + 1, name=f"{name}_rounded")
    m.d.comb += rounded.eq(truncated + (guard & (sticky | truncated[0])))
    left_amount = Mux(-r > cap_bits, cap_bits, -r)[:len(Const(cap_bits).as_unsigned())]
    left = Signal(width + cap_bits, name=f"{name}_left")
    m.d.comb += left.eq(sig << left_amount)
    value = Signal(width + cap_bits, name=f"{name}_value")
    m.d.comb += value.eq(Mux(r >= 0, rounded, left))
    return value[:cap_bits], value[cap_bits:] != 0


def round_scaled(m, sign, sig, exp, nan, inf, relu, int_bits, name):
    """Stage 2: ``(integer, floats)``. ``integer``: ``signed(int_bits + 1)``, the rounded value
    saturated to +-(2**int_bits - 1) (NaN: 0; infinities saturate). ``floats``: {ActMode: 32-bit
    pattern} for every floating-point mode, saturated, canonical NaN, ReLU applied."""
    lz = leading_zeros(m, sig, f"{name}_lz")
    lead = Signal(signed(13), name=f"{name}_lead")     # exponent of the leading one
    m.d.comb += lead.eq(exp + (len(sig) - 1) - lz)
    zero = sig == 0

    magnitude, too_big = _round_to_weight(m, sig, exp, C(0, 1), int_bits, f"{name}_int")
    limit = (1 << int_bits) - 1
    saturated = Mux(too_big | inf | (magnitude > limit), limit, magnitude)
    integer = Signal(signed(int_bits + 1), name=f"{name}_integer")
    m.d.comb += integer.eq(Mux(nan, 0, Mux(sign, -saturated, saturated)))

    floats = {}
    for mode, dtype in ACT_MODE_FLOAT.items():
        e_bits, m_bits = _FLOAT_BITS[dtype]
        bias = (1 << (e_bits - 1)) - 1
        width = 1 + e_bits + m_bits
        max_bits = _max_finite_bits(dtype)
        tag = f"{name}_{dtype}"
        q = Signal(signed(13), name=f"{tag}_q")
        m.d.comb += q.eq(Mux(lead < 1 - bias, 1 - bias, lead) - m_bits)
        rounded, big = _round_to_weight(m, sig, exp, q, m_bits + 2, tag)
        carry = rounded[m_bits + 1]
        mant = Mux(carry, rounded >> 1, rounded)[:m_bits + 1]
        biased = Signal(signed(14), name=f"{tag}_biased")
        m.d.comb += biased.eq(q + carry + m_bits + bias)
        encoded = Signal(width, name=f"{tag}_encoded")
        with m.If(mant[m_bits]):
            with m.If(big | (biased >= (1 << e_bits))):
                m.d.comb += encoded.eq(max_bits + 1)            # beyond every finite value
            with m.Else():
                m.d.comb += encoded.eq(Cat(mant[:m_bits], biased[:e_bits]))
        with m.Else():
            m.d.comb += encoded.eq(mant)                         # subnormal or zero
        mag = Mux(inf | (encoded > max_bits), max_bits, Mux(zero, 0, encoded))
        value = Signal(32, name=f"{tag}_value")
        negative = sign & ~relu
        m.d.comb += value.eq(Mux(nan, _NAN[dtype],
                                 Mux(sign & relu, 0, mag | (negative << (width - 1)))))
        floats[mode] = value
    return integer, floats
