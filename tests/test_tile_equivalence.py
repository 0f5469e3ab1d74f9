"""Model vs RTL: the same binary program on the instruction-level model and on the tile RTL
(Amaranth simulator, a tiny 4x4 config), final DRAM, SBUF, PSUM, per-queue state / pc /
retire sequence / error and the semaphores bit-exactly equal (testbench/tile_check.py), for
random race-free programs (also under random stalls on every AXI channel, between the sequencer
and every engine, and on the host port), hand-written programs, and every bad instruction."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import ActMode, DmaError, IsaError
from systolica.config import ArrayConfig, DmaConfig, PsumConfig, SbufConfig, TileConfig
from systolica.isa import Opcode, Space
from systolica.model.programs import gemm_program
from systolica.model.random_programs import random_program
from systolica.testbench.tile_check import check_against_model

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
CFG16 = TileConfig(array=ArrayConfig(rows=4, cols=4, moving_dtype="int16"),
                   sbuf=SbufConfig(partitions=4, depth=64), psum=PsumConfig(banks=2, bank_rows=16),
                   dma=DmaConfig(queues=3))
PB = CFG.sbuf.partition_bytes
DRAM, BASE, DATA = 1 << 14, 8192, 4096       # DRAM bytes, program image, random data bytes


def _random_data(rng):
    return {0: rng.integers(0, 256, DATA, dtype=np.uint8).tobytes()}


def _check(config, program, rng, **kwargs):
    return check_against_model(config, program, data=_random_data(rng), dram_bytes=DRAM,
                               program_base=BASE, max_cycles=60_000, **kwargs)


# --- random race-free programs ------------------------------------------------------------------

@pytest.mark.parametrize("case", range(3))
def test_random_programs_match_the_model(seed, case):
    rng = np.random.default_rng([seed, case])
    program = random_program(CFG, rng, operations=16, dram_bytes=DATA)
    run, result = _check(CFG, program, rng)
    assert result.ok and run.status["done"]


def test_random_program_int16_three_dma_queues(seed):
    rng = np.random.default_rng(seed)
    program = random_program(CFG16, rng, operations=16, dram_bytes=DATA)
    _check(CFG16, program, rng)


def test_random_program_under_stalls_everywhere(seed):
    """30 % stalls on every AXI channel with read jitter, 30 % on the sequencer's command
    streams (weights, moving, ACT, each DMA queue), 30 % on the host's AXI4-Lite port."""
    rng = np.random.default_rng(seed)
    program = random_program(CFG, rng, operations=16, dram_bytes=DATA)
    _check(CFG, program, rng, stall=0.3, jitter=7, read_latency=3, command_stall=0.3,
           host_stall=0.3, seed=seed % 1000)


@pytest.mark.slow
@pytest.mark.parametrize("case", range(12))
def test_more_random_programs_match_the_model(seed, case):
    rng = np.random.default_rng([seed, case, 7])
    config = CFG16 if case % 3 == 2 else CFG
    program = random_program(config, rng, operations=30, dram_bytes=DATA)
    stalls = dict(stall=0.2, jitter=3, command_stall=0.2, seed=case) if case % 2 else {}
    _check(config, program, rng, **stalls)


# --- hand-written programs ----------------------------------------------------------------------

def test_double_buffered_requantised_gemm(seed):
    rng = np.random.default_rng(seed)
    m, k, n = 12, 8, 8
    program, plan = gemm_program(CFG, m, k, n, a_addr=0, b_addr=512, c_addr=1024,
                                 out=ActMode.INT8, scale=[int(s) for s in rng.integers(1, 99, n)],
                                 shift=[int(s) for s in rng.integers(4, 9, n)], zero_point=3,
                                 relu=True)
    assert plan.k_tiles == 2 and plan.n_tiles == 2
    run, result = _check(CFG, program, rng)
    assert result.ok


