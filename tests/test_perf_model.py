"""The performance model (``systolica.compiler.perf.predict``) against the tile RTL: the same
compiled GEMM runs on the Amaranth simulation of the tile (Tile + AxiRam DRAM, through the
runtime), its CYCLES register is the measurement, and the prediction must be within a
tolerance of it. Results are checked bit-exactly against NumPy on the way."""

import dataclasses

import numpy as np
import pytest

from systolica.config import ArrayConfig, DmaConfig, PsumConfig, SbufConfig, TileConfig
from systolica.runtime import Device

# Tolerance. The model times every instruction, in time order, from the behaviour of each RTL
# block measured on cycle-level traces (every instruction's retire cycle, every AR/R handshake,
# the fetch FIFO levels, the engines' command handshakes; docs/compiler.md). On the default set
# of benchmarks/perf_model.py (16^3 to 128x64x96, 4x4 to 16x16) it is within 2.5 % of the
# CYCLES register except 16^3 on the 4x4 tile (+6.9 %): 37 instructions in 785 cycles, where
# which of two AXI requests made a cycle apart wins the arbitration (a fetch burst or the DMA's
# first burst of a tiny W load) moves the result by tens of cycles. 10 % covers such small
# GEMMs; large ones are held to 5 % by benchmarks/gemm.py on Verilator (within 0.6 % on the
# shapes docs/compiler.md lists).
TOLERANCE = 0.10


def _config(rows, depth, sbuf_reads=4):
    return TileConfig(array=ArrayConfig(rows=rows, cols=rows),
                      sbuf=SbufConfig(partitions=rows, depth=depth),
                      psum=PsumConfig(),
                      dma=dataclasses.replace(DmaConfig(), sbuf_reads=sbuf_reads))


def _measure(config, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    device = Device(config, backend="amaranth", seed=seed)
    c = device.matmul(a, b)
    assert np.array_equal(c, a @ b)
    e = device.last
    assert e.measured and e.cycles > 0
    return e


@pytest.mark.parametrize("shape", [(16, 16, 16), (37, 23, 11)])
def test_prediction_matches_rtl_small(shape):
    e = _measure(_config(4, 64), *shape, seed=sum(shape))
    assert abs(e.prediction_error) <= TOLERANCE, (
        f"{shape}: predicted {e.predicted_cycles}, measured {e.cycles} "
        f"({e.prediction_error:+.1%})")


@pytest.mark.slow
@pytest.mark.parametrize("rows,depth,sbuf_reads,shape", [
    (4, 64, 4, (32, 32, 32)),
    (4, 64, 4, (64, 32, 32)),
    (8, 256, 4, (64, 64, 64)),
    (8, 256, 16, (64, 64, 64)),
    (16, 512, 4, (64, 64, 64)),
    (16, 512, 16, (64, 64, 64)),
])
def test_prediction_matches_rtl(rows, depth, sbuf_reads, shape):
    e = _measure(_config(rows, depth, sbuf_reads), *shape, seed=rows + sbuf_reads)
    assert abs(e.prediction_error) <= TOLERANCE, (
        f"{rows}x{rows} {shape}: predicted {e.predicted_cycles}, measured {e.cycles} "
        f"({e.prediction_error:+.1%})")


# W streamed past small M blocks: while the DMA streams W in 32-beat bursts, each instruction
# fetch waits behind the bursts the DRAM has queued (~100 cycles), and the PE queue, which the
# moving reader lets issue only about one multiply ahead of the engine, runs dry. The model
# before this one (one DMA burst of wait, no back-pressure on the PE queue) was 4.4 % and 8.4 %
# fast on these two; this one is within 0.7 % of both (Amaranth, CYCLES). 3 % leaves room for
# the few-cycle differences in which AXI burst wins an arbitration.
STREAMED_TOLERANCE = 0.03


def _measure_forced(config, m, k, n, seed, **plan):
    from systolica.compiler import compile_gemm
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    compiled = compile_gemm(config, m, k, n, w=b, **plan)
    e = Device(config, backend="amaranth", seed=seed).execute(compiled, a)
    assert np.array_equal(e.output, a @ b)
    assert e.measured and e.cycles > 0
    return e


def test_fetch_starves_behind_streamed_weights():
    e = _measure_forced(_config(8, 512), 64, 128, 32, seed=3, m_block=32, n_group=2,
                        w_resident=False)
    assert abs(e.prediction_error) <= STREAMED_TOLERANCE, (
        f"predicted {e.predicted_cycles}, measured {e.cycles} ({e.prediction_error:+.1%})")


@pytest.mark.slow
def test_fetch_starves_behind_streamed_weights_long_k():
    e = _measure_forced(_config(8, 1024), 64, 256, 32, seed=4, m_block=32, n_group=1,
                        w_resident=False)
    assert abs(e.prediction_error) <= STREAMED_TOLERANCE, (
        f"predicted {e.predicted_cycles}, measured {e.cycles} ({e.prediction_error:+.1%})")


def test_compiler_keeps_the_plan_measured_fastest():
    """8x8, SBUF depth 1,024, 256^3, MATMUL programs: Verilator measured 265,805 cycles for
    64-row M blocks in N groups of 2 (W streamed) and 273,843 for 128-row blocks (docs/compiler.md;
    with the pair programs it was 285,189 and 273,831: their fetch made small blocks slow); the
    model ranks them the same way, so the compiler keeps the 64-row plan."""
    from systolica.compiler import compile_gemm
    config = _config(8, 1024)
    chosen = compile_gemm(config, 256, 256, 256)
    slower = compile_gemm(config, 256, 256, 256, m_block=128, n_group=1, w_resident=False)
    plan = chosen.plans[0]
    assert (plan.m_block, plan.n_group, plan.w_resident) == (64, 2, False)
    assert chosen.predict().cycles < slower.predict().cycles


def test_sbuf_reads_in_flight_pace_stores():
    """The model sees that a store from the SBUF is paced by the DMA's reads in flight."""
    from systolica.compiler import compile_gemm
    slow, fast = (compile_gemm(_config(8, 256, r), 64, 64, 64, m_block=64).predict().cycles
                  for r in (4, 16))
    assert fast < slow
