"""The DMA's byte realigner: a 4-word byte queue between the read side and the write side.

The read side pushes chunks (``inp``: a ``W``-byte word ``data`` whose bytes at lanes
``lo .. lo+n-1`` are the next ``n`` bytes of the transfer). The write side asks for ``out_n``
bytes to be placed at lanes ``out_lo ..``: when ``out_valid`` and at least ``out_n`` bytes are
queued (``out_avail``) and the writer has room (``out_space``), ``out_fire`` is high and
``out_data`` / ``out_strb`` hold them. A push and a pop can happen in the same cycle, so a
contiguous transfer moves one word per cycle whatever the source and destination alignment.
``clear`` empties the queue.
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .contracts import index_bits


__all__ = ["bytes_available", "chunk_layout", "lane_mask", "DmaRealigner"]


def chunk_layout(word_bytes):
    return data.StructLayout({
        "data": unsigned(8 * word_bytes),
        "lo": unsigned(index_bits(word_bytes)),
        "n": unsigned(word_bytes.bit_length()),
    })


def bytes_available(level, n, word_bytes):
    """``level >= n`` for ``n <= word_bytes``, from the level without a carry chain (yosys
    builds one for any >=): at least ``word_bytes`` bytes, or the level's low bits are ``n`` or
    more, decoded with equalities."""
    W = word_bytes
    low = level[:index_bits(W)]
    low_at_least = Cat(Cat(low == v for v in range(j, W)).any() for j in range(W + 1))
    return (level[index_bits(W):] != 0) | low_at_least.bit_select(n, 1)


def lane_mask(lo, n, word_bytes):
    """The strobes of ``n`` bytes from lane ``lo`` (lanes ``lo .. lo+n-1``, within the word),
    decoded per lane with equalities and constant comparisons: no subtraction or shifter, so a
    lane's strobe is a LUT or two from ``lo`` and ``n``."""
    return Cat(Cat((lo == first) & (n > lane - first) for first in range(lane + 1)).any()
               for lane in range(word_bytes))


class DmaRealigner(wiring.Component):
    def __init__(self, word_bytes):
        self._W = W = word_bytes
        lane = unsigned(index_bits(W))
        super().__init__({
            "inp": In(stream.Signature(chunk_layout(W))),
            "out_valid": In(1),
            "out_lo": In(lane),
            "out_n": In(unsigned(W.bit_length())),
            "out_space": In(1),
            "out_avail": Out(1),
            "out_fire": Out(1),
            "out_data": Out(8 * W),
            "out_strb": Out(W),
            "level": Out(range(4 * W + 1)),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self._W
        # A circular byte buffer: pushes and pops move pointers, never the stored bytes, so
        # each side is one byte multiplexer deep.
        size = 4 * W
        ptr_bits = index_bits(size)
        stored = [Signal(8, name=f"byte{k}") for k in range(size)]
        wr_ptr = Signal(ptr_bits)
        rd_ptr = Signal(ptr_bits)
        level = self.level

        m.d.comb += [
            self.out_avail.eq(bytes_available(level, self.out_n, W)),
            self.out_fire.eq(self.out_valid & self.out_avail & self.out_space),
            self.out_strb.eq(lane_mask(self.out_lo, self.out_n, W)),
            # Room for a word whatever this cycle's pop: `ready` depends on the level register
            # only.
            self.inp.ready.eq(level <= size - W),
        ]
        # Output lane out_lo + i is stored byte rd_ptr + i: the W bytes at rd_ptr (which do not
        # wait for out_lo), then shifted up to out_lo.
        window = Signal(8 * W)
        m.d.comb += [
            # A shift of the buffer (and its first W - 1 bytes again), not an Array index: yosys
            # builds a log shifter for it instead of a case per byte (a third of the LUTs).
            window.eq(Cat(*stored, *stored[:W - 1]).bit_select(rd_ptr * 8, 8 * W)),
            self.out_data.eq((window << (self.out_lo * 8))[:8 * W]),
        ]

        push = self.inp.valid & self.inp.ready
        chunk = self.inp.payload
        for k in range(size):
            # Stored byte k is the chunk's byte d (from its lane lo) when d < n.
            d = Signal(ptr_bits, name=f"from{k}")
            m.d.comb += d.eq(k - wr_ptr)
            with m.If(push & (d < chunk.n)):
                lane = (d + chunk.lo)[:index_bits(W)]
                m.d.sync += stored[k].eq(chunk.data.word_select(lane, 8))

        # Every next level is computed from registers and the chunk's count before the late
        # bits arrive: the push (the chunk's valid) and the pop (out_fire) only choose one.
        n = chunk.n
        drained = Signal.like(level)        # popped, nothing pushed
        refilled = Signal.like(level)       # popped and pushed
        grown = Signal.like(level)          # pushed only
        m.d.comb += [drained.eq(level - self.out_n),
                     refilled.eq((level - self.out_n)[:len(level)] + n),
                     grown.eq(level + n)]
        with m.If(self.clear):
            m.d.sync += [level.eq(0), wr_ptr.eq(0), rd_ptr.eq(0)]
        with m.Else():
            with m.If(push):
                m.d.sync += wr_ptr.eq(wr_ptr + n)
            with m.If(self.out_fire):
                m.d.sync += rd_ptr.eq(rd_ptr + self.out_n)
            m.d.sync += level.eq(Mux(push, Mux(self.out_fire, refilled, grown),
                                     Mux(self.out_fire, drained, level)))
        return m
