"""The DMA engine: moves tensors between DRAM (an AXI4 master port) and the SBUF (a word port,
:class:`~.contracts.SbufPortSignature`), DRAM to DRAM and SBUF to SBUF, as described by 3-D
strided descriptors taken from descriptor queues. docs/dma.md is the user's reference; in short:

* ``queues[q]`` (``DmaConfig.queues`` streams of :func:`~.contracts.dma_descriptor_layout`) are
  buffered ``queue_depth`` deep; descriptors of one queue run in order, the engine takes the
  next one round-robin between the queues, one descriptor at a time.
* A descriptor is first checked (:class:`~.dma_check.DmaDescriptorCheck`, the codes of
  :class:`systolica.codes.DmaError`); a bad one does no access at all. Then a *reader* (a
  :class:`~.dma_walker.DmaWalker` feeding :class:`~.dma_dram.DmaDramReader` or the read half of
  :class:`~.dma_sbuf.DmaSbufAccess`) feeds a byte realigner (:class:`~.dma_realign.DmaRealigner`)
  and a *writer* (a walker feeding :class:`~.dma_dram.DmaDramWriter` or the write half of the
  SBUF access) drains it. The descriptor completes when the reader has had every response and
  the writer has had every write accepted and every AXI write response counted.
* Completion (:class:`~.dma_completion.DmaCompletion`) increments the descriptor's semaphore
  (also on an error) and pulses ``done`` with ``done_info``; status ``busy``, ``idle``,
  ``done_count``, ``error_count``, sticky ``error`` and ``last_error`` (``clear_errors``).
* An AXI error response on a read *poisons* the rest of the descriptor: its remaining writes go
  out with all byte enables / strobes low, so nothing wrong is written.
* On a chip's tile (``config`` a :class:`ChipConfig`) a descriptor with ``remote.valid`` (its
  destination is checked and walked as an SBUF one) sends each SBUF word write as one
  ``remote`` beat (:func:`~.contracts.remote_write_layout`, for tile ``remote.x, remote.y``)
  instead; it completes when the last one has been accepted.
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import DmaError
from systolica.config import ChipConfig, TileConfig
from .axi import Axi4Signature
from .contracts import (SbufPortSignature, dma_descriptor_layout, dma_done_layout,
                        remote_write_layout, sem_sub_layout)
from .dma_check import DmaDescriptorCheck
from .dma_completion import DmaCompletion
from .dma_dram import DmaDramReader, DmaDramWriter
from .dma_realign import DmaRealigner, bytes_available, lane_mask
from .dma_sbuf import DmaSbufAccess
from .dma_walker import DmaWalker
from .lib import Queue, RoundRobinArbiter


__all__ = ["Dma"]


def _route(m, source, to_sbuf, dram, sbuf):
    """Stream ``source`` goes to ``sbuf`` when ``to_sbuf``, else to ``dram``."""
    m.d.comb += [
        dram.payload.eq(source.payload), sbuf.payload.eq(source.payload),
        dram.valid.eq(source.valid & ~to_sbuf), sbuf.valid.eq(source.valid & to_sbuf),
        source.ready.eq(Mux(to_sbuf, sbuf.ready, dram.ready)),
    ]


def _merge(m, from_sbuf, dram, sbuf, sink):
    """Stream ``sink`` takes from ``sbuf`` when ``from_sbuf``, else from ``dram``."""
    m.d.comb += [
        sink.payload.eq(Mux(from_sbuf, sbuf.payload.as_value(), dram.payload.as_value())),
        sink.valid.eq(Mux(from_sbuf, sbuf.valid, dram.valid)),
        dram.ready.eq(sink.ready & ~from_sbuf), sbuf.ready.eq(sink.ready & from_sbuf),
    ]


class Dma(wiring.Component):
    """The DMA engine (see the module docstring and docs/dma.md)."""

    def __init__(self, *, config: TileConfig):
        self._chip = config if isinstance(config, ChipConfig) else None
        if self._chip is not None:
            config = config.tile
        if not isinstance(config, TileConfig):
            raise TypeError(f"Dma config must be a TileConfig or ChipConfig; got {config!r}")
        self._config = config
        dma = config.dma
        self._layout = dma_descriptor_layout(dma, self._chip and self._chip.noc)
        members = {
            "queues": In(stream.Signature(self._layout)).array(dma.queues),
            "axi": Out(Axi4Signature(addr_width=dma.addr_width, data_width=dma.data_width,
                                     id_width=dma.id_width)),
            "sbuf": Out(SbufPortSignature(config.sbuf)),
            "sem_values": Out(data.ArrayLayout(unsigned(dma.semaphore_bits), dma.semaphores)),
            "sem_sub": In(stream.Signature(sem_sub_layout(dma))),
            "busy": Out(1),
            "idle": Out(1),
            "done": Out(1),
            "done_info": Out(dma_done_layout(dma)),
            "done_count": Out(32),
            "error_count": Out(16),
            "error": Out(1),
            "last_error": Out(DmaError),
            "clear_errors": In(1),
        }
        if self._chip is not None:
            members["remote"] = Out(stream.Signature(remote_write_layout(self._chip)))
        super().__init__(members)

    @property
    def config(self):
        return self._config

    @property
    def chip(self):
        return self._chip

    def elaborate(self, platform):
        m = Module()
        dma = self._config.dma
        desc = Signal(self._layout)
        queue = Signal(range(dma.queues))
        take = Signal()             # in IDLE: load the arbiter's pick into `desc`
        start = Signal()            # the checks passed: start both walkers
        finish = Signal()
        verdict = Signal(DmaError)  # the checks' verdict, kept while the transfer runs
        m.submodules.check = check = DmaDescriptorCheck(config=self._config)
        # (the remote fields come last: the check sees the local descriptor's bits)
        m.d.comb += check.descriptor.eq(desc.as_value()[:len(check.descriptor.as_value())])

        any_queued = self._pick(m, desc, queue, take)
        reader_done, writer_done, poison, read_error, write_error = \
            self._datapath(m, desc, start, finish)

        completion = m.submodules.completion = DmaCompletion(config=dma)
        wiring.connect(m, wiring.flipped(self.sem_sub), completion.sem_sub)
        result = Mux(verdict != DmaError.OK, verdict,
                     Mux(read_error, DmaError.AXI_READ_ERROR,
                         Mux(write_error, DmaError.AXI_WRITE_ERROR, DmaError.OK)))
        m.d.comb += [
            completion.finish.eq(finish), completion.queue.eq(queue),
            completion.semaphore.eq(desc.semaphore), completion.result.eq(result),
            completion.clear_errors.eq(self.clear_errors),
            self.sem_values.eq(completion.sem_values), self.done.eq(completion.done),
            self.done_info.eq(completion.done_info), self.done_count.eq(completion.done_count),
            self.error_count.eq(completion.error_count), self.error.eq(completion.error),
            self.last_error.eq(completion.last_error),
        ]

        with m.FSM(name="dma"):
            with m.State("IDLE"):
                m.d.comb += take.eq(1)
                with m.If(any_queued):
                    m.next = "CHECK"
            with m.State("CHECK"):              # the checks' pipeline fills
                counter = Signal(range(DmaDescriptorCheck.LATENCY + 1))
                m.d.sync += counter.eq(counter + 1)
                with m.If(counter == DmaDescriptorCheck.LATENCY - 1):
                    m.d.sync += counter.eq(0)
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                m.d.sync += [verdict.eq(check.error), poison.eq(0), read_error.eq(0),
                             write_error.eq(0)]
                with m.If(check.error == DmaError.OK):
                    m.d.comb += start.eq(1)
                    m.next = "RUN"
                with m.Else():
                    m.next = "FINISH"
            with m.State("RUN"):
                with m.If(reader_done & writer_done):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += finish.eq(1)
                m.next = "IDLE"
        m.d.comb += [self.busy.eq(~take), self.idle.eq(~self.busy & ~any_queued)]
        return m

    def _pick(self, m, desc, queue, take):
        """The descriptor queues and the round-robin pick between them (when ``take``); returns
        whether any queue holds a descriptor."""
        dma = self._config.dma
        arbiter = m.submodules.queue_arbiter = RoundRobinArbiter(dma.queues)
        buffers = []
        for q in range(dma.queues):
            buffer = Queue(shape=self._layout, depth=dma.queue_depth)
            m.submodules[f"queue{q}"] = buffer
            wiring.connect(m, wiring.flipped(self.queues[q]), buffer.i)
            m.d.comb += [arbiter.requests[q].eq(buffer.o.valid),
                         buffer.o.ready.eq(take & arbiter.grant[q])]
            buffers.append(buffer)
        m.d.comb += arbiter.advance.eq(take)
        with m.If(take & arbiter.valid):
            m.d.sync += [desc.eq(Array(b.o.payload.as_value() for b in buffers)[arbiter.index]),
                         queue.eq(arbiter.index)]
        return arbiter.valid

    def _datapath(self, m, desc, start, finish):
        """Walkers, DRAM and SBUF sides and the realigner between them. Returns (reader done,
        writer done, poison, read error, write error); the last three are registers."""
        tile, dma = self._config, self._config.dma
        W = dma.data_bytes
        walker_args = dict(addr_width=dma.addr_width, count_bits=dma.count_bits,
                           elem_bits=dma.elem_bits, word_bytes=W, max_burst=dma.max_burst)
        read_walker = m.submodules.read_walker = DmaWalker(**walker_args)
        write_walker = m.submodules.write_walker = DmaWalker(**walker_args)
        for walker, side in ((read_walker, desc.src), (write_walker, desc.dst)):
            m.d.comb += [walker.start.eq(start), walker.word_mode.eq(side.sbuf),
                         walker.elem.eq(desc.elem_bytes), walker.base.eq(side.addr),
                         walker.count.eq(side.count), walker.stride.eq(side.stride)]
        reader = m.submodules.dram_reader = DmaDramReader(config=dma)
        writer = m.submodules.dram_writer = DmaDramWriter(config=dma)
        sbuf = m.submodules.sbuf_access = DmaSbufAccess(config=self._chip or tile)
        if self._chip is not None:
            # (`start` only passes checked descriptors, so a refused one never reaches here)
            m.d.comb += sbuf.remote.eq(desc.remote)
            wiring.connect(m, sbuf.remote_write, wiring.flipped(self.remote))
        realigner = m.submodules.realigner = DmaRealigner(W)
        axi = self.axi
        wiring.connect(m, reader.ar, wiring.flipped(axi.ar))
        wiring.connect(m, wiring.flipped(axi.r), reader.r)
        wiring.connect(m, writer.aw, wiring.flipped(axi.aw))
        wiring.connect(m, writer.w, wiring.flipped(axi.w))
        wiring.connect(m, wiring.flipped(axi.b), writer.b)
        wiring.connect(m, sbuf.port, wiring.flipped(self.sbuf))

        src_sbuf, dst_sbuf = desc.src.sbuf, desc.dst.sbuf
        _route(m, read_walker.piece, src_sbuf, reader.pieces, sbuf.read_pieces)
        _route(m, write_walker.piece, dst_sbuf, writer.pieces, sbuf.write_pieces)
        _merge(m, src_sbuf, reader.chunks, sbuf.chunks, realigner.inp)

        poison = Signal()       # an AXI read error in this descriptor: write nothing more
        read_error = Signal()
        write_error = Signal()
        with m.If(reader.error):
            m.d.sync += [poison.eq(1), read_error.eq(1)]
        with m.If(writer.error):
            m.d.sync += write_error.eq(1)
        # The realigner's output: an SBUF write or a W beat.
        wp = write_walker.piece.payload
        m.d.comb += [
            realigner.out_valid.eq(Mux(dst_sbuf, write_walker.piece.valid, writer.want)),
            realigner.out_lo.eq(Mux(dst_sbuf, wp.lo, writer.want_lo)),
            realigner.out_n.eq(Mux(dst_sbuf, wp.n, writer.want_n)),
            realigner.out_space.eq(Mux(dst_sbuf, sbuf.write_fire, writer.space)),
            realigner.clear.eq(finish),
            # (from the piece itself, not through the realigner's choice of the two writers'
            # byte counts: the DRAM writer's count is then off the SBUF write grant's path)
            sbuf.write_avail.eq(bytes_available(realigner.level, wp.n, W)),
            # Each writer's strobes from its own lane and byte count (as `write_avail`): the
            # choice between the two writers (`desc.dst.sbuf`, a register of high fan-out) is
            # then off the SBUF request's and the W beat's byte enables.
            sbuf.data.eq(realigner.out_data),
            sbuf.strb.eq(Mux(poison, 0, lane_mask(wp.lo, wp.n, W))),
            writer.data.eq(realigner.out_data),
            writer.strb.eq(Mux(poison, 0, lane_mask(writer.want_lo, writer.want_n, W))),
            writer.fire.eq(~dst_sbuf & realigner.out_fire),
        ]
        reader_done = read_walker.done & reader.idle & sbuf.read_idle
        writer_done = write_walker.done & writer.idle & sbuf.write_idle
        return reader_done, writer_done, poison, read_error, write_error
