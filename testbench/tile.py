"""Host driver for the tile in simulation (the RTL backend of the runtime): a :class:`TileSystem`
(``Tile`` + an ``AxiRam`` DRAM in one design) and :func:`run_tile`, which

1. puts the program image (at ``program_base``) and ``data`` (``{addr: bytes}``) into DRAM,
2. programs every queue's base and length over AXI4-Lite and starts the tile,
3. waits for ``STATUS.done`` (under the cycle watchdog; an optional host ``abort_after``),
4. reads every status register and the final DRAM (and, on the Amaranth simulator, the final
   SBUF and PSUM, read from the memories directly), returned as a :class:`TileRun`.

    run = run_tile(config, program, data={addr: bytes}, dram_bytes=1 << 16)
    run.dram, run.sbuf, run.psum, run.queues["pe"]["state"], run.semaphores

Backends (``backend=``): ``"amaranth"`` (default; a Python test bench, host stalls possible) and
``"verilator"`` (the tile Verilated, its DRAM the C++ model of ``compiled.SharedDram`` with
AxiRam's timing working in place on the DRAM image, registers step-wise, the run itself in the
C++ cycle loop until the tile's ``running`` output falls; SBUF and PSUM read from the Verilated
memories). Both give the same tile cycle counts for the same arguments, stalls included.
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Fragment, MemoryInstance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.config import TileConfig
from systolica.hdl.axi import Axi4LiteSignature
from systolica.hdl.axi_ram import AxiRam
from systolica.hdl.tile import Tile
from systolica.isa import Program, tile_queues
from .axilite import RegisterHost
from .sim import run_simulation


__all__ = ["TileSystem", "TileRun", "run_tile", "PROGRAM_BASE", "dram_image"]

#: Where run_tile puts the program image in DRAM by default (``program_base=``).
PROGRAM_BASE = 0


class TileSystem(wiring.Component):
    """A tile and its DRAM (``AxiRam``) in one design; ``host`` is the tile's AXI4-Lite port,
    ``running`` the tile's; ``backdoor`` / ``backdoor_rdata`` the RAM's test port (with
    ``backdoor=True``). ``command_stall`` / ``stall_seed`` go to :class:`Tile`."""

    def __init__(self, config: TileConfig, *, dram_words, init=(), backdoor=False,
                 command_stall=0.0, stall_seed=1, **ram_kwargs):
        self.tile = Tile(config=config, command_stall=command_stall, stall_seed=stall_seed)
        dma = config.dma
        self.ram = AxiRam(addr_width=dma.addr_width, data_width=dma.data_width,
                          id_width=dma.id_width, depth=dram_words, init=init, backdoor=backdoor,
                          **ram_kwargs)
        lite = self.tile.host.signature
        members = {"host": In(Axi4LiteSignature(addr_width=lite.addr_width,
                                                data_width=lite.data_width)),
                   "running": Out(1)}
        if backdoor:
            members["backdoor"] = In(self.ram.backdoor.shape())
            members["backdoor_rdata"] = Out(dma.data_width)
        self._backdoor = backdoor
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.tile, m.submodules.ram = self.tile, self.ram
        wiring.connect(m, self.tile.axi, self.ram.axi)
        wiring.connect(m, wiring.flipped(self.host), self.tile.host)
        m.d.comb += self.running.eq(self.tile.running)
        if self._backdoor:
            m.d.comb += [self.ram.backdoor.eq(self.backdoor),
                         self.backdoor_rdata.eq(self.ram.backdoor_rdata)]
        return m


def system_members(lite, running_bits, ram, backdoor):
    """The signature members of a design + DRAM test system (``TileSystem``, ``ChipSystem``):
    the host port like ``lite`` (an Axi4LiteSignature), ``running``, and with ``backdoor`` the
    RAM's test port."""
    members = {"host": In(Axi4LiteSignature(addr_width=lite.addr_width,
                                            data_width=lite.data_width)),
               "running": Out(running_bits)}
    if backdoor:
        members["backdoor"] = In(ram.backdoor.shape())
        members["backdoor_rdata"] = Out(len(ram.backdoor_rdata))
    return members


def connect_backdoor(m, system, ram):
    if system._backdoor:
        m.d.comb += [ram.backdoor.eq(system.backdoor), system.backdoor_rdata.eq(ram.backdoor_rdata)]


