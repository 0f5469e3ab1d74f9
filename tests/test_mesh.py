# amaranth: UnusedElaboratable=no
"""The mesh with its network interfaces, end to end under traffic: every packet delivered
exactly once, intact, to the right node, in order per (source, destination) pair; deadlock
watchdog; random ejection stalls; destinations outside the mesh refused and counted."""

from collections import deque

import pytest

from systolica.config import ConfigError, NocConfig
from systolica.hdl.noc.mesh import Mesh
from systolica.hdl.noc.topology import DeadlockError
from systolica.testbench.noc import DeadlockDetected, NocTraffic, run_traffic
from systolica.testbench.sim import run_simulation
from systolica.testbench.streams import check_stream_protocol


def mesh_of(width, height, **params):
    return Mesh(config=NocConfig(width=width, height=height, **params))


def run(mesh, **kwargs):
    traffic = run_traffic(mesh, **kwargs)
    traffic.check()
    return traffic.results()


def test_uniform_multi_flit_with_eject_stalls_2x2(seed):
    r = run(mesh_of(2, 2), pattern="uniform", rate=0.5, packet_len=4, seed=seed, warmup=20,
            measure=300, eject_stall=0.4)
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["errors"] == 0
    assert r["delivered"] > 100


@pytest.mark.parametrize("pattern", ["transpose", "hotspot", "neighbour"])
def test_patterns_3x3(seed, pattern):
    r = run(mesh_of(3, 3, buffer_depth=4), pattern=pattern, rate=0.3, packet_len=3, seed=seed,
            warmup=10, measure=150, eject_stall=0.2)
    assert r["delivered"] > 50 and r["lost"] == 0


def test_past_saturation_drains_2x2(seed):
    """Offered load far beyond what the mesh accepts: the backlog still drains completely, in
    order, and the accepted throughput stays below the offered load."""
    r = run(mesh_of(2, 2, buffer_depth=2), pattern="hotspot", rate=0.9, packet_len=2, seed=seed,
            warmup=20, measure=200, hotspot=(1, 1), hotspot_fraction=0.8)
    assert r["accepted"] < r["offered"]
    assert r["accepted"] <= 1.0 / 4 + 0.25      # one ejection port's worth, spread over 4 nodes


def test_any_vc_mode_exactly_once_3x3(seed):
    """in_order=False: heads take any free VC; delivery is checked exactly-once (order between
    packets of a pair is not promised)."""
    r = run(mesh_of(3, 3, in_order=False, vcs=3, buffer_depth=3), pattern="uniform", rate=0.4,
            packet_len=4, seed=seed, warmup=10, measure=150, eject_stall=0.3)
    assert r["delivered"] > 50


def test_link_stages_and_yx_routing_2x2(seed):
    r = run(mesh_of(2, 2, link_stages=2, routing="yx", buffer_depth=3), pattern="uniform",
            rate=0.6, packet_len=3, seed=seed, warmup=10, measure=200, eject_stall=0.2)
    assert r["delivered"] > 50


def test_zero_load_latency_is_two_cycles_per_hop(seed):
    """One packet at a time: latency = 4 (injection, local in/out, ejection) + 2 per hop."""
    mesh = mesh_of(3, 3)
    traffic = run_traffic(mesh, pattern="uniform", rate=0.005, packet_len=1, seed=seed,
                          warmup=0, measure=1500)
    traffic.check()
    r = traffic.results()
    assert r["measured_packets"] >= 20
    # Creation -> tail handed over: at most 4 + 2 * hops when nothing else is in the way.
    for lat, hops in zip(traffic.latencies, traffic.hops):
        assert lat >= 4 + 2 * hops
    assert sum(lat == 4 + 2 * h for lat, h in zip(traffic.latencies, traffic.hops)) \
        >= 0.9 * len(traffic.latencies)


def test_bad_destinations_refused_and_counted(seed):
    """Packets to nodes outside the mesh are dropped at the source's interface and counted;
    every other packet is still delivered."""
    r = run(mesh_of(2, 3), pattern="uniform", rate=0.4, packet_len=3, seed=seed, warmup=10,
            measure=200, bad_dest_fraction=0.25)
    assert r["delivered"] > 30


