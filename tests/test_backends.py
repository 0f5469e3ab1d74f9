# amaranth: UnusedElaboratable=no
"""Simulation backends: the same stream test benches on the Amaranth simulator and on the compiled
(Verilator) backend give bit-exact results and identical cycle counts from the same seeds; the
compiled harness's watchdog, protocol checker, step-wise API, C++ models, waveforms and build cache.

Builds are cached (~/.cache/systolica or $SYSTOLICA_CACHE); a cold run builds 2 tensor engines and
4 tiny designs. Tests that need Verilator are skipped when it is not installed."""

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import ArrayConfig
from systolica.testbench import backends, compiled
from systolica.testbench.sim import SimulationTimeout, run_simulation
from systolica.testbench.streams import StallPattern, StreamSink, StreamSource
from systolica.testbench.tensor_engine import (
    MatmulJob, engine_beats, expected_results, random_job, run_matmuls)


TESTS = Path(__file__).parent


def needs_verilator():
    ok, reason = backends.backend_available("verilator")
    if not ok:
        pytest.skip(reason)


@pytest.fixture(params=backends.BACKENDS)
def backend(request):
    if request.param != "amaranth":
        needs_verilator()
    return request.param


# --- a tiny design for the harness features ------------------------------------------------------

SUM_LAYOUT = data.StructLayout({"sum": signed(16), "n": unsigned(8)})


class Accumulator(wiring.Component):
    """Adds up the ``inp`` values; after each one, offers (running sum, count) on ``out`` (one
    buffer entry). ``clear`` restarts the sum from 0 (the value accepted in that cycle counts).
    ``bad=True`` drops ``out.valid`` one cycle after offering, accepted or not (a protocol
    violation for the checkers to catch)."""

    def __init__(self, bad=False):
        self._bad = bad
        super().__init__({
            "inp": In(stream.Signature(signed(8))),
            "out": Out(stream.Signature(SUM_LAYOUT)),
            "clear": In(1),
            "total": Out(signed(16)),
        })

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        base = Signal(signed(16))           # the sum this cycle's value adds to
        m.d.comb += base.eq(Mux(self.clear, 0, self.total))
        m.d.comb += self.inp.ready.eq(~self.out.valid | self.out.ready)
        with m.If(self.inp.valid & self.inp.ready):
            new_total = (base + self.inp.payload)[:16].as_signed()
            m.d.sync += [self.total.eq(new_total), count.eq(count + 1),
                         self.out.valid.eq(1), self.out.payload.sum.eq(new_total),
                         self.out.payload.n.eq(count + 1)]
        with m.Else():
            m.d.sync += self.total.eq(base)
            with m.If(self.out.ready | (self._bad and self.out.valid)):
                m.d.sync += self.out.valid.eq(0)
        return m


def accumulate_reference(values, accept_cycles=None, clear_at=None):
    """Expected ``out`` payloads; with ``clear_at``, the sum restarts at the value accepted in
    cycle ``clear_at`` or the first one after it."""
    out, total = [], 0
    cleared = False
    for i, v in enumerate(values):
        if clear_at is not None and not cleared and accept_cycles[i] >= clear_at:
            total, cleared = 0, True
        total = (total + v + 2**15) % 2**16 - 2**15
        out.append({"sum": total, "n": (i + 1) % 256})
    return out


def run_accumulator(backend, values, seed, *, stall_in=0.3, stall_out=0.4, max_cycles=None,
                    bad=False, count=None, memo="accumulator"):
    rng = np.random.default_rng(seed)
    dut = Accumulator(bad=bad)
    src = StreamSource(dut.inp, stall=stall_in, rng=np.random.default_rng(rng.integers(1 << 32)))
    snk = StreamSink(dut.out, stall=stall_out, rng=np.random.default_rng(rng.integers(1 << 32)))
    return backends.run_streams(
        dut, sources={"inp": (src, values)},
        sinks={"out": (snk, len(values) if count is None else count)},
        max_cycles=max_cycles or 10 * len(values) + 100, backend=backend, read=("total",),
        memo_key=(memo, bad))