def _mlp_program(config, m):
    """Two layers, int8, ReLU: X (m x 2R) @ W1 (2R x 2R) -> H in SBUF (the moving layout), then
    H @ W2 (2R x R) -> Y to DRAM. DRAM: X at 0, W1 at 512, W2 at 1024, Y to 2048."""
    R = config.array.rows
    pb = config.sbuf.partition_bytes
    X, W1, W2, H, Y = 0, 64, 128, 192, 256              # SBUF element offsets
    dma0 = [isa.dma_copy(isa.dram(0, (m, R, 2), (2 * R, 1, R)), isa.sbuf(X, (m, R, 2), (1, pb, m))),
            isa.dma_copy(isa.dram(512, (2 * R, R, 2), (2 * R, 1, R)),
                         isa.sbuf(W1, (2 * R, R, 2), (1, pb, 2 * R)), signals=[(0, 1)]),
            isa.dma_copy(isa.dram(1024, (2 * R, R), (R, 1)), isa.sbuf(W2, (2 * R, R), (1, pb)),
                         signals=[(1, 1)])]
    pe, act = [], []
    for j in range(2):
        for t in range(2):
            pe.append(isa.load_stationary(W1 + j * 2 * R + t * R, R, R,
                                          waits=[(0, 1)] if (j, t) == (0, 0) else []))
            pe.append(isa.multiply_moving(X + t * m, m, j * config.psum.bank_rows,
                                          accumulate=t > 0, signals=[(2, 1)] if t else []))
    for t in range(2):
        pe.append(isa.load_stationary(W2 + t * R, R, R, waits=[(1, 1)] if t == 0 else []))
        pe.append(isa.multiply_moving(H + t * m, m, 0, accumulate=t > 0,
                                      waits=[(3, 2), (5, 1)] if t == 0 else [],
                                      signals=[(4, 1)] if t else []))
    act = [isa.act_param(0, 0, [37, 41, 43, 47], [6, 7, 6, 7]),
           isa.act_param(1, 0, [53, 59, 61, 67], [7, 6, 7, 6])]
    for j in range(2):
        act.append(isa.act(j * config.psum.bank_rows, m, H + j * m, R, mode=ActMode.INT8,
                           relu=True, zero_point=-2, param=0, waits=[(2, 1)],
                           signals=[(3, 1)] + ([(5, 1)] if j == 1 else [])))
    act.append(isa.act(0, m, Y, R, mode=ActMode.INT8, zero_point=1, param=1, waits=[(4, 1)],
                       signals=[(6, 1)]))
    dma1 = [isa.dma_copy(isa.sbuf(Y, (m, R), (1, pb)), isa.dram(2048, (m, R), (R, 1)),
                         waits=[(6, 1)])]
    return isa.Program.build(config, {"dma0": dma0, "dma1": dma1, "pe": pe, "act": act})


def test_two_layer_requantised_mlp(seed):
    """The hidden layer's ACT output is the second layer's moving operand, from the SBUF."""
    rng = np.random.default_rng(seed)
    run, result = _check(CFG, _mlp_program(CFG, 8), rng)
    assert result.ok


def test_semaphore_ping_pong(seed):
    rounds = 6
    pe, act = [isa.nop(signals=[(0, 1)])], []
    for i in range(rounds):
        act.append(isa.nop(waits=[(0, 1)], signals=[(1, 1)]))
        pe.append(isa.nop(waits=[(1, 1)], signals=[(0, 1)] if i < rounds - 1 else []))
    run, result = _check(CFG, isa.Program.build(CFG, {"pe": pe, "act": act}),
                         np.random.default_rng(seed))
    assert result.ok and run.semaphores == [0] * isa.SEMAPHORES


# --- the semaphore file's timing (a grant lowers its counters a cycle later) -------------------

@pytest.mark.parametrize("command_stall", [0.0, 0.3])
def test_queues_wait_back_to_back_on_one_semaphore(seed, command_stall):
    """Three queues take units of one semaphore in consecutive cycles (each wait checked while
    the previous grant is still being subtracted) and one waits for all of their acks."""
    rounds = 4
    program = isa.Program.build(CFG, {
        "dma0": [isa.nop(signals=[(3, 3 * rounds)])],
        "pe": [isa.nop(waits=[(3, 1)], signals=[(4, 1)]) for _ in range(rounds)],
        "act": [isa.nop(waits=[(3, 1)], signals=[(4, 1)]) for _ in range(rounds)],
        "dma1": [isa.nop(waits=[(3, 1)], signals=[(4, 1)]) for _ in range(rounds)] +
                [isa.nop(waits=[(4, 3 * rounds)])]})
    run, result = _check(CFG, program, np.random.default_rng(seed), command_stall=command_stall,
                         seed=seed % 1000)
    assert result.ok and run.semaphores == [0] * isa.SEMAPHORES


