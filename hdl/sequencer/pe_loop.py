"""MATMUL on the PE queue's front end (:class:`.engine.QueueEngine`): one instruction expanded
into the k loop of LOAD_STATIONARY / MULTIPLY_MOVING commands it stands for, on the same
``weights_cmd`` / ``moving_cmd`` streams, so the datapath and its shadow-weight overlap (the
load of k tile t+1 streams while tile t multiplies) are those of the instruction pairs.

MATMUL's body starts with MULTIPLY_MOVING's fields at the same bits, so the engine's repeat
machinery (range checks, per-repeat offsets) reads them unchanged; this file adds:

* the static checks (:func:`matmul_static_checks`): BAD_K, BAD_N, BAD_COUNT, LOAD_PENDING;
* before the repeat checks, a bit-serial multiply (one cycle per bit of ``tiles - 1``, plus
  one) that moves the repeat checks' A offset to the last k tile's and checks the W range of
  the last two k tiles: offsets grow linearly with t (unsigned steps), so the last tile's A
  ranges and the W ranges of the last full and the last tile are the largest of all tiles,
  and checking those endpoints checks every tile before the first is issued;
* the issue loop: per k tile one weights command (K = R, k_last for the last tile), then one
  moving command per repeat (accumulate for every tile after the first). Only the last
  multiply's scoreboard entry retires the instruction and carries its signals.
"""

from amaranth.hdl import *

from systolica.codes import IsaError
from .repeats import choose


__all__ = ["matmul_static_checks", "MatmulLoop"]


def matmul_static_checks(body, rows, cols, load_pending):
    """A MATMUL's checks that need no iteration, ``[(condition, code)]`` in priority order."""
    return [((body.k_last == 0) | (body.k_last > rows), IsaError.BAD_K),
            ((body.n == 0) | (body.n > cols), IsaError.BAD_N),
            ((body.tiles == 0) | (body.m == 0) | (body.repeat == 0), IsaError.BAD_COUNT),
            (load_pending, IsaError.LOAD_PENDING)]


class MatmulLoop:
    """The MATMUL state of one PE queue engine. :meth:`decide` (its registers and what it
    tells the engine's repeat state) and :meth:`issue` (its commands, after the engine's own:
    its assignments take precedence while a MATMUL is in the slot) put its logic into the
    engine's module. ``w_elements``: stationary elements per SBUF partition."""

    def __init__(self, *, rows, w_elements, accumulator_bits):
        self.rows, self.w_elements = rows, w_elements
        self.scaling = Signal()                      # the bit-serial multiply runs
        self.multiplier = Signal(16)                 # bits of tiles - 1 still to add
        self.multiplier_left = Signal()              # multiplier != 0 (registered: timing)
        self.w_step_shifted = Signal(48)
        self.a_step_shifted = Signal(48)
        self.w_offset = Signal(accumulator_bits)     # scaling: the last tile's; issue: tile t's
        self.a_offset = Signal(accumulator_bits)     # issue: tile t's A offset
        self.later_tile = Signal()                   # tile t > 0
        self.tiles_left = Signal(16)                 # k tiles after tile t
        self.last_tile = Signal()                    # tiles_left == 0 (registered: timing)
        self.loading = Signal()                      # the next command is tile t's load
        # what the engine's repeat state does (see decide)
        self.scale_add = Signal()
        self.scaled = Signal()
        self.next_tile = Signal()
        self.holds_repeat = Signal()
        self.w_out = Signal()

    def decide(self, m, *, slot, mm, phase0, phase1, phase2, issued, last_rep):
        """The loop's registers and, for the engine's repeat state: ``scale_add`` (acc_o +=
        a_step_shifted), ``scaled`` (the multiply is done: the range flags are ``w_out``),
        ``next_tile`` (rep and acc_p restart, acc_o is the next k tile's A offset) and
        ``holds_repeat`` (an issue that does not step the repeat). ``mm``: a MATMUL is in the
        slot; the phases are the engine's."""
        mt = slot.body.matmul
        shifting = phase1 & self.scaling & self.multiplier_left
        m.d.comb += [
            self.scale_add.eq(shifting & self.multiplier[0]),
            self.scaled.eq(phase1 & self.scaling & ~self.multiplier_left),
            self.next_tile.eq(issued & mm & ~self.loading & last_rep & ~self.last_tile),
            self.holds_repeat.eq(mm & (self.loading | (last_rep & ~self.last_tile))),
            # the W ranges of the last full k tile and the last tile are the largest
            self.w_out.eq((self.w_offset + mt.k_last > self.w_elements) |
                          ((mt.tiles > 1) &
                           (self.w_offset - mt.w_step + self.rows > self.w_elements))),
        ]
        choose(m, self.scaling, [(phase0, mm), (self.scaled, 0)])
        choose(m, self.multiplier, [(phase0, mt.tiles - 1), (shifting, self.multiplier >> 1)])
        choose(m, self.multiplier_left, [(phase0, mt.tiles != 1),
                                         (shifting, self.multiplier[1:].any())])
        choose(m, self.w_step_shifted, [(phase0, mt.w_step),
                                        (shifting, self.w_step_shifted << 1)])
        choose(m, self.a_step_shifted, [(phase0, mt.a_step),
                                        (shifting, self.a_step_shifted << 1)])
        choose(m, self.w_offset, [(phase0 | phase2, mt.w_offset),
                                  (self.scale_add, self.w_offset + self.w_step_shifted),
                                  (self.next_tile, self.w_offset + mt.w_step)])
        choose(m, self.a_offset, [(phase2, mt.offset),
                                  (self.next_tile, self.a_offset + mt.a_step)])
        choose(m, self.later_tile, [(phase2, 0), (self.next_tile, 1)])
        choose(m, self.tiles_left, [(phase2, mt.tiles - 1),
                                    (self.next_tile, self.tiles_left - 1)])
        choose(m, self.last_tile, [(phase2, mt.tiles == 1),
                                   (self.next_tile, self.tiles_left == 1)])
        choose(m, self.loading, [(phase2, 1), (issued & mm & self.loading, 0),
                                 (self.next_tile, 1)])

    def issue(self, m, *, slot, mm, issued, rep_first, last_rep, issue_ok, last, can_issue, board,
              weights_cmd, moving_cmd, kinds, loaded, new_load):
        """Per k tile one weights command, then one moving command per repeat."""
        mt = slot.body.matmul
        with m.If(mm):
            wc, mc = weights_cmd, moving_cmd
            m.d.comb += [
                wc.payload.offset.eq(self.w_offset),
                wc.payload.rows.eq(Mux(self.last_tile, mt.k_last, self.rows)),
                wc.payload.cols.eq(mt.n),
                wc.valid.eq(can_issue & self.loading & board.i.ready),
                mc.payload.accumulate.eq(mt.accumulate | self.later_tile),
                mc.valid.eq(can_issue & ~self.loading & board.i.ready),
                issue_ok.eq(Mux(self.loading, wc.ready, mc.ready)),
                board.i.payload.kind.eq(Mux(self.loading, kinds[0], kinds[1])),
                last.eq(~self.loading & last_rep & self.last_tile),
            ]
        with m.If(issued & mm):
            with m.If(self.loading):
                m.d.sync += [loaded.eq(1), new_load.eq(1)]
            with m.Elif(rep_first):
                m.d.sync += new_load.eq(0)
