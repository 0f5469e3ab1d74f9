"""The registry of generatable blocks: what `systolica verilog/synth --block NAME` can build.

Each entry names the config sections it reads (their flags go on the CLI), the composite config
its component takes (``composite``: the section config itself, ``TileConfig`` or ``ChipConfig``),
and a factory that builds the Amaranth component from that composite config. :meth:`Block.build`
builds a block from the loaded configs (``{section: config}``); every CLI command that builds a
block first builds its composite with :meth:`Block.validated`, so a rule that spans sections
refuses the config with one line naming the parameter before anything is built or printed. Factories import their gateware lazily so the CLI starts fast. Add a block
with one :func:`register_block` call below.
"""

from dataclasses import dataclass
from typing import Callable

from .config import CHIP_SECTIONS, TILE_SECTIONS, ChipConfig, TileConfig


__all__ = ["Block", "BLOCKS", "register_block", "get_block"]


@dataclass(frozen=True)
class Block:
    name: str
    top: str                    # Verilog top-module name
    sections: tuple             # config sections the block reads (their flags go on the CLI)
    factory: Callable           # composite config -> wiring.Component
    description: str
    composite: str = "section"  # the config the component takes: "section", "tile" or "chip"

    def validated(self, configs):
        """The block's composite config built from ``{section: config}``; building it runs every
        rule that spans sections (raises :class:`~systolica.config.ConfigError`)."""
        if self.composite == "tile":
            return TileConfig.from_sections(configs)
        if self.composite == "chip":
            return ChipConfig.from_sections(configs)
        (section,) = self.sections
        return configs[section]

    def build(self, configs):
        """The block's component, from ``{section: config}`` (validated first)."""
        return self.factory(self.validated(configs))


BLOCKS = {}

COMPOSITES = ("section", "tile", "chip")


def register_block(name, *, top, sections, description, composite="section"):
    if composite not in COMPOSITES:
        raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}; got {composite!r}")
    if composite == "section" and len(sections) != 1:
        raise ValueError(f"block {name!r} reads {len(sections)} sections; its composite must be "
                         f"'tile' or 'chip'")

    # A composite reads every one of its sections, so all of them get flags and are printed; the
    # block's own sections come first.
    whole = {"section": (), "tile": TILE_SECTIONS, "chip": TILE_SECTIONS + CHIP_SECTIONS}
    sections = tuple(sections) + tuple(s for s in whole[composite] if s not in sections)

    def decorator(factory):
        BLOCKS[name] = Block(name, top, sections, factory, description, composite)
        return factory
    return decorator


def get_block(name):
    try:
        return BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; known blocks: {', '.join(sorted(BLOCKS))}") \
            from None


@register_block("tensor_engine", top="systolica_tensor_engine", sections=("array",),
                description="R x C weight-stationary systolic array (hdl/tensor_engine.py)")
def _tensor_engine(config):
    from systolica.hdl.tensor_engine import TensorEngine
    return TensorEngine(config=config)


@register_block("sbuf", top="systolica_sbuf", sections=("sbuf", "array"),
                description="state buffer: P partitions in block RAM, DMA word port, moving/"
                            "weights readers, vector write port (hdl/sbuf.py)",
                composite="tile")
def _sbuf(config):
    from systolica.hdl.sbuf import Sbuf
    return Sbuf(config=config)


@register_block("psum", top="systolica_psum", sections=("psum", "array"),
                description="accumulation buffer: banked read-modify-write at one vector per "
                            "cycle, ACT read port (hdl/psum.py)",
                composite="tile")
def _psum(config):
    from systolica.hdl.psum import Psum
    return Psum(config=config)


@register_block("act", top="systolica_act", sections=("act", "array", "psum", "sbuf"),
                description="ACT unit: per-channel scale, rounding shift, zero point, ReLU, "
                            "saturation, PSUM -> SBUF (hdl/act.py)",
                composite="tile")
def _act(config):
    from systolica.hdl.act import Act
    return Act(config=config)


@register_block("dma", top="systolica_dma", sections=("dma", "sbuf"),
                description="DMA engine: AXI4 master, SBUF word port, 3-D strided descriptor "
                            "queues, completion semaphores (hdl/dma.py)",
                composite="tile")
def _dma(config):
    from systolica.hdl.dma import Dma
    return Dma(config=config)


@register_block("router", top="systolica_router", sections=("noc",),
                description="5-port mesh router: XY wormhole, VCs, credits, round-robin "
                            "allocation; the router at the centre of the noc mesh (hdl/noc/)")
def _router(config):
    from systolica.hdl.noc.router import Router
    return Router(config=config, x=config.width // 2, y=config.height // 2)


@register_block("mesh", top="systolica_mesh", sections=("noc",),
                description="X x Y mesh of routers with network interfaces (default 2x2; "
                            "hdl/noc/mesh.py)")
def _mesh(config):
    from systolica.hdl.noc.mesh import Mesh
    return Mesh(config=config)


@register_block("tile_datapath", top="systolica_tile_datapath",
                sections=("sbuf", "array", "psum", "act"),
                description="SBUF -> tensor engine -> PSUM -> ACT -> SBUF, wired, without a "
                            "sequencer (hdl/tile_datapath.py)",
                composite="tile")
def _tile_datapath(config):
    from systolica.hdl.tile_datapath import TileDatapath
    return TileDatapath(config=config)


@register_block("tile", top="systolica_tile", sections=("array", "sbuf", "psum", "act", "dma"),
                description="the tile: sequencer (fetch, per-queue engines, semaphores) + "
                            "datapath + DMA, one AXI4 master, AXI4-Lite host port (hdl/tile.py)",
                composite="tile")
def _tile(config):
    from systolica.hdl.tile import Tile
    return Tile(config=config)


@register_block("chip_tile", top="systolica_chip_tile", sections=("noc",),
                description="one tile of a chip (tile (0, 0) of the mesh): the tile plus its "
                            "NoC ports and remote operations (hdl/tile.py, hdl/remote.py)",
                composite="chip")
def _chip_tile(config):
    from systolica.hdl.tile import Tile
    return Tile(config=config, x=0, y=0)


@register_block("chip", top="systolica_chip", sections=("noc", "host"),
                description="the chip: X x Y tiles on the mesh NoC, one AXI4 master per tile "
                            "(m_axi_x{X}y{Y}_*), the AXI4-Lite host port (s_axil_*) with the "
                            "chip and tile register windows (hdl/chip.py, hdl/chip_top.py)",
                composite="chip")
def _chip(config):
    from systolica.hdl.chip_top import ChipTop
    return ChipTop(config=config)
