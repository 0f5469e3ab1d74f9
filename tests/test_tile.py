"""The tile: sequencer + datapath + DMA + AXI4 DRAM + AXI4-Lite host, running ISA programs.

Amaranth-simulator tests use a tiny config (4x4 array, small SBUF/PSUM); expected results come
from NumPy (C = A @ W written by the program to DRAM)."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import ActMode, DmaError, EngineState, IsaError
from systolica.config import ArrayConfig, PsumConfig, SbufConfig, TileConfig
from systolica.testbench.tile import run_tile

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
PB = CFG.sbuf.partition_bytes
A_ADDR, W_ADDR, C_ADDR = 0x2000, 0x2400, 0x2800
S_A, S_W, S_C = 0, 128, 256            # byte offsets inside each SBUF partition


def gemm_program(m, k, n, *, waits=True):
    """DMA A (m x k int8) and W (k x n) in, one load + multiply, ACT int32 out, DMA C out."""
    s = (lambda **kw: kw) if waits else (lambda **kw: {})
    dma0 = [isa.dma_copy(isa.dram(A_ADDR, (m, k), (k, 1)), isa.sbuf(S_A, (m, k), (1, PB)),
                         signals=[(0, 1)]),
            isa.dma_copy(isa.dram(W_ADDR, (k, n), (n, 1)), isa.sbuf(S_W, (k, n), (1, PB)),
                         signals=[(0, 1)])]
    pe = [isa.load_stationary(S_W, k, n, waits=[(0, 2)]),
          isa.multiply_moving(S_A, m, 0, signals=[(1, 1)])]
    act = [isa.act(0, m, S_C // 4, n, mode=ActMode.INT32, waits=[(1, 1)], signals=[(2, 1)])]
    dma1 = [isa.dma_copy(isa.sbuf(S_C, (m, n), (4, PB)), isa.dram(C_ADDR, (m, n), (4 * n, 4)),
                         4, waits=[(2, 1)], signals=[(3, 1)])]
    return isa.Program.build(CFG, {"dma0": dma0, "pe": pe, "act": act, "dma1": dma1})


def gemm_data(rng, m, k, n):
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    return a, w, {A_ADDR: a.tobytes(), W_ADDR: w.tobytes()}


def test_gemm_end_to_end():
    seed = 11
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    m, k, n = 8, 4, 3
    a, w, data = gemm_data(rng, m, k, n)
    program = gemm_program(m, k, n)
    run = run_tile(CFG, program, data=data, dram_bytes=1 << 14, max_cycles=20_000)
    got = run.dram[C_ADDR:C_ADDR + 4 * m * n].view(np.int32).reshape(m, n)
    assert np.array_equal(got, a.astype(np.int32) @ w.astype(np.int32))
    for name, info in run.queues.items():
        assert info["state"] is EngineState.DONE, (name, info)
        assert info["error"] is IsaError.OK
        assert info["retired"] == len(program.queues[name])
    assert run.semaphores[3] == 1 and sum(run.semaphores) == 1
    assert run.status["done"] and not run.status["halted"]
