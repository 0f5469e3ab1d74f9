"""A chip tile's remote operations (docs/chip.md): the send side (the DMA's remote WRITEs and the
sequencer's SIGNAL_REMOTEs, packed into single-flit packets on the network interface's ``send``
stream) and the receive side (WRITE flits into the local SBUF, SIGNAL flits into the semaphore
file, strictly in arrival order).

* :class:`RemoteInterface` ``(config=ChipConfig)``:

  - ``write`` (in, :func:`~.contracts.remote_write_layout`, from the DMA) and ``signal[q]`` (in,
    :func:`~.contracts.remote_signal_layout`, from DMA queue q's SIGNAL_REMOTEs) share ``send``
    round-robin; a beat shown on ``send`` stays there until the network interface takes it, and
    ``send`` passes its ``ready`` straight back (no buffer), so a source's beat is accepted in
    the cycle the network interface accepts it.
  - ``recv`` (in, from the network interface): a WRITE becomes one request on ``sbuf_write``
    (a stream of :func:`~.contracts.sbuf_request_layout`; one register, so one flit per cycle); a
    SIGNAL is taken only when no write of an earlier flit is still waiting there, and is then
    shown in that cycle on ``sem`` (the semaphore file's remote port, which applies it in the
    next cycle; ``sem_overflow`` back in that next cycle: it was dropped, sticky
    ``semaphore_overflow`` set). A SIGNAL to a semaphore id beyond ``SEMAPHORES`` is dropped
    and sets sticky ``bad_signal``. Every flit is taken, so the
    network never backs up behind a tile's engines.
  - ``flits_sent`` / ``flits_received``: 32-bit counters (wrap), from reset.

* :class:`SbufPortShare` ``(config=TileConfig)``: the SBUF word port shared by the DMA (``dma``,
  reads and writes; every response is the DMA's) and the remote writes (``remote``,
  write-only), round-robin per request, the owner of an unaccepted request kept until it is
  accepted. The SBUF accepts a write in the cycle it writes the memory, so a remote write
  accepted in cycle t is seen by every engine's SBUF read issued after t.
"""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import RemoteKind
from systolica.config import ChipConfig, TileConfig
from systolica.isa import SEMAPHORES, SEMAPHORE_BITS
from .contracts import (SbufPortSignature, recv_layout, remote_flit_layout, remote_signal_layout,
                        remote_write_layout, sbuf_request_layout, send_layout)
from .lib import RoundRobinArbiter, StickyFlags
from .sequencer.semaphores import semaphore_request_layout


__all__ = ["RemoteInterface", "SbufPortShare"]


