"""The DMA's address walker: walks one side of a descriptor (up to 3 dimensions of count and
signed stride over elements of ``elem`` bytes) and cuts it into pieces.

* *Word* mode (SBUF side): a piece is the part of a run that lies in one ``W``-byte word.
* *Burst* mode (DRAM side): a piece is an AXI INCR burst: at most ``max_burst`` beats and never
  across a 4 KiB boundary.

A *run* is one element, or, when the innermost stride equals the element size (a contiguous
innermost dimension), the whole innermost dimension at once, so contiguous transfers become long
bursts. Pieces come out (through a skid buffer) in the descriptor's iteration order
(dimension 0 fastest) on the ``piece`` stream (``addr``: first byte, ``lo``: its byte lane, ``n``: bytes, ``beats``: words touched).
``start`` (one cycle) loads a new descriptor side, whose inputs (``elem``, ``count``,
``stride``, ``base``) must have been stable since the cycle before (the DMA holds its descriptor
through the checks); ``done`` is high once every piece has been taken. Address arithmetic wraps at ``addr_width`` bits; the DMA checks the ranges beforehand.
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .contracts import index_bits
from .lib import Queue, SkidBuffer


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

    def _room(self, word_mode, addr):
        """(bytes of a run that fit in the piece starting at ``addr``, the words they touch)."""
        W, lw = self._W, index_bits(self._W)
        lo = addr[:lw]
        # Words to the 4 KiB boundary from the word that holds ``addr``; the boundary is word
        # aligned, so the bytes to it are that times W, less ``lo``.
        m_words = (BOUNDARY // W) - addr[lw:12]
        to_boundary = (m_words << lw) - lo
        cap = self._max_burst * W - lo
        burst_cut = m_words < self._max_burst
        room = Mux(word_mode, W - lo, Mux(burst_cut, to_boundary, cap))
        beats = Mux(word_mode, 1, Mux(burst_cut, m_words, self._max_burst))
        return room, beats

    def _cut(self, m, word_mode, run, pieces):
        """The head run of ``run`` (a stream of {addr, length, room, beats}) cut into pieces
        into ``pieces``. The room of the current piece (``room``, ``room_beats``) is a register
        computed one step ahead, so a piece is only a compare and a multiplexer."""
        W, lw = self._W, index_bits(self._W)
        cur_addr = Signal(self._aw)
        cur_rem = Signal(self._eb + self._cb)
        cur_valid = Signal()
        room = Signal(14)
        room_beats = Signal(9)
        lo = cur_addr[:lw]
        last_piece = (cur_rem[14:] == 0) & (cur_rem[:14] <= room)
        last_beats = (lo + cur_rem[:14] + (W - 1)) >> lw
        fire = cur_valid & pieces.ready
        m.d.comb += [
            pieces.valid.eq(cur_valid),
            pieces.payload.addr.eq(cur_addr),
            pieces.payload.lo.eq(lo),
            pieces.payload.n.eq(Mux(last_piece, cur_rem[:14], room)),
            pieces.payload.beats.eq(Mux(last_piece, last_beats, room_beats)),
            run.ready.eq(~cur_valid | (fire & last_piece)),
        ]
        # Not the run's last piece: the next one starts word aligned.
        next_addr = Signal(self._aw)
        m.d.comb += next_addr.eq(cur_addr + room)
        next_room, next_beats = self._room(word_mode, Cat(C(0, lw), next_addr[lw:]))
        with m.If(self.start):
            m.d.sync += cur_valid.eq(0)
        with m.Elif(run.ready):
            m.d.sync += [cur_addr.eq(run.payload.addr), cur_rem.eq(run.payload.length),
                         cur_valid.eq(run.valid), room.eq(run.payload.room),
                         room_beats.eq(run.payload.beats)]
        with m.Elif(fire):
            m.d.sync += [cur_addr.eq(next_addr), cur_rem.eq(cur_rem - room),
                         room.eq(next_room), room_beats.eq(next_beats)]
        return cur_valid

    def elaborate(self, platform):
        m = Module()
        aw = self._aw
        run_bits = self._eb + self._cb

        word_mode = Signal()
        run_len = Signal(run_bits)
        last = [Signal(self._cb, name=f"last{d}") for d in range(3)]   # count - 1
        s = [Signal(signed(aw), name=f"s{d}") for d in range(3)]
        # The loop indices count down (``left``: steps still to go in dimension d) and whether
        # a dimension is at its last step is a register of its own (``at_last``, and
        # ``single``: its count is 1), so a step's choice of which dimension moves depends on
        # three flip-flops instead of three wide comparisons.
        left = [Signal(self._cb, name=f"left{d}") for d in range(3)]
        at_last = [Signal(name=f"at_last{d}") for d in range(3)]
        single = [Signal(name=f"single{d}") for d in range(3)]
        a = [Signal(aw, name=f"a{d}") for d in range(3)]
        gen_valid = Signal()
        # Runs (with the room of their first piece) and pieces pass two-entry buffers, so each
        # stage's step depends on registers only, never on the next stage's logic in the same
        # cycle; each still moves one item per cycle. The runs wait in a queue (LUT RAM) rather
        # than a skid buffer: the cutter's `run.ready`, which waits for its last-piece compare,
        # then drives a pointer and a count instead of the enables of a hundred flip-flops
        # (same cycles: both are two-entry buffers whose `i.ready` and `o.valid` are registers).
        runs = m.submodules.runs = Queue(shape=data.StructLayout({
            "addr": unsigned(aw), "length": unsigned(run_bits),
            "room": unsigned(14), "beats": unsigned(9)}), depth=2)
        pieces = m.submodules.pieces = SkidBuffer(shape=piece_layout(aw, self._W))
        wiring.connect(m, pieces.o, wiring.flipped(self.piece))

        cur_valid = self._cut(m, word_mode, runs.o, pieces.i)
        m.d.comb += self.done.eq(~gen_valid & ~runs.o.valid & ~cur_valid & ~pieces.o.valid)

        # --- the run generator (nested loops with incremental pointers) --------------------------
        # What ``start`` loads is prepared in registers a cycle ahead, from the descriptor
        # side's inputs, which the DMA holds through its checks (several cycles before
        # ``start``): the wide comparison, the run length's multiplier and the counts' choice
        # are then not on the paths from the descriptor register to every loop register.
        is_run = self.stride[0] == self.elem     # a contiguous innermost dimension
        coalesce = Signal()                     # (is_run, a cycle ahead)
        product = Signal(run_bits)              # elem * count[0]: a coalesced run's length
        count = self.count
        m.d.sync += [coalesce.eq(is_run), product.eq(self.elem * count[0])]
        first_room, first_beats = self._room(word_mode, a[0])
        m.d.comb += [runs.i.payload.addr.eq(a[0]), runs.i.payload.length.eq(run_len),
                     runs.i.payload.room.eq(first_room), runs.i.payload.beats.eq(first_beats),
                     runs.i.valid.eq(gen_valid & ~self.start)]
        # The dimensions' counts - 1 as the descriptor gives them (coalesced: dimension 0 is
        # the whole run, dimensions 1 and 2 become 0 and 1), also a cycle ahead.
        new_last = [Signal(self._cb, name=f"new_last{d}") for d in range(3)]
        new_single = [Signal(name=f"new_single{d}") for d in range(3)]
        m.d.sync += [
            new_last[0].eq(Mux(is_run, count[1] - 1, count[0] - 1)),
            new_last[1].eq(Mux(is_run, count[2] - 1, count[1] - 1)),
            new_last[2].eq(Mux(is_run, 0, count[2] - 1)),
            # (new_last == 0, from the counts beside the choice, not after it)
            new_single[0].eq(Mux(is_run, count[1] == 1, count[0] == 1)),
            new_single[1].eq(Mux(is_run, count[2] == 1, count[1] == 1)),
            new_single[2].eq(Mux(is_run, 1, count[2] == 1)),
        ]
        with m.If(self.start):
            m.d.sync += [
                word_mode.eq(self.word_mode),
                gen_valid.eq(1),
                [x.eq(self.base) for x in a],
                [last[d].eq(new_last[d]) for d in range(3)],
                [left[d].eq(new_last[d]) for d in range(3)],
                [at_last[d].eq(new_single[d]) for d in range(3)],
                [single[d].eq(new_single[d]) for d in range(3)],
            ]
            with m.If(coalesce):
                m.d.sync += [
                    run_len.eq(product),
                    s[0].eq(self.stride[1]), s[1].eq(self.stride[2]), s[2].eq(0),
                ]
            with m.Else():
                m.d.sync += [run_len.eq(self.elem)]
                m.d.sync += [s[d].eq(self.stride[d]) for d in range(3)]

        def step(d):
            """Dimension ``d`` moves one step; the dimensions below it start again."""
            stmts = [left[d].eq(left[d] - 1), at_last[d].eq(left[d] == 1)]
            for k in range(d):
                stmts += [left[k].eq(last[k]), at_last[k].eq(single[k])]
            return stmts

        with m.Elif(runs.i.valid & runs.i.ready):
            with m.If(~at_last[0]):
                m.d.sync += [step(0), a[0].eq(a[0] + s[0])]
            with m.Elif(~at_last[1]):
                next1 = (a[1] + s[1])[:aw]
                m.d.sync += [step(1), a[0].eq(next1), a[1].eq(next1)]
            with m.Elif(~at_last[2]):
                next2 = (a[2] + s[2])[:aw]
                m.d.sync += [step(2), a[0].eq(next2), a[1].eq(next2), a[2].eq(next2)]
            with m.Else():
                m.d.sync += gen_valid.eq(0)
        return m
