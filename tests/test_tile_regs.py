"""The register-map declaration, its generated artefacts and the AXI4-Lite register file."""

import pathlib

import numpy as np
import pytest

from systolica.codes import EngineState, IsaError
from systolica.hdl.axi import RESP_DECERR, RESP_OKAY, RESP_SLVERR
from systolica.hdl.regs import RegisterFile, window_bytes
from systolica.config import ChipConfig, NocConfig
from systolica.registers import Field, RegisterMap, tile_register_map
from systolica.testbench.axilite import AxiLiteHost
from systolica.testbench.sim import run_simulation

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def small_map():
    regs = RegisterMap("demo", doc="a demo map")
    regs.add("CTRL", [Field("go", 1, "pulse", "go"), Field("mode", 3, "rw", "mode", reset=5),
                      Field("level", 8, "rw", "level", lsb=8, reset=0x3C)], "control")
    regs.add("STAT", [Field("busy", 1, "ro", "busy"), Field("count", 16, "ro", "count", lsb=16)],
             "status")
    regs.add("WIDE", [Field("value", 32, "rw", "all bits", reset=0xDEADBEEF)], "wide",
             offset=0x40)
    return regs


def test_declaration_rules():
    regs = small_map()
    assert regs.address("WIDE") == 0x40
    assert regs["CTRL"].reset == (5 << 1) | (0x3C << 8)
    assert regs["CTRL"].encode(go=1, level=7) == 1 | (7 << 8)
    assert regs["STAT"].decode((3 << 16) | 1) == {"busy": 1, "count": 3}
    with pytest.raises(ValueError, match="overlaps"):
        regs.add("BAD", [Field("a", 4, "rw", ""), Field("b", 4, "rw", "", lsb=2)], "")
    with pytest.raises(ValueError, match="mixes ro"):
        regs.add("BAD2", [Field("a", 4, "rw", ""), Field("b", 4, "ro", "")], "")
    with pytest.raises(ValueError, match="offset 0x40 is taken"):
        regs.add("BAD3", [Field("a", 4, "rw", "")], "", offset=0x40)
    with pytest.raises(ValueError, match="access"):
        Field("x", 1, "wo", "")
    with pytest.raises(ValueError, match="reset"):
        Field("x", 2, "rw", "", reset=4)
    with pytest.raises(ValueError, match=r"CTRL.mode must be in"):
        regs["CTRL"].encode(mode=8)


def test_window_bytes():
    assert window_bytes(small_map()) == 0x80            # last register ends at 0x44
    assert window_bytes(tile_register_map()) == 0x800   # SEM31 ends at 0x480


def test_tile_map_contents():
    regs = tile_register_map()
    for engine in ("DMA0", "DMA1", "PE", "ACT"):
        for suffix in ("BASE", "LENGTH", "STATE", "PC", "RETIRED", "BUSY_CYCLES", "ERROR"):
            assert f"{engine}_{suffix}" in regs
    assert regs["PE_STATE"].decode(EngineState.WAITING.value | (5 << 8)) == {
        "state": EngineState.WAITING, "semaphore": 5}
    assert regs["ACT_ERROR"].decode(IsaError.BAD_N.value)["code"] is IsaError.BAD_N
    header = regs.c_header()
    assert "#define SYSTOLICA_TILE_CONTROL_ABORT_MASK 0x00000002u" in header
    assert header.count("#ifndef") == 1


def test_chip_tile_map_adds_its_group():
    chip = ChipConfig(noc=NocConfig(width=3, height=2))
    regs, plain = tile_register_map(chip), tile_register_map(chip.tile)
    extra = [r.name for r in regs if r.name not in plain]
    assert extra == ["TILE_POSITION", "REMOTE_ERRORS", "REMOTE_FLITS_SENT",
                     "REMOTE_FLITS_RECEIVED", "NOC_REFUSED"]
    for r in plain:
        assert regs[r.name].offset == r.offset and regs[r.name].fields == r.fields
    assert all(regs[name].access == "ro" for name in extra)
    assert regs["TILE_POSITION"].decode(2 | 1 << 8 | 3 << 16 | 2 << 24) == {
        "x": 2, "y": 1, "width": 3, "height": 2}
    assert regs["NOC_REFUSED"].field("count")[0].width == chip.noc.error_counter_bits
    with pytest.raises(TypeError, match="TileConfig or ChipConfig"):
        tile_register_map(chip.noc)


def test_registers_md_is_current():
    # the tile map first, then the chip's host address space (systolica/chip_registers.py)
    from systolica.chip_registers import registers_markdown
    text = (DOCS / "registers.md").read_text()
    assert text.startswith(tile_register_map(ChipConfig()).markdown("Tile register map"))
    assert text == registers_markdown(), ("docs/registers.md is stale: "
                                          "python -m systolica.registers --markdown > "
                                          "docs/registers.md")


@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_register_file(stall):
    regs = small_map()
    dut = RegisterFile(regs)
    rng = np.random.default_rng(7)
    host = AxiLiteHost(dut.bus, rng=rng, stall=stall)
    seen_pulses = []

    async def monitor(ctx):
        async for _, _, go in ctx.tick().sample(dut.ctrl.go):
            if go:
                seen_pulses.append(1)

    async def bench(ctx):
        ctx.set(dut.stat.busy, 1)
        ctx.set(dut.stat.count, 0x1234)
        assert await host.read(ctx, 0x0) == (regs["CTRL"].reset, RESP_OKAY)
        assert await host.read(ctx, 0x40) == (0xDEADBEEF, RESP_OKAY)
        assert await host.read(ctx, 0x4) == ((0x1234 << 16) | 1, RESP_OKAY)
        assert await host.write(ctx, 0x0, 1 | (2 << 1) | (0x77 << 8)) == RESP_OKAY
        assert ctx.get(dut.ctrl.mode) == 2 and ctx.get(dut.ctrl.level) == 0x77
        assert await host.read(ctx, 0x0) == ((2 << 1) | (0x77 << 8), RESP_OKAY)  # pulse reads 0
        # byte strobes: only byte 1 (level) is written
        assert await host.write(ctx, 0x0, (0x11 << 8) | (7 << 1), strb=0b0010) == RESP_OKAY
        assert ctx.get(dut.ctrl.mode) == 2 and ctx.get(dut.ctrl.level) == 0x11
        assert await host.write(ctx, 0x4, 0) == RESP_SLVERR            # read-only: refused
        assert await host.read(ctx, 0x4) == ((0x1234 << 16) | 1, RESP_OKAY)
        assert await host.write(ctx, 0x8, 1) == RESP_SLVERR            # a hole in the window
        assert await host.read(ctx, 0x3C) == (0, RESP_SLVERR)
        assert await host.write(ctx, 0x80, 1) == RESP_DECERR           # beyond the window
        assert await host.read(ctx, 0xFFFC) == (0, RESP_DECERR)
        # a refused write changed nothing
        assert ctx.get(dut.ctrl.mode) == 2 and ctx.get(dut.ctrl.level) == 0x11
        assert await host.read(ctx, 0x40) == (0xDEADBEEF, RESP_OKAY)
        assert await host.write(ctx, 0x40, 0x01020304) == RESP_OKAY
        assert await host.read(ctx, 0x40) == (0x01020304, RESP_OKAY)

    run_simulation(dut, [bench], processes=[monitor], max_cycles=2000)
    assert len(seen_pulses) == 1
