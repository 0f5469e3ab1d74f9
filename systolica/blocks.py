"""The registry of generatable blocks: what `systolica verilog/synth --block NAME` can build.

Each entry names the config sections it reads and a factory that builds the Amaranth component
from the loaded configs (``{section: config}``). Factories import their gateware lazily so the CLI
starts fast. Add a block with one :func:`register_block` call below.
"""

from dataclasses import dataclass
from typing import Callable


__all__ = ["Block", "BLOCKS", "register_block", "get_block"]


@dataclass(frozen=True)
class Block:
    name: str
    top: str                    # Verilog top-module name
    sections: tuple             # config sections the factory reads (their flags go on the CLI)
    factory: Callable           # configs -> wiring.Component
    description: str


BLOCKS = {}


def register_block(name, *, top, sections, description):
    def decorator(factory):
        BLOCKS[name] = Block(name, top, tuple(sections), factory, description)
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
def _tensor_engine(configs):
    from systolica.hdl.tensor_engine import TensorEngine
    return TensorEngine(configs["array"])


@register_block("sbuf", top="systolica_sbuf", sections=("sbuf", "array"),
                description="state buffer: P partitions in block RAM, DMA word port, moving/"
                            "weights readers, vector write port (hdl/sbuf.py)")
def _sbuf(configs):
    from systolica.hdl.sbuf import Sbuf
    return Sbuf(configs["sbuf"], configs["array"])


@register_block("psum", top="systolica_psum", sections=("psum", "array"),
                description="accumulation buffer: banked read-modify-write at one vector per "
                            "cycle, ACT read port (hdl/psum.py)")
def _psum(configs):
    from systolica.hdl.psum import Psum
    return Psum(configs["psum"], configs["array"])


@register_block("act", top="systolica_act", sections=("act", "array", "psum", "sbuf"),
                description="ACT unit: per-channel scale, rounding shift, zero point, ReLU, "
                            "saturation, PSUM -> SBUF (hdl/act.py)")
def _act(configs):
    from systolica.hdl.act import Act
    return Act(configs["act"], configs["array"], configs["psum"], configs["sbuf"])


@register_block("dma", top="systolica_dma", sections=("dma", "sbuf"),
                description="DMA engine: AXI4 master, SBUF word port, 3-D strided descriptor "
                            "queues, completion semaphores (hdl/dma.py)")
def _dma(configs):
    from systolica.config import TileConfig
    from systolica.hdl.dma import Dma
    return Dma(config=TileConfig.from_sections(configs))


@register_block("router", top="systolica_router", sections=("noc",),
                description="5-port mesh router: XY wormhole, VCs, credits, round-robin "
                            "allocation; the router at the centre of the noc mesh (hdl/noc/)")
def _router(configs):
    from systolica.hdl.noc.router import Router
    cfg = configs["noc"]
    return Router(config=cfg, x=cfg.width // 2, y=cfg.height // 2)


@register_block("mesh", top="systolica_mesh", sections=("noc",),
                description="X x Y mesh of routers with network interfaces (default 2x2; "
                            "hdl/noc/mesh.py)")
def _mesh(configs):
    from systolica.hdl.noc.mesh import Mesh
    return Mesh(config=configs["noc"])


@register_block("tile_datapath", top="systolica_tile_datapath",
                sections=("sbuf", "array", "psum", "act"),
                description="SBUF -> tensor engine -> PSUM -> ACT -> SBUF, wired, without a "
                            "sequencer (hdl/tile_datapath.py)")
def _tile_datapath(configs):
    from systolica.hdl.tile_datapath import TileDatapath
    return TileDatapath(configs["sbuf"], configs["array"], configs["psum"], configs["act"])


@register_block("tile", top="systolica_tile", sections=("array", "sbuf", "psum", "act", "dma"),
                description="the tile: sequencer (fetch, per-queue engines, semaphores) + "
                            "datapath + DMA, one AXI4 master, AXI4-Lite host port (hdl/tile.py)")
def _tile(configs):
    from systolica.config import TileConfig
    from systolica.hdl.tile import Tile
    return Tile(config=TileConfig.from_sections(configs))
