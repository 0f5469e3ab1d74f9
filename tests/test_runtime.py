"""The runtime: one device API over the model and the tile RTL (tiny runs on the Amaranth
simulator), the entry points, bad input, profiles and the ``systolica gemm`` command."""

import json

import numpy as np
import pytest

import systolica
from systolica.cli import main
from systolica.compiler import Linear, ReLU, Requantize, compile_gemm, reference
from systolica.config import ArrayConfig, PsumConfig, SbufConfig, TileConfig
from systolica.runtime import (BackendUnavailable, Device, chrome_trace, plot_timeline,
                               write_chrome_trace)

TINY = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                  psum=PsumConfig(banks=2, bank_rows=16))
TINY_FLAGS = ["--rows", "4", "--cols", "4", "--partitions", "4", "--depth", "64",
              "--bank-rows", "16"]


@pytest.mark.parametrize("a_dtype,b_dtype", [(np.int8, np.int8), (np.uint8, np.int8),
                                             (np.int16, np.int16)])
def test_matmul_default_device_follows_the_dtypes(a_dtype, b_dtype):
    rng = np.random.default_rng(1)
    info_a, info_b = np.iinfo(a_dtype), np.iinfo(b_dtype)
    a = rng.integers(info_a.min, info_a.max + 1, (19, 27)).astype(a_dtype)
    b = rng.integers(info_b.min, info_b.max + 1, (27, 13)).astype(b_dtype)
    want = reference([Linear(b)], a)
    got = systolica.matmul(a, b)
    assert got.dtype == np.int32 and np.array_equal(got, want)


def test_matmul_requantised_and_run_mlp_on_model():
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, (33, 20)).astype(np.int8)
    w1 = rng.integers(-128, 128, (20, 40)).astype(np.int8)
    w2 = rng.integers(-128, 128, (40, 7)).astype(np.int8)
    scale = rng.integers(1, 300, 40)
    got = systolica.matmul(a, w1, out_dtype="int8", scale=scale, shift=12, relu=True)
    layer = Linear(w1, scale=scale, shift=12, relu=True, out_dtype="int8")
    assert got.dtype == np.int8 and np.array_equal(got, reference([layer], a))
    layers = [Linear(w1), Requantize(scale, 12), ReLU(), Linear(w2)]
    device = Device()
    y = systolica.run(layers, a, device=device)
    assert np.array_equal(y, reference(layers, a))
    assert [p.a_source for p in device.last.compiled.plans] == ["dram", "sbuf"]
    assert device.last.cycles == device.last.predicted_cycles and not device.last.measured


def test_amaranth_backend_bit_exact_gemm_and_mlp(capsys, tmp_path):
    rng = np.random.default_rng(3)
    device = Device(TINY, backend="amaranth", progress=True)
    a = rng.integers(-128, 128, (9, 7))
    b = rng.integers(-128, 128, (7, 6))
    scale = rng.integers(1, 1000, 6)
    got = device.matmul(a, b, out_dtype="int8", scale=scale, shift=9, zero_point=-3)
    want = reference([Linear(b, scale=scale, shift=9, zero_point=-3, out_dtype="int8")], a)
    assert np.array_equal(got, want)
    e = device.last
    assert e.measured and e.cycles > 0 and abs(e.prediction_error) < 1
    assert set(e.busy_cycles) == {"dma0", "dma1", "pe", "act"}
    assert all(0 < b <= e.cycles for b in e.busy_cycles.values())
    assert e.profile.tracks["pe"], "sampled PE segments"
    assert "simulating the tile" in capsys.readouterr().err          # the progress bar
    # the RTL run's profile as a Chrome trace and a PNG timeline
    events = chrome_trace([e.profile])["traceEvents"]
    pe = next(t["tid"] for t in events if t["name"] == "thread_name" and t["args"]["name"] == "pe")
    spans = [t for t in events if t["ph"] == "X"]
    assert any(t["tid"] == pe and t["cat"] == "busy" for t in spans)
    assert all(t["dur"] >= 1 for t in spans)
    assert max(t["ts"] + t["dur"] for t in spans) <= e.cycles + 1
    plot_timeline(tmp_path / "rtl.png", [e.profile])
    assert (tmp_path / "rtl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    layers = [Linear(rng.integers(-128, 128, (5, 8)), scale=rng.integers(1, 100, 8), shift=8,
                     relu=True, out_dtype="int8"), Linear(rng.integers(-128, 128, (8, 3)))]
    x = rng.integers(-128, 128, (6, 5))
    assert np.array_equal(device.run(layers, x), reference(layers, x))
    assert device.last.compiled.plans[1].a_source == "sbuf"


