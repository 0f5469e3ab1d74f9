"""A skid buffer (register slice): a stream stage whose outputs all come from registers.

``o.valid`` / ``o.payload`` are an output register and ``i.ready`` is "the skid register is
empty", so neither side's combinational logic reaches the other: a timing cut that still moves
one payload per cycle. A payload offered while the output register is stalled waits in the skid
register; at most two are held.
"""

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Payloads of ``shape`` from ``i`` to ``o`` in order, one cycle later at the earliest."""

    def __init__(self, *, shape):
        Shape.cast(shape)      # a clear error for something that is not a shape
        self._shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    @property
    def shape(self):
        return self._shape

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal(self._shape)
        m.d.comb += self.i.ready.eq(~skid_valid)
        accept = self.i.valid & self.i.ready
        with m.If(~self.o.valid | self.o.ready):
            # The output register is free: the oldest payload moves into it.
            m.d.sync += [self.o.valid.eq(skid_valid | self.i.valid), skid_valid.eq(0)]
            with m.If(skid_valid):
                m.d.sync += self.o.payload.eq(skid)
            with m.Else():
                m.d.sync += self.o.payload.eq(self.i.payload)
        with m.Elif(accept):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
