"""Exact products and the exactly rounded fp32 addition (combinational; docs/floating_point.md).

Both operands of an addition are *addends*: ``(-1)**sign * sig * 2**(exp - 127 - 26)`` with a
27-bit significand whose bit 26 has weight ``2**(exp - 127)``, and ``exp >= 1``: the exponent is
kept biased as in fp32, so unpacking an fp32 word needs no adder. An fp32 value is an addend
with three zero bits below its 24-bit significand (subnormals: ``exp = 1``, bit 26 clear).
A product is normalised (bit 26 set) unless its exponent is below -126: then it is shifted right
to ``exp = -126`` and every bit shifted out is ORed into bit 0 ("jammed", which is rounding to
odd at 2**-152). The adder aligns the smaller-exponent addend to the larger one within 27 bits,
jamming what falls out; the larger one has at least three zero bits below its last fp32 bit, so
the 28-bit sum is the exact sum rounded to odd at two bits or more below fp32's last bit, and
rounding that once to nearest even gives the correctly rounded fp32 sum.
"""

from amaranth.hdl import *
from amaranth.lib import data

from systolica.config import FLOAT_FORMATS


__all__ = ["ADDEND_LAYOUT", "ALIGNED_SUM_LAYOUT", "FP32_NAN", "leading_zeros", "unpack_fp32",
           "raw_product_layout", "multiply", "normalise_product", "exact_product",
           "align_and_add", "normalise_and_round", "add_to_fp32"]

SIG_BITS = 27          # 24-bit fp32 significand and 3 bits below it
BIAS = 127             # fp32's exponent bias; addend exponents are biased
MIN_EXP = 1            # smallest normal fp32 exponent (biased; -126); every addend's is >= this
FP32_NAN = 0x7FC00000  # the canonical NaN every unit produces

ADDEND_LAYOUT = data.StructLayout({
    "sign": 1,
    "exp": signed(11),
    "sig": unsigned(SIG_BITS),
    "nan": 1,
    "inf": 1,
})


def leading_zeros(m, value, name):
    """A signal with the number of leading zeros of ``value`` (its width when it is zero)."""
    width = len(value)
    count = Signal(range(width + 1), name=name)
    m.d.comb += count.eq(width)
    for i in range(width):            # the last true condition (the highest one bit) wins
        with m.If(value[i]):
            m.d.comb += count.eq(width - 1 - i)
    return count


def unpack_fp32(m, bits, name):
    """The addend of an fp32 bit pattern."""
    out = Signal(ADDEND_LAYOUT, name=name)
    biased, frac = bits[23:31], bits[:23]
    m.d.comb += [
        out.sign.eq(bits[31]),
        out.exp.eq(Mux(biased == 0, MIN_EXP, biased)),
        out.sig.eq(Cat(C(0, 3), frac, biased != 0)),
        out.inf.eq((biased == 255) & (frac == 0)),
        out.nan.eq((biased == 255) & (frac != 0)),
    ]
    return out


def _unpack_small(m, bits, dtype, name):
    """(sign, significand with hidden bit, exponent of its top bit, zero, inf, nan) of a
    bf16 / fp8 bit pattern: value = sig * 2**(exp - mantissa_bits)."""
    e_bits, m_bits = FLOAT_FORMATS[dtype]
    bias = (1 << (e_bits - 1)) - 1
    biased, frac = bits[m_bits:m_bits + e_bits], bits[:m_bits]
    sig = Signal(m_bits + 1, name=f"{name}_sig")
    exp = Signal(signed(e_bits + 2), name=f"{name}_exp")
    all_ones = biased == (1 << e_bits) - 1
    if dtype == "float8_e4m3":        # fn: no infinities; S.1111.111 is NaN
        inf, nan = C(0, 1), all_ones & (frac == (1 << m_bits) - 1)
    else:
        inf, nan = all_ones & (frac == 0), all_ones & (frac != 0)
    m.d.comb += [
        sig.eq(Cat(frac, biased != 0)),
        exp.eq(Mux(biased == 0, 1 - bias, biased - bias)),
    ]
    return bits[m_bits + e_bits], sig, exp, sig == 0, inf, nan


def raw_product_layout(a_dtype, w_dtype):
    """The product of two significands before normalisation (see :func:`multiply`)."""
    width = FLOAT_FORMATS[a_dtype][1] + FLOAT_FORMATS[w_dtype][1] + 2
    return data.StructLayout({"raw": unsigned(width), "exp": signed(11), "room": signed(11),
                              "right": unsigned(5), "sign": 1, "zero": 1, "nan": 1, "inf": 1})