@pytest.mark.parametrize("moving,stationary", [("int16", "int16"), ("uint8", "int8")])
def test_amaranth_backend_wide_and_unsigned_inputs(moving, stationary):
    config = TileConfig(array=ArrayConfig(rows=4, cols=4, moving_dtype=moving,
                                          stationary_dtype=stationary),
                        sbuf=TINY.sbuf, psum=TINY.psum)
    rng = np.random.default_rng(6)
    a_info, b_info = np.iinfo(moving), np.iinfo(stationary)
    a = rng.integers(a_info.min, a_info.max + 1, (7, 9))
    b = rng.integers(b_info.min, b_info.max + 1, (9, 5))
    a[0], b[:, 0] = a_info.min, b_info.min                   # the extremes' products
    got = Device(config, backend="amaranth").matmul(a, b)
    assert np.array_equal(got, reference([Linear(b)], a, config))


def test_verilator_backend_runs_or_says_what_is_missing():
    rng = np.random.default_rng(4)
    a, b = rng.integers(-128, 128, (5, 6)), rng.integers(-128, 128, (6, 3))
    try:
        device = Device(TINY, backend="verilator")
    except BackendUnavailable as error:
        assert "run_tile" in str(error) or "Verilator" in str(error)
        return
    assert np.array_equal(device.matmul(a, b), a @ b)
    assert device.last.measured
    scale = rng.integers(1, 1000, 3)              # the same tile build: requantised, and an MLP
    got = device.matmul(a, b, out_dtype="uint8", scale=scale, shift=7, zero_point=5, relu=True)
    layer = Linear(b, scale=scale, shift=7, zero_point=5, relu=True, out_dtype="uint8")
    assert got.dtype == np.uint8 and np.array_equal(got, reference([layer], a))
    layers = [Linear(b, scale=scale, shift=7, relu=True, out_dtype="int8"),
              Linear(rng.integers(-128, 128, (3, 4)))]
    assert np.array_equal(device.run(layers, a), reference(layers, a))
    assert device.last.measured and device.last.compiled.plans[1].a_source == "sbuf"


def test_verilator_progress_bar_leaves_the_run_unchanged(monkeypatch, capsys):
    """The progress bar runs the C++ loop in chunks: same output, same cycles."""
    from systolica.testbench import tile_compiled
    rng = np.random.default_rng(9)
    a, b = rng.integers(-128, 128, (40, 24)), rng.integers(-128, 128, (24, 12))
    try:
        quiet = Device(TINY, backend="verilator")
    except BackendUnavailable as error:
        pytest.skip(str(error))
    want = quiet.matmul(a, b)
    monkeypatch.setattr(tile_compiled, "PROGRESS_CYCLES", 64)
    calls, run = [], tile_compiled.start_and_run

    def counted(sim, host, max_cycles, abort_after=None, progress=None):
        return run(sim, host, max_cycles, abort_after,
                   lambda cycles: (calls.append(cycles), progress(cycles)))

    monkeypatch.setattr(tile_compiled, "start_and_run", counted)
    shown = Device(TINY, backend="verilator", progress=True)
    assert np.array_equal(shown.matmul(a, b), want) and np.array_equal(want, a @ b)
    assert shown.last.cycles == quiet.last.cycles > 4 * 64
    assert shown.last.busy_cycles == quiet.last.busy_cycles
    assert len(calls) >= 4 and calls == sorted(calls) and calls[-1] < shown.last.cycles + 64
    from systolica.testbench.sim import SimulationTimeout
    with pytest.raises(SimulationTimeout, match="within 300 cycles"):     # the watchdog holds
        Device(TINY, backend="verilator", progress=True, max_cycles=300).matmul(a, b)
    assert "simulating the tile" in capsys.readouterr().err


def test_model_backend_default_and_extreme_values():
    device = Device()
    for value in (-128, 127):
        a = np.full((50, 70), value)
        b = np.full((70, 9), -128)
        assert np.array_equal(device.matmul(a, b), a @ b)


