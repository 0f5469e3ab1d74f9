"""A typed stream queue: ``amaranth.lib.fifo.SyncFIFO`` behind ``stream`` interfaces whose
payload keeps its shape (a ``data.StructLayout``, an enum, a plain width), or, with
``registered_head=True``, the same queue with its head in flip-flops."""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2


__all__ = ["Queue"]


class Queue(wiring.Component):
    """``depth`` payloads of ``shape`` in order from ``i`` to ``o``; ``level`` counts them.

    First-word fall-through: a payload written in one cycle can be read in the next, and
    ``i.ready`` is ``level < depth`` whatever ``o.ready`` does, so a consumer's ``ready`` has
    no combinational path to ``i.ready``. ``o.valid`` and ``o.payload`` come from the FIFO's
    state: by default a LUT RAM read at a read-pointer register; with ``registered_head`` the
    head is a register of its own (``o.valid`` a flip-flop too) in front of ``depth - 1``
    entries of RAM, loaded from the RAM or, when the RAM is empty, straight from ``i``: the
    same cycle behaviour, but what the consumer does with the head starts at flip-flops.
    """

    def __init__(self, *, shape, depth, registered_head=False):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"Queue depth must be a positive integer; got {depth!r}")
        if not isinstance(registered_head, bool):
            raise TypeError(f"Queue registered_head must be a bool; got {registered_head!r}")
        Shape.cast(shape)      # a clear error for something that is not a shape
        self._shape, self._depth, self._registered = shape, depth, registered_head
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
        if self._registered:
            self._registered_head(m)
            return m
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

    def _registered_head(self, m):
        width = Shape.cast(self._shape).width
        spare = self._depth - 1            # entries behind the head
        head = Signal(width)
        head_valid = Signal()
        # the head is free at the next edge: empty, or taken now
        load = ~head_valid | self.o.ready
        write = self.i.valid & self.i.ready
        m.d.comb += [self.o.payload.eq(head), self.o.valid.eq(head_valid)]
        if spare == 0:
            m.d.comb += [self.i.ready.eq(~head_valid), self.level.eq(head_valid)]
            with m.If(load):
                m.d.sync += [head.eq(self.i.payload), head_valid.eq(write)]
            return
        # RAM pointers wrap at a power of two; ``stored`` (never above ``spare``) bounds them.
        # Something is stored only behind a valid head, so ``stored == spare`` is "full".
        bits = ceil_log2(spare) or 1
        storage = m.submodules.storage = memory.Memory(shape=width, depth=1 << bits, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce, consume = Signal(bits), Signal(bits)
        stored = Signal(range(spare + 1))
        behind = stored != 0
        from_ram = load & behind
        to_ram = write & ~(load & ~behind)      # not straight into a free head
        m.d.comb += [
            self.i.ready.eq(stored != spare),
            self.level.eq(stored + head_valid),
            w_port.addr.eq(produce), w_port.data.eq(self.i.payload), w_port.en.eq(to_ram),
            r_port.addr.eq(consume),
        ]
        with m.If(load):
            m.d.sync += [head.eq(Mux(behind, r_port.data, self.i.payload)),
                         head_valid.eq(behind | write)]
        with m.If(to_ram):
            m.d.sync += produce.eq(produce + 1)
        with m.If(from_ram):
            m.d.sync += consume.eq(consume + 1)
        m.d.sync += stored.eq(stored + to_ram - from_ram)
