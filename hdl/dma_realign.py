"""The DMA's byte realigner: a 2-word byte queue between the read side and the write side.

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


__all__ = ["chunk_layout", "DmaRealigner"]


def chunk_layout(word_bytes):
    return data.StructLayout({
        "data": unsigned(8 * word_bytes),
        "lo": unsigned(index_bits(word_bytes)),
        "n": unsigned(word_bytes.bit_length()),
    })


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
            "level": Out(range(2 * W + 1)),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self._W
        buf = Signal(16 * W)
        level = self.level
        full_word = C((1 << (8 * W)) - 1, 8 * W)
        full_strb = C((1 << W) - 1, W)

        m.d.comb += [
            self.out_avail.eq(level >= self.out_n),
            self.out_fire.eq(self.out_valid & self.out_avail & self.out_space),
            self.out_data.eq((buf << (self.out_lo * 8))[:8 * W]),
            self.out_strb.eq(((full_strb >> (W - self.out_n).as_unsigned()) << self.out_lo)[:W]),
        ]
        pop_n = Mux(self.out_fire, self.out_n, 0)
        after_pop = Signal(range(2 * W + 1))
        m.d.comb += [
            after_pop.eq(level - pop_n),
            self.inp.ready.eq(after_pop <= W),
        ]
        push = self.inp.valid & self.inp.ready
        in_bytes = (self.inp.payload.data >> (self.inp.payload.lo * 8)) & \
            (full_word >> ((W - self.inp.payload.n).as_unsigned() * 8))
        shifted = buf >> (pop_n * 8)
        with m.If(self.clear):
            m.d.sync += [buf.eq(0), level.eq(0)]
        with m.Elif(push):
            m.d.sync += [
                buf.eq(shifted | (in_bytes << (after_pop * 8))[:16 * W]),
                level.eq(after_pop + self.inp.payload.n),
            ]
        with m.Else():
            m.d.sync += [buf.eq(shifted), level.eq(after_pop)]
        return m
