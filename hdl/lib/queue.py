"""A typed stream queue: ``amaranth.lib.fifo.SyncFIFO`` behind ``stream`` interfaces whose
payload keeps its shape (a ``data.StructLayout``, an enum, a plain width)."""

from amaranth.hdl import Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out


__all__ = ["Queue"]


class Queue(wiring.Component):
    """``depth`` payloads of ``shape`` in order from ``i`` to ``o``; ``level`` counts them.

    First-word fall-through: a payload written in one cycle can be read in the next. ``o.valid``
    and ``o.payload`` come from registers (the FIFO's state), so a consumer's ``ready`` has no
    combinational path to ``i.ready``.
    """

    def __init__(self, *, shape, depth):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"Queue depth must be a positive integer; got {depth!r}")
        Shape.cast(shape)      # a clear error for something that is not a shape
        self._shape, self._depth = shape, depth
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    @property
    def shape(self):
        return self._shape

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        fifo = m.submodules.fifo = SyncFIFO(width=Shape.cast(self._shape).width,
                                            depth=self._depth)
        m.d.comb += [
            fifo.w_stream.payload.eq(self.i.payload),
            fifo.w_stream.valid.eq(self.i.valid),
            self.i.ready.eq(fifo.w_stream.ready),
            self.o.payload.eq(fifo.r_stream.payload),
            self.o.valid.eq(fifo.r_stream.valid),
            fifo.r_stream.ready.eq(self.o.ready),
            self.level.eq(fifo.level),
        ]
        return m
