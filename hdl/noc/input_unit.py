"""Router stage 1: the input unit of one port — a FIFO buffer per virtual channel, the
per-VC state of the packet at its head, and credit return.

A flit arriving on the link is written into the queue of its VC at the end of the cycle (the
upstream sender holds a credit for it, so there is always room). The head flit of every VC is
visible combinationally (``heads``/``head_valid``, the queues' first-word fall-through outputs)
to route computation and allocation. When the switch allocator takes a flit out (``deq``), a
credit for its VC goes back upstream on the next cycle (registered). With ``track_state`` the
unit also keeps, per VC, whether a packet holds an output VC (``active``) and which output
port / VC (``oport``/``ovc``): set when a head flit that is not also a tail leaves, cleared
when the tail leaves — so the flits of a packet follow its head and no other packet can use
that input VC's allocation in between.

Sticky ``overflow``: a flit arrived for a full VC (the upstream broke the credit protocol); it
was dropped and the unit keeps working. Only reset clears it: it reports broken hardware, not
a run-time error a host could recover from.
"""

from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.contracts import index_bits
from systolica.hdl.lib import Queue, StickyFlags
from systolica.hdl.noc.flit import LinkSignature, check_noc_config, flit_layout


__all__ = ["InputUnit"]


class InputUnit(wiring.Component):
    def __init__(self, *, config: NocConfig, track_state=True):
        check_noc_config(config, "InputUnit")
        self._config = config
        self._track_state = bool(track_state)
        V = config.vcs
        vc_shape = unsigned(index_bits(V))
        members = {
            "link": In(LinkSignature(config)),
            "head_valid": Out(V),
            "heads": Out(data.ArrayLayout(flit_layout(config), V)),
            "deq": In(1),
            "deq_vc": In(vc_shape),
            "overflow": Out(1),
        }
        if self._track_state:
            members.update({
                "deq_oport": In(range(5)),
                "deq_ovc": In(vc_shape),
                "active": Out(V),
                "oport": Out(data.ArrayLayout(range(5), V)),
                "ovc": Out(data.ArrayLayout(vc_shape, V)),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        V = cfg.vcs
        dropped = Signal(V)

        for v in range(V):
            buf = m.submodules[f"buffer{v}"] = Queue(shape=flit_layout(cfg),
                                                     depth=cfg.buffer_depth)
            arrive = self.link.valid & (self.link.flit.vc == v)
            leave = Signal(name=f"leave{v}")
            m.d.comb += [
                buf.i.valid.eq(arrive),
                buf.i.payload.eq(self.link.flit),
                dropped[v].eq(arrive & ~buf.i.ready),
                self.heads[v].eq(buf.o.payload),
                self.head_valid[v].eq(buf.o.valid),
                leave.eq(self.deq & (self.deq_vc == v) & buf.o.valid),
                buf.o.ready.eq(leave),
            ]
            if self._track_state:
                with m.If(leave):
                    m.d.sync += self.active[v].eq(~buf.o.payload.tail)
                    with m.If(buf.o.payload.head):
                        m.d.sync += [self.oport[v].eq(self.deq_oport),
                                     self.ovc[v].eq(self.deq_ovc)]

        overflow = m.submodules.overflow = StickyFlags(1)
        m.d.comb += [overflow.set.eq(dropped.any()), self.overflow.eq(overflow.flags)]

        leaving = self.deq & self.head_valid.bit_select(self.deq_vc, 1)
        m.d.sync += self.link.credit.eq(leaving)
        with m.If(leaving):
            m.d.sync += self.link.credit_vc.eq(self.deq_vc)
        return m
