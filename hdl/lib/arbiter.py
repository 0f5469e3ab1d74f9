"""A round-robin arbiter: the NoC's VC and switch allocators, the DMA's queues, the SBUF's ports."""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["RoundRobinArbiter"]


class RoundRobinArbiter(wiring.Component):
    """Grants one of ``n`` requests, starting the search just after the last winner.

    ``requests`` in, ``grant`` (one-hot), ``index`` and ``valid`` out (combinational);
    ``advance`` (in) makes the current winner the lowest-priority requester from the next cycle
    on — pulse it when the grant was actually used, so a requester that lost downstream keeps
    its turn.
    """

    def __init__(self, n):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"RoundRobinArbiter n must be a positive integer; got {n!r}")
        self.n = n
        super().__init__({
            "requests": In(n),
            "grant": Out(n),
            "index": Out(range(n)),
            "valid": Out(1),
            "advance": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.n
        m.d.comb += self.valid.eq(self.requests.any())
        if n == 1:
            m.d.comb += self.grant.eq(self.requests)
            return m
        last = Signal(range(n), init=n - 1)
        with m.Switch(last):
            for l in range(n):
                with m.Case(l):
                    for k in range(n):
                        i = (l + 1 + k) % n
                        with (m.If if k == 0 else m.Elif)(self.requests[i]):
                            m.d.comb += [self.grant[i].eq(1), self.index.eq(i)]
        with m.If(self.advance & self.valid):
            m.d.sync += last.eq(self.index)
        return m
