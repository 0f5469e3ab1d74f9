"""Host driver for the chip in simulation: a :class:`ChipSystem` (``Chip`` + one shared DRAM) and
:func:`run_chip`, the chip's counterpart of :func:`systolica.testbench.tile.run_tile`:

1. puts every tile's program image (at its ``program_bases`` entry) and ``dram`` into one DRAM
   that every tile's AXI4 master addresses (``dram_model="axiram"``: the masters are merged by a
   tree of :class:`~systolica.hdl.board.AxiArbiter` in front of one
   :class:`~systolica.hdl.axi_ram.AxiRam`, so they share its one port; ``"ports"``: one
   :class:`~systolica.testbench.dram.AxiDram` per master over one shared NumPy array),
2. programs every tile's queue bases and lengths through the chip's host port (the tile windows),
3. starts every tile at once (the chip's ``CONTROL.start``), waits for the chip's
   ``STATUS.done`` under the cycle watchdog (``abort_after``: the chip's ``CONTROL.abort`` that
   many cycles after start, then waits for every tile to stop),
4. reads every tile's status registers through its window, the chip registers and the DRAM.

    run = run_chip(chip, {(0, 0): program, (1, 0): other}, dram={addr: bytes})
    run.dram, run.tiles[(1, 0)].queues["pe"]["state"], run.chip["DONE"], run.cycles

Backends (``backend=``): ``"amaranth"`` (this module) and ``"verilator"``
(:mod:`.chip_compiled`: the ``Chip`` Verilated, every tile's AXI4 master on its own port of one
shared C++ DRAM, the run in the C++ cycle loop). Both take the same prepared DRAM image and
register setup (:class:`ChipSetup`) and return the same :class:`ChipRun` (results equal; cycle
counts differ, as the DRAMs differ: one AxiRam behind arbiters here, one port per tile there).
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring

from systolica.config import ChipConfig
from systolica.hdl.axi import Axi4Signature
from systolica.hdl.axi_ram import AxiRam
from systolica.hdl.board import AxiArbiter
from systolica.hdl.chip import Chip
from systolica.isa import Program, tile_queues
from .axilite import RegisterHost
from .sim import run_simulation
from .tile import (TileRun, _from_words, _memories, _read_psum, _read_sbuf, _words, read_queues,
                   connect_backdoor, system_members)


__all__ = ["ChipSystem", "ChipRun", "ChipSetup", "DRAM_MODELS", "run_chip", "chip_dram_image",
           "chip_program"]


class ChipSystem(wiring.Component):
    """A chip and its one DRAM (``AxiRam``, ``dram_words`` words) in one design: every tile's
    AXI4 master goes through a tree of 2:1 AXI arbiters (one ID bit per level) to the RAM.
    ``host`` / ``running`` are the chip's; ``backdoor`` / ``backdoor_rdata`` the RAM's test port
    (with ``backdoor=True``)."""

    def __init__(self, config: ChipConfig, *, dram_words, init=(), backdoor=False,
                 command_stall=0.0, **ram_kwargs):
        self.chip = Chip(config=config, command_stall=command_stall)
        dma = config.tile.dma
        self._levels = (config.tiles - 1).bit_length()
        self.ram = AxiRam(addr_width=dma.addr_width, data_width=dma.data_width,
                          id_width=dma.id_width + self._levels, depth=dram_words, init=init,
                          backdoor=backdoor, **ram_kwargs)
        self._backdoor = backdoor
        super().__init__(system_members(self.chip.host.signature, config.tiles, self.ram,
                                        backdoor))

    def elaborate(self, platform):
        m = Module()
        chip = m.submodules.chip = self.chip
        m.submodules.ram = self.ram
        cfg = chip.config
        dma = cfg.tile.dma
        noc = cfg.noc
        masters = [chip.axi(x, y) for y in range(noc.height) for x in range(noc.width)]
        idle = Axi4Signature(addr_width=dma.addr_width, data_width=dma.data_width,
                             id_width=dma.id_width)
        masters += [idle.create(path=(f"idle{i}",))
                    for i in range((1 << self._levels) - len(masters))]
        for level in range(self._levels):
            merged = []
            for i in range(0, len(masters), 2):
                arbiter = m.submodules[f"arbiter_{level}_{i // 2}"] = AxiArbiter(
                    addr_width=dma.addr_width, data_width=dma.data_width,
                    id_width=dma.id_width + level)
                wiring.connect(m, masters[i], arbiter.m0)
                wiring.connect(m, masters[i + 1], arbiter.m1)
                merged.append(arbiter.slave)
            masters = merged
        wiring.connect(m, masters[0], self.ram.axi)
        wiring.connect(m, wiring.flipped(self.host), chip.host)
        m.d.comb += self.running.eq(chip.running)
        connect_backdoor(m, self, self.ram)
        return m


@dataclass
class ChipRun:
    """What :func:`run_chip` returns (every backend). ``tiles[(x, y)]``: a
    :class:`~systolica.testbench.tile.TileRun` per tile (its ``cycles`` and ``dram`` are the
    chip's; ``sbuf`` / ``psum`` read from the memories on both backends).
    ``chip``: the chip registers after the run, ``{"STATUS": {...}, "NOC_STATUS": {...},
    "RUNNING": bitmap, "DONE": bitmap, "HALTED": bitmap}`` (bit ``y * X + x``)."""
    cycles: int                  # simulated cycles in all
    dram: np.ndarray             # the shared DRAM after the run (uint8)
    tiles: dict                  # {(x, y): TileRun}
    chip: dict
    program_bases: dict          # {(x, y): byte address of the tile's program image}
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChipSetup:
    """The prepared run, independent of the backend: the DRAM image, and per tile the
    ``(register, fields)`` writes into its window before the chip-wide start."""
    mem: np.ndarray
    writes: dict                 # {(x, y): [(register name, {field: value})]}
    program_bases: dict


def chip_program(chip: ChipConfig, program: Program):
    """``program`` (built for a standalone tile, e.g. by ``gemm_program`` or the compiler)
    rebuilt for the tiles of ``chip``: the same instructions, the chip's fingerprint in every
    queue's CHECK (a chip's tile refuses a standalone tile's program)."""
    from systolica.isa import Opcode
    queues = {name: insns[1:] if insns and insns[0].opcode == Opcode.CHECK else insns
              for name, insns in program.queues.items()}
    return Program.build(chip, queues)


def chip_dram_image(config: ChipConfig, programs, *, dram=None, dram_bytes=1 << 16,
                    program_bases=None):
    """``(mem, bases)``: the shared DRAM bytes with every program image at its base. ``dram``:
    None, ``{addr: bytes}`` or the initial DRAM (uint8 array / bytes of ``dram_bytes``).
    ``program_bases`` defaults to the images packed from byte 0 in tile order (64-aligned);
    an image may not overlap another, the ``{addr: bytes}`` data or non-zero initial bytes."""
    wb = config.tile.sbuf.word_bytes
    if not isinstance(dram_bytes, int) or dram_bytes <= 0 or dram_bytes % wb:
        raise ValueError(f"run_chip dram_bytes must be a positive multiple of {wb}; got "
                         f"{dram_bytes!r}")
    noc = config.noc
    for pos, program in programs.items():
        if (not isinstance(pos, tuple) or len(pos) != 2
                or not (0 <= pos[0] < noc.width and 0 <= pos[1] < noc.height)):
            raise ValueError(f"run_chip programs: key {pos!r} is not a tile (x, y) of the "
                             f"{noc.width}x{noc.height} mesh")
        if not isinstance(program, Program):
            raise TypeError(f"run_chip programs[{pos}] must be a Program; got {program!r}")
    mem = np.zeros(dram_bytes, np.uint8)
    data_ranges = []
    if isinstance(dram, dict):
        for addr, values in dram.items():
            values = np.frombuffer(bytes(values), np.uint8)
            if addr < 0 or addr + len(values) > dram_bytes:
                raise ValueError(f"run_chip dram: data at {addr:#x}..{addr + len(values):#x} "
                                 f"lies outside the {dram_bytes}-byte DRAM")
            mem[addr:addr + len(values)] = values
            data_ranges.append((addr, addr + len(values)))
    elif dram is not None:
        init = np.frombuffer(bytes(dram), np.uint8) if isinstance(dram, (bytes, bytearray)) \
            else np.asarray(dram)
        if init.dtype != np.uint8 or init.ndim != 1 or len(init) > dram_bytes:
            raise ValueError(f"run_chip dram must be {{addr: bytes}} or at most {dram_bytes} "
                             f"uint8 bytes; got {init.dtype} {init.shape}")
        mem[:len(init)] = init
    images = {pos: programs[pos].encode() for pos in sorted(programs, key=lambda p: p[::-1])}
    if program_bases is None:
        program_bases, at = {}, 0
        for pos, image in images.items():
            program_bases[pos] = at
            at = -(-(at + len(image)) // 64) * 64
    placed = []
    for pos, image in images.items():
        if pos not in program_bases:
            raise ValueError(f"run_chip program_bases has no entry for tile {pos}")
        base = program_bases[pos]
        end = base + len(image)
        if base % 64 or base < 0 or end > dram_bytes:
            raise ValueError(f"run_chip program_bases[{pos}] = {base:#x} must be 64-byte aligned "
                             f"and the {len(image)}-byte image must fit the {dram_bytes}-byte DRAM")
        for lo, hi in data_ranges + placed:
            if lo < end and base < hi:
                raise ValueError(f"run_chip: tile {pos}'s program image {base:#x}..{end:#x} "
                                 f"overlaps {lo:#x}..{hi:#x} (data or another image)")
        if mem[base:end].any():
            raise ValueError(f"run_chip: tile {pos}'s program image {base:#x}..{end:#x} "
                             f"overlaps non-zero initial DRAM; pass program_bases")
        mem[base:end] = np.frombuffer(image, np.uint8)
        placed.append((base, end))
    return mem, dict(program_bases)


def _setup(config, programs, mem_bases, lengths):
    mem, bases = mem_bases
    writes = {}
    names = [q.name for q in tile_queues(config)]
    for pos, program in programs.items():
        offsets = program.queue_offsets()
        regs = []
        for name in names:
            off, n = offsets.get(name, (0, 0))
            if lengths and pos in lengths and name in lengths[pos]:
                n = lengths[pos][name]
            regs += [(f"{name.upper()}_BASE", {"addr": bases[pos] + off}),
                     (f"{name.upper()}_LENGTH", {"instructions": n})]
        writes[pos] = regs
    return ChipSetup(mem, writes, bases)


#: DRAM models of :func:`run_chip`: one synthesizable AxiRam port behind an arbiter tree (what
#: a compiled backend can simulate too), or one Python AxiDram per tile over one shared array
#: (each master gets a full port: no contention; protocol-checked; Amaranth simulator only).
DRAM_MODELS = ("axiram", "ports")


def run_chip(config: ChipConfig, programs, *, dram=None, dram_bytes=1 << 16, program_bases=None,
             max_cycles=400_000, backend="amaranth", abort_after=None, lengths=None,
             host_stall=0.0, command_stall=0.0, seed=0, read_semaphores=True,
             dram_model="axiram", dram_ports=None, hierarchical=True, **ram_kwargs):
    """Run ``programs`` (``{(x, y): Program}``, built for ``config``: see :func:`chip_program`)
    on a chip of ``config`` with one shared DRAM, all tiles started at once; returns a
    :class:`ChipRun`. Tiles without a program have every queue length 0 (they are done at
    once). ``dram`` / ``dram_bytes`` / ``program_bases``: :func:`chip_dram_image`.
    ``lengths`` (``{(x, y): {queue: n}}``) overrides queue lengths; ``abort_after`` pulses the
    chip's CONTROL.abort that many cycles after start; ``host_stall`` stalls the host port
    (random valid/ready stalls), ``command_stall`` every tile's command streams, ``ram_kwargs``
    go to the :class:`~systolica.hdl.axi_ram.AxiRam` (``read_latency``, ``stall``,
    ``jitter``, ``seed``); ``read_semaphores=False`` skips reading the semaphores of every tile.
    ``max_cycles`` is the watchdog. Amaranth: ``dram_model`` (:data:`DRAM_MODELS`): ``"axiram"``
    (one shared port: the tiles contend for it) or ``"ports"`` (a port per tile on one memory;
    ``ram_kwargs`` then go to :class:`~systolica.testbench.dram.AxiDram`: ``read_latency``,
    ``write_latency``, ``stall``, ``max_reads``, ``max_writes``). Verilator: always a port per
    tile on one shared C++ DRAM; ``ram_kwargs`` set every tile's port (each port's LFSRs seeded
    ``seed + y * X + x``) and ``dram_ports`` (``{(x, y): {setting: value}}``) overrides single
    tiles' ports; ``host_stall`` is Amaranth only; ``hierarchical`` (Verilator): the tiles
    share one verilated tile module (the default) or the chip is verilated flat (see
    :func:`~systolica.testbench.chip_compiled.compiled_chip`)."""
    if not isinstance(config, ChipConfig):
        raise TypeError(f"run_chip config must be a ChipConfig; got {config!r}")
    if backend not in ("amaranth", "verilator"):
        raise ValueError(f"run_chip backend must be 'amaranth' or 'verilator'; got {backend!r}")
    if dram_model not in DRAM_MODELS:
        raise ValueError(f"run_chip dram_model must be one of {', '.join(DRAM_MODELS)}; got "
                         f"{dram_model!r}")
    setup = _setup(config, programs, chip_dram_image(
        config, programs, dram=dram, dram_bytes=dram_bytes, program_bases=program_bases),
        lengths)
    if backend == "verilator":
        if host_stall:
            raise ValueError("run_chip host_stall is not supported on the verilator backend")
        from .chip_compiled import run_chip_compiled
        cycles, mem, tiles, chip_regs, extra = run_chip_compiled(
            config, setup, max_cycles=max_cycles, abort_after=abort_after,
            command_stall=command_stall, read_semaphores=read_semaphores,
            dram_ports=dram_ports, hierarchical=hierarchical, **ram_kwargs)
        return ChipRun(cycles=cycles, dram=mem, tiles=tiles, chip=chip_regs,
                       program_bases=setup.program_bases, extra=extra)
    if dram_ports:
        raise ValueError("run_chip dram_ports needs backend='verilator' (the Amaranth chip "
                         "has one AxiRam behind arbiters)")
    return _run_amaranth(config, setup, max_cycles=max_cycles, abort_after=abort_after,
                         host_stall=host_stall, command_stall=command_stall, seed=seed,
                         read_semaphores=read_semaphores, dram_model=dram_model, **ram_kwargs)


def _run_amaranth(config, setup, *, max_cycles, abort_after, host_stall, command_stall, seed,
                  read_semaphores, dram_model, **ram_kwargs):
    wb = config.tile.sbuf.word_bytes
    processes = []
    if dram_model == "axiram":
        system = ChipSystem(config, dram_words=len(setup.mem) // wb, init=_words(setup.mem, wb),
                            command_stall=command_stall, **ram_kwargs)
        chip, bus, prefix = system.chip, system.host, ("chip",)

        def read_dram(ctx):
            ram = system.ram.mem.data
            return _from_words([ctx.get(ram[i]) for i in range(system.ram.depth)], wb)
    else:
        from .dram import AxiDram
        system = chip = Chip(config=config, command_stall=command_stall)
        bus, prefix = chip.host, ()
        mem = setup.mem.copy()
        for i, (x, y) in enumerate(sorted(chip.tiles, key=lambda p: p[::-1])):
            processes += AxiDram(chip.axi(x, y), mem=mem, rng=np.random.default_rng(seed + 1 + i),
                                 name=f"dram port of tile ({x}, {y})", **ram_kwargs).processes()

        def read_dram(ctx):
            return mem.copy()
    hmap = chip.host_map
    rng = np.random.default_rng(seed)
    chip_host = RegisterHost(bus, hmap.chip.map, rng=rng, stall=host_stall)
    hosts = {win.tile: RegisterHost(bus, win.map, base=win.base, rng=rng,
                                    stall=host_stall) for win in hmap.windows[1:]}
    names = [q.name for q in tile_queues(config)]
    fragment = Fragment.get(system, None)
    memories = _memories(fragment)
    result = {}

    async def bench(ctx):
        for pos, regs in setup.writes.items():
            for reg, fields in regs:
                await hosts[pos].write(ctx, reg, **fields)
        await chip_host.write(ctx, "CONTROL", start=1)
        waited = 0
        while not (await chip_host.fields(ctx, "STATUS"))["done"]:
            if abort_after is not None and waited >= abort_after:
                await chip_host.write(ctx, "CONTROL", abort=1)
                while (await chip_host.fields(ctx, "STATUS"))["running"]:
                    pass
                break
            for _ in range(16):
                await ctx.tick()
            waited += 20
        chip_regs = {"STATUS": await chip_host.fields(ctx, "STATUS"),
                     "NOC_STATUS": await chip_host.fields(ctx, "NOC_STATUS")}
        for name in ("RUNNING", "DONE", "HALTED"):
            value = 0
            for i in range(-(-config.tiles // 32)):
                value |= await chip_host.read(ctx, f"{name}{i}") << (32 * i)
            chip_regs[name] = value
        result["chip"] = chip_regs
        tiles = {}
        for pos, host in hosts.items():
            queues = await read_queues(ctx, host, names)
            semaphores = [await host.read(ctx, r.name) for r in host.map
                          if r.name.startswith("SEM")] if read_semaphores else None
            path = (*prefix, f"tile_{pos[0]}_{pos[1]}")
            tiles[pos] = dict(status=await host.fields(ctx, "STATUS"),
                              tile_cycles=await host.read(ctx, "CYCLES"), queues=queues,
                              semaphores=semaphores,
                              extra={"remote_flits_sent": await host.read(ctx, "REMOTE_FLITS_SENT"),
                                     "remote_flits_received":
                                         await host.read(ctx, "REMOTE_FLITS_RECEIVED")},
                              sbuf=_read_sbuf(ctx, config.tile, memories, path),
                              psum=_read_psum(ctx, config.tile, memories, path))
        result["tiles"] = tiles
        result["dram"] = read_dram(ctx)

    cycles = run_simulation(fragment, [bench], processes=processes, max_cycles=max_cycles)
    dram = result["dram"]
    tiles = {pos: TileRun(cycles=cycles, dram=dram, **info)
             for pos, info in sorted(result["tiles"].items(), key=lambda kv: kv[0][::-1])}
    return ChipRun(cycles=cycles, dram=dram, tiles=tiles, chip=result["chip"],
                   program_bases=setup.program_bases)
