"""The floating-point blocks' generated Verilog (bf16 / fp8 configs; the default-config checks in
test_icarus.py and test_cli.py are integer): Verilator lint-clean, and X-free from reset in
Icarus under -g2005 and -g2012."""

import json
import subprocess

import pytest

from systolica.cli import main
from test_cli import verilator_binary
from test_icarus import icarus, reset_testbench

FLOAT_FLAGS = {"bf16": ["--moving-dtype", "bfloat16", "--stationary-dtype", "bfloat16"],
               "e4m3_e5m2": ["--moving-dtype", "float8_e4m3", "--stationary-dtype",
                             "float8_e5m2"]}
CASES = [("tensor_engine", "bf16"), ("tensor_engine", "e4m3_e5m2"), ("psum", "bf16"),
         ("act", "bf16"), ("tile", "e4m3_e5m2")]
SMALL = ["--rows", "2", "--cols", "2"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    done = {}

    def get(block, dtypes):
        if (block, dtypes) not in done:
            out = tmp_path_factory.mktemp(f"{block}_{dtypes}")
            extra = ["--partitions", "2", "--bank-rows", "16"] if block == "tile" else []
            assert main(["verilog", "--block", block, *SMALL, *extra, *FLOAT_FLAGS[dtypes],
                         "-o", str(out)]) == 0
            manifest = json.loads((out / "manifest.json").read_text())
            (out / "reset_tb.v").write_text(reset_testbench(manifest))
            done[block, dtypes] = out, manifest
        return done[block, dtypes]
    return get


@pytest.mark.parametrize("block,dtypes", CASES)
def test_float_verilog_is_lint_clean(generated, block, dtypes):
    out, manifest = generated(block, dtypes)
    top = manifest["top"]
    proc = subprocess.run([verilator_binary(), "--lint-only", "-Wno-fatal", "--top-module", top,
                           str(out / f"{top}.v")], capture_output=True, text=True)
    assert proc.returncode == 0 and "%Error" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("standard", ["2005", "2012"])
@pytest.mark.parametrize("block,dtypes", CASES)
def test_float_verilog_x_free_from_reset(generated, block, dtypes, standard):
    iverilog, vvp = icarus()
    out, manifest = generated(block, dtypes)
    sim = out / f"sim{standard}"
    compiled = subprocess.run(
        [iverilog, f"-g{standard}", "-o", str(sim), "-s", "reset_tb", str(out / "reset_tb.v"),
         str(out / f"{manifest['top']}.v")], capture_output=True, text=True)
    assert compiled.returncode == 0 and "error" not in compiled.stderr.lower(), \
        compiled.stderr[-3000:]
    ran = subprocess.run([vvp, "-n", str(sim)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip().splitlines()[-1] == "X-FREE", ran.stdout[-3000:]
