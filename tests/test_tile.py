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


@pytest.mark.parametrize("stall", [0.3])
def test_gemm_with_dram_stalls_and_latency(stall):
    """Pseudo-random stalls on every AXI channel, random read latency, host stalls."""
    rng = np.random.default_rng(5)
    m, k, n = 12, 4, 4
    a, w, data = gemm_data(rng, m, k, n)
    run = run_tile(CFG, gemm_program(m, k, n), data=data, dram_bytes=1 << 14,
                   max_cycles=40_000, stall=stall, jitter=7, read_latency=4, seed=3,
                   host_stall=0.3)
    got = run.dram[C_ADDR:C_ADDR + 4 * m * n].view(np.int32).reshape(m, n)
    assert np.array_equal(got, a.astype(np.int32) @ w.astype(np.int32))
    assert all(q["state"] is EngineState.DONE for q in run.queues.values())


def _halting_case(queue, bad, expected, detail=DmaError.OK, pc=1):
    """Queue ``queue`` gets instruction ``bad`` at pc 1 (after its CHECK); the other queues run
    a program that does not depend on it; the bad queue halts with ``expected`` at pc 1 and
    writes nothing."""
    rng = np.random.default_rng(2)
    m, k, n = 4, 4, 4
    a, w, data = gemm_data(rng, m, k, n)
    base = gemm_program(m, k, n)
    queues = {name: list(insns[1:-1]) for name, insns in base.queues.items()}
    queues[queue] = [bad] + queues[queue]
    program = isa.Program.build(CFG, queues)
    run = run_tile(CFG, program, data=data, dram_bytes=1 << 14, max_cycles=20_000,
                   abort_after=3000)
    info = run.queues[queue]
    assert info["state"] is EngineState.HALTED, info
    assert info["error"] is expected, info
    assert info["pc"] == pc
    assert info["dma"] is detail
    return run


BAD = [
    ("pe", isa.load_stationary(S_W, 5, 4), IsaError.BAD_K),
    ("pe", isa.load_stationary(S_W, 0, 4), IsaError.BAD_K),
    ("pe", isa.load_stationary(S_W, 4, 5), IsaError.BAD_N),
    ("pe", isa.load_stationary(PB - 2, 4, 4), IsaError.SBUF_RANGE),
    ("pe", isa.multiply_moving(S_A, 4, 0), IsaError.MULTIPLY_BEFORE_LOAD),
    ("pe", isa.dma_copy(isa.dram(0), isa.dram(8)), IsaError.WRONG_ENGINE),
    ("pe", isa.nop(waits=[(40, 1)]), IsaError.BAD_SEMAPHORE),
    ("pe", isa.nop(waits=[(3, 1), (3, 2)]), IsaError.BAD_SEMAPHORE),
    ("act", isa.act(0, 4, 0, 4, param=8), IsaError.BAD_ACT_PARAM),
    ("act", isa.act(0, 4, 0, 5), IsaError.BAD_N),
    ("act", isa.act(0, 0, 0, 4), IsaError.BAD_COUNT),
    ("act", isa.act(12, 8, 0, 4), IsaError.PSUM_BANK),
    ("act", isa.act(40, 1, 0, 4), IsaError.PSUM_RANGE),
    ("act", isa.act(0, 4, PB - 2, 4), IsaError.SBUF_RANGE),
    ("act", isa.act(0, 4, 0, 4, repeat=3, psum_step=14), IsaError.PSUM_BANK),
    ("act", isa.act_param(0, 2, [1, 2, 3], [0, 0, 0]), IsaError.BAD_ACT_PARAM),
    ("act", isa.act_param(0, 0, [1 << 15], [0]), IsaError.BAD_ACT_PARAM),
    ("act", isa.act_param(0, 0, [1], [32]), IsaError.BAD_ACT_PARAM),
    ("act", isa.check(0, 3), IsaError.CONFIG_MISMATCH),
    ("dma0", isa.check(isa.fingerprint(CFG), 2), IsaError.QUEUE_MISMATCH),
    ("dma0", isa.dma_copy(isa.dram(0), isa.DmaEndpoint(isa.Space.REMOTE_SBUF, 0)),
     IsaError.BAD_DMA_SPACE),
    ("dma1", isa.signal_remote((0, 0), 1), IsaError.BAD_DMA_SPACE),    # not in a chip
]


@pytest.mark.parametrize("queue,bad,expected", BAD, ids=[f"{q}-{e.name}" for q, _, e in BAD])
def test_bad_instruction_halts_its_queue(queue, bad, expected):
    # a CHECK given first replaces the one Program.build would add: it sits at pc 0
    _halting_case(queue, bad, expected, pc=0 if bad.opcode == isa.Opcode.CHECK else 1)


def test_dma_error_halts_with_detail_and_writes_nothing():
    """A copy to an SBUF range beyond the buffer: the DMA refuses it, the queue halts at it."""
    bad = isa.dma_copy(isa.dram(A_ADDR, (64,), (1,)), isa.sbuf(4 * PB - 8, (64,), (1,)))
    run = _halting_case("dma0", bad, IsaError.DMA_ERROR, DmaError.SBUF_RANGE)
    # the rest of dma0 never ran: nothing reached C (dma1 waited, then the host aborted)
    assert not run.dram[C_ADDR:C_ADDR + 64].any()
    assert run.queues["dma1"]["error"] is IsaError.ABORTED


def test_unknown_opcode_and_other_queues_keep_going():
    """An unknown opcode halts the ACT queue; DMA and PE finish their parts."""
    word = bytes([0x7F]) + bytes(63)
    prog = gemm_program(4, 4, 4)
    image_queues = dict(prog.queues)
    run_prog = isa.Program(image_queues, prog.fingerprint)
    # patch the ACT queue's first real instruction into an unknown opcode via a raw image edit
    image = bytearray(run_prog.encode())
    off, _ = run_prog.queue_offsets()["act"]
    image[off + 64:off + 128] = word
    decoded_like = isa.decode_words(bytes(image))
    assert decoded_like[1]["act"][1] == word
    rng = np.random.default_rng(4)
    a, w, data = gemm_data(rng, 4, 4, 4)
    run = run_tile(CFG, run_prog, data=data, dram_bytes=1 << 14, max_cycles=20_000,
                   abort_after=3000, image=bytes(image))
    assert run.queues["act"]["state"] is EngineState.HALTED
    assert run.queues["act"]["error"] is IsaError.UNKNOWN_OPCODE and run.queues["act"]["pc"] == 1
    assert run.queues["pe"]["state"] is EngineState.DONE
    assert run.queues["dma0"]["state"] is EngineState.DONE
    assert run.queues["dma1"]["error"] is IsaError.ABORTED     # waited on ACT, released


def test_queue_overrun_and_empty_queue():
    prog = gemm_program(4, 4, 4)
    rng = np.random.default_rng(4)
    _, _, data = gemm_data(rng, 4, 4, 4)
    run = run_tile(CFG, prog, data=data, dram_bytes=1 << 14, max_cycles=20_000,
                   lengths={"act": 2, "dma1": 0}, abort_after=3000)
    assert run.queues["act"]["error"] is IsaError.QUEUE_OVERRUN and run.queues["act"]["pc"] == 2
    assert run.queues["dma1"]["state"] is EngineState.IDLE
