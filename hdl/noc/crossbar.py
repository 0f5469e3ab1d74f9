"""Router stage 5: the crossbar — each output port takes the flit of the input port the switch
allocator chose for it. Only the connections the routing function can use (``turns``) exist."""

from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.noc.flit import check_noc_config, flit_layout


__all__ = ["Crossbar"]


class Crossbar(wiring.Component):
    def __init__(self, *, config: NocConfig, turns):
        check_noc_config(config, "Crossbar")
        self._turns = frozenset(turns)
        layout = flit_layout(config)
        super().__init__({
            "inputs": In(data.ArrayLayout(layout, 5)),
            "sel": In(data.ArrayLayout(range(5), 5)),
            "outputs": Out(data.ArrayLayout(layout, 5)),
        })

    def elaborate(self, platform):
        m = Module()
        for p in range(5):
            inputs = [i for i in range(5) if (i, p) in self._turns]
            if not inputs:
                continue
            with m.Switch(self.sel[p]):
                for i in inputs[:-1]:
                    with m.Case(i):
                        m.d.comb += self.outputs[p].eq(self.inputs[i])
                with m.Default():
                    m.d.comb += self.outputs[p].eq(self.inputs[inputs[-1]])
        return m
