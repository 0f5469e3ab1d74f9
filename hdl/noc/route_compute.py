"""Router stage 2: route computation — the output port a head flit asks for, from its
destination and this router's coordinates (dimension-order XY or YX; the same functions as
:mod:`systolica.hdl.noc.topology`, which the tests compare it against). Combinational; one
lane per virtual channel of an input port."""

from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import ConfigError, NocConfig
from systolica.hdl.contracts import index_bits
from systolica.hdl.noc.flit import check_noc_config, check_position
from systolica.hdl.noc.topology import E, L, N, S, W


__all__ = ["RouteCompute"]


class RouteCompute(wiring.Component):
    def __init__(self, *, config: NocConfig, x, y, lanes=1):
        self.validate(config, x, y, "RouteCompute")
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise ValueError(f"RouteCompute lanes must be a positive integer; got {lanes!r}")
        self._config, self._x, self._y, self._lanes = config, x, y, lanes
        super().__init__({
            "dst_x": In(data.ArrayLayout(index_bits(config.width), lanes)),
            "dst_y": In(data.ArrayLayout(index_bits(config.height), lanes)),
            "port": Out(data.ArrayLayout(range(5), lanes)),
        })

    @staticmethod
    def validate(config: NocConfig, x, y, component="router"):
        """Raise unless a route computation for router (x, y) of ``config`` can be built."""
        check_noc_config(config, component)
        if config.routing not in ("xy", "yx"):
            raise ConfigError(f"NocConfig.routing={config.routing!r} has no hardware route "
                              f"computation; use 'xy' or 'yx'")
        check_position(config, x, y, component)

    def elaborate(self, platform):
        m = Module()
        x, y = self._x, self._y
        for i in range(self._lanes):
            dx, dy = self.dst_x[i], self.dst_y[i]
            x_steps = [(dx > x, E), (dx < x, W)]
            y_steps = [(dy > y, N), (dy < y, S)]
            steps = x_steps + y_steps if self._config.routing == "xy" else y_steps + x_steps
            port = Const(L, range(5))
            for cond, p in reversed(steps):
                port = Mux(cond, p, port)
            m.d.comb += self.port[i].eq(port)
        return m
