"""The instruction-level tile model (systolica/model/tile.py) on hand-written and random
programs, checked bit-exactly against plain NumPy (``a @ b``, docs/memories.md's requantisation
written out here), under several schedules."""

import time

import numpy as np
import pytest

from systolica import isa
from systolica.codes import ACT_MODE_RANGE, ActMode, EngineState
from systolica.config import ArrayConfig, DmaConfig, PsumConfig, SbufConfig, TileConfig
from systolica.model.programs import gemm_program, run_gemm
from systolica.model.random_programs import random_program
from systolica.model.reference import requantize, round_half_even_shift
from systolica.model.tile import TileModel


DEFAULT = TileConfig()


def _random_int(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def _state(model, result):
    return (model.dram.copy(), model.sbuf.copy(), model.psum.copy(), tuple(result.semaphores),
            {n: list(q.retired) for n, q in result.queues.items()})


def _assert_same_state(x, y):
    for a, b in zip(x[:3], y[:3]):
        assert np.array_equal(a, b)
    assert x[3:] == y[3:]


# --- GEMM ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, k, n, transposed", [
    (1, 1, 1, False), (8, 8, 8, False), (20, 13, 11, False), (64, 64, 64, True),
    (130, 40, 17, False), (257, 9, 3, True), (5, 100, 30, False),
])
def test_gemm_int8_to_int32_is_bit_exact(seed, m, k, n, transposed):
    rng = np.random.default_rng(seed)
    a, b = _random_int(rng, np.int8, (m, k)), _random_int(rng, np.int8, (k, n))
    model = TileModel(DEFAULT)
    c, result, program, plan = run_gemm(model, a, b, transposed=transposed,
                                        c_transposed=transposed)
    result.check()
    assert np.array_equal(c, a.astype(np.int32) @ b.astype(np.int32))
    assert result.semaphores == [0] * isa.SEMAPHORES     # every FREE/FULL pair balanced
    assert all(q.state == EngineState.DONE for q in result.queues.values())


def test_gemm_extreme_values_and_int16_operands_wrap_like_int32(seed):
    rng = np.random.default_rng(seed)
    config = TileConfig(array=ArrayConfig(moving_dtype="int16", stationary_dtype="int16"))
    a = np.full((33, 40), -32768, dtype=np.int16)
    b = np.full((40, 9), -32768, dtype=np.int16)
    a[::3] = 32767
    c, result, _, _ = run_gemm(TileModel(config), a, b)
    result.check()
    expected = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)   # wraps at 32 bits
    assert np.array_equal(c, expected)
    a2, b2 = _random_int(rng, np.int16, (17, 20)), _random_int(rng, np.int16, (20, 12))
    c2, result, _, _ = run_gemm(TileModel(config), a2, b2, transposed=True)
    assert np.array_equal(c2, (a2.astype(np.int64) @ b2.astype(np.int64)).astype(np.int32))


@pytest.mark.parametrize("config", [
    TileConfig(array=ArrayConfig(rows=4, cols=8, moving_dtype="uint8")),
    TileConfig(array=ArrayConfig(rows=8, cols=4), sbuf=SbufConfig(word_bytes=4),
               dma=DmaConfig(data_width=32, queues=3)),
    TileConfig(array=ArrayConfig(rows=16, cols=16), sbuf=SbufConfig(partitions=16, depth=512),
               psum=PsumConfig(banks=4, bank_rows=64)),
], ids=["4x8-uint8", "8x4-word4-3queues", "16x16"])
def test_gemm_on_other_configs(seed, config):
    rng = np.random.default_rng(seed)
    a = _random_int(rng, np.dtype(config.array.moving_dtype), (70, 37))
    b = _random_int(rng, np.dtype(config.array.stationary_dtype), (37, 21))
    c, result, _, _ = run_gemm(TileModel(config), a, b)
    result.check()
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))