@dataclass
class TileRun:
    """What :func:`run_tile` returns. ``queues[name]``: ``state`` (EngineState), ``semaphore``,
    ``pc``, ``retired``, ``busy_cycles``, ``error`` (IsaError), ``dma`` (DmaError).
    ``sbuf``: the linear SBUF (uint8, partition after partition, as the model's ``sbuf``);
    ``psum``: ``(banks * bank_rows, C)`` int64 (as the model's ``psum``)."""
    cycles: int                  # simulated cycles in all
    tile_cycles: int             # CYCLES register: start to done
    status: dict
    queues: dict
    semaphores: list
    dram: np.ndarray
    sbuf: np.ndarray = None
    psum: np.ndarray = None
    extra: dict = field(default_factory=dict)


def dram_image(program: Program, data, size, program_base=PROGRAM_BASE, image=None):
    """The DRAM bytes: the program image (``image``, default ``program.encode()``) at
    ``program_base`` plus ``data`` (``{addr: bytes}``)."""
    mem = np.zeros(size, dtype=np.uint8)
    image = program.encode() if image is None else bytes(image)
    if program_base % 64 or program_base + len(image) > size:
        raise ValueError(f"run_tile: program_base {program_base:#x} must be 64-byte aligned and "
                         f"the {len(image)}-byte image must fit the {size}-byte DRAM")
    mem[program_base:program_base + len(image)] = np.frombuffer(image, np.uint8)
    for addr, values in data.items():
        values = np.frombuffer(bytes(values), np.uint8)
        if (addr < program_base + len(image) and addr + len(values) > program_base) \
                or addr < 0 or addr + len(values) > size:
            raise ValueError(f"run_tile: data at {addr:#x}..{addr + len(values):#x} overlaps the "
                             f"program image or lies outside the {size}-byte DRAM")
        mem[addr:addr + len(values)] = values
    return mem


def _words(mem, word_bytes):
    return np.frombuffer(mem.tobytes(), dtype=f"<u{word_bytes}").tolist() if word_bytes <= 8 \
        else [int.from_bytes(mem[i:i + word_bytes].tobytes(), "little")
              for i in range(0, len(mem), word_bytes)]


def _memories(fragment, path=()):
    """{hierarchical name: MemoryData} of every memory in an elaborated design."""
    found = {}
    for sub, name, _ in fragment.subfragments:
        if isinstance(sub, MemoryInstance):
            found[path + (name,)] = sub._data
        else:
            found.update(_memories(sub, path + (name,)))
    return found


async def read_queues(ctx, host, names):
    """``{queue: info}`` of every queue in ``names``, read through ``host`` (a RegisterHost)."""
    queues = {}
    for name in names:
        p = name.upper()
        queues[name] = _queue_info(
            await host.fields(ctx, f"{p}_STATE"), await host.read(ctx, f"{p}_PC"),
            await host.read(ctx, f"{p}_RETIRED"), await host.read(ctx, f"{p}_BUSY_CYCLES"),
            await host.fields(ctx, f"{p}_ERROR"))
    return queues


def _queue_info(fields, pc, retired, busy, err):
    info = dict(fields)
    info.update(pc=pc, retired=retired, busy_cycles=busy, error=err["code"], dma=err["dma"])
    return info


