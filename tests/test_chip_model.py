"""The chip model (systolica.model.chip) against docs/chip.md: remote copies and signals, their
ordering, the errors, and the checks across tiles. Expectations come from the contract."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import DmaError, EngineState, IsaError
from systolica.config import ChipConfig, NocConfig, TileConfig
from systolica.model.chip import ChipCheckError, ChipModel, sbuf_word_writes
from systolica.model.dma import DmaSide
from systolica.model.tile import ProgramMismatch, TileModel

CHIP = ChipConfig(noc=NocConfig(width=2, height=2))
PB = CHIP.tile.sbuf.partition_bytes
WB = CHIP.tile.sbuf.word_bytes


def build(queues, chip=CHIP):
    return isa.Program.build(chip, queues)


def chip_model(chip=CHIP, dram_bytes=1 << 16):
    return ChipModel(chip, dram_bytes=dram_bytes)


def dense(addr, n, space=isa.dram):
    return space(addr, (n,), (1,))


def test_ping_pong_between_two_tiles_is_bit_exact_and_race_free_under_every_schedule():
    rounds, n = 4, 48
    data = np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8)
    # (0,0) sends a buffer to (1,0), which adds nothing but sends it back; each round the
    # receiver waits "data ready" (sem 1) and the sender waits "buffer back" (sem 2).
    a, b = [], []
    a.append(isa.dma_copy(dense(0, n), dense(0, n, isa.sbuf)))
    for r in range(rounds):
        a.append(isa.dma_copy(dense(0, n, isa.sbuf), dense(0, n, isa.remote_sbuf),
                              dst_tile=(1, 0), waits=[(2, 1)] if r else []))
        a.append(isa.signal_remote((1, 0), 1, 1))
        b.append(isa.dma_copy(dense(0, n, isa.sbuf), dense(PB, n, isa.remote_sbuf),
                              dst_tile=(0, 0), waits=[(1, 1)]))
        b.append(isa.signal_remote((0, 0), 2, 1))
        a.append(isa.dma_copy(dense(PB, n, isa.sbuf), dense(0, n, isa.sbuf), waits=[(2, 1)]))
        a.append(isa.nop(signals=[(2, 1)]))
    a[-1] = isa.dma_copy(dense(PB, n, isa.sbuf), dense(4096, n), waits=[])
    # the last NOP is replaced by the store; drop its credit so every semaphore ends at 0
    finals = []
    for seed in (None, 0, 1, 2, 3):
        m = chip_model()
        m.dram[:n] = data
        r = m.run({(0, 0): build({"dma0": a}), (1, 0): build({"dma0": b})}, seed=seed)
        assert r.races == [] and r.deadlock is None, r.problems()
        assert all(q.state == EngineState.DONE for t in r.tiles.values()
                   for q in t.queues.values())
        assert np.array_equal(m.dram[4096:4096 + n], data)
        # 48 aligned bytes = 6 words per copy, 2 copies + 2 signals per round
        assert r.noc_flits == rounds * (2 * n // WB + 2) == r.delivered_flits
        assert r.lost_flits == 0 and r.signal_flits == 2 * rounds
        finals.append(m.tiles[(1, 0)].sbuf.copy())
    assert all(np.array_equal(f, finals[0]) for f in finals)


def forward_chain(hops, chip):
    """DRAM -> tile 0 -> remote tile 1 -> ... -> tile hops, which stores to DRAM; each hop
    waits for the previous one's "data ready" signal (sem 5) sent on the same queue after
    the copy."""
    n = 3 * WB + 5
    tiles = [(i % chip.noc.width, i // chip.noc.width) for i in range(hops + 1)]
    programs = {}
    for i, xy in enumerate(tiles):
        q = []
        if i == 0:
            q.append(isa.dma_copy(dense(0, n), dense(PB + 3, n, isa.remote_sbuf),
                                  dst_tile=tiles[1]))
        elif i < hops:
            q.append(isa.dma_copy(dense(PB + 3, n, isa.sbuf), dense(PB + 3, n, isa.remote_sbuf),
                                  dst_tile=tiles[i + 1], waits=[(5, 1)]))
        else:
            q.append(isa.dma_copy(dense(PB + 3, n, isa.sbuf), dense(8192, n), waits=[(5, 1)]))
        if i < hops:
            q.append(isa.signal_remote(tiles[i + 1], 5, 1))
        programs[xy] = build({"dma1": q}, chip)
    return programs, n


@pytest.mark.parametrize("seed", [None, 7])
def test_forward_chain_over_the_mesh(seed):
    chip = ChipConfig(noc=NocConfig(width=3, height=2))
    programs, n = forward_chain(5, chip)
    m = chip_model(chip)
    data = np.random.default_rng(2).integers(0, 256, n, dtype=np.uint8)
    m.dram[:n] = data
    r = m.run(programs, seed=seed).check()
    assert np.array_equal(m.dram[8192:8192 + n], data)
    # 29 bytes from byte 3 of a word touch 4 words; 5 copies and 5 signals
    assert sbuf_word_writes(DmaSide("sbuf", PB + 3, (n, 1, 1), (1, 0, 0)), 1, WB) == 4
    assert r.noc_flits == 5 * (4 + 1) and r.write_flits == 20 and r.lost_flits == 0
    assert all(v == 5 for v in r.channel_flits.values())


def test_sbuf_word_writes_follow_the_dma_writer():
    assert sbuf_word_writes(DmaSide("sbuf", 0, (64, 1, 1), (1, 0, 0)), 1, 8) == 8
    assert sbuf_word_writes(DmaSide("sbuf", 4, (64, 1, 1), (1, 0, 0)), 1, 8) == 9
    # non-contiguous elements: one piece each, even inside one word
    assert sbuf_word_writes(DmaSide("sbuf", 0, (4, 1, 1), (2, 0, 0)), 1, 8) == 4
    # 2-D: 3 runs of 16 bytes, one per partition
    assert sbuf_word_writes(DmaSide("sbuf", 0, (16, 3, 1), (1, PB, 0)), 1, 8) == 6
    # 2-byte elements straddling words
    assert sbuf_word_writes(DmaSide("sbuf", 7, (2, 1, 1), (9, 0, 0)), 2, 8) == 3


def test_remote_write_without_a_signal_races_with_the_destination_read():
    send = build({"dma0": [isa.dma_copy(dense(0, 16), dense(64, 16, isa.remote_sbuf),
                                        dst_tile=(0, 1))]})
    read = build({"pe": [isa.load_stationary(64, 8, 1)]})
    r = chip_model().run({(1, 1): send, (0, 1): read})
    assert not r.ok and len(r.races) == 1
    race = r.races[0]
    assert race.space == "sbuf(0, 1)" and 64 <= race.address < 80
    tiles = {race.first.tile, race.second.tile}
    assert tiles == {(1, 1), (0, 1)}
    by_tile = {a.tile: a for a in (race.first, race.second)}
    assert by_tile[(1, 1)].queue == "dma0" and by_tile[(1, 1)].pc == 1
    assert by_tile[(0, 1)].queue == "pe" and by_tile[(0, 1)].pc == 1
    with pytest.raises(ChipCheckError, match="tile\\(1,1\\) dma0\\[1\\]"):
        r.check()


def _copy_then_signal(signal_queue):
    """(0,0) copies to (1,0)'s SBUF on dma0 and signals (1,0) sem 4 from ``signal_queue``
    (dma1 after a local fence from dma0, or dma0 itself); (1,0) waits sem 4 and reads."""
    copy = isa.dma_copy(dense(0, 24), dense(0, 24, isa.remote_sbuf), dst_tile=(1, 0))
    if signal_queue == "dma0":
        queues = {"dma0": [copy, isa.signal_remote((1, 0), 4, 1)]}
    else:
        queues = {"dma0": [copy.replace(signals=[(9, 1)])],
                  "dma1": [isa.signal_remote((1, 0), 4, 1, waits=[(9, 1)])]}
    reader = build({"dma1": [isa.dma_copy(dense(0, 24, isa.sbuf), dense(512, 24),
                                          waits=[(4, 1)])]})
    return {(0, 0): build(queues), (1, 0): reader}


@pytest.mark.parametrize("signal_queue", ["dma0", "dma1"])
def test_a_signal_sent_after_the_copy_completed_orders_it_on_the_same_pair(signal_queue):
    # Flits from S to D arrive in the order S sent them, whatever queue sent them.
    for seed in (None, 0, 1, 2, 3, 4):
        m = chip_model()
        m.dram[:24] = np.arange(24)
        m.run(_copy_then_signal(signal_queue), seed=seed).check()
        assert np.array_equal(m.dram[512:536], np.arange(24))


def test_a_signal_through_another_tile_does_not_order_a_remote_write():
    # S writes D, then tells T; T tells D; D reads. S->D and T->D are different pairs, so the
    # write may still be in flight: a race (the contract orders only one pair's flits).
    s = build({"dma0": [isa.dma_copy(dense(0, 8), dense(0, 8, isa.remote_sbuf), dst_tile=(1, 1)),
                        isa.signal_remote((0, 1), 2, 1)]})
    t = build({"dma0": [isa.signal_remote((1, 1), 3, 1, waits=[(2, 1)])]})
    d = build({"dma0": [isa.dma_copy(dense(0, 8, isa.sbuf), dense(256, 8), waits=[(3, 1)])]})
    r = chip_model().run({(0, 0): s, (0, 1): t, (1, 1): d})
    assert [race.kind for race in r.races] == ["write-read"]
    assert {r.races[0].first.tile, r.races[0].second.tile} == {(0, 0), (1, 1)}


def test_two_sources_writing_one_destination_race():
    a = build({"dma0": [isa.dma_copy(dense(0, 8), dense(0, 8, isa.remote_sbuf), dst_tile=(1, 1))]})
    b = build({"dma1": [isa.dma_copy(dense(8, 8), dense(4, 8, isa.remote_sbuf), dst_tile=(1, 1))]})
    r = chip_model().run({(0, 0): a, (1, 0): b})
    assert [race.kind for race in r.races] == ["write-write"]
    assert r.races[0].space == "sbuf(1, 1)"


def test_dram_race_between_tiles():
    a = build({"dma1": [isa.dma_copy(dense(0, 8, isa.sbuf), dense(1000, 8))]})
    b = build({"dma0": [isa.dma_copy(dense(1004, 4), dense(0, 4, isa.sbuf))]})
    r = chip_model().run({(0, 0): a, (1, 1): b})
    assert len(r.races) == 1 and r.races[0].space == "dram"
    assert 1004 <= r.races[0].address < 1008
    assert {r.races[0].first.tile, r.races[0].second.tile} == {(0, 0), (1, 1)}


def test_dram_accesses_ordered_by_remote_signals_do_not_race():
    a = build({"dma1": [isa.dma_copy(dense(0, 8, isa.sbuf), dense(1000, 8)),
                        isa.signal_remote((1, 1), 0, 1)]})
    b = build({"dma0": [isa.dma_copy(dense(1000, 8), dense(0, 8, isa.sbuf), waits=[(0, 1)])]})
    chip_model().run({(0, 0): a, (1, 1): b}).check()


def test_deadlock_across_tiles_lists_every_waiting_instruction():
    a = build({"dma0": [isa.signal_remote((1, 0), 1, 1, waits=[(0, 1)])]})
    b = build({"dma0": [isa.signal_remote((0, 0), 0, 1, waits=[(1, 1)])],
               "pe": [isa.nop(waits=[(7, 2)])]})
    r = chip_model().run({(0, 0): a, (1, 0): b})
    assert r.races == [] and r.deadlock is not None
    where = {(acc.tile, acc.queue, acc.pc) for acc, _ in r.deadlock.waiting}
    assert where == {((0, 0), "dma0", 1), ((1, 0), "dma0", 1), ((1, 0), "pe", 1)}
    waits = {(acc.tile, acc.queue): w for acc, w in r.deadlock.waiting}
    assert waits[((1, 0), "pe")] == ((7, 2, 0),)
    assert "tile(1,0) pe[1]" in str(r.deadlock)


def test_a_remote_signal_past_semaphore_max_is_dropped_and_flagged():
    big = isa.SEMAPHORE_MAX
    a = build({"dma0": [isa.signal_remote((0, 1), 6, big), isa.signal_remote((0, 1), 6, 1)]})
    m = chip_model()
    r = m.run({(0, 0): a})
    assert r.tiles[(0, 1)].semaphores[6] == big
    assert r.remote_errors[(0, 1)] == {"semaphore_overflow": True}
    assert r.remote_errors[(0, 0)] == {"semaphore_overflow": False}
    assert r.dropped_signals == 1 and r.lost_flits == 0
    assert all(q.state == EngineState.DONE for q in r.tiles[(0, 0)].queues.values())
    assert not r.ok and "semaphore overflow" in "\n".join(r.problems())


BAD = [
    ("remote-tile-x", isa.dma_copy(dense(0, 8), dense(0, 8, isa.remote_sbuf), dst_tile=(2, 0)),
     IsaError.BAD_REMOTE_TILE, None),
    ("remote-tile-y", isa.dma_copy(dense(0, 8), dense(0, 8, isa.remote_sbuf), dst_tile=(0, 5)),
     IsaError.BAD_REMOTE_TILE, None),
    ("signal-tile", isa.signal_remote((3, 3), 0, 1), IsaError.BAD_REMOTE_TILE, None),
    ("signal-sem", isa.signal_remote((1, 0), isa.SEMAPHORES, 1), IsaError.BAD_SEMAPHORE, None),
    ("remote-range", isa.dma_copy(dense(0, 16), dense(8 * PB - 8, 16, isa.remote_sbuf),
                                  dst_tile=(1, 0)), IsaError.DMA_ERROR, DmaError.SBUF_RANGE),
    ("remote-source", isa.dma_copy(isa.remote_sbuf(0, (8,), (1,)), dense(0, 8, isa.sbuf)),
     IsaError.BAD_DMA_SPACE, None),
    ("remote-zero", isa.dma_copy(isa.dram(0, (0,), (1,)), isa.remote_sbuf(0, (0,), (1,)),
                                 dst_tile=(1, 0)), IsaError.DMA_ERROR, DmaError.ZERO_SIZE),
]


@pytest.mark.parametrize("name, bad, code, detail", BAD, ids=[b[0] for b in BAD])
def test_bad_remote_operation_halts_its_engine_only_and_sends_nothing(name, bad, code, detail):
    good_dma1 = [isa.dma_copy(dense(64, 8), dense(0, 8, isa.remote_sbuf), dst_tile=(1, 1)),
                 isa.signal_remote((1, 1), 0, 1)]
    src = build({"dma0": [isa.nop(), bad, isa.signal_remote((1, 0), 0, 1)], "dma1": good_dma1})
    sink = build({"dma0": [isa.dma_copy(dense(0, 8, isa.sbuf), dense(4096, 8), waits=[(0, 1)])]})
    m = chip_model()
    m.dram[:128] = np.arange(128)
    before = {xy: t.sbuf.copy() for xy, t in m.tiles.items()}
    r = m.run({(0, 0): src, (1, 1): sink})
    halted = r.tiles[(0, 0)].queues["dma0"]
    assert halted.state == EngineState.HALTED and halted.pc == 2
    assert (halted.error, halted.detail) == (code, detail)
    assert halted.retired == [0, 1]
    # the other engines of every tile go on; nothing but the good copy was sent or written
    assert r.tiles[(0, 0)].queues["dma1"].state == EngineState.DONE
    assert r.tiles[(1, 1)].queues["dma0"].state == EngineState.DONE
    assert np.array_equal(m.dram[4096:4104], np.arange(64, 72))
    assert r.noc_flits == 1 + 1 and set(r.channel_flits) <= {((0, 0), (1, 1)), ((0, 0), (1, 0))}
    assert r.channel_flits.get(((0, 0), (1, 0)), 0) == 0
    for xy in [(0, 0), (1, 0), (0, 1)]:
        assert np.array_equal(m.tiles[xy].sbuf, before[xy])
    assert r.races == []


@pytest.mark.parametrize("bad", [
    isa.signal_remote((0, 0), 0, 1),
    isa.dma_copy(dense(0, 8), dense(0, 8, isa.remote_sbuf), dst_tile=(0, 0)),
])
def test_remote_operations_on_a_standalone_tile_halt_with_bad_dma_space(bad):
    config = TileConfig()
    model = TileModel(config, dram_bytes=1 << 12)
    r = model.run(isa.Program.build(config, {"dma0": [bad]}))
    q = r.queues["dma0"]
    assert (q.state, q.error, q.pc) == (EngineState.HALTED, IsaError.BAD_DMA_SPACE, 1)


def test_programs_must_be_built_for_the_chip():
    tile_program = isa.Program.build(TileConfig(), {})
    with pytest.raises(ProgramMismatch, match="tile \\(1, 0\\)"):
        chip_model().run({(1, 0): tile_program})
    other_mesh = build({}, ChipConfig(noc=NocConfig(width=3, height=2)))
    with pytest.raises(ProgramMismatch):
        chip_model().run({(0, 0): other_mesh})
    with pytest.raises(ValueError, match="not in the 2x2 mesh"):
        chip_model().run({(2, 0): build({})})
    with pytest.raises(TypeError, match="ChipConfig"):
        ChipModel(TileConfig())
