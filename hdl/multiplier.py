"""Integer multipliers for the tensor engine: in LUT logic, or in an ECP5 DSP with its registers.

Synthesis maps every ``a * b`` to a DSP block where the part has one. Two cases want otherwise:

* a part with fewer DSPs than PEs (a 16x16 array has 256 multipliers, an ECP5-85F 156
  MULT18X18D): :func:`lut_multiply` builds the product from radix-4 Booth partial products, which
  yosys leaves in LUTs and carry chains;
* registers around a multiplier: yosys does not pack fabric flip-flops into the MULT18X18D's own
  input and output registers, so a pipelined ``a * b`` costs the operands' and the product's
  flip-flops and two fabric-to-DSP routes per cycle. :class:`Ecp5RegisteredMultiplier`
  instantiates the primitive with its A, B and output registers in use (each with its own clock
  enable), for netlists elaborated with an ECP5 platform (``platform.family == "ecp5"``).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["is_ecp5", "product_shape", "fits_ecp5_dsp", "lut_multiply", "Ecp5RegisteredMultiplier",
           "registered_multiply", "pipelined_multiply", "PIPELINED_MULTIPLY_LATENCY"]

#: MULT18X18D operand width (signed or unsigned per operand).
ECP5_DSP_OPERAND_BITS = 18


def is_ecp5(platform):
    """Elaborating for a Lattice ECP5 (Amaranth's Lattice platforms, the synthesis flow)."""
    return getattr(platform, "family", None) == "ecp5"


def product_shape(a_shape, b_shape):
    """The exact product's shape, as Amaranth gives ``a * b``."""
    a, b = Shape.cast(a_shape), Shape.cast(b_shape)
    return (Signal(a) * Signal(b)).shape()


def fits_ecp5_dsp(a_shape, b_shape):
    """Both operands fit a MULT18X18D input (18 bits, each signed or unsigned)."""
    return all(Shape.cast(s).width <= ECP5_DSP_OPERAND_BITS for s in (a_shape, b_shape))


def _tree_sum(terms):
    """Sum of ``terms`` as a balanced tree of two-input adders (log depth, not a chain)."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def lut_multiply(a, b):
    """``a * b`` (exact, in Amaranth's product shape) from radix-4 Booth digits of ``a``: digit j
    = -2*a[2j+1] + a[2j] + a[2j-1] in {-2..2} picks 0, +-b or +-2b, and the partial products
    (ceil((bits of a as signed) / 2) of them) are summed in a balanced tree. No ``$mul`` cell is
    emitted, so synthesis maps no DSP."""
    a, b = Value.cast(a), Value.cast(b)
    shape = product_shape(a.shape(), b.shape())
    a_sign = a[-1] if a.shape().signed else Const(0, 1)
    n_bits = len(a) + (not a.shape().signed)        # a as a signed number
    n_bits += n_bits % 2
    a_bits = [a[i] if i < len(a) else a_sign for i in range(n_bits)]
    terms = []
    for j in range(0, n_bits, 2):
        low = a_bits[j - 1] if j else Const(0, 1)
        mid, high = a_bits[j], a_bits[j + 1]
        times_one = mid ^ low
        times_two = (high & ~mid & ~low) | (~high & mid & low)
        negative = high & ~(mid & low)
        magnitude = Mux(times_one, b, Mux(times_two, b << 1, 0))
        terms.append(Mux(negative, -magnitude, magnitude) << j)
    total = _tree_sum(terms)[:shape.width]
    return total.as_signed() if shape.signed else total


class Ecp5RegisteredMultiplier(wiring.Component):
    """``product = A * B`` two enabled cycles after the operands, in one MULT18X18D: A and B are
    captured by the DSP's input registers (clock enables ``a_enable``, ``b_enable``), the product
    by its output register (``p_enable``). No reset (pipeline registers)."""

    def __init__(self, a_shape, b_shape):
        if not fits_ecp5_dsp(a_shape, b_shape):
            raise ValueError(f"operands {a_shape} x {b_shape} do not fit a MULT18X18D "
                             f"({ECP5_DSP_OPERAND_BITS} bits each)")
        self._a_shape, self._b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        super().__init__({
            "a": In(a_shape), "b": In(b_shape),
            "a_enable": In(1), "b_enable": In(1), "p_enable": In(1),
            "product": Out(product_shape(a_shape, b_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        n = ECP5_DSP_OPERAND_BITS
        a_ext = Signal(n)
        b_ext = Signal(n)
        p = Signal(2 * n)
        m.d.comb += [a_ext.eq(self.a), b_ext.eq(self.b)]    # sign- or zero-extended by .eq
        ports = {f"i_A{i}": a_ext[i] for i in range(n)}
        ports |= {f"i_B{i}": b_ext[i] for i in range(n)}
        ports |= {f"i_C{i}": Const(0, 1) for i in range(n)}
        ports |= {f"o_P{i}": p[i] for i in range(2 * n)}
        registers = {}
        for reg, clk, ce in (("INPUTA", "CLK0", "CE0"), ("INPUTB", "CLK0", "CE1"),
                             ("INPUTC", "NONE", "CE0"), ("PIPELINE", "NONE", "CE0"),
                             ("OUTPUT", "CLK0", "CE2")):
            registers |= {f"p_REG_{reg}_CLK": clk, f"p_REG_{reg}_CE": ce,
                          f"p_REG_{reg}_RST": "RST0"}
        m.submodules.dsp = Instance(
            "MULT18X18D",
            **registers,
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED", p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_RESETMODE="SYNC",
            i_SIGNEDA=Const(int(self._a_shape.signed), 1),
            i_SIGNEDB=Const(int(self._b_shape.signed), 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal("sync"), i_CLK1=Const(0, 1), i_CLK2=Const(0, 1),
            i_CLK3=Const(0, 1),
            i_CE0=self.a_enable, i_CE1=self.b_enable, i_CE2=self.p_enable, i_CE3=Const(0, 1),
            i_RST0=Const(0, 1), i_RST1=Const(0, 1), i_RST2=Const(0, 1), i_RST3=Const(0, 1),
            **ports)
        m.d.comb += self.product.eq(p[:len(self.product)])
        return m


def _enabled_register(m, value, enable, name):
    value = Value.cast(value)
    reg = Signal(value.shape(), name=name, reset_less=True)
    with m.If(enable):
        m.d.sync += reg.eq(value)
    return reg


def registered_multiply(m, a, b, enable, platform, name):
    """``a * b`` two enabled cycles later: operands registered, product registered (reset-less,
    clock enable ``enable``). For an ECP5 platform with operands of at most 18 bits the three
    registers are the MULT18X18D's own (:class:`Ecp5RegisteredMultiplier`)."""
    a, b = Value.cast(a), Value.cast(b)
    if is_ecp5(platform) and fits_ecp5_dsp(a.shape(), b.shape()):
        dsp = m.submodules[name] = Ecp5RegisteredMultiplier(a.shape(), b.shape())
        m.d.comb += [dsp.a.eq(a), dsp.b.eq(b), dsp.a_enable.eq(enable),
                     dsp.b_enable.eq(enable), dsp.p_enable.eq(enable)]
        return dsp.product
    a_reg = _enabled_register(m, a, enable, f"{name}_a")
    b_reg = _enabled_register(m, b, enable, f"{name}_b")
    return _enabled_register(m, a_reg * b_reg, enable, f"{name}_product")


#: Latency of :func:`pipelined_multiply` in enabled cycles.
PIPELINED_MULTIPLY_LATENCY = 3


def pipelined_multiply(m, a, b, enable, platform, name):
    """The exact ``a * b`` three enabled cycles later, for a wide ``a``: ``a`` is cut into
    17-bit unsigned pieces (the top piece keeps the sign, up to 18 bits), each piece times ``b``
    is a :func:`registered_multiply` (one DSP each on an ECP5), and the shifted partial products
    are summed into a register. Every adder and multiplier sits between registers."""
    a, b = Value.cast(a), Value.cast(b)
    shape = product_shape(a.shape(), b.shape())
    piece = ECP5_DSP_OPERAND_BITS - 1
    pieces, lo = [], 0
    while lo < len(a):
        hi = len(a) if len(a) - lo <= ECP5_DSP_OPERAND_BITS else lo + piece
        chunk = a[lo:hi]
        pieces.append((lo, chunk.as_signed() if hi == len(a) and a.shape().signed else chunk))
        lo = hi
    partial = [registered_multiply(m, chunk, b, enable, platform, f"{name}_part{i}") << lo
               for i, (lo, chunk) in enumerate(pieces)]
    total = _tree_sum(partial)[:shape.width]
    return _enabled_register(m, total.as_signed() if shape.signed else total, enable,
                             f"{name}_sum")
