"""Router stage 4: switch allocation, separable input-first with round-robin arbiters.

Each input port first picks one of its eligible VCs (round-robin; a VC is eligible when its
head flit can move this cycle: a body flit needs a credit for its packet's output VC, a head
flit needs a free output VC with a credit at the port it routes to). Each output port then
picks one of the input ports whose chosen VC wants it (round-robin), among the inputs the
routing function can turn into it (``turns``). Winners move through the crossbar in the same
cycle. An arbiter's priority only moves past a requester that actually won, so losers keep
their turn."""

from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.lib.arbiter import RoundRobinArbiter
from systolica.hdl.contracts import index_bits
from systolica.hdl.noc.flit import check_noc_config


__all__ = ["SwitchAllocator"]


class SwitchAllocator(wiring.Component):
    def __init__(self, *, config: NocConfig, turns):
        check_noc_config(config, "SwitchAllocator")
        self._config = config
        self._turns = frozenset(turns)
        V = config.vcs
        super().__init__({
            "eligible": In(data.ArrayLayout(V, 5)),
            "want": In(data.ArrayLayout(data.ArrayLayout(range(5), V), 5)),
            "in_grant": Out(5),
            "in_vc": Out(data.ArrayLayout(index_bits(V), 5)),
            "in_oport": Out(data.ArrayLayout(range(5), 5)),
            "out_valid": Out(5),
            "out_sel": Out(data.ArrayLayout(range(5), 5)),
        })

    def elaborate(self, platform):
        m = Module()
        V = self._config.vcs
        in_arbs = []
        for i in range(5):
            arb = m.submodules[f"in_arb{i}"] = RoundRobinArbiter(V)
            in_arbs.append(arb)
            m.d.comb += [
                arb.requests.eq(self.eligible[i]),
                self.in_vc[i].eq(arb.index),
                self.in_oport[i].eq(Array(self.want[i][v] for v in range(V))[arb.index]
                                    if V > 1 else self.want[i][0]),
                arb.advance.eq(self.in_grant[i]),
            ]
        for p in range(5):
            inputs = [i for i in range(5) if (i, p) in self._turns]
            if not inputs:
                continue
            arb = m.submodules[f"out_arb{p}"] = RoundRobinArbiter(len(inputs))
            m.d.comb += [
                arb.requests.eq(Cat(in_arbs[i].valid & (self.in_oport[i] == p)
                                    for i in inputs)),
                self.out_valid[p].eq(arb.valid),
                self.out_sel[p].eq(Array(Const(i, range(5)) for i in inputs)[arb.index]),
                arb.advance.eq(arb.valid),
            ]
            for k, i in enumerate(inputs):
                with m.If(arb.grant[k]):
                    m.d.comb += self.in_grant[i].eq(1)
        return m
