# amaranth: UnusedElaboratable=no
"""The tensor engine's two alternative multipliers against NumPy: the ECP5 netlist (operand,
weight and product registers inside MULT18X18D instances, hdl/multiplier.py) simulated in Icarus
with a behavioural model of the primitive, and LUT (Booth) multipliers (``max_dsps``) in the
Amaranth simulator — random values, extremes, two back-to-back W (one with K < R), random stalls
on every stream."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from systolica.config import ArrayConfig, DTYPES, dtype_range, is_float_dtype
from systolica.hdl.contracts import moving_layout, result_layout, weight_row_layout
from systolica.hdl.multiplier import lut_multiply
from systolica.hdl.tensor_engine import TensorEngine
from systolica.synth.flow import FamilyPlatform
from systolica.synth.verilog import to_rtlil, to_verilog
from systolica.testbench.tensor_engine import expected_results, random_job, run_matmuls

INT_DTYPES = [name for name in DTYPES if not is_float_dtype(name)]
MODEL = Path(__file__).parent / "verilog" / "mult18x18d_model.v"


def _bits(layout, value):
    return layout.const(value).as_bits()


def _extreme_operands(config, rng, rows, m):
    (a_lo, a_hi) = dtype_range(config.moving_dtype)
    (w_lo, w_hi) = dtype_range(config.stationary_dtype)
    a = rng.integers(a_lo, a_hi + 1, size=(m, config.rows))
    w = rng.integers(w_lo, w_hi + 1, size=(rows, config.cols))
    a[0, :], w[0, :] = a_lo, w_lo          # the extreme corners
    a[1, :], w[-1, :] = a_hi, w_hi
    return a, w


def _testbench(config, jobs, seed):
    """A Verilog testbench: loads each (a, w) job's W, streams its rows of A, checks every result
    against NumPy, with $random stalls on the three streams."""
    mv, wr, rs = moving_layout(config), weight_row_layout(config), result_layout(config)
    w_beats, m_beats, expected = [], [], []
    for j, (a, w) in enumerate(jobs):
        for k, row in enumerate(w):
            w_beats.append(_bits(wr, {"data": [int(x) for x in row], "last": k == len(w) - 1}))
        for i, row in enumerate(a):
            m_beats.append(_bits(mv, {"data": [int(x) for x in row], "start": i == 0,
                                      "tag": {"addr": (j * 16 + i) % (1 << config.result_addr_bits),
                                              "accumulate": 0, "last": i == len(a) - 1}}))
        k_rows = len(w)
        product = a[:, :k_rows].astype(np.int64) @ w.astype(np.int64)
        for i, row in enumerate(product):
            expected.append(_bits(rs["data"].shape, [int(x) for x in row]))
    lines = [f"module tb;",
             f"  reg clk = 0, rst = 1; always #5 clk = ~clk;",
             f"  reg [{mv.size - 1}:0] mv = 0; reg mv_valid = 0; wire mv_ready;",
             f"  reg [{wr.size - 1}:0] w = 0; reg w_valid = 0; wire w_ready;",
             f"  wire [{rs.size - 1}:0] res; wire res_valid; reg res_ready = 0; wire busy, ovf;",
             f"  systolica_tensor_engine dut(.clk(clk), .rst(rst),",
             f"    .moving__payload(mv), .moving__valid(mv_valid), .moving__ready(mv_ready),",
             f"    .weights__payload(w), .weights__valid(w_valid), .weights__ready(w_ready),",
             f"    .result__payload(res), .result__valid(res_valid), .result__ready(res_ready),",
             f"    .busy(busy), .weights_overflow(ovf), .clear_errors(1'b0));",
             f"  reg [{wr.size - 1}:0] w_mem [0:{len(w_beats) - 1}];",
             f"  reg [{mv.size - 1}:0] m_mem [0:{len(m_beats) - 1}];",
             f"  reg [{rs['data'].shape.size - 1}:0] e_mem [0:{len(expected) - 1}];",
             f"  integer seed = {seed}, wi = 0, mi = 0, ri = 0, cycles = 0;",
             "  initial begin"]
    lines += [f"    w_mem[{i}] = {wr.size}'h{v:x};" for i, v in enumerate(w_beats)]
    lines += [f"    m_mem[{i}] = {mv.size}'h{v:x};" for i, v in enumerate(m_beats)]
    lines += [f"    e_mem[{i}] = {rs['data'].shape.size}'h{v:x};" for i, v in enumerate(expected)]
    lines += [
        "    repeat (2) @(posedge clk); rst <= 0;",
        "  end",
        "  always @(posedge clk) if (!rst) begin",
        "    cycles <= cycles + 1;",
        f"    if (cycles > {40 * (len(w_beats) + len(m_beats)) + 200}) begin",
        "      $display(\"FAIL timeout\"); $finish; end",
        "    // a beat, once shown, stays until accepted; a new one is shown 3 times in 4",
        "    if (w_valid && w_ready) wi = wi + 1;",
        "    if (mv_valid && mv_ready) mi = mi + 1;",
        "    if (!(w_valid && !w_ready)) begin",
        f"      w_valid <= wi < {len(w_beats)} && ($random(seed) & 3) != 0;",
        f"      w <= w_mem[wi < {len(w_beats)} ? wi : 0]; end",
        "    if (!(mv_valid && !mv_ready)) begin",
        f"      mv_valid <= mi < {len(m_beats)} && ($random(seed) & 3) != 0;",
        f"      mv <= m_mem[mi < {len(m_beats)} ? mi : 0]; end",
        "    res_ready <= ($random(seed) & 3) != 0;",
        "    if (res_valid && res_ready) begin",
        f"      if (res[{rs['data'].shape.size - 1}:0] !== e_mem[ri]) begin",
        "        $display(\"FAIL result %0d: %h, want %h\", ri, res, e_mem[ri]); $finish; end",
        "      ri = ri + 1;",
        f"      if (ri == {len(expected)}) begin $display(\"PASS %0d results\", ri); $finish; end",
        "    end",
        "  end",
        "endmodule"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("moving_dtype,stationary_dtype", [("int8", "int8"), ("uint8", "int8"),
                                                           ("int16", "uint16")])
def test_ecp5_dsp_netlist_matches_numpy_in_icarus(tmp_path, seed, moving_dtype,
                                                  stationary_dtype):
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    config = ArrayConfig(rows=4, cols=3, moving_dtype=moving_dtype,
                         stationary_dtype=stationary_dtype)
    engine = TensorEngine(config=config)
    rtlil = to_rtlil(engine, "systolica_tensor_engine", FamilyPlatform("ecp5"))
    assert rtlil.count("MULT18X18D") == config.rows * config.cols
    rng = np.random.default_rng(seed)
    jobs = [_extreme_operands(config, rng, config.rows, 7),
            _extreme_operands(config, rng, config.rows - 1, 5)]          # K < R
    (tmp_path / "engine.v").write_text(to_verilog(TensorEngine(config=config),
                                                  "systolica_tensor_engine",
                                                  FamilyPlatform("ecp5")))
    (tmp_path / "tb.v").write_text(_testbench(config, jobs, seed % (1 << 31)))
    binary = tmp_path / "sim"
    subprocess.run(["iverilog", "-g2012", "-o", str(binary), str(tmp_path / "tb.v"),
                    str(tmp_path / "engine.v"), str(MODEL)], check=True)
    out = subprocess.run(["vvp", "-n", str(binary)], capture_output=True, text=True, check=True)
    assert f"PASS {7 + 5} results" in out.stdout, out.stdout


def test_without_the_ecp5_platform_no_primitive_is_instantiated():
    engine = TensorEngine(config=ArrayConfig(rows=2, cols=2))
    assert "MULT18X18D" not in to_rtlil(engine, "systolica_tensor_engine")
    one_stage = TensorEngine(config=ArrayConfig(rows=2, cols=2, multiplier_stages=1))
    assert "MULT18X18D" not in to_rtlil(one_stage, "top", FamilyPlatform("ecp5"))


@pytest.mark.parametrize("moving_dtype,stationary_dtype",
                         [("int8", "int8"), ("uint8", "int8"), ("int8", "uint8"),
                          ("int16", "int16"), ("uint16", "uint16"), (INT_DTYPES[0], INT_DTYPES[-1])])
def test_lut_multipliers_every_dtype_pair_with_stalls(seed, moving_dtype, stationary_dtype):
    # max_dsps=5 of 12: PEs 5.. (column-major) multiply in LUT logic, the others with `*`.
    config = ArrayConfig(rows=4, cols=3, moving_dtype=moving_dtype,
                         stationary_dtype=stationary_dtype, max_dsps=5)
    engine = TensorEngine(config=config)
    assert [engine.uses_dsp(k, c) for c in range(3) for k in range(4)] == [True] * 5 + [False] * 7
    rng = np.random.default_rng(seed)
    jobs = [random_job(config, rng) for _ in range(3)]
    run = run_matmuls(config, jobs, seed=seed, stall_moving=0.3, stall_weights=0.3,
                      stall_result=0.3)
    for got, want in zip(run.results, expected_results(config, jobs)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("a_shape,b_shape", [(signed(8), signed(8)), (unsigned(8), signed(8)),
                                             (signed(8), unsigned(8)), (unsigned(8), unsigned(8)),
                                             (signed(4), signed(4)), (signed(3), unsigned(5)),
                                             (unsigned(4), signed(3)), (unsigned(3), unsigned(4))])
def test_lut_multiply_is_exact(seed, a_shape, b_shape):
    """Every pair of operands up to 6 bits in all, else the extremes and 1,000 random pairs."""
    a, b = Signal(a_shape), Signal(b_shape)
    product = lut_multiply(a, b)
    assert product.shape() == (a * b).shape()

    def bounds(shape):
        lo = -(1 << (shape.width - 1)) if shape.signed else 0
        return lo, lo + (1 << shape.width) - 1
    (a_lo, a_hi), (b_lo, b_hi) = bounds(a_shape), bounds(b_shape)
    if a_shape.width + b_shape.width <= 9:
        pairs = [(x, y) for x in range(a_lo, a_hi + 1) for y in range(b_lo, b_hi + 1)]
    else:
        rng = np.random.default_rng(seed)
        corners = [a_lo, a_lo + 1, -1 if a_shape.signed else 1, 0, a_hi]
        pairs = [(x, y) for x in corners for y in (b_lo, b_lo + 1, 0, 1, b_hi)]
        pairs += [(int(x), int(y)) for x, y in zip(rng.integers(a_lo, a_hi + 1, 1000),
                                                   rng.integers(b_lo, b_hi + 1, 1000))]
    wrong = []

    async def bench(ctx):
        for x, y in pairs:
            ctx.set(a, x)
            ctx.set(b, y)
            if ctx.get(product) != x * y:
                wrong.append((x, y, ctx.get(product)))
    m = Module()
    probe = Signal(product.shape())
    m.d.comb += probe.eq(product)
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert wrong == []
