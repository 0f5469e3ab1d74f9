"""Chip tiles on a mesh in simulation, for the remote-operation tests (docs/chip.md): a
:class:`TileGroup` (some of a chip's tiles, each with its own AXI4 DRAM model, and an
``hdl.noc.Mesh`` between their ``noc_send`` / ``noc_recv``) and :func:`run_tiles`, which loads
every tile's program and data, starts them all, waits for every one to be done (cycle watchdog;
optional per-tile host aborts) and reads each tile's status, DRAM and SBUF.

    runs = run_tiles(chip, {(0, 0): program0, (1, 0): program1}, data={(0, 0): {addr: bytes}})
    runs[(1, 0)].sbuf, runs[(1, 0)].queues["dma0"]["error"], runs[(1, 0)].remote

Mesh nodes without a tile send nothing and take every arriving flit (none should arrive).
``link_stall`` holds back beats on every ``noc_send`` / ``noc_recv`` in that share of cycles
(LFSRs), so the network interfaces see random stalls on both sides.
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from systolica.config import ChipConfig
from systolica.hdl.axi import Axi4LiteSignature
from systolica.hdl.axi_ram import AxiRam
from systolica.hdl.noc.mesh import Mesh
from systolica.hdl.tile import Tile, _connect_stalled
from systolica.isa import tile_queues
from .axilite import RegisterHost
from .sim import run_simulation
from .tile import _from_words, _memories, _words, dram_image, read_queues


__all__ = ["TileGroup", "TileGroupRun", "run_tiles"]


class TileGroup(wiring.Component):
    """Tiles of ``chip`` at ``positions`` (each with an ``AxiRam`` of ``dram_words`` words,
    initialised from ``inits[i]``) on one mesh; ``host_{i}`` is tile i's AXI4-Lite port."""

    def __init__(self, chip: ChipConfig, positions, *, dram_words, inits, link_stall=0.0,
                 command_stall=0.0, seed=1, **ram_kwargs):
        if not isinstance(chip, ChipConfig):
            raise TypeError(f"TileGroup chip must be a ChipConfig; got {chip!r}")
        self.chip, self.positions = chip, list(positions)
        self._link_stall, self._seed = link_stall, seed
        dma = chip.tile.dma
        self.tiles = [Tile(config=chip, x=x, y=y, command_stall=command_stall,
                           stall_seed=seed + 13 * i) for i, (x, y) in enumerate(self.positions)]
        self.rams = [AxiRam(addr_width=dma.addr_width, data_width=dma.data_width,
                            id_width=dma.id_width, depth=dram_words, init=inits[i],
                            **dict(ram_kwargs, seed=ram_kwargs.get("seed", 0) + i))
                     for i in range(len(self.positions))]
        self.mesh = Mesh(config=chip.noc)
        lite = self.tiles[0].host.signature
        super().__init__({f"host_{i}": In(Axi4LiteSignature(addr_width=lite.addr_width,
                                                            data_width=lite.data_width))
                          for i in range(len(self.positions))})

    def host(self, i):
        return getattr(self, f"host_{i}")

    def elaborate(self, platform):
        m = Module()
        mesh = m.submodules.mesh = self.mesh
        used = set()
        for i, (tile, ram, pos) in enumerate(zip(self.tiles, self.rams, self.positions)):
            m.submodules[f"tile{i}"], m.submodules[f"ram{i}"] = tile, ram
            used.add(pos)
            wiring.connect(m, tile.axi, ram.axi)
            wiring.connect(m, wiring.flipped(self.host(i)), tile.host)
            seed = self._seed * 31 + 7 * i
            _connect_stalled(m, f"send{i}", tile.noc_send, mesh.send(*pos), self._link_stall,
                             seed)
            _connect_stalled(m, f"recv{i}", mesh.recv(*pos), tile.noc_recv, self._link_stall,
                             seed + 3)
            m.d.comb += tile.noc_refused.eq(getattr(mesh, f"refused_{pos[0]}_{pos[1]}"))
        for (x, y) in mesh.topology.nodes:
            if (x, y) not in used:
                m.d.comb += [mesh.send(x, y).valid.eq(0), mesh.recv(x, y).ready.eq(1)]
        return m


@dataclass
class TileGroupRun:
    """One tile's result: as :class:`~systolica.testbench.tile.TileRun`, plus ``remote`` (the
    chip tile registers: ``position``, ``errors``, ``sent``, ``received``, ``refused``)."""
    status: dict
    queues: dict
    semaphores: list
    dram: np.ndarray
    sbuf: np.ndarray
    remote: dict = field(default_factory=dict)