def test_final_refused_packet_is_counted_once():
    """Regression: the testbench used to leave ``send.valid`` high after the last accepted word,
    so a final out-of-mesh packet was refused again in every idle cycle and the check failed
    (node (2, 0): refused counter 18, expected 10)."""
    traffic = run_traffic(Mesh(config=NocConfig(width=3, height=1, payload_bits=32)), rate=0.2, packet_len=2,
                          bad_dest_fraction=1.0, warmup=20, measure=100)
    traffic.check()
    assert traffic.refused_packets[2] == 10 and sum(traffic.refused_packets) > 20


def test_refused_counters_saturate(seed):
    """A 2-bit refused counter stops at 3; the checker models that (and would flag a counter
    that wrapped or stopped early)."""
    traffic = run_traffic(mesh_of(2, 1, error_counter_bits=2), rate=0.3, packet_len=2,
                          seed=seed, bad_dest_fraction=0.7, warmup=10, measure=120)
    traffic.check()
    assert min(traffic.refused_packets) > 3
    assert [traffic.expected_refused_counter(i) for i in range(2)] == [3, 3]
    assert traffic.results()["delivered"] > 0


def test_refused_packet_counted_once_in_hardware():
    """Driven by hand at node (0, 0) of a 2x1 mesh: a refused packet counts once (on its first
    word, not its body words), idle cycles with an out-of-mesh payload left on ``send`` count
    nothing, back-to-back refused packets count one each, the counter saturates at
    2**error_counter_bits - 1, and a good packet after them is still delivered."""
    mesh = mesh_of(2, 1, error_counter_bits=2, payload_bits=8)
    send, recv, refused = mesh.send(0, 0), mesh.recv(1, 0), mesh.refused(0, 0)
    got = []

    async def bench(ctx):
        ctx.set(recv.ready, 1)

        async def word(dst, data, last):
            ctx.set(send.valid, 1)
            ctx.set(send.payload, {"dst_x": dst[0], "dst_y": dst[1], "data": data,
                                   "last": last})
            while True:
                _, _, ready, rv, rp = await ctx.tick().sample(send.ready, recv.valid,
                                                               recv.payload)
                if rv:
                    got.append((rp.src_x, rp.src_y, rp.data, rp.last))
                if ready:
                    return

        async def idle(cycles):
            ctx.set(send.valid, 0)          # the last payload stays on the wires
            for _ in range(cycles):
                _, _, rv, rp = await ctx.tick().sample(recv.valid, recv.payload)
                if rv:
                    got.append((rp.src_x, rp.src_y, rp.data, rp.last))

        assert ctx.get(refused) == 0
        for k, dst in enumerate([(2, 0), (2, 0), (0, 1)]):     # a 3-word refused packet
            await word(dst, k, k == 2)
        await idle(10)
        assert ctx.get(refused) == 1
        await word((0, 1), 7, 1)                                # back to back: two more
        await word((3, 0), 8, 1)
        await idle(10)
        assert ctx.get(refused) == 3
        for k in range(3):                                      # saturated
            await word((2, 0), k, 1)
        await idle(10)
        assert ctx.get(refused) == 3
        await word((1, 0), 0x5a, 0)                             # still delivers
        await word((1, 0), 0xa5, 1)
        await idle(20)
        assert ctx.get(refused) == 3 and not ctx.get(mesh.overflow)

    run_simulation(mesh, [bench], max_cycles=500)
    assert got == [(0, 0, 0x5a, 0), (0, 0, 0xa5, 1)]


def test_recv_streams_follow_the_protocol(seed):
    mesh = mesh_of(2, 2, buffer_depth=2)
    traffic = NocTraffic(mesh, pattern="uniform", rate=0.7, packet_len=3, seed=seed, warmup=0,
                         measure=200, eject_stall=0.5)
    monitors = [check_stream_protocol(mesh.recv(x, y), f"recv_{x}_{y}")
                for (x, y) in mesh.topology.nodes]
    run_simulation(mesh, [traffic.testbench], processes=monitors, max_cycles=5000)
    traffic.check()


def test_deadlock_watchdog_fires_when_nothing_moves(seed):
    """Ejection ports that never accept: the network fills and stops; the watchdog must say so
    instead of hanging."""
    with pytest.raises(DeadlockDetected, match="no flit moved for 60 cycles"):
        run_traffic(mesh_of(2, 2, buffer_depth=2), rate=0.5, packet_len=2, seed=seed, warmup=0,
                    measure=100, eject_stall=1.0, deadlock_cycles=60)