@pytest.mark.parametrize("command_stall", [0.0, 0.3])
def test_signals_and_waits_meet_on_one_counter_at_the_top(seed, command_stall):
    """One semaphore at ``SEMAPHORE_MAX``: two queues take a unit and give it back, again and
    again, a third adds the last unit meanwhile; signals and waits on the counter meet in one
    cycle and right after each other, and no signal may be refused (none takes it past the
    top), however the grants and signals interleave."""
    top = isa.SEMAPHORE_MAX
    loop = [isa.nop(waits=[(5, 1)], signals=[(5, 1)]) for _ in range(6)]
    program = isa.Program.build(CFG, {
        "dma0": [isa.nop(signals=[(5, top - 1)]), isa.nop(signals=[(6, 1)])],
        "pe": [isa.nop(waits=[(6, 1)], signals=[(6, 1)])] + loop,
        "act": [isa.nop(waits=[(6, 1)], signals=[(6, 1)])] + loop,
        "dma1": [isa.nop(waits=[(6, 1)], signals=[(5, 1), (6, 1)])]})
    run, result = _check(CFG, program, np.random.default_rng(seed), command_stall=command_stall,
                         seed=seed % 1000)
    assert result.ok and all(q.state.name == "DONE" for q in result.queues.values())
    assert run.semaphores[5] == top and run.semaphores[6] == 1


def test_overflow_right_after_a_grant_halts_like_the_model(seed):
    """A counter at the top, a wait takes a unit, and the signal that follows it (after the
    grant, in program order through a second semaphore) brings it back: no overflow; the next
    one goes past the top: SEMAPHORE_OVERFLOW at its pc, nothing after it retires."""
    top = isa.SEMAPHORE_MAX
    program = isa.Program.build(CFG, {
        "dma0": [isa.nop(signals=[(5, top)])],
        "act": [isa.nop(waits=[(5, 1)], signals=[(7, 1)])],
        "pe": [isa.nop(waits=[(7, 1)], signals=[(5, 1)]), isa.nop(signals=[(5, 1)]),
               isa.nop(signals=[(8, 1)])]})
    run, result = _check(CFG, program, np.random.default_rng(seed))
    pe = result.queues["pe"]
    assert (pe.error, pe.pc, pe.retired) == (IsaError.SEMAPHORE_OVERFLOW, 2, [0, 1])
    assert run.semaphores[5] == top and run.semaphores[8] == 0


def test_repeats_cover_both_psum_banks(seed):
    rng = np.random.default_rng(seed)
    rows = CFG.psum.bank_rows
    program = isa.Program.build(CFG, {
        "dma0": [isa.dma_copy(isa.dram(0, (2 * rows, 4), (4, 1)), isa.sbuf(0, (2 * rows, 4), (1, PB))),
                 isa.dma_copy(isa.dram(256, (4, 4), (4, 1)), isa.sbuf(64, (4, 4), (1, PB)),
                              signals=[(0, 1)])],
        "pe": [isa.load_stationary(64, 4, 4, waits=[(0, 1)]),
               isa.multiply_moving(0, rows, 0, repeat=2, offset_step=rows, psum_step=rows,
                                   signals=[(1, 1)])],
        "act": [isa.act(0, rows, 96 // 4, 4, mode=ActMode.INT32, repeat=2, psum_step=rows,
                        offset_step=rows, waits=[(1, 1)], signals=[(2, 1)])]})
    _check(CFG, program, rng)


CFG8 = TileConfig(array=ArrayConfig(rows=4, cols=8), sbuf=SbufConfig(partitions=8, depth=64),
                  psum=PsumConfig(banks=2, bank_rows=16))


