# amaranth: UnusedElaboratable=no
"""Every tile of a chip is the same module: ``Chip(tile_module=...)`` instantiates one generated
tile module per position (the position on its ``tile_x`` / ``tile_y`` ports), and the compiled
backend verilates that module once (Verilator's hierarchical verilation): the Verilog, the
hier-block marking and the C++ glue that reaches the blocks' memories (docs/chip.md,
"Simulating the chip")."""

import re

import pytest

from systolica.config import ArrayConfig, ChipConfig, NocConfig, PsumConfig, SbufConfig, TileConfig
from systolica.hdl.chip import Chip
from systolica.hdl.lib.elaboratables import mark_used
from systolica.synth.verilog import component_ports
from systolica.testbench.chip_compiled import TILE_MODULE, chip_verilog
from systolica.testbench.compiled import BuildError
from systolica.testbench.compiled.cache import mark_hier_block
from systolica.testbench.compiled.glue import _glue_source, hier_instances

# a small chip: 3x2 tiles of 2x2 arrays (a non-square mesh: every position distinct)
TILE = TileConfig(array=ArrayConfig(rows=2, cols=2), sbuf=SbufConfig(partitions=2, depth=16),
                  psum=PsumConfig(banks=2, bank_rows=16))
CHIP = ChipConfig(tile=TILE, noc=NocConfig(width=3, height=2))


def _modules(verilog):
    return re.findall(r"^module (\S+)\s*\(", verilog, re.MULTILINE)


def test_tiles_share_one_module_in_the_chip_verilog():
    verilog = chip_verilog(Chip(config=CHIP, tile_module=TILE_MODULE))
    modules = _modules(verilog)
    assert modules.count(TILE_MODULE) == 1
    # no per-position copy of any tile logic: the tile's submodules appear once, under it
    assert not [m for m in modules if re.search(r"tile_\d+_\d+", m)]
    assert [m for m in modules if m.startswith(f"\\{TILE_MODULE}.")]
    instances = re.findall(rf"^\s*{TILE_MODULE} (tile_\d+_\d+) \(", verilog, re.MULTILINE)
    assert sorted(instances) == sorted(f"tile_{x}_{y}" for y in range(2) for x in range(3))
    for x, y in ((0, 0), (2, 0), (1, 1), (2, 1)):
        block = verilog[verilog.index(f"{TILE_MODULE} tile_{x}_{y} ("):]
        block = block[:block.index(");")]
        assert f".tile_x(8'h{x:02x})" in block and f".tile_y(8'h{y:02x})" in block
    # the tile module reads its position from its ports, as the chip drives them
    header = re.search(rf"^module {TILE_MODULE}\s*\(([^;]*)\);", verilog, re.MULTILINE)
    assert {"tile_x", "tile_y"} <= {p.strip() for p in header.group(1).split(",")}


def test_the_flat_chip_has_one_copy_per_tile():
    """Without ``tile_module`` every tile is its own module (the Amaranth simulator's chip and
    ``systolica verilog --block chip``), each with the position ports driven by the chip."""
    chip = Chip(config=CHIP)
    assert chip.tile_module is None
    ports = {name: width for name, _, width in component_ports(chip.tile(2, 1))}
    assert ports["tile_x"] == 8 and ports["tile_y"] == 8
    assert chip.tile(2, 1).position == (2, 1)
    mark_used(chip)       # its tiles' parts would warn when collected in a later test


def test_bad_tile_module_name():
    with pytest.raises(ValueError, match="tile_module must be a Verilog module name"):
        Chip(config=CHIP, tile_module="not a name")
    flat = Chip(config=CHIP)
    mark_used(flat)
    with pytest.raises(ValueError, match="needs a Chip with a tile_module"):
        chip_verilog(flat)