def test_bad_parameters():
    with pytest.raises(DeadlockError, match="'adaptive' is not deadlock-free"):
        mesh_of(2, 2, routing="adaptive")
    with pytest.raises(ConfigError, match=r"NocConfig\.vcs"):
        mesh_of(2, 2, vcs=1)
    with pytest.raises(ConfigError, match=r"NocConfig\.link_stages"):
        mesh_of(2, 2, link_stages=9)
    with pytest.raises(ConfigError, match="unknown NocConfig parameter|unexpected keyword"):
        NocConfig.from_dict({"widht": 2})
    with pytest.raises(ValueError, match="transpose traffic needs a square mesh"):
        NocTraffic(mesh_of(2, 3), pattern="transpose")
    with pytest.raises(ValueError, match="traffic pattern must be one of"):
        NocTraffic(mesh_of(2, 2), pattern="tornado")
    with pytest.raises(ValueError, match="rate must be in"):
        NocTraffic(mesh_of(2, 2), rate=1.5)


def test_mesh_from_config():
    mesh = Mesh(config=NocConfig(width=3, height=1))
    assert mesh.config.width == 3 and mesh.config.height == 1
    assert hasattr(mesh, "send_2_0") and not hasattr(mesh, "send_0_1")


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["uniform", "transpose", "hotspot", "neighbour"])
def test_long_runs_4x4(seed, pattern):
    r = run(mesh_of(4, 4), pattern=pattern, rate=0.5, packet_len=4, seed=seed, warmup=200,
            measure=2000, eject_stall=0.2)
    assert r["delivered"] > 1000


def test_checker_catches_duplicates_reordering_corruption_and_loss():
    """The checker itself, fed by hand (no simulation): it must flag what it exists to catch."""
    traffic = NocTraffic(mesh_of(2, 2), rate=0.1, packet_len=2, seed=1)
    a = traffic._new_packet(0, cycle=0, measured=True)
    b = traffic._new_packet(0, cycle=1, measured=True)
    a["injected"], b["injected"] = 2, 3
    # Force both to the same destination to test ordering.
    traffic.expected.clear()
    traffic.expected[((0, 0), (1, 1))] = deque([a, b])
    dst = traffic.nodes.index((1, 1))
    traffic._deliver(dst, (0, 0), b["words"], cycle=10)
    assert any("out of order" in e for e in traffic.errors)
    traffic._deliver(dst, (0, 0), a["words"], cycle=11)
    traffic._deliver(dst, (0, 0), a["words"], cycle=12)
    assert any("duplicated" in e for e in traffic.errors)
    traffic._deliver(dst, (0, 0), (123456,), cycle=13)
    assert any("corrupted or misrouted" in e for e in traffic.errors)
    traffic.done = True
    fresh = NocTraffic(mesh_of(2, 2), rate=0.1, seed=2)
    fresh._new_packet(0, cycle=0, measured=True)
    fresh.done = True
    with pytest.raises(AssertionError, match="never delivered"):
        fresh.check()


def test_benchmark_script_single_point_and_csv_only_sweep(tmp_path, monkeypatch, capsys):
    """benchmarks/noc.py: one point prints the documented JSON keys; a sweep without matplotlib
    still writes the CSV and says why there is no plot."""
    import importlib.util
    import json
    import sys
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "noc.py"
    spec = importlib.util.spec_from_file_location("noc_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    assert bench.main(["--mesh", "2x2", "--rate", "0.3", "--warmup", "10", "--measure", "60",
                       "--zero-load-cycles", "100"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("offered", "accepted", "avg_latency", "p99_latency", "zero_load_latency",
                "avg_hops", "delivered", "lost", "duplicated"):
        assert key in result
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["delivered"] > 0

    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib -> ImportError
    assert bench.main(["--mesh", "2x2", "--sweep", "--rates", "0.1,0.5", "--warmup", "5",
                       "--measure", "40", "--zero-load-cycles", "60", "--jobs", "1",
                       "--out-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert "matplotlib is not installed" in err and summary["png"] is None
    rows = (tmp_path / "noc_2x2_uniform.csv").read_text().splitlines()
    assert rows[0].startswith("rate,offered,accepted") and len(rows) == 3
