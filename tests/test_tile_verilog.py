"""The tile's Verilog (``systolica verilog --block tile``) is X-free from reset under Icarus."""

import re
import shutil
import subprocess

import pytest

from systolica.cli import main

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")


def x_free(tmp_path, block, top, flags=()):
    out = tmp_path / block
    assert main(["verilog", "--block", block, *flags, "-o", str(out)]) == 0
    verilog = (out / f"{top}.v").read_text()
    header = verilog[verilog.index(f"module {top}("):]
    header = header[:header.index("endmodule")]
    ports = re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(\[\d+:0\]\s*)?\\?(\S+?)\s*;",
                       header, re.M)
    inputs = [(name, width) for kind, width, name in ports if kind == "input"]
    outputs = [name for kind, _, name in ports if kind == "output"]
    widths = {name: width for kind, width, name in ports if kind == "output"}
    assert outputs and any(name == "clk" for name, _ in inputs)

    def ident(name):
        return f"\\{name} " if not re.fullmatch(r"[A-Za-z_]\w*", name) else name
    decls = "\n".join(f"  reg {w or ''} r_{i};" for i, (n, w) in enumerate(inputs))
    wires = "\n".join(f"  wire {widths[n] or ''} o_{i};" for i, n in enumerate(outputs))
    conns = ",\n".join([f"    .{ident(n)}(r_{i})" for i, (n, _) in enumerate(inputs)] +
                       [f"    .{ident(n)}(o_{i})" for i, n in enumerate(outputs)])
    init = "\n".join(f"    r_{i} = 0;" for i, _ in enumerate(inputs))
    clk = next(i for i, (n, _) in enumerate(inputs) if n == "clk")
    rst = next(i for i, (n, _) in enumerate(inputs) if n == "rst")
    checks = "\n".join(f"      if (^o_{i} === 1'bx) begin $display(\"X on {n}\"); bad = 1; end"
                       for i, n in enumerate(outputs))
    tb = f"""`timescale 1ns/1ps
module tb;
{decls}
{wires}
  integer cycle; reg bad;
  {top} dut (
{conns}
  );
  initial begin
{init}
    bad = 0; r_{rst} = 1;
    #10 r_{clk} = 1; #10 r_{clk} = 0; #10 r_{clk} = 1; #10 r_{clk} = 0;
    r_{rst} = 0;
    for (cycle = 0; cycle < 60; cycle = cycle + 1) begin
      #10 r_{clk} = 1; #10 r_{clk} = 0;
{checks}
    end
    if (bad) $display("FAIL"); else $display("PASS");
    $finish;
  end
endmodule
"""
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "sim"), str(tmp_path / "tb.v"),
                    str(out / f"{top}.v")], check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", str(tmp_path / "sim")], capture_output=True, text=True,
                         timeout=600)
    return run.stdout


@pytest.mark.xfail(strict=True, reason="the DMA's AXI RREADY is X after reset under Icarus "
                   "(hdl/dma.py: the descriptor register is loaded from an uninitialised FIFO "
                   "memory); reported to the DMA owner")
def test_dma_verilog_x_free_under_icarus(tmp_path):
    stdout = x_free(tmp_path, "dma", "systolica_dma")
    assert "PASS" in stdout, stdout[-3000:]


def test_tile_verilog_x_free_under_icarus_except_dma_rready(tmp_path):
    stdout = x_free(tmp_path, "tile", "systolica_tile",
                    ["--rows", "4", "--cols", "4", "--partitions", "4"])
    lines = set(stdout.split())
    # every output but the one the DMA drives X (see the xfail above) is X-free
    assert {line for line in stdout.splitlines() if line.startswith("X on")} <= \
        {"X on axi__r__ready"}, stdout[-3000:]
    assert lines
