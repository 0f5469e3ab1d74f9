"""benchmarks/fmax.py: arguments, the critical-path summary, and (slow) one real run."""

import importlib.util
import json
from pathlib import Path

import pytest


def load_fmax():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "fmax.py"
    spec = importlib.util.spec_from_file_location("fmax_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv,message", [(["--blocks", "nosuch"], "unknown block 'nosuch'"),
                                          (["--seeds", "1,x"], "--seeds must be")])
def test_bad_arguments_name_the_parameter(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_fmax().main(argv)
    assert message in capsys.readouterr().err


def test_critical_path_summary(tmp_path):
    steps = [{"type": "clk-to-q", "delay": 0.5, "from": {"cell": "a"}, "to": {"cell": "a"}},
             {"type": "routing", "delay": 1.25, "from": {"cell": "a"}, "to": {"cell": "b"}},
             {"type": "logic", "delay": 0.24, "from": {"cell": "b"}, "to": {"cell": "b"}},
             {"type": "logic", "delay": 0.0, "from": {"cell": "b"}, "to": {"cell": "b"}},
             {"type": "setup", "delay": 0.01, "from": {"cell": "b"}, "to": {"cell": "c"}}]
    (tmp_path / "report.json").write_text(json.dumps({"critical_paths": [{"path": steps}]}))
    fmax = load_fmax()
    assert fmax.critical_path(str(tmp_path)) == {"from": "a", "to": "c", "delay_ns": 2.0,
                                                 "logic_levels": 1}
    assert fmax.critical_path(str(tmp_path / "missing")) is None


@pytest.mark.slow
def test_router_run_prints_the_documented_keys(capsys):
    load_fmax().main(["--blocks", "router"])
    result = json.loads(capsys.readouterr().out)["router"]
    for key in ("luts", "ffs", "dsps", "brams", "fmax_mhz", "fmax_min", "fmax_median"):
        assert key in result
    assert result["luts"] > 0 and result["fmax_mhz"] > 10
    assert result["critical_path"]["delay_ns"] > 0
