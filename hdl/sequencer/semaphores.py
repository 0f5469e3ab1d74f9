"""The sequencer's semaphore file: ``count`` counters of ``bits`` bits shared by every engine.

Each engine ``e`` has a *wait* port (``wait[e]``: ``valid`` and two ``(id, amount)`` pairs, the
ISA's two waits; ``granted[e]`` back) and a *signal* port (``signal[e][j]``, ``j`` = 0, 1:
``valid``, ``id``, ``amount``; ``signal_ready[e]`` back).

Both sides are pipelined by one register (timing: no counter read is followed by an arbiter and
a counter update in the same cycle):

* **Waits.** An engine shows a wait's pairs from at least one cycle before its ``valid`` and
  keeps them while ``valid`` (its engine shows them from the check on). A wait is granted in
  cycle t when it is shown (``valid``) in t, and in t - 1 ``value[id] >= amount`` held for
  both pairs, no grant of t - 1 or t - 2 touched either
  of its counters (a pair with ``amount = 0`` touches nothing) and no ``clear`` came in t - 1.
  The grant consumes both amounts (wait-and-consume is one atomic step), but the counters are
  lowered one cycle later, in t + 1 (timing: the arbiter is not followed by the counters'
  subtractors in one cycle): the register ``values`` of t - 1 holds every grant up to t - 3,
  and those of t - 2 and t - 1 are excluded. Signals only raise the counters, so the value of
  t - 1 is a safe lower bound. The ISA guarantees distinct ids where both amounts are
  non-zero. At most one wait is granted per cycle, round-robin between the engines, so two
  waiters can never both consume the same unit. ``values`` therefore shows a grant's
  subtraction a cycle after the grant's visible effects (``granted``).
* **Signals.** One engine's signals (both of them) are taken per cycle, round-robin between the
  engines with a signal shown; ``signal_ready[e]`` is high in the cycle t engine ``e``'s are
  taken (an engine keeps its signals shown until then, and may not depend on ``signal_ready``
  to show them). They are checked in t + 1 and applied in t + 2 (``values`` shows them from
  t + 3), but never past ``2**bits - 1``: ``overflow[e]`` is high in t + 2 (registered) when
  one of them would take its counter past it (both together if they name one counter; the
  check is on the counter as it stands after t + 1 before that cycle's grant, which only
  lowers a counter: the register ``values`` less the grant of t still being subtracted plus
  the pair taken in t - 1, being applied in t + 1, if it fitted), and then neither is
  applied (ISA ``SEMAPHORE_OVERFLOW``). A ``clear`` in t, t + 1 or t + 2 drops them.
* **Remote signals** (``remote=True``, a chip's tile): ``remote`` (``valid``, ``id``,
  ``amount``) is taken in the cycle it is shown, before any engine's (which then wait a cycle);
  ``remote_overflow`` is high two cycles later when it would overflow and was not applied.

So every counter has one subtractor and one adder, fed by the grant of the cycle before and the
one signal pair being applied, instead of an adder tree over every engine's signals: the file's
area does not grow with the engines. ``clear`` (abort) zeroes every counter and takes precedence.
"""

import functools
import operator

from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.hdl.contracts import index_bits
from systolica.hdl.lib import RoundRobinArbiter


__all__ = ["semaphore_request_layout", "semaphore_wait_layout", "SemaphoreFile"]


def semaphore_request_layout(count, bits):
    return data.StructLayout({"valid": 1, "id": unsigned(index_bits(count)),
                              "amount": unsigned(bits)})


def semaphore_wait_layout(count, bits):
    pair = data.StructLayout({"id": unsigned(index_bits(count)), "amount": unsigned(bits)})
    return data.StructLayout({"valid": 1, "pair": data.ArrayLayout(pair, 2)})


