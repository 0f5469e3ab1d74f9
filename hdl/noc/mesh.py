"""An X x Y mesh of routers, each with a network interface on its local port.

``Mesh(config=NocConfig(width=X, height=Y, ...))``. Ports, per node (x, y):
``send_{x}_{y}`` (stream in), ``recv_{x}_{y}`` (stream out) and ``refused_{x}_{y}`` (packets
refused for a destination outside the mesh) — see
:class:`~systolica.hdl.noc.interface.NetworkInterface` — and a sticky ``overflow`` (some buffer
received a flit with no room: never set unless the credit protocol is broken).

Router (x, y)'s E output drives router (x+1, y)'s W input, N drives (x, y+1)'s S input, and so on;
every link is the sender's output register plus ``link_stages`` extra registers in each
direction (flits forward, credits back). Ports on the mesh edge are left unconnected (the
routing function never uses them). The config is checked first — the routing function for
deadlock freedom and for having a hardware route computation — before anything is built.
"""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.contracts import recv_layout, send_layout
from systolica.hdl.noc.flit import check_noc_config
from systolica.hdl.noc.interface import NetworkInterface
from systolica.hdl.noc.route_compute import RouteCompute
from systolica.hdl.noc.router import Router
from systolica.hdl.noc.topology import (E, L, N, MeshTopology, OPPOSITE, allowed_turns,
                                        check_deadlock_free)


__all__ = ["Mesh"]


class Mesh(wiring.Component):
    def __init__(self, *, config: NocConfig):
        check_noc_config(config, "Mesh")
        self.topology = MeshTopology(config.width, config.height)
        # Refuse a routing function that can deadlock, or that has no route computation in
        # hardware, before building anything.
        check_deadlock_free(self.topology, config.routing, config.vcs, same_vc=config.in_order)
        RouteCompute.validate(config, 0, 0, "Mesh")
        self._config = config
        self._turns = frozenset(allowed_turns(self.topology, config.routing))
        members = {}
        for (nx, ny) in self.topology.nodes:
            members[f"send_{nx}_{ny}"] = In(stream.Signature(send_layout(config)))
            members[f"recv_{nx}_{ny}"] = Out(stream.Signature(recv_layout(config)))
            members[f"refused_{nx}_{ny}"] = Out(config.error_counter_bits)
        members["overflow"] = Out(1)
        super().__init__(members)

    @property
    def config(self):
        return self._config

    def send(self, x, y):
        return getattr(self, f"send_{x}_{y}")

    def recv(self, x, y):
        return getattr(self, f"recv_{x}_{y}")

    def refused(self, x, y):
        return getattr(self, f"refused_{x}_{y}")

    def _link(self, m, sender, receiver, name):
        """Wire a link (sender's Out(LinkSignature), receiver's In) through ``link_stages``
        register stages each way."""
        stages = self._config.link_stages
        if stages == 0:
            wiring.connect(m, sender, receiver)
            return
        valid, flit = sender.valid, sender.flit
        credit, credit_vc = receiver.credit, receiver.credit_vc
        for k in range(stages):
            v2 = Signal(name=f"{name}_valid_s{k}")
            f2 = Signal.like(flit, name=f"{name}_flit_s{k}")
            c2 = Signal(name=f"{name}_credit_s{k}")
            cv2 = Signal.like(credit_vc, name=f"{name}_credit_vc_s{k}")
            m.d.sync += [v2.eq(valid), f2.eq(flit), c2.eq(credit), cv2.eq(credit_vc)]
            valid, flit, credit, credit_vc = v2, f2, c2, cv2
        m.d.comb += [receiver.valid.eq(valid), receiver.flit.eq(flit),
                     sender.credit.eq(credit), sender.credit_vc.eq(credit_vc)]

    def elaborate(self, platform):
        m = Module()
        topo = self.topology
        routers = {(nx, ny): Router(config=self._config, x=nx, y=ny, turns=self._turns)
                   for (nx, ny) in topo.nodes}
        for node, router in routers.items():
            nx, ny = node
            m.submodules[f"router_{nx}_{ny}"] = router
            ni = m.submodules[f"ni_{nx}_{ny}"] = NetworkInterface(config=self._config, x=nx, y=ny)
            wiring.connect(m, wiring.flipped(self.send(nx, ny)), ni.send)
            wiring.connect(m, ni.recv, wiring.flipped(self.recv(nx, ny)))
            m.d.comb += self.refused(nx, ny).eq(ni.refused)
            wiring.connect(m, ni.to_router, router.in_port(L))
            wiring.connect(m, router.out_port(L), ni.from_router)
            for p in (N, E):
                other = topo.neighbour(node, p)
                if other is None:
                    continue
                peer = routers[other]
                self._link(m, router.out_port(p), peer.in_port(OPPOSITE[p]),
                           f"link_{nx}_{ny}_{'NE'[p == E]}")
                self._link(m, peer.out_port(OPPOSITE[p]), router.in_port(p),
                           f"link_{other[0]}_{other[1]}_{'SW'[p == E]}")
        m.d.comb += self.overflow.eq(Cat(r.overflow for r in routers.values()).any())
        return m