def multiply(m, a_bits, a_dtype, w_bits, w_dtype, live, name="product"):
    """Stage 1 of the exact product: the significands' product and the flags (a
    :func:`raw_product_layout` value); ``live`` = 0 makes it ``-0``."""
    a_sign, a_sig, a_exp, a_zero, a_inf, a_nan = _unpack_small(m, a_bits, a_dtype, f"{name}_a")
    w_sign, w_sig, w_exp, w_zero, w_inf, w_nan = _unpack_small(m, w_bits, w_dtype, f"{name}_w")
    out = Signal(raw_product_layout(a_dtype, w_dtype), name=f"{name}_raw")
    nan = a_nan | w_nan | (a_inf & w_zero) | (w_inf & a_zero)
    # How far the product may be shifted left before its exponent falls below MIN_EXP, and
    # (when that is negative) how far it must go right: formed here, in parallel with the
    # multiplier, so that the normalising stage has one subtraction, not a chain of them.
    room = Signal(signed(11), name=f"{name}_room")
    m.d.comb += room.eq(a_exp + w_exp + 1 + BIAS - MIN_EXP)
    m.d.comb += [
        out.raw.eq(a_sig * w_sig),
        out.exp.eq(a_exp + w_exp + 1 + BIAS),     # of bit width-1 of `raw`, biased
        out.room.eq(room),
        out.right.eq(Mux(room >= 0, 0, Mux(room < -SIG_BITS, SIG_BITS, -room))),
        out.sign.eq(~live | (a_sign ^ w_sign)),
        out.zero.eq(~live | a_zero | w_zero),
        out.nan.eq(live & nan),
        out.inf.eq(live & (a_inf | w_inf) & ~nan),
    ]
    return out


def normalise_product(m, p, name="product"):
    """Stage 2 of the exact product: the :func:`multiply` result as an addend (normalised, or
    below exponent -126 shifted there with the bits shifted out jammed into bit 0)."""
    raw = p.raw
    width = len(raw)
    top = Signal(SIG_BITS, name=f"{name}_top")    # bit 26 weighs 2**p.exp
    m.d.comb += top.eq(raw << (SIG_BITS - width))
    lz = leading_zeros(m, raw, f"{name}_lz")
    # Normalise by lz, or (below fp32's normal range) only down to exponent MIN_EXP: left by
    # `room` when 0 <= room < lz, right by -room with the bits shifted out jammed into bit 0
    # when room < 0.
    clamped = Signal(name=f"{name}_clamped")
    m.d.comb += clamped.eq(lz > p.room)
    left = Signal(range(width + 1), name=f"{name}_left")
    m.d.comb += left.eq(Mux(clamped, p.room, lz))
    wide = Signal(2 * SIG_BITS, name=f"{name}_wide")
    m.d.comb += wide.eq(Cat(C(0, SIG_BITS), top) >> p.right)
    sig = Signal(SIG_BITS, name=f"{name}_sig")
    m.d.comb += sig.eq(Mux(p.room < 0, wide[SIG_BITS:] | (wide[:SIG_BITS] != 0), top << left))
    exp = Signal(signed(11), name=f"{name}_exp")
    m.d.comb += exp.eq(Mux(clamped, MIN_EXP, p.exp - lz))

    out = Signal(ADDEND_LAYOUT, name=name)
    m.d.comb += [
        out.sign.eq(p.sign),
        out.exp.eq(Mux(p.zero, MIN_EXP, exp)),
        out.sig.eq(Mux(p.zero, 0, sig)),
        out.nan.eq(p.nan),
        out.inf.eq(p.inf),
    ]
    return out


def exact_product(m, a_bits, a_dtype, w_bits, w_dtype, live, name="product"):
    """The exact product ``a * w`` as an addend; ``-0`` (which adds nothing) when ``live`` is 0
    (combinational: both stages)."""
    return normalise_product(m, multiply(m, a_bits, a_dtype, w_bits, w_dtype, live, name), name)


#: What the first stage of an addition hands to the second: the exact (jammed) sum's magnitude
#: ``mag`` (bit 27 weighs ``2**(exp + 1)``), its sign, and the special cases already decided.
ALIGNED_SUM_LAYOUT = data.StructLayout({
    "mag": unsigned(SIG_BITS + 1),
    "exp": signed(11),
    "sign": 1,
    "nan": 1,
    "inf": 1,
    "inf_sign": 1,
})


