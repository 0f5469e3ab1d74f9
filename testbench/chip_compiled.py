"""The Verilator half of :func:`systolica.testbench.chip.run_chip`: the ``Chip`` alone Verilated
once per (config, command stalls) and cached; every tile's AXI4 master ``axi_{x}_{y}`` gets its
own port on one shared C++ DRAM (``compiled.SharedDram``: the DRAM image is a NumPy array used in
place, every port with AxiRam's timing and its own latency, jitter and stall LFSRs); registers
written and read through the chip's host port, window by window, step-wise from Python; the run
itself one C++ loop until every tile's ``running`` bit is 0; the final SBUF and PSUM of every
tile read from the Verilated memories.

The DRAM differs from the Amaranth backend's (a tree of AXI arbiters in front of one AxiRam, so
the tiles' bursts take turns): here the tiles' ports are served in parallel on one memory (as a
multi-channel DRAM controller would), so cycle counts differ between the backends; results do
not.
"""

import time

import numpy as np

from systolica.isa import tile_queues
from .backends import compiled_model
from .compiled import AXI_DRAM_SOURCE, DramPort, SharedDram
from .tile import TileRun
from .tile_compiled import (CompiledRegisterHost, read_psum, read_sbuf, read_tile_registers,
                            start_and_run)


__all__ = ["run_chip_compiled", "compiled_chip", "chip_dram_ports", "chip_verilog",
           "TILE_MODULE"]

#: The module that every tile of a hierarchical chip build instantiates.
TILE_MODULE = "systolica_chip_tile"

_CHIPS = {}


def chip_verilog(chip, top="dut"):
    """The Verilog of ``chip`` (a ``Chip(tile_module=...)``): its top ``top`` with one
    instance of the tile module per tile, then the tile module, generated once."""
    from systolica.synth.verilog import to_verilog
    if chip.tile_module is None:
        raise ValueError("chip_verilog needs a Chip with a tile_module")
    return to_verilog(chip, top) + "\n" + to_verilog(chip.tile_component(), chip.tile_module)


def compiled_chip(config, *, command_stall=0.0, hierarchical=True):
    """``(Chip, CompiledModel)`` for ``config`` (built once, then from the disk cache; memoised
    in this process). DRAM settings are run-time arguments: one build serves them all.
    ``hierarchical`` (the default): every tile is one instance of one tile module
    (:data:`TILE_MODULE`), generated once and verilated once as a Verilator hierarchical
    block, so the build takes about one tile's time whatever the mesh (docs/chip.md,
    "Simulating the chip"); ``False``: the chip's Verilog flattened, every tile compiled on
    its own (faster to simulate, slower to build)."""
    from systolica.hdl.chip import Chip
    key = (config, command_stall, hierarchical)
    if key not in _CHIPS:
        if hierarchical:
            chip = Chip(config=config, command_stall=command_stall, tile_module=TILE_MODULE)
            model = compiled_model(chip, memo_key=("Chip", config, command_stall, TILE_MODULE),
                                   extra_sources=[str(AXI_DRAM_SOURCE)],
                                   verilog=lambda: chip_verilog(chip), hier_block=TILE_MODULE)
        else:
            chip = Chip(config=config, command_stall=command_stall)
            model = compiled_model(chip, memo_key=("Chip", config, command_stall),
                                   extra_sources=[str(AXI_DRAM_SOURCE)])
        _CHIPS[key] = (chip, model)
    return _CHIPS[key]


def chip_dram_ports(chip, *, read_latency=1, stall=0.0, jitter=0, seed=1, ports=None):
    """One :class:`~systolica.testbench.compiled.DramPort` per tile, in tile order (bit
    ``y * X + x``): every port with ``read_latency`` / ``stall`` / ``jitter`` and its own LFSR
    seed (``seed + y * X + x``), unless ``ports`` (``{(x, y): {setting: value}}``) overrides
    that tile's settings."""
    noc = chip.config.noc
    out = []
    for y in range(noc.height):
        for x in range(noc.width):
            settings = dict(read_latency=read_latency, stall=stall, jitter=jitter,
                            seed=seed + y * noc.width + x)
            settings.update((ports or {}).get((x, y), {}))
            out.append(DramPort(f"axi_{x}_{y}", chip.axi(x, y).signature, **settings))
    return out


def run_chip_compiled(config, setup, *, max_cycles, abort_after, command_stall,
                      read_semaphores=True, dram_ports=None, hierarchical=True, **ram_kwargs):
    """Run a prepared chip (``setup``: a ``testbench.chip.ChipSetup``) on Verilator; returns
    ``(cycles, dram, tiles, chip registers, extra)`` for a ``ChipRun``. ``ram_kwargs``:
    :func:`chip_dram_ports` settings for every port (``read_latency``, ``stall``, ``jitter``,
    ``seed``); ``dram_ports``: per-tile overrides."""
    started = time.perf_counter()
    chip, model = compiled_chip(config, command_stall=command_stall, hierarchical=hierarchical)
    build_seconds = time.perf_counter() - started
    hmap = chip.host_map
    dw = config.host.data_width
    mem = np.ascontiguousarray(setup.mem, dtype=np.uint8)
    names = [q.name for q in tile_queues(config)]
    started = time.perf_counter()
    with model.open() as sim:
        dram = SharedDram(sim, mem, chip_dram_ports(chip, ports=dram_ports, **ram_kwargs))
        chip_host = CompiledRegisterHost(sim, hmap.chip.map, dw)
        hosts = {win.tile: CompiledRegisterHost(sim, win.map, dw, base=win.base)
                 for win in hmap.windows[1:]}
        for pos, regs in setup.writes.items():
            for reg, fields in regs:
                hosts[pos].write(reg, **fields)
        run_seconds, run_cycles = start_and_run(sim, chip_host, max_cycles, abort_after)
        chip_regs = {"STATUS": chip_host.fields("STATUS"),
                     "NOC_STATUS": chip_host.fields("NOC_STATUS")}
        for name in ("RUNNING", "DONE", "HALTED"):
            value = 0
            for i in range(-(-config.tiles // 32)):
                value |= chip_host.read(f"{name}{i}") << (32 * i)
            chip_regs[name] = value
        tiles = {}
        # a build whose glue does not reach the tiles' memories (an older hierarchical build)
        # still runs: SBUF and PSUM are then None
        memories = "tile_0_0.datapath.sbuf.partition0" in model.memories
        for pos in sorted(hosts, key=lambda p: p[::-1]):
            prefix = f"tile_{pos[0]}_{pos[1]}."
            tiles[pos] = dict(read_tile_registers(hosts[pos], names, read_semaphores),
                              sbuf=read_sbuf(sim, config.tile, prefix) if memories else None,
                              psum=read_psum(sim, config.tile, prefix) if memories else None,
                              extra={"remote_flits_sent": hosts[pos].read("REMOTE_FLITS_SENT"),
                                     "remote_flits_received":
                                         hosts[pos].read("REMOTE_FLITS_RECEIVED")})
        cycles = sim.cycle
        stats = dram.stats()
    tiles = {pos: TileRun(cycles=cycles, dram=mem, **info) for pos, info in tiles.items()}
    extra = {"run_seconds": run_seconds, "run_cycles": run_cycles,
             "seconds": time.perf_counter() - started, "dram_ports": stats,
             # Verilog export + Verilator + C++ of this call (a cache lookup when cached)
             "build_seconds": build_seconds, "build_cached": model.info.cached,
             "build_dir": str(model.info.path)}
    return cycles, mem, tiles, chip_regs, extra
