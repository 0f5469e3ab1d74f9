"""The DMA's SBUF side: word reads (with a response buffer of ``sbuf_reads`` words, so the SBUF
never waits on the DMA) and word writes with byte enables, sharing the SBUF request register
round-robin (SBUF -> SBUF copies read and write at once). On a chip's tile a write whose
descriptor is remote goes to its own register, ``remote_write`` (one remote WRITE flit each),
instead of the request register: local reads and remote writes then never take turns."""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import ChipConfig, TileConfig
from .contracts import (SbufPortSignature, index_bits, remote_tile_layout, remote_write_layout,
                        sbuf_response_layout)
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
    read awaits its response; ``write_idle``: no write waits in the request register (nor, on a
    chip, in the remote register: a remote write is done when the network interface took it).

    ``config``: a :class:`TileConfig`, or a :class:`ChipConfig` (adds ``remote``, the running
    descriptor's remote tile, and the ``remote_write`` stream)."""

    def __init__(self, *, config: TileConfig):
        self._chip = config if isinstance(config, ChipConfig) else None
        if self._chip is not None:
            config = config.tile
        if not isinstance(config, TileConfig):
            raise TypeError(f"DmaSbufAccess config must be a TileConfig or ChipConfig; "
                            f"got {config!r}")
        self._config = config
        dma, sbuf = config.dma, config.sbuf
        W = dma.data_bytes
        members = {
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
        }
        if self._chip is not None:
            members["remote"] = In(remote_tile_layout(self._chip.noc, valid=True))
            members["remote_write"] = Out(stream.Signature(remote_write_layout(self._chip)))
        super().__init__(members)

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
        remote = C(0) if self._chip is None else self.remote.valid
        grant_remote = self._remote_write(m, W) if self._chip is not None else C(0)
        m.d.comb += [
            arbiter.requests.eq(Cat(wp.valid & self.write_avail & ~remote,
                                    rp.valid & reads.i.ready)),
            arbiter.advance.eq(free),
            grant_w.eq(free & arbiter.grant[0]),
            grant_r.eq(free & arbiter.grant[1]),
            self.write_fire.eq(grant_w | grant_remote),
            wp.ready.eq(grant_w | grant_remote),
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
                # A read's data and byte enables are whatever the realigner shows (the SBUF
                # ignores them, SbufPortSignature): they go to the register without a gate,
                # so only its enable waits for the grant.
                req.payload.data.as_value().eq(self.data),
                req.payload.byte_enable.eq(self.strb),
            ]
        with m.Elif(req.ready):
            m.d.sync += req.valid.eq(0)
        remote_busy = C(0) if self._chip is None else self.remote_write.valid
        m.d.comb += [self.read_idle.eq(~reads.o.valid),
                     self.write_idle.eq(~(req.valid & req.payload.write) & ~remote_busy)]
        return m

    def _remote_write(self, m, W):
        """The remote register: a write of a remote descriptor, held until the network interface
        takes it (one per cycle at best, as the local request register). Returns its grant."""
        sbuf = self._config.sbuf
        out, wp = self.remote_write, self.write_pieces
        grant = Signal(name="grant_remote")
        m.d.comb += grant.eq(self.remote.valid & wp.valid & self.write_avail &
                             (~out.valid | out.ready))
        addr = wp.payload.addr[index_bits(W):]
        depth_bits = index_bits(sbuf.depth)
        w = out.payload.write
        with m.If(grant):
            m.d.sync += [out.valid.eq(1), out.payload.tile.x.eq(self.remote.x),
                         out.payload.tile.y.eq(self.remote.y),
                         w.partition.eq(addr[depth_bits:]), w.addr.eq(addr[:depth_bits]),
                         w.data.as_value().eq(self.data), w.byte_enable.eq(self.strb)]
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)
        return grant