def align_and_add(m, x, y, name="sum"):
    """Stage 1 of ``x + y``: order the addends by exponent, align the smaller one (jamming),
    add or subtract; an :data:`ALIGNED_SUM_LAYOUT` value."""
    # Both exponent differences and both differences of the significands are formed in
    # parallel and selected, rather than compare-then-subtract and subtract-then-negate: this is
    # the critical path of a pipelined PE (docs/floating_point.md, "Cost and speed").
    d_xy, d_yx = (Signal(signed(12), name=f"{name}_d_{n}") for n in ("xy", "yx"))
    m.d.comb += [d_xy.eq(x.exp - y.exp), d_yx.eq(y.exp - x.exp)]
    x_first = ~d_xy[-1]
    big, small = (Signal(ADDEND_LAYOUT, name=f"{name}_{n}") for n in ("big", "small"))
    m.d.comb += [big.eq(Mux(x_first, x, y)), small.eq(Mux(x_first, y, x))]

    diff = Signal(11, name=f"{name}_diff")
    m.d.comb += diff.eq(Mux(x_first, d_xy, d_yx))
    shift = Mux(diff > SIG_BITS + 1, SIG_BITS + 1, diff)[:5]
    wide = Signal(2 * SIG_BITS + 1, name=f"{name}_wide")
    m.d.comb += wide.eq(Cat(C(0, SIG_BITS + 1), small.sig) >> shift)
    aligned = wide[SIG_BITS + 1:] | (wide[:SIG_BITS + 1] != 0)

    subtract = big.sign ^ small.sign
    total = Signal(SIG_BITS + 1, name=f"{name}_total")
    big_minus, small_minus = (Signal(signed(SIG_BITS + 2), name=f"{name}_{n}")
                              for n in ("big_minus", "small_minus"))
    m.d.comb += [
        total.eq(big.sig + aligned),
        big_minus.eq(big.sig - aligned),
        small_minus.eq(aligned - big.sig),
    ]
    negative = subtract & big_minus[-1]      # only possible for equal exponents
    mag = Signal(SIG_BITS + 1, name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(subtract, Mux(negative, small_minus, big_minus), total))
    out = Signal(ALIGNED_SUM_LAYOUT, name=f"{name}_aligned")
    m.d.comb += [
        out.mag.eq(mag),
        out.exp.eq(big.exp),
        out.sign.eq(Mux(mag == 0, big.sign & small.sign, big.sign ^ negative)),
        out.nan.eq(x.nan | y.nan | (x.inf & y.inf & (x.sign != y.sign))),
        out.inf.eq(x.inf | y.inf),
        out.inf_sign.eq(Mux(x.inf, x.sign, y.sign)),
    ]
    return out


def normalise_and_round(m, s, name="sum"):
    """Stage 2 of an addition: the fp32 bit pattern of an :data:`ALIGNED_SUM_LAYOUT` value,
    normalised (never below exponent -126) and rounded once to nearest even."""
    mag = s.mag
    # Normalise: bit 27 of `mag` weighs 2**(s.exp + 1); never below exponent -126.
    lz = leading_zeros(m, mag, f"{name}_lz")
    limit = Signal(10, name=f"{name}_limit")
    m.d.comb += limit.eq(s.exp - MIN_EXP + 1)        # shifting further would go below 1
    shl = Signal(range(SIG_BITS + 2), name=f"{name}_shl")
    m.d.comb += shl.eq(Mux(lz > limit, limit, lz))
    norm = Signal(SIG_BITS + 1, name=f"{name}_norm")
    m.d.comb += norm.eq(mag << shl)
    exp = Signal(signed(12), name=f"{name}_exp")
    m.d.comb += exp.eq(s.exp + 1 - shl)
    biased = Signal(signed(12), name=f"{name}_biased")
    m.d.comb += biased.eq(Mux(norm[-1], exp, 0))

    sig24 = norm[4:]
    round_up = norm[3] & ((norm[:3] != 0) | sig24[0])
    encoded = Signal(32, name=f"{name}_encoded")   # a carry runs into the exponent (and to inf)
    m.d.comb += encoded.eq(Cat(sig24[:23], biased[:8]) + round_up)

    out = Signal(32, name=name)
    with m.If(s.nan):
        m.d.comb += out.eq(FP32_NAN)
    with m.Elif(s.inf):
        m.d.comb += out.eq(Cat(C(0x7F800000, 31), s.inf_sign))
    with m.Elif(biased >= 255):
        m.d.comb += out.eq(Cat(C(0x7F800000, 31), s.sign))
    with m.Else():
        m.d.comb += out.eq(Cat(encoded[:31], s.sign))
    return out


def add_to_fp32(m, x, y, name="sum"):
    """The fp32 bit pattern of the addends ``x + y`` rounded once to nearest even
    (combinational: both stages)."""
    return normalise_and_round(m, align_and_add(m, x, y, name), name)