class RemoteInterface(wiring.Component):
    def __init__(self, *, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"RemoteInterface config must be a ChipConfig; got {config!r}")
        self._config = config
        tile, noc = config.tile, config.noc
        super().__init__({
            "write": In(stream.Signature(remote_write_layout(config))),
            "signal": In(stream.Signature(remote_signal_layout(config))).array(tile.dma.queues),
            "send": Out(stream.Signature(send_layout(noc))),
            "recv": In(stream.Signature(recv_layout(noc))),
            "sbuf_write": Out(stream.Signature(sbuf_request_layout(tile.sbuf))),
            "sem": Out(semaphore_request_layout(SEMAPHORES, SEMAPHORE_BITS)),
            "sem_overflow": In(1),
            "semaphore_overflow": Out(1),
            "bad_signal": Out(1),
            "clear_errors": In(1),
            "flits_sent": Out(32),
            "flits_received": Out(32),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        self._send(m)
        self._receive(m)
        return m

    def _send(self, m):
        flit_layout = remote_flit_layout(self._config)
        sources = [self.write, *self.signal]
        flits = []
        for i, source in enumerate(sources):
            flit = Signal(flit_layout, name=f"flit{i}")
            if i == 0:
                m.d.comb += [flit.kind.eq(RemoteKind.WRITE),
                             flit.body.write.eq(source.payload.write)]
            else:
                m.d.comb += [flit.kind.eq(RemoteKind.SIGNAL),
                             flit.body.signal.eq(source.payload.signal)]
            flits.append((flit, source.payload.tile))
        arbiter = m.submodules.send_arbiter = RoundRobinArbiter(len(sources))
        locked = Signal()               # a shown beat keeps its source until it is accepted
        owner = Signal(range(len(sources)))
        pick = Mux(locked, owner, arbiter.index)
        send = self.send
        m.d.comb += [arbiter.requests.eq(Cat(s.valid for s in sources)),
                     arbiter.advance.eq(~locked & send.valid & send.ready),
                     send.payload.last.eq(1)]
        with m.Switch(pick):
            for i, (flit, tile) in enumerate(flits):
                with m.Case(i):
                    m.d.comb += [send.valid.eq(sources[i].valid),
                                 sources[i].ready.eq(send.ready),
                                 send.payload.data.eq(flit.as_value()),
                                 send.payload.dst_x.eq(tile.x), send.payload.dst_y.eq(tile.y)]
        m.d.sync += [locked.eq(send.valid & ~send.ready), owner.eq(pick)]
        with m.If(send.valid & send.ready):
            m.d.sync += self.flits_sent.eq(self.flits_sent + 1)

    def _receive(self, m):
        recv, out = self.recv, self.sbuf_write
        flit = Signal(remote_flit_layout(self._config))
        m.d.comb += flit.eq(recv.payload.data[:len(flit.as_value())])
        is_write = flit.kind == RemoteKind.WRITE
        signal = flit.body.signal
        # A SIGNAL waits for the write of every earlier flit to be accepted by the SBUF.
        m.d.comb += recv.ready.eq(Mux(is_write, ~out.valid | out.ready, ~out.valid))
        take = recv.valid & recv.ready
        with m.If(take & is_write):
            w = flit.body.write
            m.d.sync += [out.valid.eq(1), out.payload.write.eq(1),
                         out.payload.partition.eq(w.partition), out.payload.addr.eq(w.addr),
                         out.payload.byte_enable.eq(w.byte_enable),
                         out.payload.data.eq(w.data)]
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)
        known = signal.sem < SEMAPHORES
        apply = take & ~is_write & known
        m.d.comb += [self.sem.valid.eq(apply), self.sem.id.eq(signal.sem),
                     self.sem.amount.eq(signal.count)]
        with m.If(take):
            m.d.sync += self.flits_received.eq(self.flits_received + 1)
        sticky = m.submodules.sticky = StickyFlags(2)
        m.d.comb += [sticky.set.eq(Cat(self.sem_overflow, take & ~is_write & ~known)),
                     sticky.clear.eq(self.clear_errors),
                     self.semaphore_overflow.eq(sticky.flags[0]),
                     self.bad_signal.eq(sticky.flags[1])]


class SbufPortShare(wiring.Component):
    def __init__(self, *, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"SbufPortShare config must be a TileConfig; got {config!r}")
        self._config = config
        super().__init__({
            "dma": In(SbufPortSignature(config.sbuf)),
            "remote": In(stream.Signature(sbuf_request_layout(config.sbuf))),
            "sbuf": Out(SbufPortSignature(config.sbuf)),
        })

    def elaborate(self, platform):
        m = Module()
        dma, remote, req = self.dma.request, self.remote, self.sbuf.request
        m.d.comb += [self.dma.response.valid.eq(self.sbuf.response.valid),
                     self.dma.response.payload.eq(self.sbuf.response.payload),
                     self.sbuf.response.ready.eq(self.dma.response.ready)]
        locked, owner, last = Signal(), Signal(), Signal()    # owner / last: 1 = remote
        pick = Mux(locked, owner, Mux(dma.valid & remote.valid, ~last, remote.valid))
        m.d.comb += [
            req.valid.eq(Mux(pick, remote.valid, dma.valid)),
            req.payload.eq(Mux(pick, remote.payload.as_value(), dma.payload.as_value())),
            remote.ready.eq(pick & req.ready),
            dma.ready.eq(~pick & req.ready),
        ]
        m.d.sync += [locked.eq(req.valid & ~req.ready), owner.eq(pick)]
        with m.If(req.valid & req.ready):
            m.d.sync += last.eq(pick)
        return m
