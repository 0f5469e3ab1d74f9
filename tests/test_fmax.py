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
    from systolica.synth.flow import critical_path
    steps = [{"type": "clk-to-q", "delay": 0.5, "from": {"cell": "dp.pe_1_2.a_reg"},
              "to": {"cell": "dp.pe_1_2.a_reg"}},
             {"type": "routing", "delay": 1.25, "from": {"cell": "dp.pe_1_2.a_reg"},
              "to": {"cell": "b"}},
             {"type": "logic", "delay": 0.24, "from": {"cell": "b"}, "to": {"cell": "b"}},
             {"type": "logic", "delay": 0.0, "from": {"cell": "b"}, "to": {"cell": "b"}},
             {"type": "setup", "delay": 0.01, "from": {"cell": "b"},
              "to": {"cell": "dp.pe_1_3.psum_reg"}}]
    (tmp_path / "report.json").write_text(json.dumps({"critical_paths": [{"path": steps}]}))
    assert critical_path(str(tmp_path / "report.json"), "top") == {
        "from": "dp.pe_1_2.a_reg", "to": "dp.pe_1_3.psum_reg", "delay_ns": 2.0,
        "logic_levels": 1, "block": "top.dp"}
    assert critical_path(str(tmp_path / "missing.json"), "top") is None
    from systolica.synth.flow import format_report
    table = format_report({"target": "ecp5", "top": "top", "luts": 1, "ffs": 2, "dsps": 0,
                           "brams": 0, "carries": 0, "lutrams": 0, "fmax_mhz": 100.0,
                           "seconds": 1.0, "pnr_seconds": 2.0,
                           "critical_path": critical_path(str(tmp_path / "report.json"),
                                                          "top")})
    assert "dp.pe_1_2.a_reg" in table and "top.dp" in table and "logic levels" in table


def test_markdown_table_of_a_result(tmp_path, capsys):
    result = {"dma": {"luts": 1234, "ffs": 56, "dsps": 2, "brams": 0, "carries": 3,
                      "lutrams": 4, "fmax_mhz": 101.5, "fmax_min": 99.25, "fmax_median": 101.5,
                      "seeds": [1, 2, 3], "fmax_by_seed": [99.25, 101.5, 103.0],
                      "critical_path": {"from": "a", "to": "b", "delay_ns": 9.9,
                                        "logic_levels": 7, "block": "systolica_dma"}}}
    (tmp_path / "r.json").write_text(json.dumps(result))
    load_fmax().main(["--markdown", str(tmp_path / "r.json")])
    row = capsys.readouterr().out.splitlines()[2]
    assert row.startswith("| dma | 1,234 | 56 | 2 | 0 | 4 | 99.2 / 101.5 | 1,2,3 |")
    assert "`a` → `b` | 9.9 | 7 | `systolica_dma` |" in row


def test_every_default_block_is_known():
    fmax = load_fmax()
    assert set(fmax.DEFAULT_BLOCKS) <= set(fmax.known_blocks())


def test_default_blocks_follow_the_registry():
    """A newly registered block is measured by default; so is every variant, composites last."""
    from systolica.blocks import BLOCKS
    fmax = load_fmax()
    assert set(fmax.DEFAULT_BLOCKS) == set(BLOCKS) | set(fmax.VARIANTS)
    assert fmax.DEFAULT_BLOCKS[-1] in fmax.MEASURED_LAST
    assert {"router_single_cycle", "tensor_engine_16x16", "sequencer"} <= set(fmax.VARIANTS)


@pytest.mark.slow
def test_router_run_prints_the_documented_keys(capsys):
    load_fmax().main(["--blocks", "router", "--seeds", "1"])
    result = json.loads(capsys.readouterr().out)["router"]
    for key in ("luts", "ffs", "dsps", "brams", "fmax_mhz", "fmax_min", "fmax_median"):
        assert key in result
    assert result["luts"] > 0 and result["fmax_mhz"] > 10
    assert result["critical_path"]["delay_ns"] > 0
    assert result["critical_path"]["block"].startswith("systolica_router")


def test_merge_combines_seeds_of_separate_runs(tmp_path, capsys):
    path = {"from": "a", "to": "b", "delay_ns": 8.0, "logic_levels": 3, "block": "t"}
    slow = {**path, "delay_ns": 9.5}
    area = {"luts": 10, "ffs": 20, "dsps": 1, "brams": 0, "carries": 2, "lutrams": 0}
    seed1 = {**area, "target": "ecp5", "block": "tensor_engine", "seed": 1, "fmax_mhz": 125.0,
             "critical_path": path}                        # a `systolica synth --json` report
    seeds23 = {"tensor_engine": {**area, "seeds": [2, 3], "fmax_by_seed": [105.3, 130.0],
                                 "critical_path": slow}}
    (tmp_path / "a.json").write_text(json.dumps(seed1))
    (tmp_path / "b.json").write_text(json.dumps(seeds23))
    load_fmax().main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    merged = json.loads(capsys.readouterr().out)["tensor_engine"]
    assert merged["seeds"] == [1, 2, 3] and merged["fmax_by_seed"] == [125.0, 105.3, 130.0]
    assert merged["fmax_min"] == 105.3 and merged["fmax_median"] == merged["fmax_mhz"] == 125.0
    assert merged["critical_path"] == slow and merged["luts"] == 10


def test_router_choice_per_block_and_merge_refuses_mixed_routers(tmp_path, capsys):
    """``--router auto``: router2 for the blocks router1 does not finish, router1 otherwise;
    an explicit router applies to every block. Runs with different routers do not merge."""
    fmax = load_fmax()
    assert fmax.router_for("sequencer") == "router2"
    assert fmax.router_for("sbuf") == "router1"
    assert fmax.router_for("sbuf", "router2") == "router2"
    run = {"luts": 1, "ffs": 1, "dsps": 0, "brams": 0, "carries": 0, "lutrams": 0,
           "critical_path": None}
    (tmp_path / "a.json").write_text(json.dumps(
        {"sbuf": {**run, "seeds": [1], "fmax_by_seed": [99.0], "router": "router1"}}))
    (tmp_path / "b.json").write_text(json.dumps(
        {"sbuf": {**run, "seeds": [2], "fmax_by_seed": [98.0], "router": "router2"}}))
    (tmp_path / "c.json").write_text(json.dumps(
        {"sbuf": {**run, "seeds": [3], "fmax_by_seed": [101.0]}}))    # before --router
    fmax.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "c.json")])
    merged = json.loads(capsys.readouterr().out)["sbuf"]
    assert merged["router"] == "router1" and merged["fmax_by_seed"] == [99.0, 101.0]
    with pytest.raises(SystemExit):
        fmax.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert "not comparable" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fmax.main(["--router", "router3"])
    assert "--router" in capsys.readouterr().err


def test_synthesize_refuses_an_unknown_router():
    from systolica.synth.flow import synthesize
    with pytest.raises(ValueError, match="router must be one of"):
        synthesize(None, "top", "ecp5", router="router3")
