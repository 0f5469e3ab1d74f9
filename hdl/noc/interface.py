"""The network interface (NI) of a mesh node: between a tile and its router's local port.

``send`` (stream in): packets as a stream of words, ``dst_x``/``dst_y`` (read on a packet's
first word) and ``last`` on its final word. Each word becomes one flit: the first a head flit
carrying the destination and this node's coordinates, the final one a tail (a one-word packet is
one head+tail flit). A packet's VC is chosen when its head is injected: in in-order mode the
VC of its (source, destination) pair (:func:`~systolica.hdl.noc.flit.flow_vc`), which it keeps
to the end; otherwise round-robin among the free local-input VCs with a credit. Its flits follow on
that VC as credits allow.

A packet whose destination is outside the mesh never enters the network: its words are
accepted and dropped, and ``refused`` counts it once, on its first word (saturating at
``2**error_counter_bits - 1``; only reset clears it). A cycle without an accepted word
(``send.valid`` low) counts nothing.

``recv`` (stream out): arriving packets, one word per beat, with the source coordinates on every
beat and ``last`` on the tail. Packets arriving on different VCs are buffered per VC (credits
go back to the router as words leave) and handed out whole, one packet at a time.
"""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.contracts import recv_layout, send_layout
from systolica.hdl.lib import RoundRobinArbiter
from systolica.hdl.noc.flit import LinkSignature, check_noc_config, check_position, flow_vc
from systolica.hdl.noc.input_unit import InputUnit
from systolica.hdl.noc.output_unit import OutputUnit
from systolica.hdl.noc.vc_allocator import VcAllocator


__all__ = ["NetworkInterface"]


class NetworkInterface(wiring.Component):
    """The interface of node ``(x, y)`` of the mesh ``config`` describes."""

    def __init__(self, *, config: NocConfig, x, y):
        check_noc_config(config, "NetworkInterface")
        check_position(config, x, y, "NetworkInterface")
        self._config, self._x, self._y = config, x, y
        super().__init__({
            "send": In(stream.Signature(send_layout(config))),
            "recv": Out(stream.Signature(recv_layout(config))),
            "to_router": Out(LinkSignature(config)),
            "from_router": In(LinkSignature(config)),
            "refused": Out(config.error_counter_bits),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config

        # --- injection: words -> flits on the router's local input ---------------------------
        ou = m.submodules.inject = OutputUnit(config=cfg)
        wiring.connect(m, ou.link, wiring.flipped(self.to_router))
        in_packet = Signal()
        dropping = Signal()
        cur_vc = Signal.like(ou.flit.vc)
        beat = self.send.payload
        first = ~in_packet & ~dropping
        bad = (beat.dst_x >= cfg.width) | (beat.dst_y >= cfg.height)
        refuse = Signal()
        fire = Signal()
        head_vc = Signal.like(cur_vc)
        head_ok = Signal()
        if cfg.in_order:
            # The pair's VC, looked up from the destination (a table over the mesh's nodes).
            with m.Switch(Cat(beat.dst_x, beat.dst_y)):
                for (dx, dy) in [(a, b) for b in range(cfg.height) for a in range(cfg.width)]:
                    with m.Case(dx | (dy << len(beat.dst_x))):
                        m.d.comb += head_vc.eq(flow_vc(cfg, (self._x, self._y), (dx, dy)))
            m.d.comb += head_ok.eq((ou.free & ou.credit_ok).bit_select(head_vc, 1))
        else:
            vca = m.submodules.vc_allocator = VcAllocator(config=cfg, ports=1)
            m.d.comb += [vca.free[0].eq(ou.free & ou.credit_ok), head_vc.eq(vca.vc[0]),
                         head_ok.eq(vca.avail[0]), vca.take[0].eq(fire & ~refuse & first)]
        m.d.comb += [
            refuse.eq(dropping | (first & bad)),
            self.send.ready.eq(refuse | Mux(in_packet, ou.credit_ok.bit_select(cur_vc, 1),
                                            head_ok)),
            fire.eq(self.send.valid & self.send.ready),
            ou.send.eq(fire & ~refuse),
            ou.flit.head.eq(first),
            ou.flit.tail.eq(beat.last),
            ou.flit.vc.eq(Mux(in_packet, cur_vc, head_vc)),
            ou.flit.dst_x.eq(beat.dst_x),
            ou.flit.dst_y.eq(beat.dst_y),
            ou.flit.src_x.eq(self._x),
            ou.flit.src_y.eq(self._y),
            ou.flit.payload.eq(beat.data),
        ]
        with m.If(fire):
            with m.If(dropping):
                m.d.sync += dropping.eq(~beat.last)
            with m.Elif(first & bad):
                m.d.sync += dropping.eq(~beat.last)
                with m.If(~self.refused.all()):
                    m.d.sync += self.refused.eq(self.refused + 1)
            with m.Else():
                m.d.sync += in_packet.eq(~beat.last)
                with m.If(first):
                    m.d.sync += cur_vc.eq(head_vc)

        # --- ejection: per-VC buffers -> whole packets on `recv` -----------------------------
        iu = m.submodules.eject = InputUnit(config=cfg, track_state=False)
        wiring.connect(m, wiring.flipped(self.from_router), iu.link)
        arb = m.submodules.eject_arbiter = RoundRobinArbiter(cfg.vcs)
        locked = Signal()           # a packet (or an offered head) owns `recv`
        owner = Signal.like(cur_vc)
        sel = Mux(locked, owner, arb.index)
        head = iu.heads[sel]
        take = Signal()
        m.d.comb += [
            arb.requests.eq(Cat(iu.head_valid[v] & iu.heads[v].head for v in range(cfg.vcs))),
            self.recv.valid.eq(Mux(locked, iu.head_valid.bit_select(owner, 1), arb.valid)),
            self.recv.payload.src_x.eq(head.src_x),
            self.recv.payload.src_y.eq(head.src_y),
            self.recv.payload.data.eq(head.payload),
            self.recv.payload.last.eq(head.tail),
            take.eq(self.recv.valid & self.recv.ready),
            iu.deq.eq(take),
            iu.deq_vc.eq(sel),
            arb.advance.eq(~locked & take),
        ]
        with m.If(self.recv.valid):
            # Lock onto the offered packet: its payload is held until taken (stream rules), and
            # its remaining words follow before any other packet.
            m.d.sync += [locked.eq(~(take & head.tail)), owner.eq(sel)]
        return m
