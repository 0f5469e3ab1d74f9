"""The DMA's SBUF side: word reads (with a response buffer of ``sbuf_reads`` words, so the SBUF
never waits on the DMA) and word writes with byte enables, sharing the SBUF request register
round-robin (SBUF -> SBUF copies read and write at once)."""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import TileConfig
from .contracts import SbufPortSignature, index_bits, sbuf_response_layout
from .dma_beats import burst_info_layout
from .dma_realign import chunk_layout
from .dma_walker import piece_layout
from .lib import Queue, RoundRobinArbiter


__all__ = ["DmaSbufAccess"]


class DmaSbufAccess(wiring.Component):
    """``read_pieces`` (one word each, from the read walker) become SBUF reads whose responses
    leave as ``chunks``; ``write_pieces`` (from the write walker) become SBUF writes of the
    realigner's ``data`` / ``strb``, granted (``write_fire``) when the realigner has the bytes
    (``write_avail``) and the request register is free and this side's turn. ``read_idle``: no
    read awaits its response; ``write_idle``: no write waits in the request register."""

    def __init__(self, *, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"DmaSbufAccess config must be a TileConfig; got {config!r}")
        self._config = config
        dma, sbuf = config.dma, config.sbuf
        W = dma.data_bytes
        super().__init__({
            "read_pieces": In(stream.Signature(piece_layout(dma.addr_width, W))),
            "write_pieces": In(stream.Signature(piece_layout(dma.addr_width, W))),
            "write_avail": In(1),
            "write_fire": Out(1),
            "data": In(8 * W),
            "strb": In(W),
            "chunks": Out(stream.Signature(chunk_layout(W))),
            "port": Out(SbufPortSignature(sbuf)),
            "read_idle": Out(1),
            "write_idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        dma, sbuf = self._config.dma, self._config.sbuf
        W = dma.data_bytes
        # Each read's lane and byte count waits for its response; responses are buffered.
        reads = m.submodules.reads = Queue(shape=burst_info_layout(W), depth=dma.sbuf_reads)
        responses = m.submodules.responses = Queue(shape=sbuf_response_layout(sbuf),
                                                   depth=dma.sbuf_reads)
        wiring.connect(m, wiring.flipped(self.port.response), responses.i)
        both = reads.o.valid & responses.o.valid
        m.d.comb += [
            self.chunks.valid.eq(both),
            self.chunks.payload.data.eq(responses.o.payload.data.as_value()),
            self.chunks.payload.lo.eq(reads.o.payload.lo),
            self.chunks.payload.n.eq(reads.o.payload.n),
            reads.o.ready.eq(self.chunks.ready & both),
            responses.o.ready.eq(self.chunks.ready & both),
        ]

        # Writes (0) and reads (1) take turns in the request register.
        req = self.port.request
        free = ~req.valid | req.ready
        arbiter = m.submodules.arbiter = RoundRobinArbiter(2)
        rp, wp = self.read_pieces, self.write_pieces
        grant_w = Signal()
        grant_r = Signal()
        m.d.comb += [
            arbiter.requests.eq(Cat(wp.valid & self.write_avail, rp.valid & reads.i.ready)),
            arbiter.advance.eq(free),
            grant_w.eq(free & arbiter.grant[0]),
            grant_r.eq(free & arbiter.grant[1]),
            self.write_fire.eq(grant_w),
            wp.ready.eq(grant_w),
            rp.ready.eq(grant_r),
            reads.i.valid.eq(grant_r),
            reads.i.payload.lo.eq(rp.payload.lo),
            reads.i.payload.n.eq(rp.payload.n),
        ]
        # An SBUF address is linear: word bits, then the partition (depth is a power of two).
        addr = Mux(grant_w, wp.payload.addr, rp.payload.addr)[index_bits(W):]
        depth_bits = index_bits(sbuf.depth)
        with m.If(grant_w | grant_r):
            m.d.sync += [
                req.valid.eq(1),
                req.payload.write.eq(grant_w),
                req.payload.partition.eq(addr[depth_bits:]),
                req.payload.addr.eq(addr[:depth_bits]),
                # A read carries no data and no byte enables.
                req.payload.data.as_value().eq(Mux(grant_w, self.data, 0)),
                req.payload.byte_enable.eq(Mux(grant_w, self.strb, 0)),
            ]
        with m.Elif(req.ready):
            m.d.sync += req.valid.eq(0)
        m.d.comb += [self.read_idle.eq(~reads.o.valid),
                     self.write_idle.eq(~(req.valid & req.payload.write))]
        return m
