"""The tile model's error handling and checks: every bad instruction halts its engine with its
IsaError code and pc, writes nothing, and the other engines go on; races and deadlocks are
reported with the instructions involved."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import ActMode, DmaError, EngineState, IsaError
from systolica.config import TileConfig
from systolica.isa import Opcode, Space
from systolica.model.tile import ProgramMismatch, TileCheckError, TileModel


CONFIG = TileConfig()
PB = CONFIG.sbuf.partition_bytes


def _base_queues():
    """Four queues doing independent work on disjoint memory (no semaphores)."""
    return {
        "dma0": [isa.dma_copy(isa.dram(0, (64,), (1,)), isa.sbuf(0, (64,), (1,)))],
        "dma1": [isa.dma_copy(isa.dram(1024, (64,), (1,)), isa.dram(2048, (64,), (1,)))],
        "pe": [isa.load_stationary(512, 8, 8), isa.multiply_moving(600, 16, 0)],
        "act": [isa.act_param(0, 0, [3] * 8, [1] * 8),
                isa.act(128, 8, 1000, 8, mode=ActMode.INT8, param=0)],
    }


def _model(seed=1):
    rng = np.random.default_rng(seed)
    model = TileModel(CONFIG, dram_bytes=1 << 16)
    model.dram[:] = rng.integers(0, 256, model.dram.size)
    model.sbuf[:] = rng.integers(0, 256, model.sbuf.size)
    model.psum[:] = rng.integers(-1000, 1000, model.psum.shape)
    return model


def _memories(model):
    return model.dram.copy(), model.sbuf.copy(), model.psum.copy()


def _run_injected(queue, position, bad):
    """Run the base program with ``bad`` inserted in ``queue`` before its instruction
    ``position`` and the same program with ``queue`` cut there; return both results/memories."""
    queues = _base_queues()
    injected = dict(queues, **{queue: queues[queue][:position] + [bad] + queues[queue][position:]})
    cut = dict(queues, **{queue: queues[queue][:position]})
    runs = []
    for qs in (injected, cut):
        model = _model()
        result = model.run(isa.Program.build(CONFIG, qs))
        runs.append((result, _memories(model)))
    return runs


def _bad_cases():
    big = 1 << 32
    return [
        # (id, queue, instruction, code, detail)
        ("k0", "pe", isa.load_stationary(0, 0, 8), IsaError.BAD_K, None),
        ("k>R", "pe", isa.load_stationary(0, 9, 8), IsaError.BAD_K, None),
        ("n0", "pe", isa.load_stationary(0, 8, 0), IsaError.BAD_N, None),
        ("n>C", "pe", isa.load_stationary(0, 8, 9), IsaError.BAD_N, None),
        ("load-sbuf", "pe", isa.load_stationary(PB - 7, 8, 8), IsaError.SBUF_RANGE, None),
        ("load-sbuf-huge", "pe", isa.load_stationary(big - 1, 8, 8), IsaError.SBUF_RANGE, None),
        ("m0", "pe", isa.multiply_moving(0, 0, 0), IsaError.BAD_COUNT, None),
        ("repeat0", "pe", isa.multiply_moving(0, 4, 0, repeat=0), IsaError.BAD_COUNT, None),
        ("psum-range", "pe", isa.multiply_moving(0, 4, 256), IsaError.PSUM_RANGE, None),
        ("psum-bank", "pe", isa.multiply_moving(0, 16, 120), IsaError.PSUM_BANK, None),
        ("mult-sbuf", "pe", isa.multiply_moving(PB - 15, 16, 0), IsaError.SBUF_RANGE, None),
        ("repeat-2nd-out", "pe", isa.multiply_moving(0, 16, 0, repeat=2, psum_step=120),
         IsaError.PSUM_BANK, None),
        ("pe-dma", "pe", isa.dma_copy(isa.dram(0), isa.dram(8)), IsaError.WRONG_ENGINE, None),
        ("pe-act", "pe", isa.act(0, 1, 0, 1), IsaError.WRONG_ENGINE, None),
        ("act-load", "act", isa.load_stationary(0, 8, 8), IsaError.WRONG_ENGINE, None),
        ("dma-mult", "dma0", isa.multiply_moving(0, 1, 0), IsaError.WRONG_ENGINE, None),
        ("param-entry", "act", isa.act_param(8, 0, [1], [0]), IsaError.BAD_ACT_PARAM, None),
        ("param-scale", "act", isa.act_param(0, 0, [1 << 15], [0]), IsaError.BAD_ACT_PARAM, None),
        ("param-scale-low", "act", isa.act_param(0, 0, [-(1 << 15) - 1], [0]),
         IsaError.BAD_ACT_PARAM, None),
        ("param-shift", "act", isa.act_param(0, 0, [1], [32]), IsaError.BAD_ACT_PARAM, None),
        ("param-cols", "act", isa.act_param(0, 4, [1] * 5, [0] * 5), IsaError.BAD_ACT_PARAM,
         None),
        ("param-count0", "act", isa.Instruction(Opcode.ACT_PARAM, count=0),
         IsaError.BAD_ACT_PARAM, None),
        ("act-cols0", "act", isa.act(0, 1, 0, 0), IsaError.BAD_N, None),
        ("act-cols>C", "act", isa.act(0, 1, 0, 9), IsaError.BAD_N, None),
        ("act-rows0", "act", isa.act(0, 0, 0, 8), IsaError.BAD_COUNT, None),
        ("act-param", "act", isa.act(0, 1, 0, 8, param=8), IsaError.BAD_ACT_PARAM, None),
        ("act-sbuf", "act", isa.act(0, 4, PB // 4 - 3, 8, mode=ActMode.INT32),
         IsaError.SBUF_RANGE, None),
        ("act-psum", "act", isa.act(256, 1, 0, 8), IsaError.PSUM_RANGE, None),
        ("act-bank", "act", isa.act(100, 29, 0, 8), IsaError.PSUM_BANK, None),
        ("dma-sbuf", "dma0", isa.dma_copy(isa.dram(0, (8,), (1,)), isa.sbuf(8 * PB - 4, (8,), (1,))),
         IsaError.DMA_ERROR, DmaError.SBUF_RANGE),
        ("dma-zero", "dma1", isa.dma_copy(isa.dram(0, (0,), (1,)), isa.dram(64, (0,), (1,))),
         IsaError.DMA_ERROR, DmaError.ZERO_SIZE),
        ("dma-elem0", "dma1", isa.dma_copy(isa.dram(0), isa.dram(64), 0),
         IsaError.DMA_ERROR, DmaError.ZERO_SIZE),
        ("dma-size", "dma1", isa.dma_copy(isa.dram(0, (4,), (1,)), isa.dram(64, (5,), (1,))),
         IsaError.DMA_ERROR, DmaError.SIZE_MISMATCH),
        ("dma-dram-neg", "dma1", isa.dma_copy(isa.dram(4, (4,), (-2,)), isa.dram(64, (4,), (1,))),
         IsaError.DMA_ERROR, DmaError.DRAM_RANGE),
        ("dma-addr-width", "dma1", isa.dma_copy(isa.dram(big), isa.dram(64)),
         IsaError.DMA_FIELD_RANGE, None),
        ("dma-beyond-dram-read", "dma0", isa.dma_copy(isa.dram((1 << 16) - 2, (4,), (1,)),
                                                      isa.sbuf(4096, (4,), (1,))),
         IsaError.DMA_ERROR, DmaError.AXI_READ_ERROR),
        ("dma-beyond-dram-write", "dma1", isa.dma_copy(isa.dram(0, (4,), (1,)),
                                                       isa.dram(1 << 16, (4,), (1,))),
         IsaError.DMA_ERROR, DmaError.AXI_WRITE_ERROR),
        ("dma-remote", "dma0", isa.dma_copy(isa.dram(0), isa.DmaEndpoint(Space.REMOTE_SBUF, 0),
                                            dst_tile=(1, 0)), IsaError.BAD_DMA_SPACE, None),
        ("dma-space3", "dma0", isa.Instruction(Opcode.DMA_COPY, src_space=3),
         IsaError.BAD_DMA_SPACE, None),
        ("sem-id", "pe", isa.nop(waits=[(isa.SEMAPHORES, 1)]), IsaError.BAD_SEMAPHORE, None),
        ("sem-id-signal", "act", isa.nop(signals=[(63, 1)]), IsaError.BAD_SEMAPHORE, None),
        ("sem-same-twice", "dma0", isa.nop(waits=[(3, 1), (3, 1)]), IsaError.BAD_SEMAPHORE,
         None),
        ("check-fingerprint", "pe", isa.check(isa.fingerprint(CONFIG) ^ 1, 2),
         IsaError.CONFIG_MISMATCH, None),
        ("check-queue", "pe", isa.check(isa.fingerprint(CONFIG), 3), IsaError.QUEUE_MISMATCH,
         None),
    ]


@pytest.mark.parametrize("name, queue, bad, code, detail", _bad_cases(),
                         ids=[c[0] for c in _bad_cases()])
@pytest.mark.parametrize("where", ["second", "last"])
def test_bad_instruction_halts_its_engine_only_and_writes_nothing(name, queue, bad, code,
                                                                  detail, where):
    position = 1 if where == "second" else len(_base_queues()[queue])
    (result, memories), (cut_result, cut_memories) = _run_injected(queue, position, bad)
    halted = result.queues[queue]
    assert halted.state == EngineState.HALTED
    assert (halted.error, halted.detail) == (code, detail)
    assert halted.pc == position + 1                      # after the CHECK
    assert halted.retired == list(range(position + 1))
    for other, q in result.queues.items():
        if other != queue:
            assert q.state == EngineState.DONE, other
            assert q.retired == cut_result.queues[other].retired
    for got, expected in zip(memories, cut_memories):
        assert np.array_equal(got, expected)              # nothing of the bad one written
    assert f"{queue} halted at pc {position + 1}: {code.name}" in "\n".join(result.problems())
    with pytest.raises(TileCheckError, match=code.name):
        result.check()


def test_multiply_before_any_load():
    result = TileModel(CONFIG).run(isa.Program.build(CONFIG, {
        "pe": [isa.multiply_moving(0, 4, 0)], "act": [isa.act(0, 4, 0, 8)]}))
    assert (result.queues["pe"].error, result.queues["pe"].pc) == \
        (IsaError.MULTIPLY_BEFORE_LOAD, 1)
    assert result.queues["act"].state == EngineState.DONE


def _image_with_word(program, queue, pc, word):
    image = bytearray(program.encode())
    offset, _ = program.queue_offsets()[queue]
    image[offset + pc * isa.WORD_BYTES:offset + (pc + 1) * isa.WORD_BYTES] = word
    return bytes(image)


@pytest.mark.parametrize("opcode", [0x00, 0x04, 0x7f, 0xff])
def test_unknown_opcode_halts_before_its_waits(opcode):
    program = isa.Program.build(CONFIG, {"dma0": [isa.nop(signals=[(2, 1)])],
                                         "pe": [isa.nop(), isa.nop()]})
    word = bytearray(isa.nop(waits=[(2, 1)]).encode())
    word[0] = opcode
    result = TileModel(CONFIG).run(_image_with_word(program, "pe", 1, bytes(word)))
    pe = result.queues["pe"]
    assert (pe.state, pe.error, pe.pc) == (EngineState.HALTED, IsaError.UNKNOWN_OPCODE, 1)
    assert result.semaphores[2] == 1                       # checked before waiting: not consumed
    assert result.queues["dma0"].state == EngineState.DONE
    assert result.deadlock is None


def test_first_instruction_must_be_a_check_and_end_is_required():
    fp = isa.fingerprint(CONFIG)
    program = isa.Program({"dma0": [isa.nop(), isa.end()],
                           "dma1": [isa.check(fp, 1), isa.nop()],          # no END
                           "pe": [], "act": [isa.check(fp, 3), isa.end()]}, fp)
    result = TileModel(CONFIG).run(program)
    assert (result.queues["dma0"].error, result.queues["dma0"].pc) == \
        (IsaError.CONFIG_MISMATCH, 0)
    assert (result.queues["dma1"].error, result.queues["dma1"].pc) == (IsaError.QUEUE_OVERRUN, 2)
    assert result.queues["dma1"].retired == [0, 1]
    assert result.queues["pe"].state == EngineState.DONE and not result.queues["pe"].retired
    assert result.queues["act"].state == EngineState.DONE


def test_semaphore_overflow_halts_and_leaves_the_count():
    result = TileModel(CONFIG).run(isa.Program.build(CONFIG, {
        "pe": [isa.nop(signals=[(5, isa.SEMAPHORE_MAX)]), isa.nop(signals=[(5, 1), (6, 1)])]}))
    pe = result.queues["pe"]
    assert (pe.error, pe.pc) == (IsaError.SEMAPHORE_OVERFLOW, 2)
    assert result.semaphores[5] == isa.SEMAPHORE_MAX and result.semaphores[6] == 0


def test_program_for_another_config_is_refused():
    other = TileConfig(psum=CONFIG.psum.replace(banks=4))
    program = isa.Program.build(other, {"pe": [isa.nop()]})
    with pytest.raises(ProgramMismatch, match="fingerprint"):
        TileModel(CONFIG).run(program)
    with pytest.raises(ProgramMismatch, match="fingerprint"):
        TileModel(CONFIG).run(program.encode())
    # without the image check, every queue's CHECK halts it
    result = TileModel(CONFIG).run(program, check_header=False)
    assert {q.error for q in result.queues.values()} == {IsaError.CONFIG_MISMATCH}
    three = TileConfig(dma=CONFIG.dma.replace(queues=3))
    with pytest.raises(ProgramMismatch, match="queue"):
        TileModel(CONFIG).run(isa.Program.build(three, {}), check_header=False)


def test_model_refuses_a_non_tile_config():
    with pytest.raises(TypeError, match="TileModel config must be a TileConfig"):
        TileModel(CONFIG.array)


# --- races ---------------------------------------------------------------------------------------

def _races(queues, seed=None):
    return TileModel(CONFIG).run(isa.Program.build(CONFIG, queues), seed=seed).races


def test_dma_write_then_unsynchronised_load_is_a_race():
    copy = isa.dma_copy(isa.dram(0, (8, 8), (8, 1)), isa.sbuf(0, (8, 8), (1, PB)))
    races = _races({"dma0": [copy], "pe": [isa.load_stationary(0, 8, 8)]})
    assert len(races) == 1
    race = races[0]
    assert race.space == "sbuf" and race.kind in ("write-read", "read-write")
    assert {(race.first.queue, race.first.pc), (race.second.queue, race.second.pc)} == \
        {("dma0", 1), ("pe", 1)}
    assert "load_stationary" in str(race) and "dma_copy" in str(race)
    # ordered by a semaphore: no race, under any schedule
    for seed in (None, 1, 2, 3):
        assert not _races({"dma0": [copy.replace(signals=[(0, 1)])],
                           "pe": [isa.load_stationary(0, 8, 8, waits=[(0, 1)])]}, seed)


def test_a_chain_through_a_third_queue_orders_and_a_broken_one_does_not():
    copy = isa.dma_copy(isa.dram(0, (8,), (1,)), isa.sbuf(0, (8,), (1,)), signals=[(0, 1)])
    chain = {"dma0": [copy], "act": [isa.nop(waits=[(0, 1)], signals=[(1, 1)])],
             "dma1": [isa.dma_copy(isa.sbuf(0, (8,), (1,)), isa.dram(64, (8,), (1,)),
                                   waits=[(1, 1)])]}
    assert not _races(chain)
    broken = dict(chain, act=[isa.nop(waits=[(0, 1)]), isa.nop(signals=[(1, 1)])])
    assert not _races(broken)                 # still a chain: the NOPs are in order
    unordered = dict(chain, act=[isa.nop(signals=[(1, 1)]), isa.nop(waits=[(0, 1)])])
    races = _races(unordered)
    assert [(r.first.queue, r.second.queue) for r in races] in ([("dma0", "dma1")],
                                                                [("dma1", "dma0")])


def test_reads_do_not_race_but_two_writers_do():
    read0 = isa.dma_copy(isa.dram(0, (32,), (1,)), isa.sbuf(0, (32,), (1,)))
    read1 = isa.dma_copy(isa.dram(0, (32,), (1,)), isa.sbuf(PB, (32,), (1,)))
    assert not _races({"dma0": [read0], "dma1": [read1]})
    write0 = isa.dma_copy(isa.sbuf(0, (32,), (1,)), isa.dram(100, (32,), (1,)))
    write1 = isa.dma_copy(isa.sbuf(PB, (32,), (1,)), isa.dram(120, (32,), (1,)))
    races = _races({"dma0": [write0], "dma1": [write1]})
    assert len(races) == 1 and races[0].kind == "write-write" and races[0].space == "dram"
    assert races[0].address == 120


def test_psum_and_act_output_races():
    pe = [isa.load_stationary(0, 8, 8), isa.multiply_moving(0, 4, 2)]
    assert [r.space for r in _races({"pe": pe, "act": [isa.act(0, 3, 100, 2)]})] == ["psum"]
    assert not _races({"pe": pe, "act": [isa.act(6, 3, 100, 2)]})      # rows 6..8 untouched
    # ACT writes SBUF elements the PE reads
    races = _races({"pe": [isa.load_stationary(100, 8, 8)], "act": [isa.act(0, 3, 101, 2)]})
    assert [r.space for r in races] == ["sbuf"]


# --- deadlocks -----------------------------------------------------------------------------------

def test_waiting_for_a_signal_nobody_sends_is_a_deadlock():
    result = TileModel(CONFIG).run(isa.Program.build(CONFIG, {
        "pe": [isa.nop(waits=[(4, 1)])], "act": [isa.nop(signals=[(4, 1)]), isa.nop(waits=[(4, 2)])]}))
    assert result.deadlock is not None and not result.ok
    waiting = {access.queue: (access.pc, w) for access, w in result.deadlock.waiting}
    assert set(waiting) <= {"pe", "act"} and len(waiting) == 1
    queue, (pc, waits) = next(iter(waiting.items()))
    assert waits == ((4, 2, 0),) if queue == "act" else waits == ((4, 1, 0),)
    assert "deadlock" in str(result.deadlock) and "sem4 >=" in str(result.deadlock)


def test_cyclic_wait_is_a_deadlock_with_both_instructions():
    result = TileModel(CONFIG).run(isa.Program.build(CONFIG, {
        "pe": [isa.nop(waits=[(0, 1)], signals=[(1, 1)])],
        "act": [isa.nop(waits=[(1, 1)], signals=[(0, 1)])]}))
    waiting = {(a.queue, a.pc) for a, _ in result.deadlock.waiting}
    assert waiting == {("pe", 1), ("act", 1)}
    assert result.queues["pe"].state == EngineState.WAITING
    assert result.queues["dma0"].state == EngineState.DONE


def test_an_engine_waiting_on_a_halted_one_is_reported():
    result = TileModel(CONFIG).run(isa.Program.build(CONFIG, {
        "pe": [isa.load_stationary(0, 9, 8), isa.nop(signals=[(0, 1)])],
        "act": [isa.nop(waits=[(0, 1)])]}))
    assert result.queues["pe"].error == IsaError.BAD_K
    assert [(a.queue, a.pc) for a, _ in result.deadlock.waiting] == [("act", 1)]
    problems = "\n".join(result.problems())
    assert "pe halted at pc 1: BAD_K" in problems and "act[1]" in problems


def test_random_programs_with_an_injected_wait_deadlock(seed):
    from systolica.model.random_programs import random_program
    rng = np.random.default_rng(seed)
    for _ in range(5):
        program = random_program(CONFIG, rng, operations=30)
        queue = ("dma0", "dma1", "pe", "act")[int(rng.integers(4))]
        insns = list(program.queues[queue])
        pc = int(rng.integers(1, len(insns)))
        last = isa.SEMAPHORES - 1
        insns.insert(pc, isa.nop(waits=[(last, 1)]))        # nobody signals the last semaphore
        bad = isa.Program(dict(program.queues, **{queue: insns}), program.fingerprint)
        for schedule in (None, 7):
            result = TileModel(CONFIG, dram_bytes=4096).run(bad, seed=schedule)
            assert result.deadlock is not None
            waiting = {(a.queue, a.pc): w for a, w in result.deadlock.waiting}
            assert waiting[(queue, pc)] == ((last, 1, 0),)
            assert not result.races


def test_second_load_before_a_multiply_is_load_pending():
    program = isa.Program.build(CONFIG, {"pe": [
        isa.load_stationary(0, 8, 8), isa.multiply_moving(0, 4, 0),
        isa.load_stationary(8, 8, 8), isa.load_stationary(16, 8, 8, signals=[(1, 1)])]})
    result = TileModel(CONFIG).run(program)
    pe = result.queues["pe"]
    assert (pe.state, pe.error, pe.pc) == (EngineState.HALTED, IsaError.LOAD_PENDING, 4)
    assert pe.retired == [0, 1, 2, 3] and result.semaphores[1] == 0


def test_two_signals_into_one_semaphore_overflow_together():
    result = TileModel(CONFIG).run(isa.Program.build(CONFIG, {
        "pe": [isa.nop(signals=[(5, 40000), (5, 30000)])]}))
    pe = result.queues["pe"]
    assert (pe.error, pe.pc) == (IsaError.SEMAPHORE_OVERFLOW, 1)
    assert result.semaphores[5] == 0


def test_bad_instruction_halts_before_waits_that_never_come():
    """Checks come before the waits: a bad instruction halts at once, nothing is consumed."""
    result = TileModel(CONFIG).run(isa.Program.build(CONFIG, {
        "dma0": [isa.nop(signals=[(4, 1)])],
        "act": [isa.act(0, 1, 0, 9, waits=[(4, 1), (9, 1)])]}))
    act = result.queues["act"]
    assert (act.state, act.error, act.pc) == (EngineState.HALTED, IsaError.BAD_N, 1)
    assert result.semaphores[4] == 1 and result.deadlock is None
