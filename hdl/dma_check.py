"""The DMA's descriptor check: the verdict (a :class:`~systolica.codes.DmaError`) on a
descriptor, three pipelined cycles after it is presented.

Stage 1 registers the spans ``(count-1)*stride`` and ``count0*count1``, stage 2 the lowest and
one-past-highest byte of each side and the element counts, stage 3 the verdict. There are no
valid bits: the engine holds ``descriptor`` stable and waits ``LATENCY`` cycles for ``error``.
Checks in order (the first failing one wins, docs/dma.md): zero size, size mismatch, SBUF range,
DRAM range, semaphore.
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import DmaError
from systolica.config import TileConfig
from .contracts import dma_descriptor_layout


__all__ = ["DmaDescriptorCheck"]


class DmaDescriptorCheck(wiring.Component):
    #: Cycles from a new ``descriptor`` to its ``error``.
    LATENCY = 3

    def __init__(self, *, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"DmaDescriptorCheck config must be a TileConfig; got {config!r}")
        self._config = config
        super().__init__({
            "descriptor": In(dma_descriptor_layout(config.dma)),
            "error": Out(DmaError),
        })

    @property
    def config(self):
        return self._config

    def _side(self, m, side, name):
        """(out of range, element count) of one side, both registered (stage 2)."""
        dma, sbuf = self._config.dma, self._config.sbuf
        aw, cb = dma.addr_width, dma.count_bits
        spans = []
        for d in range(3):
            span = Signal(signed(aw + cb + 2), name=f"{name}_span{d}")
            m.d.sync += span.eq((side.count[d] - 1) * side.stride[d])
            spans.append(span)
        c01 = Signal(2 * cb, name=f"{name}_c01")
        m.d.sync += c01.eq(side.count[0] * side.count[1])
        wide = signed(aw + cb + 6)
        lo = Signal(wide, name=f"{name}_lo")
        end = Signal(wide, name=f"{name}_end")
        elements = Signal(3 * cb, name=f"{name}_elements")
        neg = sum(Mux(x < 0, x, 0) for x in spans)
        pos = sum(Mux(x > 0, x, 0) for x in spans)
        m.d.sync += [lo.eq(side.addr + neg),
                     end.eq(side.addr + pos + self.descriptor.elem_bytes),
                     elements.eq(c01 * side.count[2])]
        limit = Mux(side.sbuf, sbuf.partitions * sbuf.partition_bytes, 1 << aw)
        return (lo < 0) | (end > limit), elements

    def elaborate(self, platform):
        m = Module()
        desc = self.descriptor
        src, dst = desc.src, desc.dst
        src_bad, src_elements = self._side(m, src, "src")
        dst_bad, dst_elements = self._side(m, dst, "dst")
        zero = Signal()
        m.d.sync += zero.eq((desc.elem_bytes == 0) |
                            Cat(side.count[d] == 0 for side in (src, dst) for d in range(3)).any())
        verdict = Signal(DmaError)
        with m.If(zero):
            m.d.comb += verdict.eq(DmaError.ZERO_SIZE)
        with m.Elif(src_elements != dst_elements):
            m.d.comb += verdict.eq(DmaError.SIZE_MISMATCH)
        with m.Elif((src_bad & src.sbuf) | (dst_bad & dst.sbuf)):
            m.d.comb += verdict.eq(DmaError.SBUF_RANGE)
        with m.Elif(src_bad | dst_bad):
            m.d.comb += verdict.eq(DmaError.DRAM_RANGE)
        with m.Elif(desc.semaphore >= self._config.dma.semaphores):
            m.d.comb += verdict.eq(DmaError.BAD_SEMAPHORE)
        with m.Else():
            m.d.comb += verdict.eq(DmaError.OK)
        m.d.sync += self.error.eq(verdict)
        return m