@pytest.mark.parametrize("command_stall", [0.0, 0.3])
def test_act_right_after_act_param_uses_every_new_pair(seed, command_stall):
    """The table takes an ACT_PARAM one column per cycle: the ACT issued right behind it (no
    wait between them), and an ACT_PARAM rewriting the entry an ACT just used, both see every
    new pair (the model applies each ACT_PARAM at once). Eight columns, the most the table
    writes per ACT_PARAM. (The ACT reads its first row's pairs late enough that this passes
    even without the queue's wait for the table, `param_busy`: the wait keeps it so whatever
    the ACT's latency.)"""
    rng = np.random.default_rng(seed)
    scales = rng.integers(-(1 << 15), 1 << 15, (3, 8)).tolist()
    shifts = rng.integers(0, 32, (3, 8)).tolist()
    program = isa.Program.build(CFG8, {
        "dma0": [isa.nop()], "dma1": [isa.nop()],
        "pe": [isa.load_stationary(256, 4, 8), isa.multiply_moving(300, 8, 0, signals=[(0, 1)])],
        "act": [isa.nop(waits=[(0, 1)]),
                isa.act_param(0, 0, scales[0], shifts[0]),
                isa.act(0, 8, 160, 8, mode=ActMode.INT16, param=0),
                isa.act_param(0, 1, scales[1][:7], shifts[1][:7]),
                isa.act(0, 8, 180, 8, mode=ActMode.INT16, param=0),
                isa.act_param(3, 5, scales[2][:3], shifts[2][:3]),
                isa.act(0, 8, 440, 8, mode=ActMode.INT8, relu=True, param=3)],
    })
    run, result = _check(CFG8, program, rng, command_stall=command_stall, seed=seed % 1000)
    assert result.ok and run.status["done"]


# --- errors: model and RTL agree on code, pc and detail -----------------------------------------

def _base_queues():
    """Independent work on disjoint memory (no semaphores), so a halted queue stops no other."""
    return {
        "dma0": [isa.dma_copy(isa.dram(0, (32,), (1,)), isa.sbuf(0, (32,), (1,)))],
        "dma1": [isa.dma_copy(isa.dram(1024, (32,), (1,)), isa.dram(2048, (32,), (1,)))],
        "pe": [isa.load_stationary(256, 4, 4), isa.multiply_moving(300, 8, 0)],
        "act": [isa.act_param(0, 0, [3] * 4, [1] * 4),
                isa.act(16, 4, 400, 4, mode=ActMode.INT8, param=0)],
    }


