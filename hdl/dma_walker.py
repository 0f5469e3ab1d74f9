"""The DMA's address walker: walks one side of a descriptor (up to 3 dimensions of count and
signed stride over elements of ``elem`` bytes) and cuts it into pieces.

* *Word* mode (SBUF side): a piece is the part of a run that lies in one ``W``-byte word.
* *Burst* mode (DRAM side): a piece is an AXI INCR burst: at most ``max_burst`` beats and never
  across a 4 KiB boundary.

A *run* is one element, or, when the innermost stride equals the element size (a contiguous
innermost dimension), the whole innermost dimension at once, so contiguous transfers become long
bursts. Pieces come out (through an output register) in the descriptor's iteration order
(dimension 0 fastest) on the ``piece`` stream (``addr``: first byte, ``lo``: its byte lane, ``n``: bytes, ``beats``: words touched).
``start`` (one cycle) loads a new descriptor side; ``done`` is high once every piece has been
taken. Address arithmetic wraps at ``addr_width`` bits; the DMA checks the ranges beforehand.
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .contracts import index_bits


__all__ = ["piece_layout", "DmaWalker"]

BOUNDARY = 4096


def piece_layout(addr_width, word_bytes):
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "lo": unsigned(index_bits(word_bytes)),
        "n": unsigned(14),
        "beats": unsigned(9),
    })


class DmaWalker(wiring.Component):
    def __init__(self, *, addr_width, count_bits, elem_bits, word_bytes, max_burst):
        self._aw = addr_width
        self._cb = count_bits
        self._eb = elem_bits
        self._W = word_bytes
        self._max_burst = max_burst
        super().__init__({
            "start": In(1),
            "word_mode": In(1),
            "elem": In(unsigned(elem_bits)),
            "base": In(unsigned(addr_width)),
            "count": In(data.ArrayLayout(unsigned(count_bits), 3)),
            "stride": In(data.ArrayLayout(signed(addr_width), 3)),
            "piece": Out(stream.Signature(piece_layout(addr_width, word_bytes))),
            "done": Out(1),
        })

    def _cut(self, m, word_mode, cur_addr, cur_rem, cur_valid):
        """The current run's next piece into the ``piece`` register. Returns (the piece is
        loaded, it is the run's last, its bytes)."""
        W, lw = self._W, index_bits(self._W)
        lo = cur_addr[:lw]
        to_boundary = Signal(14)
        max_bytes = Signal(14)
        room = Signal(14)
        m.d.comb += [
            to_boundary.eq(BOUNDARY - cur_addr[:12]),
            max_bytes.eq(self._max_burst * W - lo),
            room.eq(Mux(word_mode, W - lo, Mux(to_boundary < max_bytes, to_boundary, max_bytes))),
        ]
        piece_n = Signal(14)
        m.d.comb += piece_n.eq(Mux(cur_rem < room, cur_rem, room))
        last_piece = cur_rem <= room
        # The piece goes out through a register (so the consumer's logic does not start with
        # this arithmetic); it is reloaded whenever it is empty or being taken.
        out_valid = self.piece.valid
        load = cur_valid & (~out_valid | self.piece.ready)
        with m.If(load):
            m.d.sync += [
                out_valid.eq(1),
                self.piece.payload.addr.eq(cur_addr),
                self.piece.payload.lo.eq(lo),
                self.piece.payload.n.eq(piece_n),
                self.piece.payload.beats.eq((lo + piece_n + (W - 1)) >> lw),
            ]
        with m.Elif(self.piece.ready | self.start):
            m.d.sync += out_valid.eq(0)
        return load, last_piece, piece_n

    def elaborate(self, platform):
        m = Module()
        aw = self._aw
        run_bits = self._eb + self._cb

        word_mode = Signal()
        run_len = Signal(run_bits)
        n = [Signal(self._cb, name=f"n{d}") for d in range(3)]
        s = [Signal(signed(aw), name=f"s{d}") for d in range(3)]
        i = [Signal(self._cb, name=f"i{d}") for d in range(3)]
        a = [Signal(aw, name=f"a{d}") for d in range(3)]
        gen_valid = Signal()
        cur_addr = Signal(aw)
        cur_rem = Signal(run_bits)
        cur_valid = Signal()

        fire, last_piece, piece_n = self._cut(m, word_mode, cur_addr, cur_rem, cur_valid)
        out_valid = self.piece.valid
        m.d.comb += self.done.eq(~gen_valid & ~cur_valid & ~out_valid)
        take_run = ~cur_valid | (fire & last_piece)

        # --- the run generator (nested loops with incremental pointers) --------------------------
        coalesce = self.stride[0] == self.elem
        with m.If(self.start):
            m.d.sync += [
                word_mode.eq(self.word_mode),
                gen_valid.eq(1),
                cur_valid.eq(0),
                [x.eq(0) for x in i],
                [x.eq(self.base) for x in a],
            ]
            with m.If(coalesce):
                m.d.sync += [
                    run_len.eq(self.elem * self.count[0]),
                    n[0].eq(self.count[1]), s[0].eq(self.stride[1]),
                    n[1].eq(self.count[2]), s[1].eq(self.stride[2]),
                    n[2].eq(1), s[2].eq(0),
                ]
            with m.Else():
                m.d.sync += [run_len.eq(self.elem)]
                m.d.sync += [n[d].eq(self.count[d]) for d in range(3)]
                m.d.sync += [s[d].eq(self.stride[d]) for d in range(3)]
        with m.Elif(take_run & gen_valid):
            m.d.sync += [cur_addr.eq(a[0]), cur_rem.eq(run_len), cur_valid.eq(1)]
            with m.If(i[0] != n[0] - 1):
                m.d.sync += [i[0].eq(i[0] + 1), a[0].eq(a[0] + s[0])]
            with m.Elif(i[1] != n[1] - 1):
                next1 = (a[1] + s[1])[:aw]
                m.d.sync += [i[0].eq(0), i[1].eq(i[1] + 1), a[0].eq(next1), a[1].eq(next1)]
            with m.Elif(i[2] != n[2] - 1):
                next2 = (a[2] + s[2])[:aw]
                m.d.sync += [i[0].eq(0), i[1].eq(0), i[2].eq(i[2] + 1),
                             a[0].eq(next2), a[1].eq(next2), a[2].eq(next2)]
            with m.Else():
                m.d.sync += gen_valid.eq(0)
        with m.Elif(take_run):
            m.d.sync += cur_valid.eq(0)
        with m.Elif(fire):
            m.d.sync += [cur_addr.eq(cur_addr + piece_n), cur_rem.eq(cur_rem - piece_n)]
        return m