# --- backend selection ---------------------------------------------------------------------------

def test_backend_choice(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert backends.resolve_backend(None) == "amaranth"
    monkeypatch.setenv(backends.ENV_VAR, "verilator")
    assert backends.resolve_backend(None) == "verilator"
    assert backends.resolve_backend("amaranth") == "amaranth"
    monkeypatch.setenv(backends.ENV_VAR, "iverilog")
    with pytest.raises(ValueError, match=r"backend must be one of .*SYSTOLICA_SIM_BACKEND"):
        backends.resolve_backend(None)
    dut = Accumulator()
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.run_streams(dut, max_cycles=10, backend="cxxrtl")


def test_missing_verilator_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SYSTOLICA_VERILATOR", "/nonexistent/verilator")
    ok, reason = backends.backend_available("verilator")
    assert not ok and "/nonexistent/verilator" in reason
    dut = Accumulator()
    with pytest.raises(compiled.BackendUnavailable, match="/nonexistent/verilator"):
        compiled.build(dut)
    assert backends.backend_available("amaranth") == (True, "")
    monkeypatch.delenv("SYSTOLICA_VERILATOR")
    if backends.backend_available("verilator")[0]:      # with Verilator, but no compiler
        monkeypatch.setenv("CXX", "/nonexistent/g++")
        ok, reason = backends.backend_available("verilator")
        assert not ok and "C++ compiler CXX=/nonexistent/g++" in reason


# --- stall patterns and payload packing (no build) -----------------------------------------------

def test_stall_pattern_is_per_cycle_and_chunk_independent(seed):
    a = StallPattern(0.3, np.random.default_rng(seed))
    b = StallPattern(0.3, np.random.default_rng(seed))
    bits = [a[c] for c in range(10_000)]              # drawn lazily, chunk by chunk
    assert b.mask(10_000).tolist() == bits            # drawn at once
    assert b.mask(50, start=9_000).tolist() == bits[9_000:9_050]
    want = np.random.default_rng(seed).random(10_000) < 0.3
    assert np.array_equal(want, bits)
    assert 0.25 < np.mean(bits) < 0.35
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state
    assert not StallPattern(0.0, rng).mask(100).any()
    assert rng.bit_generator.state == state           # stall 0 draws nothing
    with pytest.raises(ValueError, match="stall must be a probability"):
        StallPattern(1.5, rng)


def test_payload_codec_matches_amaranth_bits(seed):
    from amaranth.hdl import Const
    layout = data.StructLayout({
        "a": data.ArrayLayout(signed(7), 5), "b": unsigned(40),
        "c": data.StructLayout({"x": signed(64), "y": 1}),
        "d": data.ArrayLayout(data.StructLayout({"p": signed(3)}), 2),
    })
    rng = np.random.default_rng(seed)
    payloads = [{"a": rng.integers(-64, 64, 5).tolist(), "b": int(rng.integers(0, 1 << 40)),
                 "c": {"x": int(rng.integers(-(1 << 63), 1 << 63, dtype=np.int64)),
                       "y": int(rng.integers(0, 2))},
                 "d": [{"p": int(v)} for v in rng.integers(-4, 4, 2)]} for _ in range(40)]
    codec = compiled.PayloadCodec(layout)
    rows = codec.pack(payloads)
    assert rows.shape == (40, (layout.size + 31) // 32)
    for payload, row in zip(payloads, rows):
        bits = Const.cast(layout.const(payload)).value
        assert sum(int(w) << (32 * i) for i, w in enumerate(row)) == bits
        assert codec.pack_one(payload) == bits == codec.pack_one(layout.const(payload))
    assert codec.unpack(rows) == payloads
    columns = codec.unpack_columns(rows)
    assert np.array_equal(columns["a"], [p["a"] for p in payloads])
    assert np.array_equal(codec.pack_columns(columns), rows)
    with pytest.raises(KeyError, match="not given"):
        codec.pack_columns({"a": columns["a"]})


# --- the tensor engine on both backends ----------------------------------------------------------

ENGINE_CONFIGS = {
    "4x4": ArrayConfig(rows=4, cols=4),
    "3x5-u8xi16-pipelined": ArrayConfig(rows=3, cols=5, moving_dtype="uint8",
                                        stationary_dtype="int16", acc_bits=40,
                                        rows_per_stage=2, cols_per_stage=2),
}


@pytest.mark.parametrize("name", list(ENGINE_CONFIGS))
def test_gemms_identical_on_both_backends(seed, name, monkeypatch):
    needs_verilator()
    # Hand the stall masks to C++ in small pieces, so that extending them is exercised.
    monkeypatch.setattr(compiled.CompiledSim, "MASK_CHUNK", 16)
    config = ENGINE_CONFIGS[name]
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng) for _ in range(4)]
    jobs.append(random_job(config, rng, extreme=True))
    jobs.append(MatmulJob(a=jobs[-1].a[:2], w=jobs[-1].w, reload=False, accumulate=True,
                          addr=5))
    stalls = dict(stall_moving=0.3, stall_weights=0.4, stall_result=0.5)
    runs = {b: run_matmuls(config, jobs, seed=seed, backend=b, **stalls)
            for b in backends.BACKENDS}
    want = expected_results(config, jobs)
    for b, run in runs.items():
        for i, (got, exp) in enumerate(zip(run.results, want)):
            assert np.array_equal(got, exp), f"{b}, job {i}: got\n{got}\nwant\n{exp}"
    py, vl = runs["amaranth"], runs["verilator"]
    assert vl.result_cycles == py.result_cycles
    assert vl.moving_cycles == py.moving_cycles
    assert vl.weight_cycles == py.weight_cycles
    assert vl.tags == py.tags
    assert vl.sim_cycles == py.sim_cycles
    assert vl.sim_cycles > 16                 # the masks were extended at least once
    assert len(set(np.diff(py.result_cycles))) > 1      # the stalls did show