@pytest.mark.parametrize("call,error,message", [
    (lambda d: d.matmul(np.zeros((3, 4), int), np.zeros((5, 2), int)), ValueError,
     "do not multiply"),
    (lambda d: d.matmul(np.zeros((3, 4)), np.zeros((4, 2), int)), TypeError, "a must be an "
     "integer array"),
    (lambda d: d.matmul(np.zeros((3, 4), int), np.zeros((4, 2), bool)), TypeError, "b must be"),
    (lambda d: d.matmul(np.full((3, 4), 128), np.zeros((4, 2), int)), ValueError,
     r"a values must be in \[-128, 127\]"),
    (lambda d: d.matmul(np.zeros((3, 4), int), np.full((4, 2), -129)), ValueError, "b values"),
    (lambda d: d.matmul(np.zeros(4, int), np.zeros((4, 2), int)), ValueError, "a must be a "
     "non-empty 2-D"),
    (lambda d: d.matmul("abc", np.zeros((4, 2), int)), TypeError, "a must be a NumPy array"),
    (lambda d: d.matmul(np.zeros((3, 4), int), np.zeros((4, 2), int), out_dtype="int4"),
     ValueError, "out_dtype"),
    (lambda d: d.execute(compile_gemm(TINY, 2, 2, 2), np.zeros((2, 2), int)), ValueError,
     "another config"),
    (lambda d: d.execute(compile_gemm(d.config, 2, 2, 2), np.zeros((3, 2), int)), ValueError,
     r"x must have shape \(2, 2\)"),
    (lambda d: systolica.matmul(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int8)),
     TypeError, "a must have dtype int8, uint8, int16"),
    (lambda d: Device(backend="fpga"), ValueError, "backend must be one of"),
    (lambda d: Device(config="default"), TypeError, "config must be a TileConfig"),
    (lambda d: systolica.matmul(np.zeros((2, 2), np.int8), np.zeros((2, 2), np.int8),
                                device="model"), TypeError, "device must be"),
])
def test_bad_input_is_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call(Device())


def test_profiles_chrome_trace_and_png(tmp_path):
    device = Device()
    rng = np.random.default_rng(5)
    device.matmul(rng.integers(-128, 128, (40, 30)), rng.integers(-128, 128, (30, 20)))
    profile = device.last.profile
    trace = chrome_trace([profile])
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names == {"dma0", "dma1", "pe", "act"}
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert spans and all(e["dur"] >= 1 and e["cat"] in ("busy", "wait") for e in spans)
    assert max(e["ts"] + e["dur"] for e in spans) <= profile.cycles + 1
    assert profile.busy("pe") == device.last.busy_cycles["pe"]
    path = tmp_path / "t.json"
    write_chrome_trace(path, [profile])
    assert json.loads(path.read_text())["traceEvents"]
    png = tmp_path / "t.png"
    plot_timeline(png, [profile])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_gemm_model(capsys, tmp_path):
    trace, png = tmp_path / "g.json", tmp_path / "g.png"
    assert main(["gemm", "--m", "20", "--k", "17", "--n", "9", "--trace", str(trace),
                 "--plot", str(png), "--out-dtype", "uint8"]) == 0
    out = capsys.readouterr().out
    for word in ("loop order", "predicted cycles", "utilisation", "bit-exact", "DRAM traffic"):
        assert word in out
    # the plan: block sizes, loop order, buffer use, predicted DRAM bytes against the minimum
    assert "M block (1 x 20 rows)" in out and "K chunk (1 x 3 tiles of 8)" in out
    assert "SBUF per partition:" in out and "of 16384 bytes" in out
    assert "bytes predicted, minimum 673" in out   # 20*17 + 17*9 bytes in, 20*9 out (uint8)
    assert json.loads(trace.read_text())["traceEvents"] and png.stat().st_size > 0


def test_cli_gemm_amaranth_tiny(capsys):
    assert main(["gemm", "--m", "6", "--k", "5", "--n", "4", "--backend", "amaranth",
                 *TINY_FLAGS]) == 0
    out = capsys.readouterr().out
    assert "measured (CYCLES register)" in out and "bit-exact" in out


def test_cli_gemm_verilator_tiny_with_trace_and_plot(capsys, tmp_path):
    try:
        Device(TINY, backend="verilator")
    except BackendUnavailable as error:
        pytest.skip(str(error))
    trace, png = tmp_path / "v.json", tmp_path / "v.png"
    assert main(["gemm", "--m", "6", "--k", "5", "--n", "4", "--backend", "verilator",
                 *TINY_FLAGS, "--trace", str(trace), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "measured (CYCLES register)" in out and "bit-exact" in out and "loop order" in out
    events = json.loads(trace.read_text())["traceEvents"]
    # Verilator has counters only: the timeline written is the prediction, and says so
    assert {e["args"]["name"] for e in events if e["name"] == "process_name"} == {
        "predicted by the performance model"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv,message", [
    (["gemm", "--m", "0", "--k", "1", "--n", "1"], "--m: must be in"),
    (["gemm", "--m", "1", "--k", "1"], "required: --n"),
    (["gemm", "--m", "2", "--k", "2", "--n", "2", "--backend", "fpga"], "--backend"),
    (["gemm", "--m", "2", "--k", "2", "--n", "2", "--rows", "16"], "sbuf.partitions"),
    (["gemm", "--m", "2", "--k", "2", "--n", "2", "--plot", "/nonexistent/x.png"], "--plot"),
])
def test_cli_gemm_refuses_bad_input_in_one_line(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