def run_tiles(chip: ChipConfig, programs, *, data=None, sbuf_init=None, dram_bytes=1 << 14,
              max_cycles=100_000, abort_after=None, host_stall=0.0, seed=0, link_stall=0.0,
              command_stall=0.0, **ram_kwargs):
    """Run ``programs`` (``{(x, y): Program}``; an empty program is fine) on those tiles of
    ``chip`` at once; ``data`` is ``{(x, y): {addr: bytes}}`` (DRAM), ``sbuf_init``
    ``{(x, y): linear SBUF bytes}`` (the SBUF's initial contents). ``abort_after``: ``{(x, y):
    cycles}``, host aborts of those tiles that many cycles after the starts. Returns
    ``{(x, y): TileGroupRun}`` and the simulated cycles."""
    positions = list(programs)
    cfg = chip.tile
    wb = cfg.sbuf.word_bytes
    data, sbuf_init, abort_after = data or {}, sbuf_init or {}, abort_after or {}
    mems = [dram_image(programs[p], data.get(p, {}), dram_bytes) for p in positions]
    group = TileGroup(chip, positions, dram_words=dram_bytes // wb,
                      inits=[_words(mem, wb) for mem in mems], link_stall=link_stall,
                      command_stall=command_stall, seed=seed + 1, **ram_kwargs)
    fragment = Fragment.get(group, None)
    memories = _memories(fragment)
    rng = np.random.default_rng(seed)
    hosts = [RegisterHost(group.host(i), group.tiles[i].register_map, rng=rng, stall=host_stall)
             for i in range(len(positions))]
    names = [q.name for q in tile_queues(chip)]
    result = {}

    def sbuf_words(i):
        return [memories[(f"tile{i}", "datapath", "sbuf", f"partition{p}")]
                for p in range(cfg.sbuf.partitions)]

    async def bench(ctx):
        for i, p in enumerate(positions):
            image = sbuf_init.get(p)
            if image is not None:
                image = np.frombuffer(bytes(image), np.uint8)
                words = _words(image, wb)
                for part, mem in enumerate(sbuf_words(i)):
                    for a in range(cfg.sbuf.depth):
                        ctx.set(mem[a], words[part * cfg.sbuf.depth + a])
            offsets = programs[p].queue_offsets()
            for name in names:
                off, n = offsets.get(name, (0, 0))
                await hosts[i].write(ctx, f"{name.upper()}_BASE", addr=off)
                await hosts[i].write(ctx, f"{name.upper()}_LENGTH", instructions=n)
        for host in hosts:
            await host.write(ctx, "CONTROL", start=1)
        waited, pending = 0, set(range(len(positions)))
        aborted = set()
        while pending:
            for i in sorted(pending):
                if (await hosts[i].fields(ctx, "STATUS"))["done"]:
                    pending.discard(i)
                elif positions[i] in abort_after and i not in aborted and \
                        waited >= abort_after[positions[i]]:
                    await hosts[i].write(ctx, "CONTROL", abort=1)
                    aborted.add(i)
                elif i in aborted and not (await hosts[i].fields(ctx, "STATUS"))["running"]:
                    pending.discard(i)
            for _ in range(16):
                await ctx.tick()
            waited += 16 + 8 * len(pending)
        for i, p in enumerate(positions):
            host = hosts[i]
            queues = await read_queues(ctx, host, names)
            remote = {"position": await host.fields(ctx, "TILE_POSITION"),
                      "errors": await host.fields(ctx, "REMOTE_ERRORS"),
                      "sent": await host.read(ctx, "REMOTE_FLITS_SENT"),
                      "received": await host.read(ctx, "REMOTE_FLITS_RECEIVED"),
                      "refused": await host.read(ctx, "NOC_REFUSED")}
            ram = group.rams[i].mem.data
            dram = _from_words([ctx.get(ram[a]) for a in range(group.rams[i].depth)], wb)
            sbuf = np.concatenate([_from_words([ctx.get(mem[a]) for a in range(cfg.sbuf.depth)],
                                               wb) for mem in sbuf_words(i)])
            result[p] = TileGroupRun(
                status=await host.fields(ctx, "STATUS"), queues=queues,
                semaphores=[await host.read(ctx, f"SEM{s}") for s in range(
                    sum(1 for r in group.tiles[i].register_map if r.name.startswith("SEM")))],
                dram=dram, sbuf=sbuf, remote=remote)

    cycles = run_simulation(fragment, [bench], max_cycles=max_cycles)
    return result, cycles
