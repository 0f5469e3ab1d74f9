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
from systolica.isa import Opcode


__all__ = ["matmul_static_checks", "MatmulLoop"]


def matmul_static_checks(body, rows, cols, load_pending):
    """A MATMUL's checks that need no iteration, ``[(condition, code)]`` in priority order."""
    return [((body.k_last == 0) | (body.k_last > rows), IsaError.BAD_K),
            ((body.n == 0) | (body.n > cols), IsaError.BAD_N),
            ((body.tiles == 0) | (body.m == 0) | (body.repeat == 0), IsaError.BAD_COUNT),
            (load_pending, IsaError.LOAD_PENDING)]


class MatmulLoop:
    """The MATMUL state of one PE queue engine; :meth:`add` puts its logic into the engine's
    module after the engine's own (its assignments take precedence while a MATMUL is in the
    slot). ``w_elements``: stationary elements per SBUF partition."""

    def __init__(self, *, rows, w_elements, accumulator_bits):
        self.rows, self.w_elements = rows, w_elements
        self.scaling = Signal()                      # the bit-serial multiply runs
        self.multiplier = Signal(16)                 # bits of tiles - 1 still to add
        self.w_step_shifted = Signal(48)
        self.a_step_shifted = Signal(48)
        self.w_offset = Signal(accumulator_bits)     # scaling: the last tile's; issue: tile t's
        self.a_offset = Signal(accumulator_bits)     # issue: tile t's A offset
        self.tile = Signal(16)
        self.tiles_left = Signal(16)                 # k tiles after tile t (registered: timing)
        self.loading = Signal()                      # the next command is tile t's load

    @staticmethod
    def hold(rep_to):
        """Assignments keeping rep and its flags (overriding the engine's rep_to)."""
        return [target.eq(target) for target in (a.lhs for a in rep_to(None))]

    def add(self, m, *, slot, phase, run, rep_to, rep_first, repeat, last_rep, acc_o,
            acc_p, rep_flags,
            issued, issue_ok, last, can_issue, board, weights_cmd, moving_cmd, kinds,
            loaded, new_load):
        mt = slot.body.matmul
        is_mm = slot.header.opcode == Opcode.MATMUL
        last_tile = self.tiles_left == 0
        with m.If(run & is_mm):
            with m.Switch(phase):
                with m.Case(0):
                    m.d.sync += [self.scaling.eq(1), self.multiplier.eq(mt.tiles - 1),
                                 self.w_offset.eq(mt.w_offset), self.w_step_shifted.eq(mt.w_step),
                                 self.a_step_shifted.eq(mt.a_step)]
                with m.Case(1):
                    with m.If(self.scaling):
                        # hold the repeat iteration until the A offset is the last tile's
                        m.d.sync += [*self.hold(rep_to), acc_p.eq(acc_p),
                                     rep_flags.eq(rep_flags)]
                        with m.If(self.multiplier != 0):
                            m.d.sync += [self.multiplier.eq(self.multiplier >> 1),
                                         self.w_step_shifted.eq(self.w_step_shifted << 1),
                                         self.a_step_shifted.eq(self.a_step_shifted << 1),
                                         acc_o.eq(acc_o)]
                            with m.If(self.multiplier[0]):
                                m.d.sync += [self.w_offset.eq(self.w_offset + self.w_step_shifted),
                                             acc_o.eq(acc_o + self.a_step_shifted)]
                        with m.Else():
                            w_out = (self.w_offset + mt.k_last > self.w_elements) | \
                                ((mt.tiles > 1) &
                                 (self.w_offset - mt.w_step + self.rows > self.w_elements))
                            m.d.sync += [self.scaling.eq(0), acc_o.eq(acc_o),
                                         rep_flags.eq(w_out)]     # bit 0: SBUF_RANGE
                with m.Case(2):
                    m.d.sync += [self.loading.eq(1), self.tile.eq(0),
                                 self.tiles_left.eq(mt.tiles - 1),
                                 self.w_offset.eq(mt.w_offset), self.a_offset.eq(mt.offset)]
            # --- issue
            wc, mc = weights_cmd, moving_cmd
            m.d.comb += [
                wc.payload.offset.eq(self.w_offset),
                wc.payload.rows.eq(Mux(last_tile, mt.k_last, self.rows)),
                wc.payload.cols.eq(mt.n),
                wc.valid.eq(can_issue & self.loading & board.i.ready),
                mc.payload.accumulate.eq(mt.accumulate | (self.tile != 0)),
                mc.valid.eq(can_issue & ~self.loading & board.i.ready),
                issue_ok.eq(Mux(self.loading, wc.ready, mc.ready)),
                board.i.payload.kind.eq(Mux(self.loading, kinds[0], kinds[1])),
                last.eq(~self.loading & last_rep & last_tile),
            ]
            with m.If(issued):
                with m.If(self.loading):
                    m.d.sync += [self.loading.eq(0), loaded.eq(1), new_load.eq(1),
                                 *self.hold(rep_to), acc_o.eq(acc_o), acc_p.eq(acc_p)]
                with m.Else():
                    with m.If(rep_first):
                        m.d.sync += new_load.eq(0)
                    with m.If(last_rep & ~last_tile):    # the next k tile: its load first
                        m.d.sync += [self.loading.eq(1), self.tile.eq(self.tile + 1),
                                     self.tiles_left.eq(self.tiles_left - 1),
                                     self.w_offset.eq(self.w_offset + mt.w_step),
                                     self.a_offset.eq(self.a_offset + mt.a_step),
                                     *rep_to(0), acc_o.eq(self.a_offset + mt.a_step),
                                     acc_p.eq(mt.psum_addr)]
