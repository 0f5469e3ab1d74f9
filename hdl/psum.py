"""PSUM: the accumulation buffer between the tensor engine and the ACT unit.

``banks`` memories of ``bank_rows`` rows; a row is one C-vector of ``acc_bits`` accumulators. Row
address ``addr`` (the tensor engine's result tag) = ``bank * bank_rows + row``.

* ``result`` (in, the tensor engine's ``result`` stream): each beat is written over its row
  (``tag.accumulate = 0``) or added into it (``1``), with ``acc_bits`` two's-complement wraparound
  (floating-point engines: an fp32 addition rounded to nearest even, docs/floating_point.md),
  one beat per cycle. Read-modify-write is a 3-stage pipeline: the row is read in the cycle the beat
  is accepted, the memory's output is registered in the next cycle, and the sum is computed and
  written in the one after (so the block RAM's output and the adder are in different cycles). The
  bank's read port is *transparent* to its write port: a read sees every write up to and including
  its own cycle. The only write a beat's read can miss is therefore the previous beat's (done one
  cycle after the read); that sum is kept in a forwarding register and used instead of the memory's
  data when the rows match. Back-to-back accumulation into one row runs at one beat per cycle with
  no stall. ``tag.last`` is not used by PSUM.
* ``read`` (``PsumReadSignature``, flipped; the ACT unit's port): ``request {addr}`` ->
  in-order ``response {data}``; up to one row per cycle, each entering the response queue two
  cycles after its request (the block RAM's word is registered before the bank multiplexer).

Each bank has one synchronous read port (shared by the two paths) and one write port (the
accumulator's). The result stream and the ACT reads conflict only when they address the same bank
in the same cycle; then the result stream wins, unless it won the previous conflict (so the two
alternate under sustained contention and neither starves). An ACT read in the same cycle as the
write of the same row returns the new row.

Errors (sticky bits of ``errors``, cleared by ``clear_errors``): ``result`` (a beat addressed a row
>= banks * bank_rows: it is dropped), ``read`` (a read of such a row: answered with zeros).
"""

from amaranth.hdl import *
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import TileConfig
from systolica.hdl.contracts import (PsumReadSignature, psum_errors_layout,
                                     psum_read_response_layout, result_layout)
from systolica.hdl.fp import add_to_fp32, unpack_fp32
from systolica.hdl.lib import Queue, RoundRobinArbiter, StickyFlags


__all__ = ["Psum"]