def _requant_numpy(acc, scale, shift, zero_point, relu, lo, hi):
    """docs/memories.md's rounding rule, written out with Python integers."""
    out = np.empty(acc.shape, dtype=np.int64)
    for (i, j), x in np.ndenumerate(acc):
        p, s = int(x) * int(scale[j]), int(shift[j])
        v = p if s == 0 else (p + (1 << (s - 1))) >> s       # round half up ...
        if s and (p & ((1 << s) - 1)) == 1 << (s - 1) and v & 1:
            v -= 1                                             # ... ties to even
        v = max(v, 0) if relu else v
        out[i, j] = min(max(v + zero_point, lo), hi)
    return out


@pytest.mark.parametrize("mode", [ActMode.INT8, ActMode.UINT8, ActMode.INT16])
def test_gemm_requantised_through_act(seed, mode):
    rng = np.random.default_rng(seed)
    m, k, n = 40, 24, 19
    a, b = _random_int(rng, np.int8, (m, k)), _random_int(rng, np.int8, (k, n))
    scale = [int(x) for x in rng.integers(-32768, 32768, n)]
    shift = [int(x) for x in rng.integers(0, 32, n)]
    zp = int(rng.integers(-20, 20))
    c, result, _, _ = run_gemm(TileModel(DEFAULT), a, b, out=mode, scale=scale, shift=shift,
                               zero_point=zp, relu=True)
    result.check()
    lo, hi = {ActMode.INT8: (-128, 127), ActMode.UINT8: (0, 255),
              ActMode.INT16: (-32768, 32767)}[mode]
    expected = _requant_numpy(a.astype(np.int64) @ b.astype(np.int64), scale, shift, zp, True,
                              lo, hi)
    assert np.array_equal(c.astype(np.int64), expected)


def test_gemm_requantised_with_more_tiles_than_parameter_entries(seed):
    rng = np.random.default_rng(seed)
    m, k, n = 9, 8, 8 * 9 + 3                  # 10 N tiles > 8 entries: reloaded per tile
    a, b = _random_int(rng, np.int8, (m, k)), _random_int(rng, np.int8, (k, n))
    scale = [int(x) for x in rng.integers(1, 300, n)]
    shift = [int(x) for x in rng.integers(0, 12, n)]
    c, result, _, _ = run_gemm(TileModel(DEFAULT), a, b, out=ActMode.INT8, scale=scale,
                               shift=shift)
    result.check()
    expected = _requant_numpy(a.astype(np.int64) @ b.astype(np.int64), scale, shift, 0, False,
                              -128, 127)
    assert np.array_equal(c.astype(np.int64), expected)


def test_gemm_result_is_independent_of_the_schedule(seed):
    rng = np.random.default_rng(seed)
    a, b = _random_int(rng, np.int8, (50, 30)), _random_int(rng, np.int8, (30, 20))
    states = []
    for schedule in (None, seed, seed + 1, seed + 2):
        model = TileModel(DEFAULT)
        c, result, _, _ = run_gemm(model, a, b, m_block=16, seed=schedule)
        result.check()
        states.append(_state(model, result))
    for other in states[1:]:
        _assert_same_state(states[0], other)


def test_double_buffered_gemm_loads_ahead_of_compute():
    """Under the round-robin schedule the load of W column g+1 retires before the last
    multiply of tile g: the loads overlap the compute (nothing in the program orders them)."""
    rng = np.random.default_rng(0)
    a, b = _random_int(rng, np.int8, (64, 32)), _random_int(rng, np.int8, (32, 40))
    model = TileModel(DEFAULT)
    c, result, program, plan = run_gemm(model, a, b)
    result.check()
    log = result.retire_log
    pos = {entry: i for i, entry in enumerate(log)}
    loads = [pc for pc, insn in enumerate(program.queues["dma0"])
             if insn.opcode == isa.Opcode.DMA_COPY]
    multiplies = [pc for pc, insn in enumerate(program.queues["pe"])
                  if insn.opcode == isa.Opcode.MULTIPLY_MOVING]
    per_tile = plan.k_tiles
    ahead = 0
    for g in range(plan.n_tiles - 1):
        w_next = loads[1 + g + 1]                      # loads: A block, then W columns
        last_mult = multiplies[(g + 1) * per_tile - 1]
        ahead += pos[("dma0", w_next)] < pos[("pe", last_mult)]
    assert ahead == plan.n_tiles - 1
    # and the stores of tile g retire before the PE has finished every tile
    first_store = pos[("dma1", 1)]
    assert first_store < pos[("pe", multiplies[-1])]


