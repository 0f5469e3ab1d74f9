# amaranth: UnusedElaboratable=no
"""PSUM: bit-exact accumulation against the NumPy model, one vector per cycle (same row
back to back included), ACT reads concurrent with accumulation, bank conflicts, errors."""

import numpy as np
import pytest

from systolica.config import ArrayConfig, ConfigError, PsumConfig
from systolica.hdl.psum import Psum
from systolica.model.reference import psum_reference, wrap_signed
from systolica.testbench.memories import run_phases, tile_config


ARRAY = ArrayConfig(rows=4, cols=4, result_addr_bits=5)
PSUM = PsumConfig(banks=4, bank_rows=8)


def random_beats(rng, n, rows, cols, acc_bits, *, addrs=None, p_acc=0.7):
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    beats = []
    for i in range(n):
        addr = int(rng.integers(rows)) if addrs is None else int(rng.choice(addrs))
        data = [int(x) for x in rng.integers(lo, hi + 1, size=cols, dtype=np.int64)]
        beats.append({"data": data, "tag": {"addr": addr, "accumulate": int(rng.random() < p_acc),
                                            "last": int(i == n - 1)}})
    return beats


def run_psum(psum_cfg, array, phases, *, seed=0, stall=0.0):
    """Run ``phases``: a list of (result beats, read addresses) pairs; within a phase both run at
    the same time. Returns {"reads": read rows per phase, "result_cycles": acceptance cycles of the
    result beats per phase, "errors": the error flags at the end}."""
    dut = Psum(config=tile_config(psum=psum_cfg, array=array))

    async def errors(ctx):
        return {"result": ctx.get(dut.errors.result), "read": ctx.get(dut.errors.read)}

    run = run_phases(dut, [{"result": beats, "read.request": [{"addr": a} for a in reads],
                            "read.response": len(reads)} for beats, reads in phases],
                     seed=seed, stall=stall, final=errors)
    return {"reads": [[r["data"] for r in ph["read.response"][0]] for ph in run["phases"]],
            "result_cycles": [ph["result"] for ph in run["phases"]],
            "errors": run["final"]}


def read_all(psum_cfg):
    return list(range(psum_cfg.rows))


def test_bad_configs():
    with pytest.raises(ConfigError, match="banks"):
        PsumConfig(banks=0)
    with pytest.raises(ConfigError, match="bank_rows"):
        PsumConfig(bank_rows=12)
    with pytest.raises(ConfigError, match="bank_rows.*result_addr_bits"):
        tile_config(psum=PsumConfig(banks=4, bank_rows=512), array=ArrayConfig(result_addr_bits=10))
    with pytest.raises(TypeError, match="Psum config must be a TileConfig"):
        Psum(config=PsumConfig())


@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("banks, bank_rows, acc_bits", [(4, 8, 32), (1, 32, 40)])
def test_random_accumulation(seed, stall, banks, bank_rows, acc_bits):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    array = ArrayConfig(rows=4, cols=4, acc_bits=acc_bits, result_addr_bits=5)
    psum = PsumConfig(banks=banks, bank_rows=bank_rows)
    beats = random_beats(rng, 150, psum.rows, array.cols, acc_bits)
    out = run_psum(psum, array, [(beats, []), ([], read_all(psum))], seed=seed, stall=stall)
    expected, _ = psum_reference(beats, psum.rows, array.cols, acc_bits)
    got = np.array(out["reads"][1], dtype=np.int64)
    assert np.array_equal(got, expected)
    assert out["errors"] == {"result": 0, "read": 0}


def test_same_row_every_cycle_full_rate():
    """Back-to-back accumulation into one row: accepted every cycle, bit-exact (wraparound)."""
    rng = np.random.default_rng(7)
    n = 64
    big = (1 << 31) - 1
    beats = []
    for i in range(n):
        data = [big, -big - 1, int(rng.integers(-big, big)), 1 if i % 2 else -1]
        beats.append({"data": data, "tag": {"addr": 13, "accumulate": int(i != 0), "last": 0}})
    out = run_psum(PSUM, ARRAY, [(beats, []), ([], [13, 12, 14])])
    cycles = out["result_cycles"][0]
    assert cycles == list(range(cycles[0], cycles[0] + n)), "a result beat was stalled"
    expected = wrap_signed(np.sum([b["data"] for b in beats], axis=0), 32)
    assert np.array_equal(np.array(out["reads"][1][0]), expected)
    assert out["reads"][1][1] == [0] * 4 and out["reads"][1][2] == [0] * 4