def test_mark_hier_block():
    verilog = "module top(a);\n  input a;\nendmodule\nmodule blk(clk, q);\n  input clk;\nendmodule\n"
    marked = mark_hier_block(verilog, "blk")
    assert "module blk(clk, q); /*verilator hier_block*/\n" in marked
    assert marked.count("hier_block") == 1
    with pytest.raises(BuildError, match="no module 'other'"):
        mark_hier_block(verilog, "other")


ROOT_HEADER = """
    VL_IN8(clk,0,0);
    QData/*63:0*/ dut__DOT__tile_0_0__DOT__handle___05FV;
    QData/*63:0*/ dut__DOT__tile_1_0__DOT__handle___05FV;
    VlUnpacked<QData/*63:0*/, 64> dut__DOT__mesh__DOT__buf;
"""
BLOCK_ROOT_HEADER = """
    VlUnpacked<QData/*63:0*/, 512> systolica_chip_tile__DOT__datapath__DOT__sbuf__DOT__mem;
    VlUnpacked<CData/*3:0*/, 8> __Vtable1_x;
"""


def test_glue_lists_every_hier_instance_memory():
    assert hier_instances(ROOT_HEADER) == [
        ("dut__DOT__tile_0_0__DOT__handle___05FV", "tile_0_0"),
        ("dut__DOT__tile_1_0__DOT__handle___05FV", "tile_1_0")]
    header = "VL_IN8(&clk,0,0);\n"
    glue = _glue_source(header, "Vdut", [("clk", "input", 1)], None, ROOT_HEADER,
                        ("Vsystolica_chip_tile", BLOCK_ROOT_HEADER))
    table = glue[glue.index("memories[] = {"):glue.index("num_memories")]
    entries = re.findall(r'\{"([^"]+)", (\d+), (\d+),', table)
    assert [(n, int(w), int(d)) for n, w, d in entries] == [
        ("mesh.buf", 64, 64),
        ("tile_0_0.datapath.sbuf.mem", 64, 512), ("tile_1_0.datapath.sbuf.mem", 64, 512)]
    assert "extern const int num_memories = 3;" in glue
    assert '#include "Vsystolica_chip_tile___024root.h"' in glue
    # each instance's memories are read on its own block model, through its DPI handle
    assert glue.count("TOP(d)->rootp->dut__DOT__tile_1_0__DOT__handle___05FV") == 2
    with pytest.raises(BuildError, match="no instance's handle"):
        _glue_source(header, "Vdut", [("clk", "input", 1)], None, "",
                     ("Vsystolica_chip_tile", BLOCK_ROOT_HEADER))


@pytest.mark.parametrize("backend", ["amaranth", pytest.param("verilator", marks=pytest.mark.slow)])
def test_every_tile_reports_its_position(backend):
    """TILE_POSITION of every tile, read through the host port: the position the chip drives
    onto the shared module's ports (the Amaranth chip and the hierarchical Verilator build)."""
    from systolica.testbench.axilite import RegisterHost
    from systolica.testbench.sim import run_simulation
    expected = {(x, y): {"x": x, "y": y, "width": 3, "height": 2}
                for y in range(2) for x in range(3)}
    if backend == "verilator":
        from systolica.testbench.backends import backend_available
        if not backend_available("verilator")[0]:
            pytest.skip("needs Verilator")
        from systolica.testbench.chip_compiled import compiled_chip
        from systolica.testbench.tile_compiled import CompiledRegisterHost
        chip, model = compiled_chip(CHIP)
        with model.open() as sim:
            got = {w.tile: CompiledRegisterHost(sim, w.map, CHIP.host.data_width, base=w.base)
                   .fields("TILE_POSITION") for w in chip.host_map.windows[1:]}
        assert got == expected
        return
    chip = Chip(config=CHIP)
    got = {}

    async def bench(ctx):
        for w in chip.host_map.windows[1:]:
            got[w.tile] = await RegisterHost(chip.host, w.map, base=w.base).fields(
                ctx, "TILE_POSITION")

    run_simulation(chip, [bench], max_cycles=2_000)
    assert got == expected
