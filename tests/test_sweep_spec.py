"""Sweep specs: parsing, point expansion, and every kind of bad input failing before any work,
with a message that names the key (systolica/sweep/spec.py, points.py, cli.py)."""

import itertools
import subprocess
import sys

import pytest

from systolica.cli import main
from systolica.sweep import SweepError, parse_spec
from systolica.sweep.cli import _values
from systolica.sweep.points import expand


def plan_of(data):
    return expand(parse_spec(data))


def test_grid_is_every_combination_in_spec_order_with_ties():
    plan = plan_of({"parameters": {"array": {"rows": [2, 4, 3], "multiplier_stages": [1, 2]}},
                    "tie": {"array": {"cols": "array.rows"}},
                    "synth": {"target": "generic"}})
    got = [tuple(p.params.values()) for p in plan.points]
    assert got == list(itertools.product([2, 4, 3], [1, 2]))
    for point in plan.points:
        array = point.configs["array"]
        assert (array.rows, array.cols, array.multiplier_stages) == \
            (point.params["array.rows"], point.params["array.rows"],
             point.params["array.multiplier_stages"])
        assert "array.cols" not in point.params     # ties are config, not parameters


def test_ranges_linear_step_and_log2():
    plan = plan_of({"parameters": {"array.rows": {"min": 2, "max": 9, "step": 3},
                                   "sbuf.depth": {"min": 64, "max": 512, "scale": "log2"}},
                    "sweep": {"block": "sbuf"}})
    assert sorted({p.params["array.rows"] for p in plan.points}) == [2, 5, 8]
    assert sorted({p.params["sbuf.depth"] for p in plan.points}) == [64, 128, 256, 512]
    assert len(plan.points) == 12


def test_base_tables_apply_to_every_point():
    plan = plan_of({"parameters": {"array.rows": [2, 3]},
                    "base": {"array": {"moving_dtype": "uint8", "cols": 5}}})
    assert all(p.configs["array"].moving_dtype == "uint8" and p.configs["array"].cols == 5
               for p in plan.points)


def test_random_sample_is_distinct_in_range_and_reproducible():
    data = {"sweep": {"mode": "random", "samples": 15, "seed": 7},
            "parameters": {"array.rows": {"min": 1, "max": 64},
                           "array.cols": {"min": 1, "max": 64},
                           "array.multiplier_stages": [0, 1, 2]}}
    first = [tuple(p.params.values()) for p in plan_of(data).points]
    again = [tuple(p.params.values()) for p in plan_of(data).points]
    other = [tuple(p.params.values())
             for p in plan_of({**data, "sweep": {**data["sweep"], "seed": 8}}).points]
    assert first == again and first != other
    assert len(first) == len(set(first)) == 15
    assert all(1 <= r <= 64 and 1 <= c <= 64 and s in (0, 1, 2) for r, c, s in first)


def test_random_sample_larger_than_space_is_the_whole_grid():
    plan = plan_of({"sweep": {"mode": "random", "samples": 50},
                    "parameters": {"array.rows": [2, 3], "array.cols": [2, 3]}})
    assert len(plan.points) == 4 and plan.space == 4


def test_skip_invalid_drops_rejected_combinations():
    plan = plan_of({"sweep": {"skip_invalid": True},
                    "parameters": {"array.rows": [2, 4], "array.rows_per_stage": [1, 4]}})
    assert [tuple(p.params.values()) for p in plan.points] == [(2, 1), (4, 1), (4, 4)]
    assert len(plan.skipped) == 1 and "rows_per_stage" in plan.skipped[0][1]


def test_measurements_that_share_a_config_share_a_cache_key():
    """gemm reads only [array]: sweeping an sbuf field must not re-run it."""
    from systolica.sweep.runner import _tasks
    plan = plan_of({"sweep": {"block": "sbuf", "measure": ["synth", "gemm"]},
                    "parameters": {"sbuf.depth": [64, 128, 256]},
                    "synth": {"target": "generic"}, "gemm": {"backend": "amaranth"}})
    by_point, tasks, _ = _tasks(plan)
    assert len(tasks) == 3 + 1
    assert len({key for point in by_point.values() for name, key in point
                if name == "gemm"}) == 1