def test_alternating_rows_and_narrow_accumulator(seed):
    """Rows A, B, A, B... and A, A, B, B... patterns, 20-bit accumulator (wraps at 20 bits)."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    array = ArrayConfig(rows=4, cols=3, acc_bits=20, result_addr_bits=4)
    psum = PsumConfig(banks=2, bank_rows=8)
    pattern = [3, 11, 3, 11, 3, 3, 11, 11, 4, 3, 4, 11] * 6
    beats = random_beats(rng, len(pattern), psum.rows, array.cols, 20, addrs=[0], p_acc=0.9)
    for b, a in zip(beats, pattern):
        b["tag"]["addr"] = a
    out = run_psum(psum, array, [(beats, []), ([], read_all(psum))], seed=seed)
    cycles = out["result_cycles"][0]
    assert cycles == list(range(cycles[0], cycles[0] + len(beats)))
    expected, _ = psum_reference(beats, psum.rows, array.cols, 20)
    assert np.array_equal(np.array(out["reads"][1], dtype=np.int64), expected)


@pytest.mark.parametrize("stall", [0.0, 0.25])
def test_reads_during_accumulation_all_banks(seed, stall):
    """The ACT side reads rows (every bank, conflicts included) while the engine accumulates into
    other rows: reads see the settled rows, the engine's rows come out exact, nobody starves."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    fill = [{"data": [int(x) for x in rng.integers(-1000, 1000, size=ARRAY.cols)],
             "tag": {"addr": a, "accumulate": 0, "last": 0}} for a in range(PSUM.rows)]
    busy_rows = [r for r in range(PSUM.rows) if r % 8 < 4]          # half of every bank
    quiet_rows = [r for r in range(PSUM.rows) if r % 8 >= 4]
    beats = random_beats(rng, 120, PSUM.rows, ARRAY.cols, 32, addrs=busy_rows, p_acc=0.8)
    reads = [int(rng.choice(quiet_rows)) for _ in range(120)]
    out = run_psum(PSUM, ARRAY, [(fill, []), (beats, reads), ([], read_all(PSUM))],
                   seed=seed, stall=stall)
    after_fill, _ = psum_reference(fill, PSUM.rows, ARRAY.cols)
    assert np.array_equal(np.array(out["reads"][1], dtype=np.int64), after_fill[reads])
    final, _ = psum_reference(fill + beats, PSUM.rows, ARRAY.cols)
    assert np.array_equal(np.array(out["reads"][2], dtype=np.int64), final)


def test_bank_conflict_both_progress():
    """Engine and ACT hammer the same bank every cycle: they alternate, both finish."""
    fill = [{"data": [5, 6, 7, 8], "tag": {"addr": 1, "accumulate": 0, "last": 0}}]
    beats = [{"data": [1, 1, 1, 1], "tag": {"addr": 0, "accumulate": 1, "last": 0}}
             for _ in range(40)]
    reads = [1] * 40
    out = run_psum(PSUM, ARRAY, [(fill, []), (beats, reads), ([], [0, 1])])
    assert out["reads"][1] == [[5, 6, 7, 8]] * 40
    assert out["reads"][2] == [[40] * 4, [5, 6, 7, 8]]
    cycles = out["result_cycles"][1]
    # Under sustained conflict the engine gets about every other cycle, never starved.
    assert cycles[-1] - cycles[0] + 1 <= 2 * len(beats) + 2


def test_out_of_range_addresses():
    """3 banks x 4 rows = 12 rows on a 4-bit address: rows 12..15 are errors; nothing else
    changes, and reads of them answer zeros."""
    array = ArrayConfig(rows=4, cols=4, result_addr_bits=4)
    psum = PsumConfig(banks=3, bank_rows=4)
    good = [{"data": [a, -a, 2 * a, 7], "tag": {"addr": a, "accumulate": 0, "last": 0}}
            for a in range(12)]
    bad = [{"data": [99, 99, 99, 99], "tag": {"addr": a, "accumulate": 1, "last": 0}}
           for a in (12, 15, 13)]
    out = run_psum(psum, array, [(good + bad + good[:2], []), ([], list(range(16)))])
    expected, dropped = psum_reference(good + bad + good[:2], 12, 4)
    assert dropped == 3
    got = np.array(out["reads"][1], dtype=np.int64)
    assert np.array_equal(got[:12], expected)
    assert np.array_equal(got[12:], np.zeros((4, 4), dtype=np.int64))
    assert out["errors"] == {"result": 1, "read": 1}


def test_clear_errors():
    """The sticky error flags stay set until clear_errors, and PSUM keeps working after an error."""
    array = ArrayConfig(rows=4, cols=4, result_addr_bits=4)
    psum = PsumConfig(banks=3, bank_rows=4)
    dut = Psum(config=tile_config(psum=psum, array=array))
    bad = [{"data": [1] * 4, "tag": {"addr": 14, "accumulate": 0, "last": 0}}]
    good = [{"data": [3, 2, 1, 0], "tag": {"addr": 2, "accumulate": 0, "last": 0}}]

    async def clear(ctx):
        before = {"result": ctx.get(dut.errors.result), "read": ctx.get(dut.errors.read)}
        ctx.set(dut.clear_errors, 1)
        await ctx.tick()
        ctx.set(dut.clear_errors, 0)
        await ctx.tick()
        after = {"result": ctx.get(dut.errors.result), "read": ctx.get(dut.errors.read)}
        return before, after

    run = run_phases(dut, [{"result": bad, "read.request": [{"addr": 13}], "read.response": 1},
                           {"result": good}, {"read.request": [{"addr": 2}], "read.response": 1}],
                     final=clear)
    assert run["phases"][0]["read.response"][0] == [{"data": [0] * 4}]
    assert run["phases"][2]["read.response"][0] == [{"data": [3, 2, 1, 0]}]
    assert run["final"] == ({"result": 1, "read": 1}, {"result": 0, "read": 0})


def test_error_in_the_cycle_of_a_clear_stays_set():
    """A sticky flag cleared in the very cycle an error happens keeps that error."""
    from systolica.testbench.sim import run_simulation
    dut = Psum(config=tile_config(psum=PSUM, array=ArrayConfig(rows=4, cols=4,
                                                               result_addr_bits=6)))

    async def bench(ctx):
        ctx.set(dut.result.valid, 1)        # row 40 >= 32 rows: dropped, flagged
        ctx.set(dut.result.payload, {"data": [1] * 4, "tag": {"addr": 40}})
        ctx.set(dut.clear_errors, 1)
        await ctx.tick()
        ctx.set(dut.result.valid, 0)
        assert ctx.get(dut.errors.result) == 1
        await ctx.tick()
        assert ctx.get(dut.errors.result) == 0
        ctx.set(dut.clear_errors, 0)

    run_simulation(dut, [bench], max_cycles=20)