def test_gemm_256_cubed_runs_in_seconds(seed):
    rng = np.random.default_rng(seed)
    config = TileConfig(sbuf=SbufConfig(depth=2048))
    a, b = _random_int(rng, np.int8, (256, 256)), _random_int(rng, np.int8, (256, 256))
    start = time.perf_counter()
    c, result, program, plan = run_gemm(TileModel(config), a, b, transposed=True)
    elapsed = time.perf_counter() - start
    result.check()
    assert np.array_equal(c, a.astype(np.int32) @ b.astype(np.int32))
    print(f"256^3 GEMM: {program.instructions} instructions, {elapsed:.2f} s")
    assert elapsed < 20
    # M up to a PSUM bank per MULTIPLY: far fewer than one instruction per 8 rows
    assert program.instructions < 256 * 256 * 256 // (8 * 8 * 8) // 4


def test_gemm_program_refuses_bad_parameters():
    with pytest.raises(ValueError, match="m must be a positive integer"):
        gemm_program(DEFAULT, 0, 1, 1, a_addr=0, b_addr=0, c_addr=0)
    with pytest.raises(ValueError, match="dma.queues >= 2"):
        gemm_program(TileConfig(dma=DmaConfig(queues=1)), 1, 1, 1, a_addr=0, b_addr=0, c_addr=0)
    with pytest.raises(ValueError, match="does not fit the SBUF"):         # 2 KiB partitions
        gemm_program(TileConfig(sbuf=SbufConfig(depth=256)), 8, 8 * 200, 8,
                     a_addr=0, b_addr=0, c_addr=0)
    with pytest.raises(ValueError, match="does not fit the SBUF's 16384 bytes"):  # the default
        gemm_program(DEFAULT, 8, 16 * DEFAULT.sbuf.depth, 8, a_addr=0, b_addr=0, c_addr=0)
    with pytest.raises(ValueError, match="scale and shift need n = 3"):
        gemm_program(DEFAULT, 8, 8, 3, a_addr=0, b_addr=0, c_addr=0, out=ActMode.INT8,
                     scale=[1], shift=[0])


def test_binary_image_and_program_object_run_the_same(seed):
    rng = np.random.default_rng(seed)
    a, b = _random_int(rng, np.int8, (24, 16)), _random_int(rng, np.int8, (16, 16))
    program, _ = gemm_program(DEFAULT, 24, 16, 16, a_addr=0, b_addr=512, c_addr=1024)
    states = []
    for form in (program, program.encode(), isa.decode(program.encode())):
        model = TileModel(DEFAULT)
        model.write_dram(0, a)
        model.write_dram(512, b)
        result = model.run(form)
        result.check()
        states.append(_state(model, result))
        assert np.array_equal(model.read_dram(1024, (24, 16), np.int32),
                              a.astype(np.int32) @ b.astype(np.int32))
    for other in states[1:]:
        _assert_same_state(states[0], other)


# --- a two-layer requantised int8 MLP, the hidden layer kept in SBUF ---------------------------

