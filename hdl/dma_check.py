"""The DMA's descriptor check: the verdict (a :class:`~systolica.codes.DmaError`) on a
descriptor, seven pipelined cycles after it is presented.

Stage 1 registers ``count-1`` and ``count0*count1``, stages 2-3 the spans ``(count-1)*stride``
and the element counts (16-bit partial products, then their sum), stages 4-5 the lowest and
highest byte of each side (pairwise sums), stage 6 the range checks, stage 7 the verdict: each
stage is one multiplier, one adder or one comparison. There are no
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
    LATENCY = 7

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

    def _product(self, m, name, a, b, b_signed):
        """``a * b`` registered two stages after ``a`` and ``b``: 16-bit slices of ``b`` times
        ``a`` (one 18x18 multiplier each, registered), then their registered sum. Each stage is
        a single multiplier or a single adder."""
        parts = []
        for k in range(0, len(b), 16):
            piece = b[k:k + 16]
            if b_signed and k + 16 >= len(b):
                piece = piece.as_signed()
            part = Signal(signed(len(a) + len(piece) + 1), name=f"{name}_part{k // 16}")
            m.d.sync += part.eq(a * piece)
            parts.append((k, part))
        total = Signal(signed(len(a) + len(b) + 2), name=name)
        m.d.sync += total.eq(sum(part << k for k, part in parts))
        return total

    def _side(self, m, side, name):
        """(out of range (registered at stage 6), element count (stage 3)) of one side."""
        dma, sbuf = self._config.dma, self._config.sbuf
        aw, cb = dma.addr_width, dma.count_bits
        spans = []
        c01 = Signal(2 * cb, name=f"{name}_c01")
        m.d.sync += c01.eq(side.count[0] * side.count[1])
        for d in range(3):
            last = Signal(cb, name=f"{name}_last{d}")
            m.d.sync += last.eq(side.count[d] - 1)
            # (The descriptor is held stable, so operands of different stages may be mixed.)
            spans.append(self._product(m, f"{name}_span{d}", last, side.stride[d], True))
        elements = self._product(m, f"{name}_elements", side.count[2], c01, False)
        wide = signed(aw + cb + 6)
        # Stage 4: pairwise sums of the negative / positive spans and the base address.
        neg = [Mux(x < 0, x, 0) for x in spans]
        pos = [Mux(x > 0, x, 0) for x in spans]
        sums = {}
        for key, value in (("neg01", neg[0] + neg[1]), ("neg2", neg[2] + side.addr),
                           ("pos01", pos[0] + pos[1]), ("pos2", pos[2] + side.addr)):
            sums[key] = Signal(wide, name=f"{name}_{key}")
            m.d.sync += sums[key].eq(value)
        # Stage 5: the lowest byte and the highest one (less elem_bytes, which goes to the limit).
        lo = Signal(wide, name=f"{name}_lo")
        top = Signal(wide, name=f"{name}_top")
        room = Signal(wide, name=f"{name}_room")
        limit = Mux(side.sbuf, sbuf.partitions * sbuf.partition_bytes, 1 << aw)
        m.d.sync += [lo.eq(sums["neg01"] + sums["neg2"]), top.eq(sums["pos01"] + sums["pos2"]),
                     room.eq(limit - self.descriptor.elem_bytes)]
        # Stage 6: out of range when lo < 0 or top + elem_bytes > limit.
        bad = Signal(name=f"{name}_bad")
        m.d.sync += bad.eq((lo < 0) | (top > room))
        return bad, elements

    def elaborate(self, platform):
        m = Module()
        desc = self.descriptor
        src, dst = desc.src, desc.dst
        src_bad, src_elements = self._side(m, src, "src")
        dst_bad, dst_elements = self._side(m, dst, "dst")
        mismatch = Signal()
        m.d.sync += mismatch.eq(src_elements != dst_elements)
        zero = Signal()
        m.d.sync += zero.eq((desc.elem_bytes == 0) |
                            Cat(side.count[d] == 0 for side in (src, dst) for d in range(3)).any())
        verdict = Signal(DmaError)
        with m.If(zero):
            m.d.comb += verdict.eq(DmaError.ZERO_SIZE)
        with m.Elif(mismatch):
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
