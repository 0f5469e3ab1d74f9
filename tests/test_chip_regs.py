# amaranth: UnusedElaboratable=no
"""The chip's host address space: the declaration (windows, chip registers, config rules, C
header) and the gateware's answers on the host port — every chip register read (reset values)
and written, every tile window reached, unmapped accesses (DECERR / SLVERR) changing nothing,
and the chip-wide CONTROL."""

import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil

from systolica.chip_registers import (CHIP_MAGIC, CHIP_MAP_VERSION, HostMap, c_header,
                                      chip_register_map, window_bytes)
from systolica.config import (ArrayConfig, ChipConfig, ConfigError, HostConfig, NocConfig,
                              PsumConfig, SbufConfig, TileConfig)
from systolica.hdl.axi import RESP_DECERR, RESP_OKAY, RESP_SLVERR
from systolica.hdl.chip import Chip
from systolica.isa import ISA_VERSION, fingerprint
from systolica.registers import TILE_MAGIC, tile_register_map
from systolica.testbench.axilite import AxiLiteHost
from systolica.testbench.sim import run_simulation

TILE = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                  psum=PsumConfig(banks=2, bank_rows=16))


def test_windows_follow_the_contract():
    chip = ChipConfig(tile=TILE, noc=NocConfig(width=3, height=2))
    hmap = HostMap(chip)
    tile_map = tile_register_map(TILE)
    assert hmap.window_bytes == window_bytes(tile_map) == 0x800     # SEM31 ends at 0x480
    assert [w.index for w in hmap.windows] == list(range(7))
    assert hmap.chip.base == 0 and hmap.chip.tile is None
    for y in range(2):
        for x in range(3):
            win = hmap.tile(x, y)
            assert win.index == 1 + y * 3 + x and win.base == win.index * 0x800
            assert win.address("PE_LENGTH") == win.base + tile_map.address("PE_LENGTH")
    assert hmap.bytes == 7 * 0x800
    with pytest.raises(ValueError, match=r"\(3, 0\) is outside the 3x2 mesh"):
        hmap.tile(3, 0)


def test_chip_registers_declared_once():
    chip = ChipConfig(tile=TILE)
    regs = chip_register_map(chip)
    names = [r.name for r in regs]
    assert names == ["ID", "VERSION", "FINGERPRINT", "MESH", "TILES", "WINDOW", "CONTROL",
                     "STATUS", "NOC_STATUS", "RUNNING0", "DONE0", "HALTED0"]
    # CONTROL has exactly the tile's CONTROL fields (one write reaches both)
    assert regs["CONTROL"].placed == tile_register_map(TILE)["CONTROL"].placed
    assert all(r.access == "ro" for r in regs if r.name != "CONTROL")
    assert regs["RUNNING0"].field("tiles")[0].width == 4
    # 36 tiles: two words per bitmap, the second 4 bits wide
    big = chip_register_map(ChipConfig(tile=TILE, noc=NocConfig(width=6, height=6),
                                       host=HostConfig(addr_width=17)))
    assert [r.name for r in big if r.name.startswith("DONE")] == ["DONE0", "DONE1"]
    assert big["DONE1"].offset == big["DONE0"].offset + 4
    assert big["DONE1"].field("tiles")[0].width == 4


def test_config_refuses_a_host_space_too_small():
    with pytest.raises(ConfigError, match=r"host.addr_width must be >= 18 for a 8x8 chip "
                                          r"\(65 host windows of 2048 bytes"):
        ChipConfig(tile=TILE, noc=NocConfig(width=8, height=8))
    ChipConfig(tile=TILE, noc=NocConfig(width=8, height=8), host=HostConfig(addr_width=18))
    # 16 bits hold 32 windows of 2 KiB: 31 tiles at most
    ChipConfig(tile=TILE, noc=NocConfig(width=2, height=15))
    with pytest.raises(ConfigError, match="host.addr_width must be >= 17 for a 2x16 chip"):
        ChipConfig(tile=TILE, noc=NocConfig(width=2, height=16))
    with pytest.raises(ConfigError, match="host.data_width must be 32"):
        ChipConfig(tile=TILE, host=HostConfig(data_width=64))


def test_c_header_compiles_and_matches_the_map(tmp_path):
    chip = ChipConfig(tile=TILE, noc=NocConfig(width=3, height=2))
    hmap = HostMap(chip)
    (tmp_path / "chip.h").write_text(c_header(chip))
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "chip.h"\nint main(void) {\n'
        '  printf("%u %u %u %u %u\\n", SYSTOLICA_CHIP_TILE_WINDOW(2, 1), '
        'SYSTOLICA_CHIP_CONTROL_OFFSET, SYSTOLICA_CHIP_DONE0_OFFSET, '
        'SYSTOLICA_TILE_PE_LENGTH_OFFSET, SYSTOLICA_CHIP_WINDOW_BYTES);\n  return 0;\n}\n')
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(tmp_path / "main"),
                    str(tmp_path / "main.c")], check=True, cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, check=True)
    chip_map, tile_map = hmap.chip.map, hmap.tile(0, 0).map
    assert out.stdout.split() == [str(v) for v in (
        hmap.tile(2, 1).base, chip_map.address("CONTROL"), chip_map.address("DONE0"),
        tile_map.address("PE_LENGTH"), hmap.window_bytes)]


# --- the gateware, through the host port -------------------------------------------------------

