"""The mesh router: five ports (N, E, S, W, L), each an input link and an output link.

Pipeline (docs/noc.md has the diagram), per hop at zero load = 2 cycles:

* cycle t:   the flit is on the input link (upstream's output register) and is written into
             its VC's buffer at the end of the cycle (input unit).
* cycle t+1: at the head of the buffer: route computation, VC allocation and switch
             allocation (combined, one cycle; in in-order mode a packet keeps its VC, so VC
             allocation is only the check that that output VC is free and has a credit),
             crossbar traversal, and the flit is written into the output register at the
             end of the cycle (output unit); the buffer slot's credit goes back upstream in
             the next cycle.
* cycle t+2: on the output link = the next router's cycle t.

Before building anything (in its constructor) the router checks its config, its position and
that its routing function has a hardware route computation and is deadlock-free on the
mesh (:func:`~systolica.hdl.noc.topology.check_deadlock_free`) and prunes the crossbar to the
turns the routing function uses. Sticky ``overflow``: some input received a flit with no room
(a broken upstream); it was dropped.
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.lib import RoundRobinArbiter
from systolica.hdl.noc.crossbar import Crossbar
from systolica.hdl.noc.flit import LinkSignature, check_noc_config
from systolica.hdl.noc.input_unit import InputUnit
from systolica.hdl.noc.lookahead_input import LookaheadInputUnit, one_hot_select
from systolica.hdl.noc.output_unit import OutputUnit
from systolica.hdl.noc.route_compute import RouteCompute
from systolica.hdl.noc.switch_allocator import SwitchAllocator
from systolica.hdl.noc.topology import (MeshTopology, PORT_NAMES, PORTS, allowed_turns,
                                        check_deadlock_free)
from systolica.hdl.noc.vc_allocator import VcAllocator


__all__ = ["Router", "PORT_SUFFIX"]

#: Port index -> signature name suffix: ``in_n``/``out_n`` ... ``in_l``/``out_l``.
PORT_SUFFIX = tuple(name.lower() for name in PORT_NAMES)


class Router(wiring.Component):
    """Router ``(x, y)`` of the mesh ``config`` describes. ``turns``: the (input port, output
    port) pairs the crossbar connects (default: every turn the routing function uses on the
    mesh; :class:`~systolica.hdl.noc.mesh.Mesh` computes them once for all its routers)."""

    def __init__(self, *, config: NocConfig, x, y, turns=None):
        check_noc_config(config, "Router")
        topology = MeshTopology(config.width, config.height)
        check_deadlock_free(topology, config.routing, config.vcs, same_vc=config.in_order)
        RouteCompute.validate(config, x, y, "Router")
        if turns is None:
            turns = allowed_turns(topology, config.routing)
        turns = frozenset(turns)
        bad = [t for t in turns if not (isinstance(t, tuple) and len(t) == 2
                                        and all(p in PORTS for p in t))]
        if bad:
            raise ValueError(f"Router turns must be (input port, output port) pairs of ports "
                             f"0..4; got {sorted(map(repr, bad))[:3]}")
        self._config, self._x, self._y, self._turns = config, x, y, turns
        members = {}
        for s in PORT_SUFFIX:
            members[f"in_{s}"] = In(LinkSignature(config))
            members[f"out_{s}"] = Out(LinkSignature(config))
        members["overflow"] = Out(1)
        super().__init__(members)

    @property
    def config(self):
        return self._config

    @property
    def turns(self):
        return self._turns

    def in_port(self, p):
        return getattr(self, f"in_{PORT_SUFFIX[p]}")

    def out_port(self, p):
        return getattr(self, f"out_{PORT_SUFFIX[p]}")

    def elaborate(self, platform):
        if self._config.allocation == "pipelined":
            return self._elaborate_pipelined()
        return self._elaborate_single_cycle()

    def _output_units(self, m):
        ous = []
        for p, s in enumerate(PORT_SUFFIX):
            ou = m.submodules[f"output_{s}"] = OutputUnit(config=self._config)
            wiring.connect(m, ou.link, wiring.flipped(self.out_port(p)))
            ous.append(ou)
        return ous

    def _elaborate_pipelined(self):
        """Allocation over two cycles, still 2 cycles per hop: each input registers one
        request (VC, port) a cycle ahead (:class:`LookaheadInputUnit`); here, per output, a
        round-robin arbiter among the inputs whose request still holds by this cycle's credits
        and VC state; the winners cross the crossbar into the output registers."""
        m = Module()
        cfg = self._config
        turns = self._turns
        ous = self._output_units(m)
        vca = None if cfg.in_order else VcAllocator(config=cfg)
        if vca is not None:
            m.submodules.vc_allocator = vca
            m.d.comb += [vca.free[p].eq(ous[p].free & ous[p].credit_ok) for p in range(5)]
        ius = []
        for i, s in enumerate(PORT_SUFFIX):
            outs = [p for p in range(5) if (i, p) in turns]
            iu = m.submodules[f"input_{s}"] = LookaheadInputUnit(config=cfg, x=self._x,
                                                                 y=self._y, outs=outs)
            wiring.connect(m, wiring.flipped(self.in_port(i)), iu.link)
            for p in range(5):
                m.d.comb += [iu.credit_many[p].eq(ous[p].credit_many),
                             iu.free[p].eq(ous[p].free)]
                if vca is not None:
                    m.d.comb += iu.vc_avail[p].eq(vca.avail[p])
            ius.append(iu)
        if vca is None:
            # An output VC another input's registered head request will take if it wins.
            for i, iu in enumerate(ius):
                for p in range(5):
                    for v in range(cfg.vcs):
                        m.d.comb += iu.claimed[p][v].eq(Cat(
                            other.req_claims[p][v] for j, other in enumerate(ius)
                            if j != i and (j, p) in turns).any())
        m.d.comb += self.overflow.eq(Cat(iu.overflow for iu in ius).any())

        grants = [[] for _ in range(5)]
        for p in range(5):
            inputs = [i for i in range(5) if (i, p) in turns]
            if not inputs:
                continue
            requests, leave_vc = [], []
            for i in inputs:
                iu = ius[i]
                # (the request was made with two credits on its VC: one is still there; and
                # in in-order mode with its head's VC free and claimed by no other request)
                if vca is None:
                    ok = 1
                    leave_vc.append(iu.req_ovc)
                else:
                    ok = ~iu.req_head | vca.avail[p]
                    leave_vc.append(Mux(iu.req_head, vca.vc[p], iu.req_ovc))
                requests.append(iu.req_to[p] & ok)
            arb = m.submodules[f"out_arb{p}"] = RoundRobinArbiter(len(inputs))
            m.d.comb += [arb.requests.eq(Cat(requests)), arb.advance.eq(arb.valid),
                         ous[p].send.eq(arb.valid)]
            with m.Switch(arb.index):
                for k, i in enumerate(inputs):
                    with m.Case(k):
                        m.d.comb += ous[p].flit.eq(ius[i].flit)
            # The flit leaves on its output VC (one-hot grant: an AND-OR, no encoder) ...
            m.d.comb += ous[p].flit.vc.eq(one_hot_select(arb.grant, leave_vc))
            # (and its tail bit from the request register, not the buffer: the output VC's
            # `held` follows it)
            m.d.comb += ous[p].flit.tail.eq(
                one_hot_select(arb.grant, [ius[i].req_tail for i in inputs]))
            if vca is not None:
                m.d.comb += vca.take[p].eq(
                    Cat(arb.grant[k] & ius[i].req_head for k, i in enumerate(inputs)).any())
            for k, i in enumerate(inputs):
                grants[i].append(arb.grant[k])
        for i, iu in enumerate(ius):
            m.d.comb += iu.grant.eq(Cat(grants[i]).any() if grants[i] else 0)
            if vca is None:
                m.d.comb += iu.grant_ovc.eq(iu.req_vc)
            else:
                m.d.comb += iu.grant_ovc.eq(one_hot_select(iu.req_to, vca.vc))
        return m

    def _elaborate_single_cycle(self):
        m = Module()
        cfg = self._config
        V = cfg.vcs
        turns = self._turns

        ius, ous = [], []
        for p, s in enumerate(PORT_SUFFIX):
            iu = m.submodules[f"input_{s}"] = InputUnit(config=cfg)
            wiring.connect(m, wiring.flipped(self.in_port(p)), iu.link)
            ius.append(iu)
            ou = m.submodules[f"output_{s}"] = OutputUnit(config=cfg)
            wiring.connect(m, ou.link, wiring.flipped(self.out_port(p)))
            ous.append(ou)
        m.d.comb += self.overflow.eq(Cat(iu.overflow for iu in ius).any())

        # VC allocation: in in-order mode a packet keeps its VC (the output VC is the input VC);
        # otherwise the VC allocator offers each output port a free VC.
        vca = None if cfg.in_order else VcAllocator(config=cfg)
        if vca is not None:
            m.submodules.vc_allocator = vca
        sa = m.submodules.switch_allocator = SwitchAllocator(config=cfg, turns=turns)
        xbar = m.submodules.crossbar = Crossbar(config=cfg, turns=turns)
        for p in range(5):
            if vca is not None:
                m.d.comb += [
                    vca.free[p].eq(ous[p].free & ous[p].credit_ok),
                    vca.take[p].eq(sa.out_valid[p] & xbar.outputs[p].head),
                ]
            m.d.comb += [
                ous[p].send.eq(sa.out_valid[p]),
                ous[p].flit.eq(xbar.outputs[p]),
                xbar.sel[p].eq(sa.out_sel[p]),
            ]

        for i, s in enumerate(PORT_SUFFIX):
            iu = ius[i]
            outs = [p for p in range(5) if (i, p) in turns]
            rc = m.submodules[f"route_{s}"] = RouteCompute(config=cfg, x=self._x, y=self._y,
                                                           lanes=V)
            for v in range(V):
                m.d.comb += [rc.dst_x[v].eq(iu.heads[v].dst_x), rc.dst_y[v].eq(iu.heads[v].dst_y)]
                want = Mux(iu.active[v], iu.oport[v], rc.port[v])
                # A body flit needs a credit on its packet's output VC; a head flit needs a free
                # output VC with a credit at the port it routes to.
                body_ok = Cat((iu.oport[v] == p) & ous[p].credit_ok.bit_select(iu.ovc[v], 1)
                              for p in outs).any()
                if vca is None:
                    head_ok = Cat((rc.port[v] == p) & ous[p].free[v] & ous[p].credit_ok[v]
                                  for p in outs).any()
                else:
                    head_ok = Cat((rc.port[v] == p) & vca.avail[p] for p in outs).any()
                m.d.comb += [
                    sa.want[i][v].eq(want),
                    sa.eligible[i][v].eq(iu.head_valid[v] & Mux(iu.active[v], body_ok, head_ok)),
                ]
            vc = sa.in_vc[i]
            active = iu.active.bit_select(vc, 1)
            oport = sa.in_oport[i]
            offered_vc = vc if vca is None else vca.vc[oport]
            ovc = iu.ovc[vc]
            head = iu.heads[vc]
            m.d.comb += [
                iu.deq.eq(sa.in_grant[i]),
                iu.deq_vc.eq(vc),
                iu.deq_oport.eq(oport),
                iu.deq_ovc.eq(offered_vc),
                xbar.inputs[i].eq(head),
                xbar.inputs[i].vc.eq(Mux(active, ovc, offered_vc)),
            ]
        return m
