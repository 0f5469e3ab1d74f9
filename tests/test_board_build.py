"""``systolica build --board``: real bitstreams with amaranth-boards and the YoWASP tools (slow:
minutes each on the 2-core machine), and the host client's pyserial path."""

import json

import pytest

from systolica.board import Board
from systolica.board.build import BOARDS
from systolica.cli import main

#: The smallest tile that still runs every test program: 2x2 array, 2 partitions.
SMALL = ["--rows", "2", "--cols", "2", "--partitions", "2", "--depth", "64",
         "--bank_rows", "16"]
REPORT_KEYS = {"board", "luts", "ffs", "brams", "dsps", "fmax_mhz", "clock_mhz", "seconds"}


@pytest.mark.slow
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_build_writes_a_bitstream_and_a_report(board, tmp_path, capsys):
    out = tmp_path / board
    status = main(["build", "--board", board, *SMALL, "--freq", "25", "--dram-kib", "8",
                   "-o", str(out), "--allow-timing-fail"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    name = "systolica_" + board.replace("-", "_")
    bit = out / f"{name}.bit"
    assert bit.stat().st_size > 100_000
    report = json.loads((out / f"{name}.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["board"] == board and report["clock_mhz"] == 25.0
    assert report["luts"] > 1000 and report["ffs"] > 1000 and report["brams"] >= 4
    assert report["dsps"] >= 4 and report["fmax_mhz"] > 0
    assert report["dram_bytes"] == 8192
    assert f"wrote {bit}" in printed.out


@pytest.mark.slow
def test_default_build_meets_its_clock(tmp_path, capsys):
    """What the README promises: `systolica build --board ulx3s-85f` with nothing else (the
    board's profile, a 4x4 tile) meets the board's default clock without --allow-timing-fail,
    and writes the .bit, the JSON report and the config's TOML (about 15 minutes)."""
    out = tmp_path / "default"
    status = main(["build", "--board", "ulx3s-85f", "-o", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    report = json.loads((out / "systolica_ulx3s_85f.json").read_text())
    assert report["timing_met"] and report["clock_mhz"] == BOARDS["ulx3s-85f"].clock_mhz
    assert report["fmax_mhz"] >= report["clock_mhz"]
    assert report["dsps"] <= 156 and report["luts"] <= 83_640 and report["brams"] <= 208
    assert (out / "systolica_ulx3s_85f.bit").stat().st_size > 100_000
    assert report["config"]["array"]["rows"] == 4 and report["dram_bytes"] == 32 * 1024
    assert (out / report["config_file"]).is_file()


def test_board_on_a_missing_port_is_a_clear_error():
    serial = pytest.importorskip("serial")
    with pytest.raises(serial.SerialException, match="no-such-port"):
        Board("/dev/no-such-port")