def _expected_chip_values(chip):
    """Reset values of the chip registers, from the spec (docs/chip.md, chip_registers)."""
    hmap = HostMap(chip)
    return {"ID": CHIP_MAGIC, "VERSION": CHIP_MAP_VERSION | (ISA_VERSION << 16),
            "FINGERPRINT": fingerprint(chip),
            "MESH": chip.noc.width | (chip.noc.height << 8), "TILES": chip.tiles,
            "WINDOW": hmap.window_bits, "CONTROL": 0, "STATUS": 0, "NOC_STATUS": 0,
            "RUNNING0": 0, "DONE0": 0, "HALTED0": 0}


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_host_port(stall):
    # a 2x1 chip (non-square), no DRAM: the tiles are never started with a program
    seed = 11
    print(f"seed={seed}")
    chip = ChipConfig(tile=TILE, noc=NocConfig(width=2, height=1))
    dut = Chip(config=chip)
    hmap = dut.host_map
    chip_map = hmap.chip.map
    host = AxiLiteHost(dut.host, rng=np.random.default_rng(seed), stall=stall)
    expected = _expected_chip_values(chip)
    assert set(expected) == {r.name for r in chip_map}
    tiles = [hmap.tile(0, 0), hmap.tile(1, 0)]

    async def bench(ctx):
        # every chip register: reset value; a write to a read-only one is refused and changes
        # nothing
        for reg in chip_map:
            assert await host.read(ctx, reg.offset) == (expected[reg.name], RESP_OKAY), reg.name
            if reg.access == "ro":
                assert await host.write(ctx, reg.offset, 0xFFFFFFFF) == RESP_SLVERR, reg.name
                assert await host.read(ctx, reg.offset) == (expected[reg.name], RESP_OKAY)
        # every tile window: its ID and fingerprint; a distinct value per tile, read back
        for i, win in enumerate(tiles):
            assert await host.read(ctx, win.address("ID")) == (TILE_MAGIC, RESP_OKAY)
            assert await host.read(ctx, win.address("FINGERPRINT")) == \
                (fingerprint(chip), RESP_OKAY)
            assert await host.write(ctx, win.address("DMA0_BASE"), 0x1000 * (i + 1)) == RESP_OKAY
            assert await host.write(ctx, win.address("PE_LENGTH"), 7 + i) == RESP_OKAY
        # unmapped: holes inside windows answer SLVERR, outside every window DECERR; reads 0
        holes = [chip_map.address("NOC_STATUS") + 4, 0x3C, 0x44, 0x7FC,
                 tiles[0].base + 0x7FC, tiles[1].base + 0x484]
        beyond = [3 * hmap.window_bytes, 3 * hmap.window_bytes + 0x10, 0xFFFC]
        for addr in holes:
            assert await host.read(ctx, addr) == (0, RESP_SLVERR), hex(addr)
            assert await host.write(ctx, addr, 0xFFFFFFFF) == RESP_SLVERR, hex(addr)
        for addr in beyond:
            assert await host.read(ctx, addr) == (0, RESP_DECERR), hex(addr)
            assert await host.write(ctx, addr, 0xFFFFFFFF) == RESP_DECERR, hex(addr)
        for win in tiles:                                  # a tile's read-only register
            assert await host.write(ctx, win.address("CYCLES"), 1234) == RESP_SLVERR
            assert await host.read(ctx, win.address("CYCLES")) == (0, RESP_OKAY)
        # nothing changed by the refused accesses, nothing leaked across windows
        for i, win in enumerate(tiles):
            assert await host.read(ctx, win.address("DMA0_BASE")) == (0x1000 * (i + 1), RESP_OKAY)
            assert await host.read(ctx, win.address("PE_LENGTH")) == (7 + i, RESP_OKAY)
            assert await host.read(ctx, win.address("DMA1_BASE")) == (0, RESP_OKAY)
        for reg in chip_map:
            assert await host.read(ctx, reg.offset) == (expected[reg.name], RESP_OKAY), reg.name
        # chip-wide start, every queue length 0: both tiles start in the same cycle and are
        # done at once
        for win in tiles:
            assert await host.write(ctx, win.address("PE_LENGTH"), 0) == RESP_OKAY
        assert await host.write(ctx, chip_map.address("CONTROL"),
                                chip_map["CONTROL"].encode(start=1)) == RESP_OKAY
        assert await host.read(ctx, chip_map.address("DONE0")) == (0b11, RESP_OKAY)
        assert await host.read(ctx, chip_map.address("RUNNING0")) == (0, RESP_OKAY)
        assert await host.read(ctx, chip_map.address("STATUS")) == \
            (chip_map["STATUS"].encode(done=1), RESP_OKAY)
        for win in tiles:
            status, resp = await host.read(ctx, win.address("STATUS"))
            assert resp == RESP_OKAY and win.map["STATUS"].decode(status)["done"] == 1
        # clear_errors reaches every tile (OKAY from all of them)
        assert await host.write(ctx, chip_map.address("CONTROL"),
                                chip_map["CONTROL"].encode(clear_errors=1)) == RESP_OKAY
        assert ctx.get(dut.running) == 0

    run_simulation(dut, [bench], max_cycles=20_000)



def test_a_wider_host_address_builds_matching_tile_ports():
    # a chip's tile builds its host port and its register file from the chip's host config
    chip = ChipConfig(tile=TILE, noc=NocConfig(width=2, height=1), host=HostConfig(addr_width=18))
    top = Chip(config=chip)
    assert top.host.aw.payload.addr.shape().width == 18
    rtlil.convert(top)