def test_two_layer_mlp_hidden_layer_stays_in_sbuf(seed):
    rng = np.random.default_rng(seed)
    config = DEFAULT
    pb = config.sbuf.partition_bytes
    m, k1, n1, n2 = 16, 16, 16, 8
    x = _random_int(rng, np.int8, (m, k1))
    w1 = _random_int(rng, np.int8, (k1, n1))
    w2 = _random_int(rng, np.int8, (n1, n2))
    s1, sh1 = [int(v) for v in rng.integers(1, 200, n1)], [int(v) for v in rng.integers(6, 12, n1)]
    s2, sh2 = [int(v) for v in rng.integers(1, 200, n2)], [int(v) for v in rng.integers(6, 12, n2)]
    zp1, zp2 = int(rng.integers(-5, 5)), int(rng.integers(-5, 5))
    model = TileModel(config)
    x_addr, w1_addr, w2_addr, y_addr = 0, 1024, 2048, 3072
    model.write_dram(x_addr, x)
    model.write_dram(w1_addr, w1)
    model.write_dram(w2_addr, w2)
    # SBUF element offsets (int8: element = byte) in every partition
    X, W1, W2, Y1, Y2 = 0, 64, 128, 192, 256
    X_FULL, W2_FULL, P1_FULL, Y1_DONE, P2_FULL, Y2_FULL = 0, 1, 2, 3, 4, 5
    dma0 = [
        # x[mm, t*8 + p] -> partition p, element X + t*m + mm
        isa.dma_copy(isa.dram(x_addr, (m, 8, 2), (k1, 1, 8)),
                     isa.sbuf(X, (m, 8, 2), (1, pb, m))),
        # W1[kk, j*8 + c] -> partition c, element W1 + j*k1 + kk
        isa.dma_copy(isa.dram(w1_addr, (k1, 8, 2), (n1, 1, 8)),
                     isa.sbuf(W1, (k1, 8, 2), (1, pb, k1)), signals=[(X_FULL, 1)]),
        isa.dma_copy(isa.dram(w2_addr, (n1, n2), (n2, 1)), isa.sbuf(W2, (n1, n2), (1, pb)),
                     signals=[(W2_FULL, 1)]),
    ]
    pe = []
    for j in range(2):                       # layer 1: N tile j into PSUM bank j
        for t in range(2):
            pe.append(isa.load_stationary(W1 + j * k1 + t * 8, 8, 8,
                                          waits=[(X_FULL, 1)] if (j, t) == (0, 0) else []))
            pe.append(isa.multiply_moving(X + t * m, m, j * 128, accumulate=t > 0,
                                          signals=[(P1_FULL, 1)] if t == 1 else []))
    for t in range(2):                       # layer 2: its k tile t = layer 1's N tile t
        pe.append(isa.load_stationary(W2 + t * 8, 8, n2, waits=[(W2_FULL, 1)] if t == 0 else []))
        pe.append(isa.multiply_moving(Y1 + t * m, m, 64, accumulate=t > 0,
                                      waits=[(Y1_DONE, 2)] if t == 0 else [],
                                      signals=[(P2_FULL, 1)] if t == 1 else []))
    act = [isa.act_param(j, 0, s1[j * 8:j * 8 + 8], sh1[j * 8:j * 8 + 8]) for j in range(2)]
    act.append(isa.act_param(2, 0, s2, sh2))
    for j in range(2):
        act.append(isa.act(j * 128, m, Y1 + j * m, 8, mode=ActMode.INT8, relu=True,
                           zero_point=zp1, param=j, waits=[(P1_FULL, 1)],
                           signals=[(Y1_DONE, 1)]))
    act.append(isa.act(64, m, Y2, n2, mode=ActMode.INT8, zero_point=zp2, param=2,
                       waits=[(P2_FULL, 1)], signals=[(Y2_FULL, 1)]))
    dma1 = [isa.dma_copy(isa.sbuf(Y2, (m, n2), (1, pb)), isa.dram(y_addr, (m, n2), (n2, 1)),
                         waits=[(Y2_FULL, 1)])]
    program = isa.Program.build(config, {"dma0": dma0, "dma1": dma1, "pe": pe, "act": act})
    states = []
    for schedule in (None, seed, seed + 1):
        model_s = TileModel(config)
        model_s.dram[:] = model.dram
        result = model_s.run(program.encode(), seed=schedule)
        result.check()
        states.append(_state(model_s, result))
        y = model_s.read_dram(y_addr, (m, n2), np.int8)
        h = _requant_numpy(x.astype(np.int64) @ w1.astype(np.int64), s1, sh1, zp1, True, -128, 127)
        expected = _requant_numpy(h @ w2.astype(np.int64), s2, sh2, zp2, False, -128, 127)
        assert np.array_equal(y.astype(np.int64), expected)
        # the hidden layer is in SBUF in the moving-operand layout
        hidden = model_s.sbuf_partitions(np.int8)[:8, Y1:Y1 + 2 * m]
        assert np.array_equal(np.concatenate([hidden[:, :m].T, hidden[:, m:].T], axis=1), h)
    for other in states[1:]:
        _assert_same_state(states[0], other)