class Psum(wiring.Component):
    """The accumulation buffer (see the module docstring)."""

    def __init__(self, *, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"Psum config must be a TileConfig; got {config!r}")
        self._config = config
        super().__init__({
            "result": In(stream.Signature(result_layout(config.array))),
            "read": In(PsumReadSignature(config.array)),
            "errors": Out(psum_errors_layout()),
            "clear_errors": In(1),
        })

    @property
    def config(self):
        """The :class:`TileConfig` (PSUM reads its ``psum`` and ``array`` sections)."""
        return self._config

    def elaborate(self, platform):
        cfg, arr = self._config.psum, self._config.array
        B, RB, C = cfg.banks, cfg.bank_rows, arr.cols
        row_bits = (RB - 1).bit_length()
        row_layout = data.ArrayLayout(arr.acc_shape, C)
        m = Module()

        rports, wports = [], []
        for b in range(B):
            mem = memory.Memory(shape=row_layout, depth=RB, init=[])
            m.submodules[f"bank{b}"] = mem
            wports.append(mem.write_port())
            rports.append(mem.read_port(transparent_for=(wports[-1],)))   # forwards the RMW sum
        # Every bank's read data is registered straight from the block RAM (its clock-to-output
        # is about 6 ns on an ECP5) and multiplexed by bank in the next cycle, by whichever path
        # read it: a bank's port serves one of them per cycle.
        bank_words = [Signal(row_layout, name=f"bank{b}_word") for b in range(B)]
        m.d.sync += [bank_words[b].eq(rports[b].data) for b in range(B)]
        bank_word = Array(w.as_value() for w in bank_words)

        errors = m.submodules.errors = StickyFlags(psum_errors_layout())
        err_set = errors.set
        m.d.comb += [errors.clear.eq(self.clear_errors), self.errors.eq(errors.flags)]

        def split(addr):
            return addr[row_bits:], addr[:row_bits]

        # --- requests and the bank arbiter -----------------------------------------------------
        res = self.result.payload
        res_bank, res_row = split(res.tag.addr)
        res_in_range = Signal()
        m.d.comb += res_in_range.eq(res.tag.addr < cfg.rows)

        rq = self.read.request.payload
        rd_bank, rd_row = split(rq.addr)
        rd_in_range = Signal()
        m.d.comb += rd_in_range.eq(rq.addr < cfg.rows)
        # Two cycles from an accepted read to the FIFO (block RAM, then its registered word), so
        # 4 entries keep one read per cycle.
        resp_depth = 4
        resp_fifo = m.submodules.read_response = Queue(shape=psum_read_response_layout(arr),
                                                       depth=resp_depth)
        rd_inflight, rd_staged = Signal(), Signal()
        rd_credit = Signal()
        m.d.comb += rd_credit.eq(resp_fifo.level + rd_inflight + rd_staged < resp_depth)

        res_wants = self.result.valid & res_in_range
        rd_wants = self.read.request.valid & rd_in_range & rd_credit
        # On a bank conflict the two take turns, the result stream first.
        conflict = Signal()
        turns = m.submodules.bank_arbiter = RoundRobinArbiter(2)
        res_grant, rd_grant = Signal(), Signal()
        m.d.comb += [
            conflict.eq(res_wants & rd_wants & (res_bank == rd_bank)),
            turns.requests.eq(Mux(conflict, 0b11, 0)),
            turns.advance.eq(1),
            res_grant.eq(res_wants & (~conflict | turns.grant[0])),
            rd_grant.eq(rd_wants & (~conflict | turns.grant[1])),
            self.result.ready.eq(~res_in_range | res_grant),
            self.read.request.ready.eq(rd_credit & (~rd_in_range | rd_grant)),
            err_set.result.eq(self.result.valid & ~res_in_range),
            err_set.read.eq(self.read.request.valid & self.read.request.ready & ~rd_in_range),
        ]

        for b in range(B):
            with m.If(res_grant & (res_bank == b)):
                m.d.comb += [rports[b].addr.eq(res_row), rports[b].en.eq(1)]
            with m.Elif(rd_grant & (rd_bank == b)):
                m.d.comb += [rports[b].addr.eq(rd_row), rports[b].en.eq(1)]
            with m.Else():
                m.d.comb += rports[b].en.eq(0)

        # --- accumulate: stage 1 registers the row read, stage 2 adds and writes ---------------
        s1_valid, s1_acc = Signal(), Signal()
        s1_bank = Signal(range(B))
        s1_row = Signal(row_bits)
        s1_data = Signal(row_layout)
        m.d.sync += [
            s1_valid.eq(res_grant),
            s1_bank.eq(res_bank),
            s1_row.eq(res_row),
            s1_acc.eq(res.tag.accumulate),
            s1_data.eq(res.data),
        ]
        s2_valid, s2_acc = Signal(), Signal()
        s2_bank = Signal(range(B))
        s2_row = Signal(row_bits)
        s2_data = Signal(row_layout)
        m.d.sync += [
            s2_valid.eq(s1_valid), s2_acc.eq(s1_acc), s2_bank.eq(s1_bank), s2_row.eq(s1_row),
            s2_data.eq(s1_data),
        ]
        # This beat's read (issued two cycles ago) saw, through the transparent port, every write
        # up to that cycle; it missed only the previous beat's write, which sits in `fwd`.
        fwd_data = Signal(row_layout)
        # Whether it did (`fwd` holds the row this beat reads) is known a cycle early: the beat
        # now in stage 1 follows the one in stage 2. Registered, it is one flip-flop in front of
        # the old-row multiplexer instead of two comparisons.
        hit = Signal()
        m.d.sync += hit.eq(s2_valid & (s2_bank == s1_bank) & (s2_row == s1_row))
        old = Signal(row_layout)
        total = Signal(row_layout)
        m.d.comb += old.eq(Mux(hit, fwd_data.as_value(), bank_word[s2_bank]))
        for c in range(C):
            if arr.is_float:     # fp32: one rounding to nearest even (docs/floating_point.md)
                added = add_to_fp32(m, unpack_fp32(m, old[c], f"old{c}"),
                                    unpack_fp32(m, s2_data[c], f"new{c}"), f"sum{c}")
                m.d.comb += total[c].eq(Mux(s2_acc, added, s2_data[c]))
            else:
                # Overwrite = add to zero: the accumulate bit masks the old row (one LUT with the
                # hit multiplexer), and the adder's output goes straight to the write port.
                m.d.comb += total[c].eq((Mux(s2_acc, old[c], 0) + s2_data[c])[:arr.acc_bits])
        for b in range(B):
            m.d.comb += [wports[b].addr.eq(s2_row), wports[b].data.eq(total),
                         wports[b].en.eq(s2_valid & (s2_bank == b))]
        m.d.sync += fwd_data.eq(total)

        # --- read path -------------------------------------------------------------------------
        rd_zero, rd_zero_q = Signal(), Signal()
        rd_bank_q, rd_bank_qq = Signal(range(B)), Signal(range(B))
        m.d.sync += [
            rd_inflight.eq(self.read.request.valid & self.read.request.ready),
            rd_zero.eq(~rd_in_range),
            rd_bank_q.eq(rd_bank),
        ]
        m.d.sync += [rd_staged.eq(rd_inflight), rd_zero_q.eq(rd_zero), rd_bank_qq.eq(rd_bank_q)]
        m.d.comb += [
            # Never refused: `rd_credit` reserved the space when the request was accepted.
            resp_fifo.i.valid.eq(rd_staged),
            resp_fifo.i.payload.data.eq(Mux(rd_zero_q, 0, bank_word[rd_bank_qq])),
        ]
        wiring.connect(m, resp_fifo.o, wiring.flipped(self.read.response))
        return m
