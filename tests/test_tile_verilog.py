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
    body = verilog[verilog.index(f"module {top}("):]
    body = body[:body.index("endmodule")]
    # the port list of the module header (the body also declares function inputs)
    names = [n.strip() for n in body[body.index("(") + 1:body.index(");")].split(",")]
    declared = {name: (kind, width) for kind, width, name in re.findall(
        r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(\[\d+:0\]\s*)?\\?(\S+?)\s*;", body, re.M)}
    inputs = [(n, declared[n][1]) for n in names if declared[n][0] == "input"]
    outputs = [n for n in names if declared[n][0] == "output"]
    widths = {n: declared[n][1] for n in outputs}
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


def test_dma_verilog_x_free_under_icarus(tmp_path):
    stdout = x_free(tmp_path, "dma", "systolica_dma")
    assert "PASS" in stdout, stdout[-3000:]


def test_tile_verilog_x_free_under_icarus(tmp_path):
    stdout = x_free(tmp_path, "tile", "systolica_tile",
                    ["--rows", "4", "--cols", "4", "--partitions", "4"])
    assert "PASS" in stdout, stdout[-3000:]
