"""`systolica verilog --block chip`: the standalone Verilog an integrator drops into a block
design. Standard AXI port names (checked against the AMBA names, written out here from the
spec, not from the code), LOCK/CACHE/PROT/QOS tied off, Xilinx clock/reset attributes, the
register map in the manifest, Verilator lint, and an Icarus test bench written the way an
integrator would (from the port names alone): X-free from reset, the tie-offs, register reads
through ``s_axil_*`` in the chip and a tile window, DECERR / SLVERR, and a chip-wide start."""

import json
import subprocess

import pytest

from systolica.chip_registers import CHIP_MAGIC, HostMap
from systolica.cli import main
from systolica.config import ArrayConfig, ChipConfig, PsumConfig, SbufConfig, TileConfig
from systolica.registers import TILE_MAGIC

from test_cli import verilator_binary
from test_icarus import icarus

# the chip of these tests: 2x2 tiles of 4x4 arrays (the default chip is linted by the slow
# every-block tests)
FLAGS = ["--rows", "4", "--cols", "4", "--partitions", "4", "--depth", "64", "--bank-rows", "16"]
CHIP = ChipConfig(tile=TileConfig(array=ArrayConfig(rows=4, cols=4),
                                  sbuf=SbufConfig(partitions=4, depth=64),
                                  psum=PsumConfig(banks=2, bank_rows=16)))
TOP = "systolica_chip"

