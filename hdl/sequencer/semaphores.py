"""The sequencer's semaphore file: ``count`` counters of ``bits`` bits shared by every engine.

Each engine ``e`` has a *wait* port (``wait[e]``: ``valid`` and two ``(id, amount)`` pairs, the
ISA's two waits; ``granted[e]`` back) and a *signal* port (``signal[e][j]``, ``j`` = 0, 1:
``valid``, ``id``, ``amount``; ``signal_ready[e]`` back).

* **Waits.** A wait is granted when ``value[id] >= amount`` for both pairs (the ISA guarantees
  distinct ids where both amounts are non-zero); the grant subtracts both amounts in the same
  cycle (wait-and-consume is one atomic step). At most one wait is granted per cycle,
  round-robin between the engines, so two waiters can never both consume the same unit. A wait
  with ``amount = 0`` is granted at once (when it wins the round).
* **Signals.** One engine's signals (both of them) are taken per cycle, round-robin between the
  engines with a signal shown; ``signal_ready[e]`` is high in the cycle engine ``e``'s are taken
  (an engine keeps its signals shown until then, and may not depend on ``signal_ready`` to show
  them). They add, but never past ``2**bits - 1``: ``overflow[e]`` is high, with
  ``signal_ready[e]``, when one of them would take its counter there (both together if they
  name one counter), and then neither is applied (ISA ``SEMAPHORE_OVERFLOW``). The check is on
  the value before this cycle's grant (a grant only lowers a counter).
* **Remote signals** (``remote=True``, a chip's tile): ``remote`` (``valid``, ``id``,
  ``amount``) is taken in the cycle it is shown, before any engine's (which then wait a cycle);
  ``remote_overflow`` says it would overflow and was not applied.

So every counter has one adder and one subtractor, fed by the one signal pair and the one grant
of the cycle, instead of an adder tree over every engine's signals: the file's area does not
grow with the engines. ``clear`` (abort) zeroes every counter and takes precedence.
"""

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
        pair_layout = data.ArrayLayout(semaphore_request_layout(self.count, self.bits), 2)

        # --- waits: one grant per cycle -----------------------------------------------------
        waits = m.submodules.wait_arbiter = RoundRobinArbiter(n)
        ok = Cat((w.valid & (values[w.pair[0].id] >= w.pair[0].amount) &
                  (values[w.pair[1].id] >= w.pair[1].amount)) for w in self.wait)
        m.d.comb += [waits.requests.eq(ok), waits.advance.eq(1), self.granted.eq(waits.grant)]
        granted = Signal(semaphore_wait_layout(self.count, self.bits))
        with m.Switch(waits.index):
            for e in range(n):
                with m.Case(e):
                    m.d.comb += granted.eq(self.wait[e])

        # --- signals: one engine's pair per cycle, the remote port first ---------------------
        signals = m.submodules.signal_arbiter = RoundRobinArbiter(n)
        shown = Cat(s[0].valid | s[1].valid for s in self.signal)
        remote_valid = self.remote.valid if self.remote_port else C(0)
        m.d.comb += [signals.requests.eq(Mux(remote_valid, 0, shown)), signals.advance.eq(1),
                     self.signal_ready.eq(signals.grant)]
        taken = Signal(pair_layout)
        with m.If(signals.valid):
            with m.Switch(signals.index):
                for e in range(n):
                    with m.Case(e):
                        m.d.comb += taken.eq(Cat(s.as_value() for s in self.signal[e]))
        if self.remote_port:
            with m.If(remote_valid):
                m.d.comb += taken.eq(self.remote.as_value())
        limit = (1 << self.bits) - 1
        same = taken[0].valid & taken[1].valid & (taken[0].id == taken[1].id)
        bad = Signal()
        for j in range(2):
            s, other = taken[j], taken[1 - j]
            total = values[s.id] + s.amount + Mux(same, other.amount, 0)
            with m.If(s.valid & (total > limit)):
                m.d.comb += bad.eq(1)
        m.d.comb += self.overflow.eq(Mux(bad, signals.grant, 0))
        if self.remote_port:
            m.d.comb += self.remote_overflow.eq(remote_valid & bad)

        # --- the counters: at most two additions (distinct ids: a pair naming one counter is
        # merged) and two subtractions (distinct ids by the ISA) per cycle ----------------------
        merged = Signal(self.bits)     # fits: not ``bad``, so value + merged <= limit
        m.d.comb += merged.eq(taken[0].amount + Mux(same, taken[1].amount, 0))
        adds = [(taken[0].valid & ~bad, taken[0].id, merged),
                (taken[1].valid & ~bad & ~same, taken[1].id, taken[1].amount)]
        subs = [(waits.valid & (p.amount != 0), p.id, p.amount) for p in granted.pair]

        def lanes(hits, i):            # one-hot by id: OR, not a sum
            terms = [Mux(v & (sid == i), amount, 0) for v, sid, amount in hits]
            return terms[0] | terms[1]
        for i in range(self.count):
            add, sub = lanes(adds, i), lanes(subs, i)
            with m.If(self.clear):
                m.d.sync += values[i].eq(0)
            with m.Else():
                m.d.sync += values[i].eq(values[i] + add - sub)
        return m
