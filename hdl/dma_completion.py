"""The DMA's completion: semaphore counters, the ``done`` pulse and the status registers."""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import DmaError
from systolica.config import DmaConfig
from .contracts import dma_done_layout, index_bits, sem_sub_layout
from .lib import StickyFlags


__all__ = ["DmaCompletion"]


class DmaCompletion(wiring.Component):
    """``finish`` (one cycle per descriptor, with its ``queue``, ``semaphore`` and ``error``)
    increments semaphore counter ``semaphore`` (also on an error, so a waiter never hangs; none
    for a semaphore beyond the counters), pulses ``done`` with ``done_info`` and counts.
    ``sem_sub`` (always ready) subtracts from a counter, in the same cycle as an increment too.
    ``error`` is sticky until ``clear_errors``; a failure in the cycle of a clear stays set."""

    def __init__(self, *, config: DmaConfig):
        if not isinstance(config, DmaConfig):
            raise TypeError(f"DmaCompletion config must be a DmaConfig; got {config!r}")
        self._config = config
        super().__init__({
            "finish": In(1),
            "queue": In(unsigned(index_bits(config.queues))),
            "semaphore": In(unsigned(index_bits(config.semaphores))),
            "result": In(DmaError),
            "sem_values": Out(data.ArrayLayout(unsigned(config.semaphore_bits),
                                               config.semaphores)),
            "sem_sub": In(stream.Signature(sem_sub_layout(config))),
            "done": Out(1),
            "done_info": Out(dma_done_layout(config)),
            "done_count": Out(32),
            "error_count": Out(16),
            "error": Out(1),
            "last_error": Out(DmaError),
            "clear_errors": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        sub = self.sem_sub
        m.d.comb += sub.ready.eq(1)
        for i in range(self._config.semaphores):
            inc = self.finish & (self.semaphore == i)
            dec = Mux(sub.valid & (sub.payload.id == i), sub.payload.amount, 0)
            m.d.sync += self.sem_values[i].eq(self.sem_values[i] + inc - dec)

        failed = self.finish & (self.result != DmaError.OK)
        m.d.comb += [
            self.done.eq(self.finish),
            self.done_info.queue.eq(self.queue),
            self.done_info.semaphore.eq(self.semaphore),
            self.done_info.error.eq(self.result),
        ]
        with m.If(self.finish):
            m.d.sync += self.done_count.eq(self.done_count + 1)
        with m.If(failed):
            m.d.sync += [self.error_count.eq(self.error_count + 1),
                         self.last_error.eq(self.result)]
        sticky = m.submodules.sticky = StickyFlags(1)
        m.d.comb += [sticky.set.eq(failed), sticky.clear.eq(self.clear_errors),
                     self.error.eq(sticky.flags)]
        return m