#: AMBA AXI4 master ports: suffix -> (direction seen from the chip, width or a parameter name)
AXI4_MASTER = {
    "awid": ("output", "id"), "awaddr": ("output", "addr"), "awlen": ("output", 8),
    "awsize": ("output", 3), "awburst": ("output", 2), "awlock": ("output", 1),
    "awcache": ("output", 4), "awprot": ("output", 3), "awqos": ("output", 4),
    "awvalid": ("output", 1), "awready": ("input", 1),
    "wdata": ("output", "data"), "wstrb": ("output", "strb"), "wlast": ("output", 1),
    "wvalid": ("output", 1), "wready": ("input", 1),
    "bid": ("input", "id"), "bresp": ("input", 2), "bvalid": ("input", 1),
    "bready": ("output", 1),
    "arid": ("output", "id"), "araddr": ("output", "addr"), "arlen": ("output", 8),
    "arsize": ("output", 3), "arburst": ("output", 2), "arlock": ("output", 1),
    "arcache": ("output", 4), "arprot": ("output", 3), "arqos": ("output", 4),
    "arvalid": ("output", 1), "arready": ("input", 1),
    "rid": ("input", "id"), "rdata": ("input", "data"), "rresp": ("input", 2),
    "rlast": ("input", 1), "rvalid": ("input", 1), "rready": ("output", 1),
}
#: AMBA AXI4-Lite slave ports
AXI4LITE_SLAVE = {
    "awaddr": ("input", "addr"), "awprot": ("input", 3), "awvalid": ("input", 1),
    "awready": ("output", 1), "wdata": ("input", "data"), "wstrb": ("input", "strb"),
    "wvalid": ("input", 1), "wready": ("output", 1), "bresp": ("output", 2),
    "bvalid": ("output", 1), "bready": ("input", 1), "araddr": ("input", "addr"),
    "arprot": ("input", 3), "arvalid": ("input", 1), "arready": ("output", 1),
    "rdata": ("output", "data"), "rresp": ("output", 2), "rvalid": ("output", 1),
    "rready": ("input", 1),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("chip")
    assert main(["verilog", "--block", "chip", *FLAGS, "-o", str(out)]) == 0
    return out, json.loads((out / "manifest.json").read_text())


def test_standard_axi_port_names(generated):
    _, manifest = generated
    dma, host = CHIP.tile.dma, CHIP.host
    sizes = {"id": dma.id_width, "addr": dma.addr_width, "data": dma.data_width,
             "strb": dma.data_width // 8}
    lite = {"addr": host.addr_width, "data": host.data_width, "strb": host.data_width // 8}
    expected = {"clk": ("input", 1), "rst": ("input", 1), "running": ("output", 4)}
    for y in range(2):
        for x in range(2):
            for suffix, (direction, width) in AXI4_MASTER.items():
                expected[f"m_axi_x{x}y{y}_{suffix}"] = (direction, sizes.get(width, width))
    for suffix, (direction, width) in AXI4LITE_SLAVE.items():
        expected[f"s_axil_{suffix}"] = (direction, lite.get(width, width))
    got = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert got == expected


def test_manifest_has_the_register_map(generated):
    _, manifest = generated
    regs, hmap = manifest["registers"], HostMap(CHIP)
    assert regs["host_port"] == "s_axil" and regs["window_bytes"] == hmap.window_bytes
    assert [(w["index"], w["base"], w["tile"]) for w in regs["windows"]] == \
        [(w.index, w.base, list(w.tile) if w.tile else None) for w in hmap.windows]
    chip_regs = {r["name"]: r for r in regs["maps"]["systolica_chip"]}
    assert chip_regs["CONTROL"]["offset"] == hmap.chip.map.address("CONTROL")
    assert [f["name"] for f in chip_regs["CONTROL"]["fields"]] == ["start", "abort",
                                                                   "clear_errors"]
    tile_regs = {r["name"]: r for r in regs["maps"]["systolica_tile"]}
    assert tile_regs["PE_STATE"]["fields"][0]["enum"]["HALTED"] > 0
    assert regs["errors"] == {"outside_every_window": "DECERR", "hole_in_window": "SLVERR",
                              "write_to_read_only": "SLVERR"}


def test_xilinx_clock_and_reset_attributes(generated):
    out, _ = generated
    text = (out / f"{TOP}.v").read_text()
    busifs = "m_axi_x0y0:m_axi_x1y0:m_axi_x0y1:m_axi_x1y1:s_axil"
    assert (f'(* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF {busifs}, ASSOCIATED_RESET rst" *)'
            '\n  input clk;') in text
    assert '(* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_HIGH" *)\n  input rst;' in text


def test_verilator_lint(generated):
    out, _ = generated
    proc = subprocess.run([verilator_binary(), "--lint-only", "-Wno-fatal", "--top-module", TOP,
                           str(out / f"{TOP}.v")], capture_output=True, text=True)
    assert proc.returncode == 0 and "%Error" not in proc.stderr, proc.stderr[-3000:]


def _integrator_bench(manifest):
    """A Verilog test bench from the port names: inputs 0, reset, then register accesses on
    s_axil_* while every output is checked for X/Z each cycle; prints PASS or the failures."""
    hmap = HostMap(CHIP)
    chip_map = hmap.chip.map
    decls, conns, xchecks = [], [], []
    for port in manifest["ports"]:
        name, width = port["name"], port["width"]
        if name in ("clk", "rst"):
            conns.append(f".{name}({name})")
        elif port["direction"] == "input":
            decls.append(f"  reg [{width - 1}:0] {name} = {width}'d0;")
            conns.append(f".{name}({name})")
        else:
            decls.append(f"  wire [{width - 1}:0] {name};")
            conns.append(f".{name}({name})")
            xchecks.append(f"    if (^{name} === 1'bx) begin $display(\"X on {name}\"); "
                           f"bad = bad + 1; end")
    tie_checks = []
    for y in range(2):
        for x in range(2):
            for ch in ("ar", "aw"):
                p = f"m_axi_x{x}y{y}_{ch}"
                tie_checks.append(f"    if ({p}lock !== 1'b0 || {p}cache !== 4'b0011 || "
                                  f"{p}prot !== 3'b000 || {p}qos !== 4'b0000) begin "
                                  f"$display(\"tie-off {p}\"); bad = bad + 1; end")
    accesses = [("read", 0, CHIP_MAGIC, 0), ("read", hmap.tile(1, 1).address("ID"), TILE_MAGIC, 0),
                ("read", 0xF000, 0, 3), ("read", 0x7FC, 0, 2),
                ("write", hmap.tile(0, 1).address("PE_LENGTH"), 0, 0),
                ("write", chip_map.address("TILES"), 0, 2),
                ("write", chip_map.address("CONTROL"), chip_map["CONTROL"].encode(start=1), 0),
                ("read", chip_map.address("DONE0"), 0b1111, 0),
                ("read", chip_map.address("TILES"), 4, 0)]
    steps = []
    for kind, addr, value, resp in accesses:
        if kind == "read":
            steps.append(f"    axil_read(16'h{addr:04x}, 32'h{value:08x}, 2'd{resp});")
        else:
            steps.append(f"    axil_write(16'h{addr:04x}, 32'h{value:08x}, 2'd{resp});")
    return "\n".join([
        "`timescale 1ns/1ps", "module chip_tb;", "  reg clk = 1'b0;", "  reg rst = 1'b1;",
        "  integer bad = 0;", "  integer n;", *decls,
        f"  {TOP} dut({', '.join(conns)});",
        "  always #5 clk = ~clk;",
        "  always @(posedge clk) if (!rst) begin",
        "    #1;", *xchecks, "  end",
        "  task axil_read(input [15:0] addr, input [31:0] want, input [1:0] want_resp);",
        "    begin",
        "      @(negedge clk); s_axil_araddr = addr; s_axil_arvalid = 1; s_axil_rready = 1;",
        "      n = 0; while (!(s_axil_arready === 1'b1) && n < 100) begin @(negedge clk); "
        "n = n + 1; end",
        "      @(negedge clk); s_axil_arvalid = 0;",
        "      n = 0; while (!(s_axil_rvalid === 1'b1) && n < 100) begin @(negedge clk); "
        "n = n + 1; end",
        "      if (n >= 100 || s_axil_rdata !== want || s_axil_rresp !== want_resp) begin",
        "        $display(\"read %h: %h resp %d, want %h resp %d\", addr, s_axil_rdata, "
        "s_axil_rresp, want, want_resp); bad = bad + 1; end",
        "      @(negedge clk); s_axil_rready = 0;",
        "    end",
        "  endtask",
        "  task axil_write(input [15:0] addr, input [31:0] data, input [1:0] want_resp);",
        "    begin",
        "      @(negedge clk); s_axil_awaddr = addr; s_axil_awvalid = 1; s_axil_wdata = data;",
        "      s_axil_wstrb = 4'hf; s_axil_wvalid = 1; s_axil_bready = 1;",
        "      n = 0; while (!(s_axil_awready === 1'b1 && s_axil_wready === 1'b1) && n < 100) "
        "begin @(negedge clk); n = n + 1; end",
        "      @(negedge clk); s_axil_awvalid = 0; s_axil_wvalid = 0;",
        "      n = 0; while (!(s_axil_bvalid === 1'b1) && n < 100) begin @(negedge clk); "
        "n = n + 1; end",
        "      if (n >= 100 || s_axil_bresp !== want_resp) begin",
        "        $display(\"write %h: resp %d, want %d\", addr, s_axil_bresp, want_resp); "
        "bad = bad + 1; end",
        "      @(negedge clk); s_axil_bready = 0;",
        "    end",
        "  endtask",
        "  initial begin",
        "    repeat (4) @(posedge clk);", "    #1 rst = 1'b0;",
        "    @(posedge clk); #2;", *tie_checks,
        *steps,
        "    repeat (4) @(posedge clk);",
        "    if (bad == 0) $display(\"PASS\");",
        "    $finish;",
        "  end",
        "endmodule", ""])


@pytest.mark.parametrize("standard", ["2005", "2012"])
def test_icarus_integrator_bench(generated, standard):
    iverilog, vvp = icarus()
    out, manifest = generated
    (out / "chip_tb.v").write_text(_integrator_bench(manifest))
    sim = out / f"chip{standard}"
    compiled = subprocess.run([iverilog, f"-g{standard}", "-o", str(sim), "-s", "chip_tb",
                               str(out / "chip_tb.v"), str(out / f"{TOP}.v")],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    ran = subprocess.run([vvp, "-n", str(sim)], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip().splitlines()[-1] == "PASS", ran.stdout[-3000:]