def run_tile(config: TileConfig, program: Program, *, data=None, dram_bytes=1 << 16,
             max_cycles=200_000, abort_after=None, lengths=None, host_stall=0.0, seed=0,
             program_base=PROGRAM_BASE, command_stall=0.0, backend="amaranth", image=None,
             progress=None, monitors=(), **ram_kwargs):
    """Run ``program`` on a tile of ``config`` (see the module docstring). ``lengths``
    overrides queue lengths ({name: n}); ``abort_after`` pulses CONTROL.abort that many cycles
    after start and then waits for the tile to stop; ``host_stall`` stalls the AXI4-Lite host
    (Amaranth only); ``command_stall`` stalls the sequencer's command streams; ``ram_kwargs``
    go to :class:`~systolica.hdl.axi_ram.AxiRam` (``read_latency``, ``stall``, ``jitter``,
    ``seed``); ``image`` replaces ``program.encode()`` (same queue layout; for patched words);
    ``progress`` (Verilator only) is called with the cycles run so far every
    ``tile_compiled.PROGRESS_CYCLES`` (a progress bar); ``monitors`` (Amaranth only): functions
    of the :class:`Tile` returning a background process (``async (ctx)``) that watches it."""
    if not isinstance(config, TileConfig):
        raise TypeError(f"run_tile config must be a TileConfig; got {config!r}")
    if backend not in ("amaranth", "verilator"):
        raise ValueError(f"run_tile backend must be 'amaranth' or 'verilator'; got {backend!r}")
    if backend == "verilator" and monitors:
        raise ValueError("run_tile monitors are for backend='amaranth' (they watch signals "
                         "inside the tile)")
    wb = config.sbuf.word_bytes
    if dram_bytes % wb:
        raise ValueError(f"run_tile dram_bytes must be a multiple of {wb}; got {dram_bytes}")
    mem = dram_image(program, data or {}, dram_bytes, program_base, image)
    offsets = program.queue_offsets()
    names = [q.name for q in tile_queues(config)]
    setup = []
    for name in names:
        off, n = offsets.get(name, (0, 0))
        if lengths and name in lengths:
            n = lengths[name]
        setup += [(f"{name.upper()}_BASE", {"addr": program_base + off}),
                  (f"{name.upper()}_LENGTH", {"instructions": n})]
    if backend == "verilator":
        from .tile_compiled import run_tile_compiled
        return run_tile_compiled(config, mem, setup, names, max_cycles=max_cycles,
                                 abort_after=abort_after, command_stall=command_stall,
                                 stall_seed=seed + 1, progress=progress, **ram_kwargs)
    if progress is not None:
        raise ValueError("run_tile progress is for backend='verilator' (the Amaranth runtime "
                         "backend has its own)")
    system = TileSystem(config, dram_words=dram_bytes // wb, init=_words(mem, wb),
                        command_stall=command_stall, stall_seed=seed + 1, **ram_kwargs)
    tile = system.tile
    host = RegisterHost(system.host, tile.register_map, rng=np.random.default_rng(seed),
                        stall=host_stall)
    fragment = Fragment.get(system, None)
    memories = _memories(fragment)
    result = {}

    async def bench(ctx):
        for reg, fields in setup:
            await host.write(ctx, reg, **fields)
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
        result["queues"] = await read_queues(ctx, host, names)
        result["semaphores"] = [await host.read(ctx, r.name) for r in tile.register_map
                                if r.name.startswith("SEM")]
        ram = system.ram.mem.data
        result["dram"] = _from_words([ctx.get(ram[i]) for i in range(system.ram.depth)], wb)
        result["sbuf"] = _read_sbuf(ctx, config, memories)
        result["psum"] = _read_psum(ctx, config, memories)

    cycles = run_simulation(fragment, [bench], max_cycles=max_cycles,
                            processes=[monitor(tile) for monitor in monitors])
    return TileRun(cycles=cycles, **result)


def _from_words(words, word_bytes):
    return np.frombuffer(b"".join(int(w).to_bytes(word_bytes, "little") for w in words),
                         np.uint8).copy()


def _read_sbuf(ctx, config, memories, path=("tile",)):
    """The linear SBUF of the tile at hierarchy ``path`` (read from its memories directly)."""
    s = config.sbuf
    parts = []
    for p in range(s.partitions):
        data = memories[(*path, "datapath", "sbuf", f"partition{p}")]
        parts.append(_from_words([ctx.get(data[i]) for i in range(s.depth)], s.word_bytes))
    return np.concatenate(parts)


def _read_psum(ctx, config, memories, path=("tile",)):
    p, cols, bits = config.psum, config.array.cols, config.array.acc_bits
    out = np.zeros((p.rows, cols), dtype=np.int64)
    for b in range(p.banks):
        data = memories[(*path, "datapath", "psum", f"bank{b}")]
        for r in range(p.bank_rows):
            raw = ctx.get(data[r]).as_value().value
            for c in range(cols):
                v = (raw >> (c * bits)) & ((1 << bits) - 1)
                out[b * p.bank_rows + r, c] = v - (1 << bits) if v >> (bits - 1) else v
    return out
