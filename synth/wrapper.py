"""A three-pin scan wrapper for place-and-route on devices without an out-of-context mode.

A block's ports usually outnumber a package's pins. ``ScanWrapper`` feeds every input port from a
shift register loaded through ``scan_in`` and captures every output port into a shift register
read through ``scan_out``, so nextpnr sees a placeable design whose internal paths are the
block's own. It adds one flip-flop per input bit and one flip-flop (+ a 2:1 mux) per output bit;
``overhead_ffs`` reports that count so estimates can subtract it.
"""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["ScanWrapper"]


class ScanWrapper(wiring.Component):
    scan_in: In(1)
    capture: In(1)
    scan_out: Out(1)

    def __init__(self, inner: wiring.Component):
        self._inner = inner
        self._inputs, self._outputs = [], []
        for _, member, value in inner.signature.flatten(inner):
            (self._inputs if member.flow == In else self._outputs).append(Value.cast(value))
        super().__init__()

    @property
    def overhead_ffs(self):
        return sum(len(v) for v in self._inputs) + sum(len(v) for v in self._outputs)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._inner
        in_bits = sum(len(v) for v in self._inputs)
        if in_bits:
            chain = Signal(in_bits, reset_less=True)
            m.d.sync += chain.eq(Cat(self.scan_in, chain[:-1]))
            offset = 0
            for value in self._inputs:
                m.d.comb += value.eq(chain[offset:offset + len(value)])
                offset += len(value)
        outputs = Cat(*self._outputs)
        if len(outputs):
            captured = Signal(len(outputs), reset_less=True)
            with m.If(self.capture):
                m.d.sync += captured.eq(outputs)
            with m.Else():
                m.d.sync += captured.eq(captured >> 1)
            m.d.comb += self.scan_out.eq(captured[0])
        return m