BIG = 1 << 32
BAD = [
    ("k0", "pe", isa.load_stationary(0, 0, 4)),
    ("k>R", "pe", isa.load_stationary(0, 5, 4)),
    ("n>C", "pe", isa.load_stationary(0, 4, 5)),
    ("load-sbuf", "pe", isa.load_stationary(PB - 3, 4, 4)),
    ("load-sbuf-huge", "pe", isa.load_stationary(BIG - 1, 4, 4)),
    ("m0", "pe", isa.multiply_moving(0, 0, 0)),
    ("psum-range", "pe", isa.multiply_moving(0, 4, 32)),
    ("psum-bank", "pe", isa.multiply_moving(0, 8, 12)),
    ("mult-sbuf", "pe", isa.multiply_moving(PB - 7, 8, 0)),
    ("repeat-2nd-out", "pe", isa.multiply_moving(0, 8, 0, repeat=2, psum_step=12)),
    ("repeat-bank-and-sbuf", "pe", isa.multiply_moving(PB - 20, 8, 0, repeat=3,
                                                         offset_step=8, psum_step=6)),
    ("pe-dma", "pe", isa.dma_copy(isa.dram(0), isa.dram(8))),
    ("dma-mult", "dma0", isa.multiply_moving(0, 1, 0)),
    ("param-entry", "act", isa.act_param(8, 0, [1], [0])),
    ("param-cols", "act", isa.act_param(0, 2, [1] * 3, [0] * 3)),
    ("act-rows0-cols0", "act", isa.act(0, 0, 0, 0)),
    ("act-cols>C", "act", isa.act(0, 1, 0, 5)),
    ("act-bank", "act", isa.act(12, 8, 0, 4)),
    ("act-sbuf", "act", isa.act(0, 4, PB // 4 - 3, 4, mode=ActMode.INT32)),
    ("dma-sbuf", "dma0", isa.dma_copy(isa.dram(0, (8,), (1,)), isa.sbuf(4 * PB - 4, (8,), (1,)))),
    ("dma-zero", "dma1", isa.dma_copy(isa.dram(0, (0,), (1,)), isa.dram(64, (0,), (1,)))),
    ("dma-size", "dma1", isa.dma_copy(isa.dram(0, (4,), (1,)), isa.dram(64, (5,), (1,)))),
    ("dma-dram-neg", "dma1", isa.dma_copy(isa.dram(4, (4,), (-2,)), isa.dram(64, (4,), (1,)))),
    ("dma-addr-width", "dma1", isa.dma_copy(isa.dram(BIG), isa.dram(64))),
    ("dma-beyond-dram-read", "dma0", isa.dma_copy(isa.dram(DRAM + 64, (8,), (1,)),
                                                  isa.sbuf(1024, (8,), (1,)))),
    ("dma-beyond-dram-write", "dma1", isa.dma_copy(isa.dram(0, (8,), (1,)),
                                                   isa.dram(DRAM + 64, (8,), (1,)))),
    ("dma-remote", "dma0", isa.dma_copy(isa.dram(0), isa.DmaEndpoint(Space.REMOTE_SBUF, 0))),
    ("dma-space3", "dma0", isa.Instruction(Opcode.DMA_COPY, src_space=3)),
    ("sem-id", "pe", isa.nop(waits=[(isa.SEMAPHORES, 1)])),
    ("sem-same-twice", "dma0", isa.nop(waits=[(3, 1), (3, 1)])),
    ("bad-and-waits-forever", "act", isa.act(0, 1, 0, 9, waits=[(9, 1)])),
    ("check-fingerprint", "pe", isa.check(isa.fingerprint(CFG) ^ 1, 2)),
    ("check-queue", "pe", isa.check(isa.fingerprint(CFG), 3)),
    ("load-pending", "pe", isa.load_stationary(0, 4, 4), 2),    # right after the base's load
]


@pytest.mark.parametrize("queue,bad,at", [(c[1], c[2], c[3] if len(c) > 3 else 1) for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_instruction_model_and_rtl_agree(seed, queue, bad, at):
    """``bad`` at pc ``at`` of ``queue``: the same halt (code, pc, detail) on both, nothing
    else written, every other queue done."""
    queues = _base_queues()
    queues[queue] = queues[queue][:at - 1] + [bad] + queues[queue][at - 1:]
    program = isa.Program.build(CFG, queues)
    run, result = _check(CFG, program, np.random.default_rng(seed))
    halted = result.queues[queue]
    assert halted.error is not IsaError.OK, halted
    assert halted.pc == (0 if bad.opcode == Opcode.CHECK else at)   # a CHECK replaces pc 0
    assert all(q.state.name == "DONE" for n, q in result.queues.items() if n != queue)


def test_load_pending_is_an_error_not_a_hang(seed):
    program = isa.Program.build(CFG, {"pe": [isa.load_stationary(0, 4, 4),
                                             isa.load_stationary(8, 4, 4, signals=[(1, 1)])]})
    run, result = _check(CFG, program, np.random.default_rng(seed))
    pe = result.queues["pe"]
    assert (pe.error, pe.pc) == (IsaError.LOAD_PENDING, 2)


@pytest.mark.parametrize("signals", [[(5, isa.SEMAPHORE_MAX)], [(5, 40000), (5, 30000)]],
                         ids=["one", "two-into-one"])
def test_semaphore_overflow_halts_like_the_model(seed, signals):
    total = sum(n for _, n in signals)
    first = [isa.nop(signals=[(5, isa.SEMAPHORE_MAX)])] if total <= isa.SEMAPHORE_MAX else []
    program = isa.Program.build(CFG, {"pe": first + [isa.nop(signals=signals),
                                                      isa.nop(signals=[(6, 1)])],
                                      "act": [isa.nop(signals=[(7, 2)])]})
    run, result = _check(CFG, program, np.random.default_rng(seed))
    pe = result.queues["pe"]
    assert (pe.error, pe.pc) == (IsaError.SEMAPHORE_OVERFLOW, len(first) + 1)
    assert run.semaphores[7] == 2 and run.semaphores[6] == 0


def test_dma_error_detail_and_abort_release(seed):
    """A refused copy halts dma0 with its DmaError; dma1 waits on dma0 forever until the host
    aborts: the model's WAITING is the RTL's ABORTED at the same pc."""
    program = isa.Program.build(CFG, {
        "dma0": [isa.dma_copy(isa.dram(0, (8,), (1,)), isa.sbuf(4 * PB - 4, (8,), (1,)),
                              signals=[(0, 1)])],
        "dma1": [isa.dma_copy(isa.dram(0, (8,), (1,)), isa.dram(512, (8,), (1,)),
                              waits=[(0, 1)])]})
    run, result = _check(CFG, program, np.random.default_rng(seed), abort_after=600)
    assert (result.queues["dma0"].error, result.queues["dma0"].detail) == \
        (IsaError.DMA_ERROR, DmaError.SBUF_RANGE)
    assert run.queues["dma1"]["error"] is IsaError.ABORTED
