"""benchmarks/gemm.py on one tile (model backend): the JSON keys issue 11 asks for, the default
config unless told otherwise, and where the SBUF depth came from."""

import json
import runpy
from pathlib import Path

import pytest

from systolica.config import SbufConfig, TileConfig, default_config

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "gemm.py"
ISSUE_KEYS = ("m", "k", "n", "rows", "cols", "cycles", "predicted_cycles", "useful_macs",
              "utilization", "dram_bytes", "min_dram_bytes", "bit_exact", "plan")


def bench(capsys, *argv):
    runpy.run_path(str(BENCH))["main"](list(argv))
    return json.loads(capsys.readouterr().out)


def test_no_options_is_the_default_config(capsys):
    out = bench(capsys, "--m", "19", "--k", "33", "--n", "10")
    for key in ISSUE_KEYS:
        assert key in out
    default = TileConfig.from_sections(default_config())
    assert (out["rows"], out["cols"]) == (default.array.rows, default.array.cols)
    assert out["sbuf_depth"] == default.sbuf.depth == SbufConfig().depth == 2048
    assert out["sbuf_depth_from"] == "config"
    assert out["dma_data_width"] == default.dma.data_width
    assert out["sbuf_reads"] == default.dma.sbuf_reads
    assert out["bit_exact"] is True and out["cycles_measured"] is False
    assert out["useful_macs"] == 19 * 33 * 10
    assert out["dram_bytes"] >= out["min_dram_bytes"] == 19 * 33 + 33 * 10 + 19 * 10 * 4
    assert 0 < out["utilization"] <= 1
    assert out["plan"]["m"] == 19 and out["plan"]["k"] == 33 and out["plan"]["n"] == 10


def test_depth_from_option_auto_and_config_file(capsys):
    shape = ("--m", "40", "--k", "24", "--n", "16")
    given = bench(capsys, *shape, "--sbuf-depth", "512")
    assert (given["sbuf_depth"], given["sbuf_depth_from"]) == (512, "option")
    auto = bench(capsys, *shape, "--sbuf-depth", "auto")
    assert auto["sbuf_depth_from"] == "auto" and auto["sbuf_depth"] in (256, 512, 1024, 2048, 4096)
    assert auto["sbuf_depth"] == 256         # a small GEMM gains nothing from a deeper SBUF
    sixteen = bench(capsys, *shape, "--config", "configs/tile16x16.toml")
    assert (sixteen["rows"], sixteen["sbuf_depth"], sixteen["sbuf_depth_from"]) == (16, 1024,
                                                                                    "config")
    for out in (given, auto, sixteen):
        assert out["bit_exact"] is True


@pytest.mark.parametrize("depth,message", [("x", "--sbuf-depth must be an integer or auto"),
                                           ("100", "sbuf.depth must be a power of two")])
def test_bad_depth_exits_2_naming_it(capsys, depth, message):
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(BENCH))["main"](["--m", "8", "--k", "8", "--n", "8",
                                            "--sbuf-depth", depth])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]      # after argparse's usage
    assert message in err and "Traceback" not in err
