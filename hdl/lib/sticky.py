"""Sticky flags: the error bits every block reports."""

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["StickyFlags"]


class StickyFlags(wiring.Component):
    """``flags`` keeps every bit ever pulsed on ``set`` until ``clear``.

    A bit being set in the same cycle as ``clear`` stays set: the event happened after the host
    decided to clear, so it must not be lost. ``any`` is the OR of all flags. ``shape`` is a width
    or a layout (a ``data.StructLayout`` of one-bit fields names the flags).
    """

    def __init__(self, shape):
        super().__init__({
            "set": In(shape),
            "clear": In(1),
            "flags": Out(shape),
            "any": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        flags = self.flags.as_value() if isinstance(self.flags, data.View) else self.flags
        events = self.set.as_value() if isinstance(self.set, data.View) else self.set
        with m.If(self.clear):
            m.d.sync += flags.eq(events)
        with m.Else():
            m.d.sync += flags.eq(flags | events)
        m.d.comb += self.any.eq(flags.any())
        return m