def test_weights_overflow_flag_on_both_backends(seed, backend):
    config = ENGINE_CONFIGS["4x4"]
    rng = np.random.default_rng(seed)
    job = random_job(config, rng, k=config.rows)
    weight_beats, _ = engine_beats(config, [job])
    extra = [dict(b, last=0) for b in weight_beats] + weight_beats   # 2R rows in one W
    run = run_matmuls(config, [job], seed=seed, backend=backend, stall_weights=0.3,
                      weight_beats=extra)
    assert run.weights_overflow == 1
    assert len(run.weight_cycles) == len(extra)


def test_engine_watchdog_on_both_backends(seed, backend):
    config = ENGINE_CONFIGS["4x4"]
    job = random_job(config, np.random.default_rng(seed), m=20)
    with pytest.raises(SimulationTimeout, match="did not finish within 10 cycles"):
        run_matmuls(config, [job], seed=seed, backend=backend, max_cycles=10)


# --- generic streams, watchdog, protocol ---------------------------------------------------------

def test_stream_run_identical_on_both_backends(seed):
    needs_verilator()
    values = np.random.default_rng(seed).integers(-128, 128, 300).tolist()
    runs = {b: run_accumulator(b, values, seed) for b in backends.BACKENDS}
    for b, run in runs.items():
        payloads, _ = run.received["out"]
        assert payloads == accumulate_reference(values), b
        assert run.outputs["total"] == payloads[-1]["sum"], b
    py, vl = runs["amaranth"], runs["verilator"]
    assert vl.accepted == py.accepted
    assert vl.received["out"][1] == py.received["out"][1]
    assert vl.sim_cycles == py.sim_cycles


