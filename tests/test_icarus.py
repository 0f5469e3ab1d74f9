"""Every registered block's generated Verilog in a 4-state simulator (Icarus Verilog).

Under ``-g2005`` and ``-g2012`` the Verilog must compile and, with every input held at 0, come out
of reset with no X or Z on any output, cycle after cycle: no output may depend on a register that
was never written, and no combinational logic may wait for an event that a 4-state simulator never
raises (see synth/verilog.py). The testbench is generated from ``manifest.json`` alone, as an
integrator's would be. CI installs Debian's ``iverilog`` (.ci/run).
"""

import json
import shutil
import subprocess

import pytest

from systolica.cli import main

from test_cli import BLOCK_PARAMS      # the default chip only with -m slow

#: Cycles held in reset, then cycles checked after reset.
RESET_CYCLES = 4
CHECK_CYCLES = 8


def icarus():
    path = shutil.which("iverilog"), shutil.which("vvp")
    assert all(path), "Icarus Verilog is a test dependency (apt-get install iverilog; .ci/run)"
    return path


def reset_testbench(manifest):
    """A Verilog testbench for the manifest's top: inputs at 0, reset, then every output checked
    for X/Z at each of CHECK_CYCLES clock edges; prints ``X-FREE`` or one line per bad output."""
    decls, conns, checks = [], [], []
    for port in manifest["ports"]:
        name, width = port["name"], port["width"]
        if name in ("clk", "rst"):
            conns.append(f".{name}({name})")
        elif port["direction"] == "input":
            decls.append(f"  reg [{width - 1}:0] in_{name} = {width}'d0;")
            conns.append(f".{name}(in_{name})")
        else:
            decls.append(f"  wire [{width - 1}:0] out_{name};")
            conns.append(f".{name}(out_{name})")
            checks.append(f"      if (^out_{name} === 1'bx) begin\n"
                          f"        $display(\"X at cycle %0d on {name}: %b\", cycle, out_{name});"
                          f"\n        bad = bad + 1;\n      end")
    return "\n".join([
        "`timescale 1ns/1ps",
        "module reset_tb;",
        "  reg clk = 1'b0;",
        "  reg rst = 1'b1;",
        "  integer bad = 0;",
        "  integer cycle;",
        *decls,
        f"  {manifest['top']} dut({', '.join(conns)});",
        "  always #5 clk = ~clk;",
        "  initial begin",
        f"    repeat ({RESET_CYCLES}) @(posedge clk);",
        "    #1 rst = 1'b0;",
        f"    for (cycle = 0; cycle < {CHECK_CYCLES}; cycle = cycle + 1) begin",
        "      @(posedge clk); #1;",
        *checks,
        "    end",
        "    if (bad == 0) $display(\"X-FREE\");",
        "    $finish;",
        "  end",
        "endmodule",
        "",
    ])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Verilog + manifest + testbench of each block, generated once per module."""
    done = {}

    def get(block):
        if block not in done:
            out = tmp_path_factory.mktemp(block)
            assert main(["verilog", "--block", block, "-o", str(out)]) == 0
            manifest = json.loads((out / "manifest.json").read_text())
            (out / "reset_tb.v").write_text(reset_testbench(manifest))
            done[block] = out, manifest
        return done[block]
    return get


@pytest.mark.parametrize("standard", ["2005", "2012"])
@pytest.mark.parametrize("block", BLOCK_PARAMS)
def test_x_free_from_reset(generated, block, standard, capsys):
    iverilog, vvp = icarus()
    out, manifest = generated(block)
    sim = out / f"sim{standard}"
    compiled = subprocess.run(
        [iverilog, f"-g{standard}", "-o", str(sim), "-s", "reset_tb", str(out / "reset_tb.v"),
         str(out / f"{manifest['top']}.v")], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    assert "error" not in compiled.stderr.lower(), compiled.stderr[-3000:]
    ran = subprocess.run([vvp, "-n", str(sim)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip().splitlines()[-1] == "X-FREE", ran.stdout[-3000:]


def test_generated_verilog_has_no_time_zero_trigger(generated):
    # the construct that raises no event under -g2012 is gone, not merely tolerated
    out, manifest = generated("psum")
    text = (out / f"{manifest['top']}.v").read_text()
    assert "always @*" not in text and "always @(posedge clk)" in text


def test_the_testbench_sees_an_x():
    # the check itself: a block with an output from a never-initialised register reports X
    import tempfile
    from pathlib import Path
    iverilog, vvp = icarus()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bad.v").write_text(
            "module bad(input clk, input rst, input [1:0] a, output [3:0] y);\n"
            "  reg [3:0] r;\n  always @(posedge clk) if (a[0]) r <= 4'd1;\n"
            "  assign y = r;\nendmodule\n")
        manifest = {"top": "bad", "ports": [
            {"name": "clk", "direction": "input", "width": 1},
            {"name": "rst", "direction": "input", "width": 1},
            {"name": "a", "direction": "input", "width": 2},
            {"name": "y", "direction": "output", "width": 4}]}
        (tmp / "tb.v").write_text(reset_testbench(manifest))
        subprocess.run([iverilog, "-g2012", "-o", str(tmp / "sim"), str(tmp / "tb.v"),
                        str(tmp / "bad.v")], check=True)
        ran = subprocess.run([vvp, "-n", str(tmp / "sim")], capture_output=True, text=True)
        assert "X at cycle 0 on y: xxxx" in ran.stdout and "X-FREE" not in ran.stdout
