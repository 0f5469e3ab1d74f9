"""The Verilator half of :func:`systolica.testbench.tile.run_tile`: the same ``TileSystem``
(with the AxiRam's backdoor port) Verilated once per design (cached), DRAM loaded and read back
through the backdoor by a C++ model (``cxx/backdoor_model.cpp``, one word per cycle in the C++
loop), registers written and read step-wise from Python, and the run itself in the C++ cycle
loop until the tile's ``running`` output falls (no Python per cycle)."""

import time
from pathlib import Path

import numpy as np

from systolica.hdl.axi import RESP_OKAY
from .axilite import AxiLiteError
from .backends import compiled_model
from .tile import TileRun, TileSystem, _queue_info


__all__ = ["run_tile_compiled", "CompiledRegisterHost"]

_BACKDOOR_MODEL = Path(__file__).parent / "cxx" / "backdoor_model.cpp"


def _packer(layout):
    """``pack(**fields) -> int`` for a StructLayout (fields at their offsets)."""
    fields = {name: (f.offset, f.width) for name, f in layout}

    def pack(**values):
        word = 0
        for name, value in values.items():
            offset, width = fields[name]
            word |= (int(value) & ((1 << width) - 1)) << offset
        return word
    return pack, fields


class CompiledRegisterHost:
    """AXI4-Lite register reads and writes by name on a compiled ``TileSystem`` (step-wise,
    the same handshakes as :class:`~systolica.testbench.axilite.AxiLiteHost` without stalls)."""

    def __init__(self, sim, regmap, data_width):
        self.sim, self.map, self.dw = sim, regmap, data_width

    def _handshake(self, name):
        sim = self.sim
        sim.set(f"host__{name}__valid", 1)
        while not sim.get(f"host__{name}__ready"):
            sim.tick()
        sim.tick()
        sim.set(f"host__{name}__valid", 0)

    def _response(self, name):
        sim = self.sim
        sim.set(f"host__{name}__ready", 1)
        while not sim.get(f"host__{name}__valid"):
            sim.tick()
        payload = sim.get(f"host__{name}__payload")
        sim.tick()
        sim.set(f"host__{name}__ready", 0)
        return payload

    def write(self, name, value=None, **fields):
        reg = self.map[name]
        word = reg.encode(**fields) if value is None else value
        sim = self.sim
        sim.set("host__aw__payload", reg.offset)
        sim.set("host__w__payload", word | (((1 << (self.dw // 8)) - 1) << self.dw))
        sim.set("host__aw__valid", 1)
        sim.set("host__w__valid", 1)
        aw = w = True
        while aw or w:
            aw_fire = aw and sim.get("host__aw__ready")
            w_fire = w and sim.get("host__w__ready")
            sim.tick()
            if aw_fire:
                aw = False
                sim.set("host__aw__valid", 0)
            if w_fire:
                w = False
                sim.set("host__w__valid", 0)
        resp = self._response("b") & 3
        if resp != RESP_OKAY:
            raise AxiLiteError(f"write {name}: response {resp}")

    def read(self, name):
        reg = self.map[name]
        self.sim.set("host__ar__payload", reg.offset)
        self._handshake("ar")
        payload = self._response("r")
        resp = payload >> self.dw
        if resp != RESP_OKAY:
            raise AxiLiteError(f"read {name}: response {resp}")
        return payload & ((1 << self.dw) - 1)

    def fields(self, name):
        return self.map[name].decode(self.read(name))


_MODELS = {}


def _model(config, dram_words, command_stall, stall_seed, ram_kwargs):
    key = (config, dram_words, command_stall, stall_seed, tuple(sorted(ram_kwargs.items())))
    if key not in _MODELS:
        system = TileSystem(config, dram_words=dram_words, backdoor=True,
                            command_stall=command_stall, stall_seed=stall_seed, **ram_kwargs)
        _MODELS[key] = (system, compiled_model(system, extra_sources=[str(_BACKDOOR_MODEL)]))
    return _MODELS[key]


def run_tile_compiled(config, mem, setup, names, *, max_cycles, abort_after, command_stall,
                      stall_seed, **ram_kwargs):
    wb = config.sbuf.word_bytes
    words = mem.view(f"<u{wb}") if wb <= 8 else None
    if words is None:
        raise ValueError("run_tile(backend='verilator') needs sbuf.word_bytes <= 8")
    system, model = _model(config, len(words), command_stall, stall_seed, ram_kwargs)
    pack, _ = _packer(system.ram.backdoor.shape())
    regmap = system.tile.register_map
    port_words = (len(system.backdoor.as_value()) + 31) // 32
    nonzero = np.flatnonzero(words)
    rows = np.zeros((len(nonzero), port_words), dtype=np.uint32)
    for r, i in enumerate(nonzero):
        value = pack(addr=int(i), data=int(words[i]), we=1)
        rows[r] = [(value >> (32 * j)) & 0xFFFFFFFF for j in range(port_words)]
    with model.open() as sim:
        sim.add_model("backdoor", f"load backdoor {rows.ctypes.data} {len(rows)}")
        sim.run(max_cycles=len(rows) + 2)
        loaded = sim.cycle
        host = CompiledRegisterHost(sim, regmap, system.host.signature.data_width)
        for reg, fields in setup:
            host.write(reg, **fields)
        host.write("CONTROL", start=1)
        sim.tick()
        limit = loaded + max_cycles
        started, start_cycle = time.perf_counter(), sim.cycle
        if abort_after is not None:
            sim.tick(abort_after)
            if sim.get("running"):
                host.write("CONTROL", abort=1)
        sim.run(max_cycles=limit, wait_while="running")
        run_seconds, run_cycles = time.perf_counter() - started, sim.cycle - start_cycle
        status = host.fields("STATUS")
        tile_cycles = host.read("CYCLES")
        queues = {}
        for name in names:
            p = name.upper()
            queues[name] = _queue_info(
                host.fields(f"{p}_STATE"), host.read(f"{p}_PC"), host.read(f"{p}_RETIRED"),
                host.read(f"{p}_BUSY_CYCLES"), host.fields(f"{p}_ERROR"))
        semaphores = [host.read(r.name) for r in regmap if r.name.startswith("SEM")]
        out = np.zeros(len(words), dtype=np.uint64)
        sim.add_model("backdoor", f"read backdoor backdoor_rdata {out.ctypes.data} {len(out)}")
        sim.run(max_cycles=sim.cycle + len(out) + 2)
        cycles = sim.cycle
        out = out.astype(f"<u{wb}")
    return TileRun(cycles=cycles, tile_cycles=tile_cycles, status=status, queues=queues,
                   semaphores=semaphores, dram=out.view(np.uint8).copy(),
                   extra={"load_cycles": loaded, "run_seconds": run_seconds,
                          "run_cycles": run_cycles})