# --- semaphores ---------------------------------------------------------------------------------

def test_semaphore_ping_pong_alternates(seed):
    rounds = 20
    pe = [isa.nop(signals=[(0, 1)])]
    act = []
    for i in range(rounds):
        act.append(isa.nop(waits=[(0, 1)], signals=[(1, 1)]))
        pe.append(isa.nop(waits=[(1, 1)], signals=[(0, 1)] if i < rounds - 1 else []))
    program = isa.Program.build(DEFAULT, {"pe": pe, "act": act})
    for schedule in (None, seed):
        result = TileModel(DEFAULT).run(program, seed=schedule)
        result.check()
        order = [q for q, pc in result.retire_log if q in ("pe", "act")
                 and program.queues[q][pc].opcode == isa.Opcode.NOP]   # not CHECK or END
        body = [q for q in order][:2 * rounds + 1]
        assert body == ["pe", "act"] * rounds + ["pe"]
        assert result.semaphores == [0] * isa.SEMAPHORES
        assert result.queues["pe"].retired == list(range(len(program.queues["pe"])))


def test_counting_semaphore_waits_for_the_whole_count_and_consumes_it():
    # dma0 signals sem 3 three times; pe waits for 2 then for 1; act waits for 5 (never)
    dma0 = [isa.nop(signals=[(3, 1)]) for _ in range(3)]
    pe = [isa.nop(waits=[(3, 2)]), isa.nop(waits=[(3, 1)], signals=[(4, 7)])]
    act = [isa.nop(waits=[(4, 5), (3, 1)])]
    result = TileModel(DEFAULT).run(isa.Program.build(DEFAULT, {"dma0": dma0, "pe": pe,
                                                                "act": act}))
    assert result.queues["pe"].state == EngineState.DONE
    assert result.queues["act"].state == EngineState.WAITING       # sem 3 is used up
    assert result.semaphores[3] == 0 and result.semaphores[4] == 7
    assert result.deadlock is not None


def test_repeat_covers_two_psum_banks_with_one_instruction_each(seed):
    rng = np.random.default_rng(seed)
    config = DEFAULT
    pb = config.sbuf.partition_bytes
    m = 256                                               # two 128-row banks
    a, w = _random_int(rng, np.int8, (m, 8)), _random_int(rng, np.int8, (8, 8))
    model = TileModel(config)
    model.write_dram(0, a)
    model.write_dram(4096, w)
    A, W = 0, 256
    out_elem = 272 // 4                                   # int32 output from byte 272
    program = isa.Program.build(config, {
        "dma0": [isa.dma_copy(isa.dram(0, (m, 8), (8, 1)), isa.sbuf(A, (m, 8), (1, pb))),
                 isa.dma_copy(isa.dram(4096, (8, 8), (8, 1)), isa.sbuf(W, (8, 8), (1, pb)),
                              signals=[(0, 1)])],
        "pe": [isa.load_stationary(W, 8, 8, waits=[(0, 1)]),
               isa.multiply_moving(A, 128, 0, repeat=2, offset_step=128, psum_step=128,
                                   signals=[(1, 1)])],
        "act": [isa.act(0, 128, out_elem, 8, mode=ActMode.INT32, repeat=2, psum_step=128,
                        offset_step=128, waits=[(1, 1)], signals=[(2, 1)])],
        "dma1": [isa.dma_copy(isa.sbuf(out_elem * 4, (m, 8), (4, pb)),
                              isa.dram(8192, (m, 8), (32, 4)), 4, waits=[(2, 1)])],
    })
    result = model.run(program)
    result.check()
    expected = a.astype(np.int32) @ w.astype(np.int32)
    assert np.array_equal(model.psum[:256], expected)
    assert np.array_equal(model.read_dram(8192, (m, 8), np.int32), expected)
    assert len(program.queues["pe"]) == 4                # CHECK, LOAD, MULTIPLY, END


