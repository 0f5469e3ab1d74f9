"""Router stage 1: the input unit of one port — a FIFO buffer per virtual channel, the
per-VC state of the packet at its head, and credit return.

A flit arriving on the link is written into the FIFO of its VC at the end of the cycle (the
upstream sender holds a credit for it, so there is always room). The head flit of every VC is
visible combinationally (``heads``/``head_valid``) to route computation and allocation. When
the switch allocator takes a flit out (``deq``), a credit for its VC goes back upstream on the
next cycle (registered). With ``track_state`` the unit also keeps, per VC, whether a packet
holds an output VC (``active``) and which output port / VC (``oport``/``ovc``): set when a head
flit that is not also a tail leaves, cleared when the tail leaves — so the flits of a packet
follow its head and no other packet can use that input VC's allocation in between.

Sticky ``overflow``: a flit arrived for a full VC (the upstream broke the credit protocol); it
was dropped and the unit keeps working.
"""

from amaranth.hdl import *
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.noc.flit import LinkSignature, coord_bits, flit_layout


__all__ = ["InputUnit"]


class InputUnit(wiring.Component):
    def __init__(self, config: NocConfig, *, track_state=True):
        self._config = config
        self._track_state = track_state
        V = config.vcs
        vc_shape = unsigned(coord_bits(V))
        members = {
            "link": In(LinkSignature(config)),
            "head_valid": Out(V),
            "heads": Out(data.ArrayLayout(flit_layout(config), V)),
            "deq": In(1),
            "deq_vc": In(vc_shape),
            "overflow": Out(1),
        }
        if track_state:
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
        V, B = cfg.vcs, cfg.buffer_depth

        def bump(ptr):
            return Mux(ptr == B - 1, 0, ptr + 1)

        for v in range(V):
            mem = m.submodules[f"buffer{v}"] = memory.Memory(
                shape=flit_layout(cfg), depth=B, init=[])
            wp = mem.write_port()
            rp = mem.read_port(domain="comb")
            wptr = Signal(range(B), name=f"wptr{v}")
            rptr = Signal(range(B), name=f"rptr{v}")
            count = Signal(range(B + 1), name=f"count{v}")
            arrive = Signal(name=f"arrive{v}")
            leave = Signal(name=f"leave{v}")
            m.d.comb += [
                arrive.eq(self.link.valid & (self.link.flit.vc == v)),
                leave.eq(self.deq & (self.deq_vc == v) & (count != 0)),
                wp.addr.eq(wptr),
                wp.data.eq(self.link.flit),
                wp.en.eq(arrive & (count != B)),
                rp.addr.eq(rptr),
                self.heads[v].eq(rp.data),
                self.head_valid[v].eq(count != 0),
            ]
            with m.If(wp.en):
                m.d.sync += wptr.eq(bump(wptr))
            with m.If(leave):
                m.d.sync += rptr.eq(bump(rptr))
            m.d.sync += count.eq(count + wp.en - leave)
            with m.If(arrive & (count == B)):
                m.d.sync += self.overflow.eq(1)

            if self._track_state:
                with m.If(leave):
                    m.d.sync += self.active[v].eq(~rp.data.tail)
                    with m.If(rp.data.head):
                        m.d.sync += [self.oport[v].eq(self.deq_oport),
                                     self.ovc[v].eq(self.deq_ovc)]

        leaving = self.deq & self.head_valid.bit_select(self.deq_vc, 1)
        m.d.sync += self.link.credit.eq(leaving)
        with m.If(leaving):
            m.d.sync += self.link.credit_vc.eq(self.deq_vc)
        return m
