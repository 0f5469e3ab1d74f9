"""Router stage 3: virtual-channel allocation. For each output port, a round-robin choice
among its output VCs that are free (no packet holds them) and have at least one credit. A head
flit that wins the switch for that port in the same cycle takes the offered VC (``take``), so
VC and switch allocation together cost no extra cycle, and two packets never get one VC: only
one flit per output port passes per cycle, and the VC stays held until the packet's tail has
left (see :class:`~systolica.hdl.noc.output_unit.OutputUnit`)."""

from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.lib.arbiter import RoundRobinArbiter
from systolica.hdl.contracts import index_bits
from systolica.hdl.noc.flit import check_noc_config


__all__ = ["VcAllocator"]


class VcAllocator(wiring.Component):
    def __init__(self, *, config: NocConfig, ports=5):
        check_noc_config(config, "VcAllocator")
        self._config, self._ports = config, ports
        V = config.vcs
        super().__init__({
            "free": In(data.ArrayLayout(V, ports)),
            "avail": Out(ports),
            "vc": Out(data.ArrayLayout(index_bits(V), ports)),
            "take": In(ports),
        })

    def elaborate(self, platform):
        m = Module()
        for p in range(self._ports):
            arb = m.submodules[f"arb{p}"] = RoundRobinArbiter(self._config.vcs)
            m.d.comb += [
                arb.requests.eq(self.free[p]),
                self.avail[p].eq(arb.valid),
                self.vc[p].eq(arb.index),
                arb.advance.eq(self.take[p]),
            ]
        return m