@pytest.mark.parametrize("data, words", [
    ({"parameters": {"array.rowz": [2]}}, ["array.rowz", "rowz", "rows"]),
    ({"parameters": {"arry.rows": [2]}}, ["arry.rows", "unknown config section"]),
    ({"parameters": {"array.rows": [0, 2]}}, ["array.rows=0", "ArrayConfig.rows", "[1, 256]"]),
    ({"parameters": {"array.rows": [2], "array.rows_per_stage": [4]}},
     ["rows_per_stage", "skip_invalid"]),
    ({"sweep": {"skip_invalid": True}, "parameters": {"array.rows": [2, 300]}},
     ["array.rows = 300", "invalid at every point"]),
    ({"sweep": {"block": "sbuf"}, "parameters": {"array.rows": [8, 16]}},
     ["point array.rows=16", "sbuf.partitions must be >= array.rows=16"]),
    ({"parameters": {"noc.vcs": [2, 4]}}, ["noc.vcs", "tensor_engine", "[noc]"]),
    ({"parameters": {}}, ["no [parameters]"]),
    ({"parameters": {"array.rows": []}}, ["array.rows", "empty"]),
    ({"parameters": {"array.rows": {"min": 4, "max": 2}}}, ["array.rows", "below min"]),
    ({"parameters": {"array.rows": {"min": 3, "max": 8, "scale": "log2"}}}, ["powers of two"]),
    ({"parameters": {"array.rows": {"min": 1, "max": 4, "stride": 2}}}, ["stride"]),
    ({"parameters": {"array.rows": [2]}, "sweep": {"block": "gpu"}}, ["block", "gpu"]),
    ({"parameters": {"array.rows": [2]}, "sweep": {"measure": ["power"]}}, ["power"]),
    ({"parameters": {"array.rows": [2]}, "sweep": {"mode": "latin"}}, ["mode", "latin"]),
    ({"parameters": {"array.rows": [2]}, "sweep": {"mode": "random"}}, ["samples"]),
    ({"parameters": {"array.rows": [2]}, "sweep": {"sample": 3}}, ["sample", "[sweep]"]),
    ({"parameters": {"array.rows": [2]}, "synth": {"target": "xilinx"}}, ["target", "xilinx"]),
    ({"parameters": {"array.rows": [2]}, "synth": {"pnr": "yes"}}, ["pnr", "bool"]),
    ({"parameters": {"array.rows": [2]}, "synth": {"target": "generic", "pnr": True}},
     ["pnr", "generic"]),
    ({"parameters": {"array.rows": [2]}, "synth": {"fmax": 1}}, ["fmax", "[synth]"]),
    ({"parameters": {"array.rows": [2]}, "gemm": {}}, ["[gemm]", "measure"]),
    ({"parameters": {"array.rows": [2]}, "tie": {"array.cols": "array.colz"}}, ["colz"]),
    ({"parameters": {"array.rows": [2]}, "base": {"array": {"acc_bits": 8}}},
     ["[base.array]", "acc_bits"]),
    ({"parameters": {"array.rows": [2]}, "plot": {}}, ["[plot]"]),
    ({"parameters": {"array.rows": [2]}, "output": {"folder": "x"}}, ["[output]", "dir"]),
])
def test_bad_specs_name_the_key(data, words):
    with pytest.raises(SweepError) as error:
        plan_of(data)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_bad_plot_and_pareto_choices_fail_before_work(tmp_path):
    from systolica.sweep import run_sweep
    base = {"parameters": {"array.rows": [2]}, "synth": {"target": "generic"}}
    for extra, word in (({"plots": {"metrics": ["fmax_mhz"]}}, "fmax_mhz"),
                        ({"plots": {"x": "array.cols"}}, "array.cols"),
                        ({"pareto": {"throughput": "macs_per_cycle"}}, "macs_per_cycle")):
        with pytest.raises(SweepError, match=word):
            run_sweep(parse_spec({**base, **extra}), cache=tmp_path / "cache")
        assert not (tmp_path / "cache").exists()


def test_cli_values_syntax():
    assert _values("2,4,8") == [2, 4, 8]
    assert _values("int8,uint8") == ["int8", "uint8"]
    assert _values("true,false") == [True, False]
    assert _values("2..16") == {"min": 2, "max": 16}
    assert _values("2..16:2") == {"min": 2, "max": 16, "step": 2}
    assert _values("64..4096:log2") == {"min": 64, "max": 4096, "scale": "log2"}


def test_cli_dry_run_lists_points_from_flags(capsys):
    assert main(["sweep", "--param", "array.rows=2,3", "--param", "array.multiplier_stages=1..2",
                 "--tie", "array.cols=array.rows", "--target", "generic", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 points (grid of 4)")
    assert "array.rows=3, array.multiplier_stages=2" in out


@pytest.mark.parametrize("argv, words", [
    (["--param", "array.rowz=2"], ["array.rowz"]),
    (["--param", "array.rows=0"], ["ArrayConfig.rows"]),
    (["--param", "array.rows"], ["--param", "KEY=VALUE"]),
    (["missing.toml"], ["missing.toml", "not found"]),
    (["--param", "array.rows=2", "--set", "synth.colour=1"], ["colour"]),
])
def test_cli_errors_exit_2_with_one_line(capsys, argv, words):
    assert main(["sweep", *argv, "--dry-run"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("systolica sweep: error:")
    assert "Traceback" not in captured.err + captured.out
    for word in words:
        assert word in err


def test_cli_bad_toml_exits_2_without_traceback(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text("[parameters\narray.rows = [2]\n")
    # cwd: not the checkout, whose systolica/ folder would shadow the installed package.
    proc = subprocess.run([sys.executable, "-m", "systolica.cli", "sweep", str(spec)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "not valid TOML" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