# --- random race-free programs ------------------------------------------------------------------

@pytest.mark.parametrize("config", [DEFAULT, TileConfig(
    array=ArrayConfig(rows=4, cols=4, moving_dtype="int16"), sbuf=SbufConfig(depth=64),
    psum=PsumConfig(banks=2, bank_rows=32), dma=DmaConfig(queues=3))], ids=["default", "4x4"])
def test_random_race_free_programs_are_schedule_independent(seed, config):
    rng = np.random.default_rng(seed)
    varied = 0
    for trial in range(12):
        program = random_program(config, rng, operations=int(rng.integers(10, 50)))
        program = isa.decode(program.encode())
        dram = rng.integers(0, 256, 4096, dtype=np.uint8)
        states = []
        logs = set()
        for schedule in (None, *rng.integers(0, 1 << 30, 3).tolist()):
            model = TileModel(config, dram_bytes=4096)
            model.dram[:] = dram
            result = model.run(program, seed=schedule)
            assert result.ok, f"trial {trial}: {result.problems()}"
            states.append(_state(model, result))
            logs.add(tuple(result.retire_log))
        for other in states[1:]:
            _assert_same_state(states[0], other)
        varied += len(logs) > 1
    assert varied >= 6          # the schedules really interleave differently


def test_random_programs_without_their_waits_race(seed):
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(10):
        program = random_program(DEFAULT, rng, operations=40)
        stripped = isa.Program({n: [i.replace(waits=()) for i in insns]
                                for n, insns in program.queues.items()}, program.fingerprint)
        if TileModel(DEFAULT, dram_bytes=4096).run(stripped).races:
            flagged += 1
    assert flagged >= 8


def test_requantize_int64_path_matches_python_ints(seed):
    """requantize's vectorised int64 path (products < 2**62) against the exact Python-int rounding
    of every element, for every integer mode, at the extremes of int32 x int16."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 31), 1 << 31, (64, 8))
    acc[0] = -(1 << 31)
    acc[1] = (1 << 31) - 1
    scale = rng.integers(-(1 << 15), 1 << 15, 8)
    scale[0], scale[1] = -(1 << 15), (1 << 15) - 1
    shift = rng.integers(0, 32, 8)
    shift[2], shift[3] = 0, 31
    exact = round_half_even_shift(acc.astype(object) * scale.astype(object),
                                  np.broadcast_to(shift, acc.shape))
    for mode, (lo, hi) in ACT_MODE_RANGE.items():
        for relu in (False, True):
            zp = int(rng.integers(-70000, 70000))
            v = np.where(exact < 0, 0, exact) if relu else exact
            expected = np.clip((v + zp).astype(object), lo, hi).astype(np.int64)
            got = requantize(acc, scale, shift, zero_point=zp, relu=relu, mode=mode)
            assert np.array_equal(got, expected), mode
    ties = np.array([[5, -5, 7, -7, 2, -2, 6, -6]])       # x / 2: 2.5 -> 2, -2.5 -> -2, 3.5 -> 4
    got = requantize(ties, [1] * 8, [1] * 8, zero_point=0, relu=False, mode=ActMode.INT8)
    assert got.tolist() == [[2, -2, 4, -4, 1, -1, 3, -3]]


def test_random_programs_with_more_queue_pairs_than_semaphores(seed):
    """Eight DMA queues (10 queues, 90 ordered pairs > SEMAPHORES): the generator never names a
    semaphore past the tile's, and what it makes still runs race- and deadlock-free."""
    config = TileConfig(dma=DmaConfig(queues=8))
    rng = np.random.default_rng(seed)
    for _ in range(6):
        program = random_program(config, rng, operations=60)
        used = {sem for insns in program.queues.values() for insn in insns
                for sem, count in (*insn.waits, *insn.signals) if count}
        assert used and max(used) < isa.SEMAPHORES
        result = TileModel(config, dram_bytes=4096).run(program, seed=int(rng.integers(1 << 30)))
        assert result.ok, result.problems()
        assert not result.races
