"""The DMA's DRAM side: a reader that issues AR bursts (several in flight) and turns R beats
into realigner chunks, and a writer that issues AW bursts and builds their W beats from the
realigner, counting B responses."""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import DmaConfig
from .axi import axi4_addr_layout, axi4_b_layout, axi4_r_layout, axi4_w_layout
from .contracts import index_bits
from .dma_beats import DmaBeatSplitter, burst_layout, issue_burst, queue_burst
from .dma_realign import chunk_layout
from .dma_walker import piece_layout
from .lib import Queue


__all__ = ["DmaDramReader", "DmaDramWriter"]


def _check(name, config):
    if not isinstance(config, DmaConfig):
        raise TypeError(f"{name} config must be a DmaConfig; got {config!r}")


def _bursts_in_flight(m, word_bytes, limit):
    """The queue of beat descriptions of the bursts in flight, its beat splitter and a counter
    (see :func:`_count`) of bursts in flight."""
    bursts = m.submodules.bursts = Queue(shape=burst_layout(word_bytes), depth=limit)
    beats = m.submodules.beats = DmaBeatSplitter(word_bytes=word_bytes)
    wiring.connect(m, bursts.o, beats.bursts)
    return bursts, beats, Signal(range(limit + 1))


def _count(m, counter, up, down):
    with m.If(up & ~down):
        m.d.sync += counter.eq(counter + 1)
    with m.Elif(~up & down):
        m.d.sync += counter.eq(counter - 1)


class DmaDramReader(wiring.Component):
    """``pieces`` (AXI bursts from the read walker) become AR bursts, at most
    ``outstanding_reads`` in flight; their R beats leave as ``chunks`` (the valid bytes of each
    beat). ``error`` pulses with an R beat answered SLVERR/DECERR; ``idle``: no burst in flight."""

    def __init__(self, *, config: DmaConfig):
        _check("DmaDramReader", config)
        self._config = config
        aw, W = config.addr_width, config.data_bytes
        super().__init__({
            "pieces": In(stream.Signature(piece_layout(aw, W))),
            "ar": Out(stream.Signature(axi4_addr_layout(aw, config.id_width))),
            "r": In(stream.Signature(axi4_r_layout(config.data_width, config.id_width))),
            "chunks": Out(stream.Signature(chunk_layout(W))),
            "error": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        W, limit = cfg.data_bytes, cfg.outstanding_reads
        bursts, beats, in_flight = _bursts_in_flight(m, W, limit)
        piece = self.pieces.payload
        # A burst goes out only when its beat description has room in the queue.
        load = Signal()
        m.d.comb += [
            load.eq(self.pieces.valid & (~self.ar.valid | self.ar.ready) & bursts.i.ready &
                    (in_flight < limit)),
            self.pieces.ready.eq(load),
            bursts.i.valid.eq(load),
            queue_burst(bursts.i.payload, piece, W),
        ]
        issue_burst(m, self.ar, load, piece, W)

        r_fire = self.r.valid & self.r.ready
        burst_end = r_fire & beats.last
        m.d.comb += [
            self.chunks.valid.eq(self.r.valid & beats.valid),
            self.chunks.payload.data.eq(self.r.payload.data),
            self.chunks.payload.lo.eq(beats.lo),
            self.chunks.payload.n.eq(beats.n),
            self.r.ready.eq(self.chunks.ready & beats.valid),
            beats.take.eq(r_fire),
            self.error.eq(r_fire & (self.r.payload.resp != 0)),
            self.idle.eq(in_flight == 0),
        ]
        _count(m, in_flight, load, burst_end)
        return m


class DmaDramWriter(wiring.Component):
    """``pieces`` (AXI bursts from the write walker) become AW bursts, at most
    ``outstanding_writes`` awaiting their B; a burst's W beats are built only after its AW
    handshake. Each W beat asks the realigner for ``want_n`` bytes at lane ``want_lo``
    (``want``, with ``space`` when the W register is free); ``fire`` (the realigner's) loads
    ``data`` / ``strb`` into it. ``error`` pulses with a B answered SLVERR/DECERR; ``idle``: every
    burst written and answered."""

    def __init__(self, *, config: DmaConfig):
        _check("DmaDramWriter", config)
        self._config = config
        aw, W = config.addr_width, config.data_bytes
        super().__init__({
            "pieces": In(stream.Signature(piece_layout(aw, W))),
            "aw": Out(stream.Signature(axi4_addr_layout(aw, config.id_width))),
            "w": Out(stream.Signature(axi4_w_layout(config.data_width))),
            "b": In(stream.Signature(axi4_b_layout(config.id_width))),
            "want": Out(1),
            "want_lo": Out(unsigned(index_bits(W))),
            "want_n": Out(range(W + 1)),
            "space": Out(1),
            "fire": In(1),
            "data": In(8 * W),
            "strb": In(W),
            "error": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        W, limit = cfg.data_bytes, cfg.outstanding_writes
        bursts, beats, in_flight = _bursts_in_flight(m, W, limit)
        piece = self.pieces.payload
        load = Signal()
        m.d.comb += [
            load.eq(self.pieces.valid & (~self.aw.valid | self.aw.ready) & (in_flight < limit)),
            self.pieces.ready.eq(load),
        ]
        issue_burst(m, self.aw, load, piece, W)
        # The beat description waits beside the AW register and is queued at its handshake
        # (never W before AW); at most `limit` bursts are in flight, so the queue has room.
        pending = Signal(burst_layout(W))
        with m.If(load):
            m.d.sync += queue_burst(pending, piece, W)
        m.d.comb += [bursts.i.payload.eq(pending),
                     bursts.i.valid.eq(self.aw.valid & self.aw.ready)]

        b_fire = self.b.valid & self.b.ready
        m.d.comb += [self.b.ready.eq(1), self.error.eq(b_fire & (self.b.payload.resp != 0))]
        _count(m, in_flight, load, b_fire)

        m.d.comb += [
            self.want.eq(beats.valid),
            self.want_lo.eq(beats.lo),
            self.want_n.eq(beats.n),
            self.space.eq(~self.w.valid | self.w.ready),
            beats.take.eq(self.fire),
        ]
        with m.If(self.fire):
            m.d.sync += [
                self.w.valid.eq(1),
                self.w.payload.data.eq(self.data),
                self.w.payload.strb.eq(self.strb),
                self.w.payload.last.eq(beats.last),
            ]
        with m.Elif(self.w.ready):
            m.d.sync += self.w.valid.eq(0)
        m.d.comb += self.idle.eq((in_flight == 0) & ~bursts.o.valid & ~beats.valid &
                                 ~self.w.valid)
        return m