def test_stream_watchdog_names_progress(seed):
    needs_verilator()
    values = [1, 2, 3]
    for backend in backends.BACKENDS:       # asks for one payload more than there will be
        with pytest.raises(SimulationTimeout, match="within 50 cycles"):
            run_accumulator(backend, values, seed, count=4, max_cycles=50)
    with pytest.raises(SimulationTimeout, match=r"out: 3/4 received"):
        run_accumulator("verilator", values, seed, count=4, max_cycles=50)


def test_protocol_violation_caught_on_both_backends(seed):
    needs_verilator()
    values = list(range(1, 40))
    with pytest.raises(AssertionError, match="valid dropped"):
        run_accumulator("amaranth", values, seed, stall_out=0.6, bad=True)
    with pytest.raises(compiled.ProtocolError, match="out: valid dropped"):
        run_accumulator("verilator", values, seed, stall_out=0.6, bad=True)


# --- step-wise API, C++ models, waveforms, cache -------------------------------------------------

def test_stepwise_api_matches_amaranth(seed):
    needs_verilator()
    rng = np.random.default_rng(seed)
    steps = [(int(rng.integers(0, 2)), int(rng.integers(-128, 128)), int(rng.integers(0, 2)),
              int(rng.integers(0, 8) == 0)) for _ in range(200)]
    dut = Accumulator()
    trace_py = []

    async def bench(ctx):
        for valid, value, ready, clear in steps:
            ctx.set(dut.inp.valid, valid)
            ctx.set(dut.inp.payload, value)
            ctx.set(dut.out.ready, ready)
            ctx.set(dut.clear, clear)
            trace_py.append((ctx.get(dut.inp.ready), ctx.get(dut.out.valid),
                             ctx.get(dut.total) & 0xFFFF))
            await ctx.tick()

    run_simulation(dut, [bench], max_cycles=len(steps) + 10)

    model = backends.compiled_model(Accumulator(), memo_key=("accumulator", False))
    trace_vl = []
    with model.open() as cs:
        for valid, value, ready, clear in steps:
            cs.set("inp__valid", valid)
            cs.set("inp__payload", value)
            cs.set("out__ready", ready)
            cs.set("clear", clear)
            trace_vl.append((cs.get("inp__ready"), cs.get("out__valid"), cs.get("total")))
            cs.tick()
        assert cs.cycle == len(steps)
        with pytest.raises(ValueError, match="is an output"):
            cs.set("total", 1)
        with pytest.raises(KeyError, match="no port 'nope'"):
            cs.get("nope")
    assert trace_vl == trace_py


def test_cxx_model_and_vcd_waveform(seed, tmp_path):
    needs_verilator()
    dut = Accumulator()
    model = compiled.build(dut, trace="vcd", extra_sources=[TESTS / "cxx" / "pulse_model.cpp"])
    values = np.random.default_rng(seed).integers(-128, 128, 60).tolist()
    rng = np.random.default_rng(seed)
    wave = tmp_path / "acc.vcd"
    with model.open(trace=wave) as sim:
        sim.add_model("pulse", "clear 30")
        sim.add_source("inp", values, StallPattern(0.3, rng))
        sim.add_sink("out", len(values), StallPattern(0.3, rng))
        cycles = sim.run(max_cycles=2000)
        payloads, _ = sim.sink_result("out")
        accepted = sim.source_cycles("inp")
        with pytest.raises(KeyError, match="no C\\+\\+ model registered as 'dram'"):
            sim.add_model("dram")
        with pytest.raises(ValueError, match="rejected its arguments"):
            sim.add_model("pulse", "no_such_port 3")
    assert cycles > 30
    assert accepted[0] < 30 < accepted[-1]
    assert payloads == accumulate_reference(values, accepted, clear_at=30)
    assert payloads != accumulate_reference(values)
    text = wave.read_text()
    assert "$enddefinitions" in text and "clear" in text and "inp__payload" in text
    assert f"#{(cycles - 1) * 10000}" in text          # a time step per half clock period


