"""Router stage 6: the output unit of one port — the output (link) register, the credit
counter of every downstream VC, and which downstream VCs a packet holds.

A flit passed in with ``send`` is registered onto the link (the link register: a flit that
won the switch in cycle t is on the link in cycle t+1). Each VC's counter starts at the
downstream buffer depth, goes down by one per flit sent on that VC and up by one per credit
received. A VC is held (not ``free``) from a head flit that is not also a tail until that
packet's tail is sent: wormhole switching never interleaves two packets on one VC.
``credit_ok`` says a VC has at least one credit, ``credit_many`` at least two (both are
registers, computed a cycle ahead: the allocators start from them).
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.noc.flit import LinkSignature, check_noc_config, flit_layout


__all__ = ["OutputUnit"]


class OutputUnit(wiring.Component):
    def __init__(self, *, config: NocConfig):
        check_noc_config(config, "OutputUnit")
        self._config = config
        V = config.vcs
        super().__init__({
            "send": In(1),
            "flit": In(flit_layout(config)),
            "link": Out(LinkSignature(config)),
            "credit_ok": Out(V),
            "credit_many": Out(V),          # at least 2 credits
            "free": Out(V),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        V, B = cfg.vcs, cfg.buffer_depth
        m.d.sync += self.link.valid.eq(self.send)
        with m.If(self.send):       # (holding the register otherwise saves power and sim time)
            m.d.sync += self.link.flit.eq(self.flit)
        for v in range(V):
            credits = Signal(range(B + 1), init=B, name=f"credits{v}")
            held = Signal(name=f"held{v}")
            sent = Signal(name=f"sent{v}")
            back = Signal(name=f"back{v}")
            m.d.comb += [
                sent.eq(self.send & (self.flit.vc == v)),
                back.eq(self.link.credit & (self.link.credit_vc == v)),
                self.free[v].eq(~held),
            ]
            # (both sums ready before the switch decides: `sent` only picks one)
            m.d.sync += credits.eq(Mux(sent, credits + back - 1, credits + back))
            # credit_ok = (credits != 0), kept in a register: the allocators start from it.
            ok = Signal(init=1, name=f"credit_ok{v}")
            m.d.comb += self.credit_ok[v].eq(ok)
            m.d.sync += ok.eq(back | Mux(sent, credits > 1, credits != 0))
            # credit_many = (credits >= 2), likewise: one more flit on v still has a credit.
            many = Signal(init=1, name=f"credit_many{v}")
            m.d.comb += self.credit_many[v].eq(many)
            m.d.sync += many.eq(Mux(back, Mux(sent, credits > 1, credits != 0),
                                    Mux(sent, credits > 2, credits > 1)))
            with m.If(sent):
                m.d.sync += held.eq(~self.flit.tail)
        return m
