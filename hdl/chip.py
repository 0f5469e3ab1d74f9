"""The chip: an X x Y mesh of tiles (docs/chip.md, "Chip top").

``Chip(config=ChipConfig)``. Ports:

* ``axi_{x}_{y}`` (Out, ``Axi4Signature`` of the tile's DMA config): tile (x, y)'s AXI4 master
  (instruction fetch and DMA); the integrator connects every master to one shared DRAM.
* ``host`` (In, ``Axi4LiteSignature(host.addr_width, host.data_width)``): the host port, cut into
  windows (:class:`systolica.chip_registers.HostMap`): window 0 the chip registers, tile (x, y)
  window ``1 + y * X + x`` with the tile's own register map.
* ``running`` (Out, X*Y bits): bit ``y * X + x`` is tile (x, y)'s ``running``.

Every tile is the same module: its position comes in on its ``tile_x`` / ``tile_y`` ports,
driven by the chip. ``tile_module="NAME"`` instantiates the tiles as ``Instance("NAME")`` of
one separately generated tile module (:meth:`Chip.tile_component` is what to convert as
``NAME``), so that the chip's Verilog holds the tile once: the simulators' compiled backend
verilates it once for every tile (``testbench.chip_compiled``).

Inside: one :class:`~systolica.hdl.tile.Tile` per mesh position, the
:class:`~systolica.hdl.noc.mesh.Mesh` (each tile's ``noc_send`` / ``noc_recv`` on its router's
network interface), a :class:`~systolica.hdl.host_bus.HostWindows` decoder and the chip's
:class:`~systolica.hdl.regs.RegisterFile`. A write to the chip's ``CONTROL`` is broadcast by the
decoder to every tile's ``CONTROL`` in the same cycle, so start, abort and clear-errors reach
every tile at once.
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.chip_registers import CHIP_MAGIC, CHIP_MAP_VERSION, HostMap
from systolica.config import ChipConfig
from systolica.isa import ISA_VERSION, fingerprint
from .axi import Axi4LiteSignature, Axi4Signature
from .host_bus import HostWindows
from .noc.mesh import Mesh
from .regs import RegisterFile
from .lib.elaboratables import mark_used
from .tile import Tile


__all__ = ["Chip", "tile_instance"]


def tile_instance(name, tile):
    """``Instance(name)`` wired to ``tile`` (an interface of a tile's signature), its ports named
    as Amaranth names a top-level component's (``axi__ar__valid``, ``tile_x``, ...)."""
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, value in tile.signature.flatten(tile):
        prefix = "i_" if member.flow == In else "o_"
        ports[prefix + "__".join(str(p) for p in path)] = value
    return Instance(name, **ports)


class Chip(wiring.Component):
    def __init__(self, *, config: ChipConfig, command_stall=0.0, tile_module=None):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"Chip config must be a ChipConfig; got {config!r}")
        if tile_module is not None and not (isinstance(tile_module, str)
                                            and tile_module.isidentifier()):
            raise ValueError(f"Chip tile_module must be a Verilog module name; got "
                             f"{tile_module!r}")
        self._config = config
        self._host_map = HostMap(config)
        self._tile_module = tile_module
        self._command_stall = command_stall
        noc, dma, host = config.noc, config.tile.dma, config.host
        # One stall seed for all tiles when they share one module (a seed is built in).
        self.tiles = {(x, y): Tile(config=config, x=x, y=y, command_stall=command_stall,
                                   stall_seed=1 if tile_module else 1 + y * noc.width + x,
                                   position_ports=True)
                      for y in range(noc.height) for x in range(noc.width)}
        members = {f"axi_{x}_{y}": Out(Axi4Signature(addr_width=dma.addr_width,
                                                     data_width=dma.data_width,
                                                     id_width=dma.id_width))
                   for (x, y) in self.tiles}
        members["host"] = In(Axi4LiteSignature(addr_width=host.addr_width,
                                               data_width=host.data_width))
        members["running"] = Out(config.tiles)
        super().__init__(members)

    @property
    def config(self):
        return self._config

    @property
    def host_map(self):
        """The host address space (:class:`systolica.chip_registers.HostMap`)."""
        return self._host_map

    def axi(self, x, y):
        return getattr(self, f"axi_{x}_{y}")

    def tile(self, x, y):
        return self.tiles[(x, y)]

    @property
    def tile_module(self):
        """The name of the shared tile module (``tile_module=``), or None."""
        return self._tile_module

    def tile_component(self):
        """The tile to convert as the ``tile_module`` (every tile's logic; its position on
        ``tile_x`` / ``tile_y``)."""
        return Tile(config=self._config, command_stall=self._command_stall, stall_seed=1,
                    position_ports=True)

    def elaborate(self, platform):
        m = Module()
        cfg, hmap = self._config, self._host_map
        noc = cfg.noc
        order = [(x, y) for y in range(noc.height) for x in range(noc.width)]   # bit y*X+x
        mesh = m.submodules.mesh = Mesh(config=noc)
        tiles = []                      # in bit order y * X + x
        for (x, y) in order:
            tile = self.tiles[(x, y)]
            if self._tile_module is None:
                m.submodules[f"tile_{x}_{y}"] = tile
            else:       # the tile's ports only; its logic is the shared module's
                mark_used(tile)
                tile = tile.signature.create(path=(f"tile_{x}_{y}",))
                m.submodules[f"tile_{x}_{y}"] = tile_instance(self._tile_module, tile)
            tiles.append(tile)
            m.d.comb += [tile.tile_x.eq(x), tile.tile_y.eq(y)]
            wiring.connect(m, tile.axi, wiring.flipped(self.axi(x, y)))
            wiring.connect(m, tile.noc_send, mesh.send(x, y))
            wiring.connect(m, mesh.recv(x, y), tile.noc_recv)
            m.d.comb += tile.noc_refused.eq(mesh.refused(x, y))

        chip_map = hmap.chip.map
        regs = m.submodules.regs = RegisterFile(chip_map, window=hmap.window_bytes)
        control = chip_map["CONTROL"].offset
        windows = m.submodules.windows = HostWindows(
            addr_width=cfg.host.addr_width, data_width=cfg.host.data_width,
            window_bits=hmap.window_bits,
            targets=[chip_map.addr_width] + [t.host.signature.addr_width for t in tiles],
            broadcast=(control, hmap.tile(0, 0).map["CONTROL"].offset))
        wiring.connect(m, wiring.flipped(self.host), windows.bus)
        wiring.connect(m, windows.window(0), regs.bus)
        for i, tile in enumerate(tiles):
            wiring.connect(m, windows.window(1 + i), tile.host)

        running = Cat(t.running for t in tiles)
        done = Cat(t.done for t in tiles)
        halted = Cat(t.halted for t in tiles)
        refused = Cat(mesh.refused(x, y) != 0 for (x, y) in order).any()
        m.d.comb += [
            self.running.eq(running),
            regs.id.magic.eq(CHIP_MAGIC),
            regs.version.registers.eq(CHIP_MAP_VERSION), regs.version.isa.eq(ISA_VERSION),
            regs.fingerprint.value.eq(fingerprint(cfg)),
            regs.mesh.width.eq(noc.width), regs.mesh.height.eq(noc.height),
            regs.tiles.count.eq(cfg.tiles),
            regs.window.log2_bytes.eq(hmap.window_bits),
            regs.status.running.eq(running.any()), regs.status.done.eq(done.all()),
            regs.status.halted.eq(halted.any()),
            regs.noc_status.overflow.eq(mesh.overflow), regs.noc_status.refused.eq(refused),
        ]
        for name, bits in (("running", running), ("done", done), ("halted", halted)):
            for i in range(-(-cfg.tiles // 32)):
                port = getattr(regs, f"{name}{i}")
                m.d.comb += port.tiles.eq(bits[32 * i:32 * i + len(port.tiles)])
        return m
