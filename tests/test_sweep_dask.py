"""Sweeps on other executors: a real Dask ``distributed.LocalCluster`` (scheduler and two worker
processes talking TCP on localhost) and the local process pool give the same results as this
process; an unreachable scheduler is an error before any work."""

import socket
import time

import distributed       # a test dependency (pyproject's test extra): no silent skip
import pytest

from systolica.cli import main
from systolica.sweep import SweepError, parse_spec, run_sweep


SPEC = {"sweep": {"measure": ["synth", "gemm"]},
        "parameters": {"array.rows": [1, 2], "array.multiplier_stages": [1, 2]},
        "tie": {"array.cols": "array.rows"},
        "synth": {"target": "ecp5"},
        # The Amaranth simulator keeps this test free of Verilator builds on fresh machines;
        # test_sweep_run.py checks the gemm measurement on Verilator.
        "gemm": {"backend": "amaranth", "back_to_back": 2}}


def measured(result):
    """Each point's parameters, status and metrics, without timing."""
    return [(r["params"], r["status"],
             {k: v for k, v in r["metrics"].items() if not k.endswith("seconds")})
            for r in result.rows]


@pytest.fixture(scope="module")
def inline_result():
    return run_sweep(parse_spec(SPEC), cache=None)


@pytest.fixture(scope="module")
def cluster():
    # The scheduler's HTTP server starts even without a dashboard, on 8787 unless told: a
    # random port lets two pytest-xdist workers each run a cluster (a busy 8787 is a warning,
    # which PYTHONWARNINGS=error turns into a failed start).
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        yield cluster


def test_dask_cluster_gives_the_same_results(tmp_path, cluster, inline_result):
    assert all(r["status"] == "ok" for r in inline_result.rows)
    result = run_sweep(parse_spec(SPEC), scheduler=cluster.scheduler_address,
                       cache=tmp_path / "cache")
    assert result.stats["computed"] == 8
    assert measured(result) == measured(inline_result)
    # The client, not the workers, fills the cache: a repeat needs no cluster work.
    again = run_sweep(parse_spec(SPEC), scheduler=cluster.scheduler_address,
                      cache=tmp_path / "cache")
    assert again.stats["computed"] == 0 and measured(again) == measured(inline_result)


def test_dask_cluster_work_is_spread_over_the_workers(cluster):
    from distributed import Client
    run_sweep(parse_spec(SPEC), scheduler=cluster.scheduler_address, cache=None)
    with Client(cluster.scheduler_address, timeout=10) as client:
        counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(counts) == 2 and all(n > 0 for n in counts.values()), counts


def test_local_process_pool_gives_the_same_results(inline_result):
    result = run_sweep(parse_spec(SPEC), jobs=2, cache=None)
    assert measured(result) == measured(inline_result)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_before_any_work(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(SweepError, match=f"cannot reach the Dask scheduler at {address}"):
        run_sweep(parse_spec(SPEC), scheduler=address, cache=tmp_path / "cache",
                  output_dir=tmp_path / "out", connect_timeout=1)
    assert time.monotonic() - start < 15
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_cli_unreachable_scheduler_exits_2_with_one_line(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(["sweep", "--param", "array.rows=2", "--scheduler", address,
                 "--connect-timeout", "1", "-o", str(tmp_path / "out"),
                 "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and address in err and "Traceback" not in err