def test_fst_waveform_through_run_streams(seed, tmp_path):
    needs_verilator()
    ok, reason = compiled.fst_supported()
    if not ok:
        dut = Accumulator()
        with pytest.raises(compiled.BackendUnavailable, match="FST waveforms need"):
            compiled.build(dut, trace="fst")
        pytest.skip(reason)
    values = list(range(10))
    dut = Accumulator()
    rng = np.random.default_rng(seed)
    run = backends.run_streams(
        dut, sources={"inp": (StreamSource(dut.inp, rng=rng), values)},
        sinks={"out": (StreamSink(dut.out, rng=rng), len(values))}, max_cycles=200,
        backend="verilator", waveform=tmp_path / "acc.fst")
    assert run.received["out"][0] == accumulate_reference(values)
    header = (tmp_path / "acc.fst").read_bytes()[:1]
    assert header == b"\x00"                             # FST header block
    assert (tmp_path / "acc.fst").stat().st_size > 100


def test_build_cache_reused():
    needs_verilator()
    first = compiled.build(Accumulator())
    again = compiled.build(Accumulator())
    assert again.info.cached and again.build_seconds == 0.0
    assert again.info.path == first.info.path
    assert (again.info.path / "libdut.so").exists()
    assert (again.info.path / "dut.v").read_text().startswith("/* Generated by Amaranth")


def test_amaranth_style_testbenches_run_unchanged(seed):
    """The same async test benches (StreamSource/StreamSink, the protocol checker, ctx.get on
    ports, tick().until / repeat) through backends.run_simulation on both backends."""
    needs_verilator()
    from systolica.testbench.streams import check_stream_protocol
    values = np.random.default_rng(seed).integers(-128, 128, 80).tolist()
    outcome = {}
    for backend in backends.BACKENDS:
        dut = Accumulator()
        rng = np.random.default_rng(seed)
        src = StreamSource(dut.inp, stall=0.3, rng=np.random.default_rng(rng.integers(1 << 32)))
        snk = StreamSink(dut.out, stall=0.4, rng=np.random.default_rng(rng.integers(1 << 32)))
        out = {}

        async def feed(ctx):
            out["sent"] = await src.send(ctx, values)

        async def collect(ctx):
            out["got"], out["cycles"] = await snk.receive(ctx, len(values))
            out["total"] = ctx.get(dut.total)
            ctx.set(dut.clear, 1)
            await ctx.tick().repeat(2)
            ctx.set(dut.clear, 0)
            out["cleared"] = ctx.get(dut.total)
            ctx.set(dut.inp.valid, 1)            # the feeder is done by now
            ctx.set(dut.inp.payload, 7)
            await ctx.tick().until(dut.out.valid)
            ctx.set(dut.inp.valid, 0)
            out["after"] = ctx.get(dut.out.payload)["sum"]

        cycles = backends.run_simulation(
            dut, [feed, collect], max_cycles=2000, backend=backend,
            processes=[check_stream_protocol(dut.out, "out")])
        outcome[backend] = (cycles, out)
    py, vl = outcome["amaranth"], outcome["verilator"]
    assert py[1]["got"] == accumulate_reference(values)
    assert py[1]["total"] == py[1]["got"][-1]["sum"] and py[1]["cleared"] == 0
    assert py[1]["after"] == 7
    assert vl == py


def test_compiled_context_rejects_non_ports():
    needs_verilator()
    dut = Accumulator()

    async def bench(ctx):
        ctx.get(dut.out.payload.sum)          # a field of a port, not a whole port

    with pytest.raises(NotImplementedError, match="whole ports"):
        backends.run_simulation(dut, [bench], max_cycles=10, backend="verilator")