class SemaphoreFile(wiring.Component):
    def __init__(self, *, count, bits, engines, remote=False):
        for name, value, lo in (("count", count, 1), ("bits", bits, 1), ("engines", engines, 1)):
            if not isinstance(value, int) or value < lo:
                raise ValueError(f"SemaphoreFile {name} must be a positive integer; got {value!r}")
        self.count, self.bits, self.engines, self.remote_port = count, bits, engines, remote
        layout = semaphore_request_layout(count, bits)
        members = {
            "wait": In(semaphore_wait_layout(count, bits)).array(engines),
            "granted": Out(engines),
            "signal": In(layout).array(engines, 2),
            "signal_ready": Out(engines),
            "overflow": Out(engines),
            "clear": In(1),
            "values": Out(data.ArrayLayout(unsigned(bits), count)),
        }
        if remote:
            members.update({"remote": In(layout), "remote_overflow": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.engines
        values = self.values
        wait_layout = semaphore_wait_layout(self.count, self.bits)

        # --- waits: checked in t - 1 (registered), granted in t, one per cycle ----------------
        waits = m.submodules.wait_arbiter = RoundRobinArbiter(n)
        # the grant of this cycle, picked by the one-hot grant from each engine's pairs and,
        # found before the arbiter, the counters they name (one-hot; none for amount 0)
        granted = Signal(wait_layout.members["pair"])
        granted_hits = Signal(data.ArrayLayout(self.count, 2))
        # ... of the previous cycle: subtracted now; ``grant_hits``, its counters
        last_grant = Signal(wait_layout.members["pair"])
        grant_hits = Signal(data.ArrayLayout(self.count, 2))
        m.d.sync += [last_grant.eq(granted), grant_hits.eq(Mux(self.clear, 0, granted_hits))]
        touched_now = grant_hits[0] | grant_hits[1]

        def touches(mask, pairs):
            return Cat((p.amount != 0) & mask.bit_select(p.id, 1) for p in pairs).any()
        # Whether the grant of this cycle touches each engine's pairs, registered for the next
        # cycle's grant: from every two engines' pairs (shown, so stable, before ``valid``)
        # and the one-hot grant (timing: nothing but registers and ``valid`` before the
        # arbiter).
        def clash(e, f):
            return Cat((p.amount != 0) & (q.amount != 0) & (p.id == q.id)
                       for p in self.wait[e].pair for q in self.wait[f].pair).any()
        touched_last = Signal(n)
        m.d.sync += [touched_last[e].eq(Cat(waits.grant[f] & clash(e, f)
                                            for f in range(n)).any()) for e in range(n)]
        ok = []
        for e, w in enumerate(self.wait):
            # registered with the check: whether the values met the pairs and (folded in) no
            # grant of that cycle (``grant_hits`` then: the grant of t - 2) touched them and
            # no clear came; the grant of t - 1: ``touched_last``
            met = Signal(name=f"wait_met_{e}")
            m.d.sync += met.eq(Cat(values[p.id] >= p.amount for p in w.pair).all() &
                               ~touches(touched_now, w.pair) & ~self.clear)
            ok.append(w.valid & met & ~touched_last[e])
        m.d.comb += [waits.requests.eq(Cat(ok)), waits.advance.eq(1),
                     self.granted.eq(waits.grant)]
        def any_of(terms):
            return functools.reduce(operator.or_, terms)
        m.d.comb += granted.as_value().eq(any_of([Mux(waits.grant[e], w.pair.as_value(), 0)
                                                  for e, w in enumerate(self.wait)]))
        for k in range(2):
            m.d.comb += granted_hits[k].eq(any_of([
                Mux(waits.grant[e] & (w.pair[k].amount != 0), 1 << w.pair[k].id, 0)
                for e, w in enumerate(self.wait)]))

        # --- signals: one engine's pair taken per cycle (the remote port first), applied in
        # the next cycle after the overflow check ----------------------------------------------
        signals = m.submodules.signal_arbiter = RoundRobinArbiter(n)
        shown = Cat(s[0].valid | s[1].valid for s in self.signal)
        remote_valid = self.remote.valid if self.remote_port else C(0)
        m.d.comb += [signals.requests.eq(Mux(remote_valid, 0, shown)), signals.advance.eq(1),
                     self.signal_ready.eq(signals.grant)]
        # Every source's merge prepared before the arbiter from what it shows (timing: the
        # arbiter is followed by a one-hot AND-OR of the shown pairs, then one LUT): whether
        # both signals name one counter (``same``: merged into lane 0) and their sum, whose
        # carry is an overflow of the merged amount alone (a single amount always fits).
        bits = self.bits
        taken_layout = data.StructLayout({
            "pair": data.ArrayLayout(semaphore_request_layout(self.count, bits), 2),
            "same": 1, "merged": unsigned(bits + 1)})
        candidates = []
        for pick, (a, b) in [*((signals.grant[e], self.signal[e]) for e in range(n)),
                             *([(remote_valid, (self.remote, None))] if self.remote_port else [])]:
            shown = Signal(taken_layout)
            m.d.comb += shown.pair[0].eq(a)
            if b is not None:
                m.d.comb += [shown.pair[1].eq(b),
                             shown.same.eq(a.valid & b.valid & (a.id == b.id)),
                             shown.merged.eq(a.amount + b.amount)]
            candidates.append(Mux(pick, shown.as_value(), 0))
        taken = Signal(taken_layout)
        m.d.comb += taken.as_value().eq(any_of(candidates))
        lane_valid = [taken.pair[0].valid, taken.pair[1].valid & ~taken.same]
        totals = [Mux(taken.same, taken.merged[:bits], taken.pair[0].amount),
                  taken.pair[1].amount]
        # registered: the pair with each lane's counter one-hot, whose it is, and whether the
        # merged amount overflows (``over``)
        lane_hits = Signal(data.ArrayLayout(self.count, 2))
        lane_amount = Signal(data.ArrayLayout(unsigned(bits), 2))
        over = Signal()
        owner = Signal(n)
        owner_remote = Signal()
        m.d.sync += [owner.eq(signals.grant), owner_remote.eq(remote_valid),
                     over.eq(taken.same & taken.merged[bits] & ~self.clear)]
        for j in range(2):
            m.d.sync += [lane_hits[j].eq(Mux(self.clear | ~lane_valid[j], 0,
                                             1 << taken.pair[j].id)),
                         lane_amount[j].eq(totals[j])]

        # --- the counters: at most two additions (distinct ids: merged) and two subtractions
        # (the previous cycle's grant, distinct ids by the ISA) per cycle. A pair is checked in
        # the cycle after it was taken and, if it fits, applied in the cycle after that
        # (``applying``: timing, the verdict only gates two lanes of registers and the
        # counters' adders start at flip-flops). Every counter sums its own: ``lowered`` (the
        # counter less the grant being subtracted, which a signal may use) plus the pair being
        # applied, which becomes its value; ``lowered`` plus that pair and the pair checked on
        # it carries out on an overflow (``bad``: neither signal of the checked pair applied).
        def lanes(hits, amounts, i):       # one-hot by id: OR, not a sum
            return Mux(hits[0][i], amounts[0], 0) | Mux(hits[1][i], amounts[1], 0)
        applying_hits = Signal(data.ArrayLayout(self.count, 2))
        applying_amount = Signal(data.ArrayLayout(unsigned(bits), 2))
        fitted = Signal()                 # ... and it fitted (the verdict, registered: timing)
        carries = []
        for i in range(self.count):
            low = Signal(bits, name=f"lowered_{i}")
            added = Signal(bits + 1, name=f"added_{i}")     # applied and checked, on counter i
            checked = Signal(bits + 2, name=f"checked_{i}")
            applied = Mux(fitted, lanes(applying_hits, applying_amount, i), 0)
            m.d.comb += [low.eq(values[i] - lanes(grant_hits, [g.amount for g in last_grant], i)),
                         added.eq(applied + lanes(lane_hits, lane_amount, i)),
                         checked.eq(low + added)]
            carries.append(checked[bits:].any())
            with m.If(self.clear):
                m.d.sync += values[i].eq(0)
            with m.Else():
                m.d.sync += values[i].eq(low + applied)
        bad = Signal()
        m.d.comb += bad.eq(Cat(*carries, over).any())
        # the verdict leaves registered (timing: the engines' halt logic is not behind the sums)
        m.d.sync += self.overflow.eq(Mux(bad, owner, 0))
        if self.remote_port:
            m.d.sync += self.remote_overflow.eq(owner_remote & bad)
        m.d.sync += [applying_hits.eq(lane_hits), applying_amount.eq(lane_amount),
                     fitted.eq(~bad & ~self.clear)]
        return m
