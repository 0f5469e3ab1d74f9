"""The Verilator half of :func:`systolica.testbench.tile.run_tile`: the ``Tile`` alone Verilated
once per design (cached), its AXI4 master served by the C++ DRAM model (``compiled.SharedDram``:
the DRAM image is a NumPy array the model reads and writes in place, with AxiRam's timing, so
nothing is loaded or read back cycle by cycle), registers written and read step-wise from
Python with the Amaranth host's handshake timing, the run itself in the C++ cycle loop until
the tile's ``running`` output falls (no Python per cycle), and the final SBUF and PSUM read
from the Verilated memories."""

import time

import numpy as np

from systolica.hdl.axi import RESP_OKAY
from systolica.hdl.tile import Tile
from .axilite import AxiLiteError
from .backends import compiled_model
from .compiled import AXI_DRAM_SOURCE, DramPort, SharedDram
from .sim import SimulationTimeout
from .tile import TileRun, _queue_info


__all__ = ["run_tile_compiled", "CompiledRegisterHost", "compiled_tile", "read_sbuf",
           "read_psum", "read_tile_registers", "start_and_run"]


class CompiledRegisterHost:
    """AXI4-Lite register reads and writes by name on a compiled design's AXI4-Lite port
    ``port`` (step-wise, the same handshakes and cycles as
    :class:`~systolica.testbench.axilite.AxiLiteHost` without stalls); ``base`` is added to
    every register offset (a window of a larger map)."""

    def __init__(self, sim, regmap, data_width, *, port="host", base=0):
        self.sim, self.map, self.dw, self.port, self.base = sim, regmap, data_width, port, base

    def _handshake(self, name):
        sim = self.sim
        sim.set(f"{self.port}__{name}__valid", 1)
        while not sim.get(f"{self.port}__{name}__ready"):
            sim.tick()
        sim.tick()
        sim.set(f"{self.port}__{name}__valid", 0)

    def _response(self, name):
        sim = self.sim
        sim.set(f"{self.port}__{name}__ready", 1)
        while not sim.get(f"{self.port}__{name}__valid"):
            sim.tick()
        payload = sim.get(f"{self.port}__{name}__payload")
        sim.tick()
        sim.set(f"{self.port}__{name}__ready", 0)
        return payload

    def write(self, name, value=None, **fields):
        reg = self.map[name]
        word = reg.encode(**fields) if value is None else value
        sim, port = self.sim, self.port
        sim.set(f"{port}__aw__payload", self.base + reg.offset)
        sim.set(f"{port}__w__payload", word | (((1 << (self.dw // 8)) - 1) << self.dw))
        sim.set(f"{port}__aw__valid", 1)
        sim.set(f"{port}__w__valid", 1)
        aw = w = True
        while aw or w:
            aw_fire = aw and sim.get(f"{port}__aw__ready")
            w_fire = w and sim.get(f"{port}__w__ready")
            sim.tick()
            if aw_fire:
                aw = False
                sim.set(f"{port}__aw__valid", 0)
            if w_fire:
                w = False
                sim.set(f"{port}__w__valid", 0)
        resp = self._response("b") & 3
        if resp != RESP_OKAY:
            raise AxiLiteError(f"write {name}: response {resp}")

    def read(self, name):
        reg = self.map[name]
        self.sim.set(f"{self.port}__ar__payload", self.base + reg.offset)
        self._handshake("ar")
        payload = self._response("r")
        resp = payload >> self.dw
        if resp != RESP_OKAY:
            raise AxiLiteError(f"read {name}: response {resp}")
        return payload & ((1 << self.dw) - 1)

    def fields(self, name):
        return self.map[name].decode(self.read(name))


_TILES = {}


def compiled_tile(config, *, command_stall=0.0, stall_seed=1):
    """``(Tile, CompiledModel)`` for ``config`` (built once, then from the disk cache; memoised
    in this process). The DRAM model is part of every build; its settings are not (they are
    run-time arguments), so one build serves every DRAM latency and stall."""
    key = (config, command_stall, stall_seed)
    if key not in _TILES:       # one Tile per design: a new one per call would go unelaborated
        tile = Tile(config=config, command_stall=command_stall, stall_seed=stall_seed)
        _TILES[key] = (tile, compiled_model(tile, memo_key=("Tile", *key),
                                            extra_sources=[str(AXI_DRAM_SOURCE)]))
    return _TILES[key]


def read_sbuf(sim, config, prefix=""):
    """The linear SBUF of a compiled tile (uint8, partition after partition, as the model's
    ``sbuf``); ``prefix`` is the tile's path in the design (``"tile_0_1."``)."""
    return np.concatenate([sim.memory(f"{prefix}datapath.sbuf.partition{p}").reshape(-1)
                           for p in range(config.sbuf.partitions)])


def read_psum(sim, config, prefix=""):
    """PSUM of a compiled tile as ``(banks * bank_rows, C)`` int64 (as the model's ``psum``):
    each row holds C accumulators of ``acc_bits``, two's complement, column 0 lowest."""
    p, cols, bits = config.psum, config.array.cols, config.array.acc_bits
    if bits >= 64:
        raise ValueError(f"read_psum: acc_bits {bits} >= 64 is not supported")
    rows = np.concatenate([sim.memory(f"{prefix}datapath.psum.bank{b}")
                           for b in range(p.banks)])
    lanes = np.unpackbits(rows, axis=1, bitorder="little")[:, :cols * bits]
    lanes = lanes.reshape(len(rows), cols, bits).astype(np.int64)
    values = lanes @ (np.int64(1) << np.arange(bits, dtype=np.int64))
    return np.where(lanes[:, :, -1] == 1, values - (np.int64(1) << bits), values)


def run_tile_compiled(config, mem, setup, names, *, max_cycles, abort_after, command_stall,
                      stall_seed, read_latency=1, stall=0.0, jitter=0, seed=1, progress=None):
    tile, model = compiled_tile(config, command_stall=command_stall, stall_seed=stall_seed)
    regmap = tile.register_map
    mem = np.ascontiguousarray(mem, dtype=np.uint8)
    started = time.perf_counter()
    with model.open() as sim:
        SharedDram(sim, mem, [DramPort("axi", tile.axi.signature, read_latency=read_latency,
                                       stall=stall, jitter=jitter, seed=seed)])
        host = CompiledRegisterHost(sim, regmap, tile.host.signature.data_width)
        for reg, fields in setup:
            host.write(reg, **fields)
        run_seconds, run_cycles = start_and_run(sim, host, max_cycles, abort_after, progress)
        regs = read_tile_registers(host, names)
        sbuf, psum = read_sbuf(sim, config), read_psum(sim, config)
        cycles = sim.cycle
    return TileRun(cycles=cycles, dram=mem, sbuf=sbuf, psum=psum, **regs,
                   extra={"run_seconds": run_seconds, "run_cycles": run_cycles,
                          "seconds": time.perf_counter() - started})


#: Cycles between two ``progress`` calls of :func:`start_and_run`.
PROGRESS_CYCLES = 1 << 14


def start_and_run(sim, host, max_cycles, abort_after=None, progress=None):
    """``CONTROL.start`` through ``host`` (a tile's or the chip's), then the C++ loop until the
    design's ``running`` output is 0 (``abort_after``: ``CONTROL.abort`` that many cycles after
    start first, if still running); the watchdog counts from cycle 0. ``progress``, if given, is
    called with the cycles since the start every ``PROGRESS_CYCLES`` (a progress bar). Returns
    the wall seconds and cycles of the run from the start."""
    host.write("CONTROL", start=1)
    sim.tick()
    started, start_cycle = time.perf_counter(), sim.cycle
    if abort_after is not None:
        sim.tick(abort_after)
        if sim.get("running"):
            host.write("CONTROL", abort=1)
    while progress is not None and sim.cycle + PROGRESS_CYCLES < max_cycles:
        try:        # stops at the chunk's end or when running falls, whichever comes first
            sim.run(max_cycles=sim.cycle + PROGRESS_CYCLES, wait_while="running")
            break
        except SimulationTimeout:
            progress(sim.cycle - start_cycle)
    sim.run(max_cycles=max_cycles, wait_while="running")
    return time.perf_counter() - started, sim.cycle - start_cycle


def read_tile_registers(host, names, semaphores=True):
    """A tile's ``status``, ``tile_cycles``, ``queues`` and ``semaphores`` (the :class:`TileRun`
    fields) read through ``host`` (a :class:`CompiledRegisterHost` on its register map)."""
    queues = {}
    for name in names:
        p = name.upper()
        queues[name] = _queue_info(
            host.fields(f"{p}_STATE"), host.read(f"{p}_PC"), host.read(f"{p}_RETIRED"),
            host.read(f"{p}_BUSY_CYCLES"), host.fields(f"{p}_ERROR"))
    return {"status": host.fields("STATUS"), "tile_cycles": host.read("CYCLES"),
            "queues": queues,
            "semaphores": [host.read(r.name) for r in host.map if r.name.startswith("SEM")]
            if semaphores else None}
