"""Host driver for the tile in simulation: a :class:`TileSystem` (``Tile`` + an ``AxiRam`` DRAM in
one design), and :func:`run_tile`, which puts a program image and data into DRAM, programs the
registers over AXI4-Lite, starts the tile, waits for ``STATUS.done`` (under the cycle watchdog;
an optional host ``abort_after`` cycles), reads every status register and returns the final DRAM.

    run = run_tile(config, program, data={addr: bytes}, dram_bytes=1 << 16)
    run.dram, run.queues["pe"]["state"], run.semaphores
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from systolica.config import TileConfig
from systolica.hdl.axi import Axi4LiteSignature
from systolica.hdl.axi_ram import AxiRam
from systolica.hdl.tile import Tile
from systolica.isa import Program, tile_queues
from .axilite import RegisterHost
from .sim import run_simulation


__all__ = ["TileSystem", "TileRun", "run_tile", "PROGRAM_BASE"]

#: Where run_tile puts the program image in DRAM (data goes elsewhere).
PROGRAM_BASE = 0


class TileSystem(wiring.Component):
    """A tile and its DRAM (``AxiRam``) in one design; ``host`` is the tile's AXI4-Lite port."""

    def __init__(self, config: TileConfig, *, dram_words, init=(), **ram_kwargs):
        self.tile = Tile(config=config)
        dma = config.dma
        self.ram = AxiRam(addr_width=dma.addr_width, data_width=dma.data_width,
                          id_width=dma.id_width, depth=dram_words, init=init, **ram_kwargs)
        lite = self.tile.host.signature
        super().__init__({"host": In(Axi4LiteSignature(addr_width=lite.addr_width,
                                                       data_width=lite.data_width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tile, m.submodules.ram = self.tile, self.ram
        wiring.connect(m, self.tile.axi, self.ram.axi)
        wiring.connect(m, wiring.flipped(self.host), self.tile.host)
        return m


@dataclass
class TileRun:
    cycles: int                  # simulated cycles in all
    tile_cycles: int             # CYCLES register: start to done
    status: dict
    queues: dict                 # name -> {state, semaphore, pc, retired, busy_cycles, error, dma}
    semaphores: list
    dram: np.ndarray
    extra: dict = field(default_factory=dict)


def dram_image(program: Program, data, size, word_bytes):
    """The DRAM words: the program image at PROGRAM_BASE plus ``data`` (``{addr: bytes}``)."""
    mem = np.zeros(size, dtype=np.uint8)
    image = program.encode()
    mem[PROGRAM_BASE:PROGRAM_BASE + len(image)] = np.frombuffer(image, np.uint8)
    for addr, values in data.items():
        values = np.frombuffer(bytes(values), np.uint8)
        if addr < PROGRAM_BASE + len(image) or addr + len(values) > size:
            raise ValueError(f"run_tile: data at {addr:#x}..{addr + len(values):#x} overlaps the "
                             f"program image or lies outside the {size}-byte DRAM")
        mem[addr:addr + len(values)] = values
    return mem


def _words(mem, word_bytes):
    return [int.from_bytes(mem[i:i + word_bytes].tobytes(), "little")
            for i in range(0, len(mem), word_bytes)]


def run_tile(config: TileConfig, program: Program, *, data=None, dram_bytes=1 << 16,
             max_cycles=200_000, abort_after=None, lengths=None, host_stall=0.0, seed=0,
             **ram_kwargs):
    """Run ``program`` on a tile of ``config``: see the module docstring. ``lengths``
    overrides queue lengths ({name: n}); ``abort_after`` pulses CONTROL.abort that many cycles
    after start and then waits for the tile to stop."""
    wb = config.sbuf.word_bytes
    mem = dram_image(program, data or {}, dram_bytes, wb)
    system = TileSystem(config, dram_words=dram_bytes // wb, init=_words(mem, wb), **ram_kwargs)
    tile = system.tile
    host = RegisterHost(system.host, tile.register_map, rng=np.random.default_rng(seed),
                        stall=host_stall)
    offsets = program.queue_offsets()
    names = [q.name for q in tile_queues(config)]
    result = {}

    async def bench(ctx):
        for name in names:
            off, n = offsets.get(name, (0, 0))
            if lengths and name in lengths:
                n = lengths[name]
            await host.write(ctx, f"{name.upper()}_BASE", addr=PROGRAM_BASE + off)
            await host.write(ctx, f"{name.upper()}_LENGTH", instructions=n)
        await host.write(ctx, "CONTROL", start=1)
        waited = 0
        while True:
            status = await host.fields(ctx, "STATUS")
            if status["done"]:
                break
            if abort_after is not None and waited >= abort_after:
                await host.write(ctx, "CONTROL", abort=1)
                while (await host.fields(ctx, "STATUS"))["running"]:
                    pass
                status = await host.fields(ctx, "STATUS")
                break
            for _ in range(16):
                await ctx.tick()
            waited += 20
        result["status"] = status
        result["tile_cycles"] = await host.read(ctx, "CYCLES")
        queues = {}
        for name in names:
            p = name.upper()
            info = {}
            info.update(await host.fields(ctx, f"{p}_STATE"))
            info["pc"] = await host.read(ctx, f"{p}_PC")
            info["retired"] = await host.read(ctx, f"{p}_RETIRED")
            info["busy_cycles"] = await host.read(ctx, f"{p}_BUSY_CYCLES")
            err = await host.fields(ctx, f"{p}_ERROR")
            info["error"], info["dma"] = err["code"], err["dma"]
            queues[name] = info
        result["queues"] = queues
        sem_names = [r.name for r in tile.register_map if r.name.startswith("SEM")]
        result["semaphores"] = [await host.read(ctx, s) for s in sem_names]
        result["dram"] = np.concatenate([
            np.frombuffer(ctx.get(system.ram.mem.data[i]).to_bytes(wb, "little"), np.uint8)
            for i in range(system.ram.depth)])

    cycles = run_simulation(system, [bench], max_cycles=max_cycles)
    return TileRun(cycles=cycles, **result)
