"""The sequencer's semaphore file: ``count`` counters of ``bits`` bits shared by every engine.

Each engine ``e`` has a *wait* port (``wait[e]``: ``valid`` and two ``(id, amount)`` pairs, the
ISA's two waits; ``granted[e]`` back) and two *signal* ports (``signal[e][j]``: ``valid``, ``id``,
``amount``). A wait is granted when ``value[id] >= amount`` for both pairs (the ISA guarantees
distinct ids where both amounts are non-zero); the grant subtracts both amounts in the same cycle
(wait-and-consume is one atomic step). At most one wait is granted per cycle, round-robin between the engines, so two
waiters can never both consume the same unit. Signals add (any number of engines may signal in one
cycle, also to the same counter), but never past ``2**bits - 1``: ``overflow[e]`` is high when
one of engine ``e``'s signals this cycle would take its counter there, and then neither of
``e``'s signals is applied (ISA ``SEMAPHORE_OVERFLOW``). Engines signalling in the same cycle
are taken in index order (as if engine 0 signalled first), on the values before this cycle's
grant; ``overflow`` depends only on the signal requests, never on a wait. ``clear`` (abort)
zeroes every counter and takes precedence. A wait with ``amount = 0`` is granted at once.
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
    def __init__(self, *, count, bits, engines):
        for name, value, lo in (("count", count, 1), ("bits", bits, 1), ("engines", engines, 1)):
            if not isinstance(value, int) or value < lo:
                raise ValueError(f"SemaphoreFile {name} must be a positive integer; got {value!r}")
        self.count, self.bits, self.engines = count, bits, engines
        layout = semaphore_request_layout(count, bits)
        super().__init__({
            "wait": In(semaphore_wait_layout(count, bits)).array(engines),
            "granted": Out(engines),
            "overflow": Out(engines),
            "signal": In(layout).array(engines, 2),
            "clear": In(1),
            "values": Out(data.ArrayLayout(unsigned(bits), count)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.engines
        arbiter = m.submodules.arbiter = RoundRobinArbiter(n)
        values = self.values
        ok = Cat((w.valid & (values[w.pair[0].id] >= w.pair[0].amount) &
                  (values[w.pair[1].id] >= w.pair[1].amount)) for w in self.wait)
        m.d.comb += [arbiter.requests.eq(ok), arbiter.advance.eq(1),
                     self.granted.eq(arbiter.grant)]
        granted = Signal(semaphore_wait_layout(self.count, self.bits))
        with m.Switch(arbiter.index):
            for e in range(n):
                with m.Case(e):
                    m.d.comb += granted.eq(self.wait[e])
        limit = (1 << self.bits) - 1
        applied = []                   # (engine's overflow, its signal) for engines before e
        for e, pair in enumerate(self.signal):
            bad = []
            for s in pair:
                earlier = [Mux(~ov & o.valid & (o.id == s.id), o.amount, 0) for ov, o in applied]
                own = [Mux(o.valid & (o.id == s.id), o.amount, 0) for o in pair]
                total = values[s.id] + sum(earlier + own)
                bad.append(s.valid & (total > limit))
            m.d.comb += self.overflow[e].eq(Cat(bad).any())
            applied += [(self.overflow[e], s) for s in pair]
        for i in range(self.count):
            add = sum(Mux(s.valid & ~ov & (s.id == i), s.amount, 0) for ov, s in applied)
            sub = sum(Mux(arbiter.valid & (p.id == i), p.amount, 0) for p in granted.pair)
            with m.If(self.clear):
                m.d.sync += values[i].eq(0)
            with m.Else():
                m.d.sync += values[i].eq(values[i] + add - sub)
        return m
