"""The compiler on the instruction-level model: every program it emits runs race-free, without
deadlock or halt (capacity) under random schedules, and is bit-exact against NumPy."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import ActMode
from systolica.compiler import (CompileError, Linear, ReLU, Requantize, compile_gemm,
                                compile_layers, plan_gemm, predict, reference)
from systolica.config import (ArrayConfig, PsumConfig, SbufConfig, TileConfig, default_config,
                              dtype_range)
from systolica.model.tile import TileModel

DEFAULT = TileConfig.from_sections(default_config())
SMALL = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                   psum=PsumConfig(banks=2, bank_rows=16))
SBUF_2KIB = TileConfig(sbuf=SbufConfig(depth=256))       # the default tile, 2 KiB per partition


def _config(moving="int8", stationary="int8", **sections):
    base = dict(array=ArrayConfig(moving_dtype=moving, stationary_dtype=stationary))
    base.update(sections)
    return TileConfig(**base)


def run_model(compiled, x, seed=None):
    """Output of a compiled program on the model; asserts the run is clean."""
    model = TileModel(compiled.config, dram_bytes=compiled.dram_bytes)
    for addr, raw in compiled.data(x, np.int64).items():
        model.dram[addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)
    result = model.run(compiled.program.encode(), seed=seed)
    assert result.ok, "\n".join(result.problems()[:5])
    assert result.semaphores == [0] * isa.SEMAPHORES
    return compiled.unpack(model.dram)


def _random(rng, dtype, shape):
    lo, hi = dtype_range(dtype)
    return rng.integers(lo, hi + 1, shape)


def _random_shapes(seed, trials):
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        if trial % 3 == 0:                    # small shapes on the small tile: tiling corners
            yield trial, SMALL, (int(v) for v in rng.integers(1, 40, 3)), rng
        else:                                 # the default 16 KiB SBUF, and a 2 KiB one: split K
            config = DEFAULT if trial % 3 == 1 else SBUF_2KIB
            yield trial, config, (int(v) for v in rng.integers(1, 301, 3)), rng


@pytest.mark.parametrize("seed,trials", [(11, 6), pytest.param(12, 40, marks=pytest.mark.slow)])
def test_random_shapes_1_to_300_bit_exact_and_checked(seed, trials):
    for trial, config, (m, k, n), rng in _random_shapes(seed, trials):
        a, b = _random(rng, "int8", (m, k)), _random(rng, "int8", (k, n))
        compiled = compile_gemm(config, m, k, n, w=b)
        plan = compiled.plans[0]        # blocks sized to the config's SBUF and PSUM
        assert plan.sbuf_bytes_used <= config.sbuf.partition_bytes
        psum = config.psum              # slots of m_block rows, none across a bank
        assert plan.psum_slots <= psum.banks * (psum.bank_rows // plan.m_block)
        got = run_model(compiled, a, seed=trial)
        assert np.array_equal(got, a @ b), (m, k, n)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (4, 4, 4), (5, 3, 7), (17, 33, 9), (16, 64, 48)])
def test_small_config_shapes_under_random_schedules(m, k, n):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = _random(rng, "int8", (m, k)), _random(rng, "int8", (k, n))
    compiled = compile_gemm(SMALL, m, k, n, w=b)
    for seed in (None, 1, 2):
        assert np.array_equal(run_model(compiled, a, seed=seed), a @ b)


@pytest.mark.parametrize("options", [
    {"k_chunk": 1}, {"k_chunk": 2, "n_group": 2}, {"m_block": 5, "w_resident": False},
    {"m_block": 16, "w_resident": True, "k_chunk": 1}, {"n_group": 1, "m_block": 3},
])
def test_forced_plans_split_k_groups_blocks(options):
    rng = np.random.default_rng(3)
    m, k, n = 21, 19, 14
    a, b = _random(rng, "int8", (m, k)), _random(rng, "int8", (k, n))
    compiled = compile_gemm(SMALL, m, k, n, w=b, **options)
    plan = compiled.plans[0]
    for name, value in options.items():
        assert getattr(plan, name) == value
    assert np.array_equal(run_model(compiled, a, seed=5), a @ b)


@pytest.mark.parametrize("moving,stationary", [("uint8", "int8"), ("int16", "int16"),
                                               ("int8", "uint8")])
def test_input_dtypes(moving, stationary):
    config = _config(moving, stationary)
    rng = np.random.default_rng(4)
    m, k, n = 30, 41, 19
    a, b = _random(rng, moving, (m, k)), _random(rng, stationary, (k, n))
    got = run_model(compile_gemm(config, m, k, n, w=b), a)
    want = ((a @ b + (1 << 31)) % (1 << 32)) - (1 << 31)      # int32 wraparound
    assert np.array_equal(got, want)


@pytest.mark.parametrize("out", ["int8", "uint8", "int16"])
def test_requantised_outputs_with_extreme_values(out):
    rng = np.random.default_rng(7)
    m, k, n = 12, 40, 11
    for a_value, b_value in ((-128, -128), (127, -128), (-128, 127)):
        a = np.full((m, k), a_value)
        b = np.full((k, n), b_value)
        b[:, 0] = rng.integers(-128, 128, k)
        scale = rng.integers(-(1 << 15), 1 << 15, n)
        scale[0], scale[1] = (1 << 15) - 1, -(1 << 15)
        shift = rng.integers(0, 32, n)
        for relu, zp in ((False, 0), (True, 3 if out != "uint8" else 100)):
            layer = Linear(b, scale=scale, shift=shift, zero_point=zp, relu=relu, out_dtype=out)
            compiled = compile_layers(DEFAULT, [layer], m)
            got = run_model(compiled, a)
            assert got.dtype == np.dtype(out)
            assert np.array_equal(got, reference([layer], a, DEFAULT))


def test_int32_wraparound_extremes():
    config = _config("int16", "int16")
    a = np.full((9, 70), -(1 << 15))
    b = np.full((70, 5), -(1 << 15))
    got = run_model(compile_gemm(config, 9, 70, 5, w=b), a)
    assert np.array_equal(got, reference([Linear(b)], a, config))


def _mlp(rng, sizes):
    layers = []
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(-128, 128, (k, n))
        if i < len(sizes) - 2:
            layers += [Linear(w), Requantize(rng.integers(1, 200, n), 14), ReLU()]
        else:
            layers.append(Linear(w))
    return layers


@pytest.mark.parametrize("keep", [True, False])
def test_mlp_one_program_activations_in_sbuf(keep):
    rng = np.random.default_rng(8)
    sizes = [37, 64, 29, 10]
    layers = _mlp(rng, sizes)
    x = rng.integers(-128, 128, (45, sizes[0]))
    compiled = compile_layers(DEFAULT, layers, 45, keep_in_sbuf=keep)
    assert isinstance(compiled.program, isa.Program)
    sources = [p.a_source for p in compiled.plans]
    assert sources == (["dram", "sbuf", "sbuf"] if keep else ["dram"] * 3)
    for seed in (None, 9):
        assert np.array_equal(run_model(compiled, x, seed=seed), reference(layers, x))


def test_mlp_on_non_square_array_goes_through_dram():
    config = TileConfig(array=ArrayConfig(rows=4, cols=8), sbuf=SbufConfig(partitions=8))
    rng = np.random.default_rng(12)
    layers = _mlp(rng, [20, 24, 9])
    x = rng.integers(-128, 128, (13, 20))
    compiled = compile_layers(config, layers, 13)
    assert [p.c_dest for p in compiled.plans] == ["dram", "dram"]
    assert np.array_equal(run_model(compiled, x, seed=2), reference(layers, x))


def test_split_k_on_a_2_kib_sbuf_keeps_blocks_large():
    plan = plan_gemm(SBUF_2KIB, 256, 256, 256)
    assert plan.m_block >= 32        # the all-of-K hand schedule is forced to 21 rows
    assert plan.sbuf_bytes_used <= SBUF_2KIB.sbuf.partition_bytes
    assert plan.dram_bytes >= plan.min_dram_bytes
    text = str(plan)
    for word in ("loop order", "SBUF per partition", "DRAM traffic", "estimate"):
        assert word in text
    assert plan.to_dict()["k_chunks"] == plan.k_chunks


def test_bigger_sbuf_keeps_all_of_k_and_nears_minimum_traffic():
    small, big = (plan_gemm(TileConfig(sbuf=SbufConfig(depth=d)), 256, 256, 256)
                  for d in (256, 4096))
    assert big.k_chunks == 1 and big.w_resident and big.m_block >= 64
    assert big.dram_bytes <= 1.2 * big.min_dram_bytes < small.dram_bytes
    # within 1 % of the fastest, the planner takes the least traffic (program included)
    assert big.predicted_cycles <= small.predicted_cycles * 1.01


def test_next_a_block_loads_and_act_drains_while_the_engine_multiplies():
    """Double buffering and the overlapped drain, on the default config (two M blocks): the
    second M block's A lands in the second A buffer before the first block's last multiply, and
    ACT drains PSUM slots while the engine still multiplies (performance model's timeline)."""
    compiled = compile_gemm(DEFAULT, 256, 64, 64)
    plan = compiled.plans[0]
    buffers = {b.name: b for b in plan.buffers}
    assert plan.m_blocks == 2 and plan.w_resident and plan.psum_slots == 2
    assert buffers["a"].count == 2 and buffers["c"].count == 2
    timeline = predict(compiled.program, DEFAULT)
    pe = compiled.program.queues["pe"]
    multiplies = [iv for iv in timeline.intervals["pe"] if iv.opcode in ("MULTIPLY_MOVING", "MATMUL")]
    second_a = buffers["a"].offset + buffers["a"].bytes
    # the first M block's multiplies read A from the first A buffer (int8: element = byte offset)
    first_block = [iv for iv in multiplies if pe[iv.pc].offset < second_a]
    assert 0 < len(first_block) < len(multiplies)
    first_block_end = max(iv.end for iv in first_block)
    loads = [iv for iv in timeline.intervals["dma0"]
             if getattr(compiled.program.queues["dma0"][iv.pc], "dst_addr", None) == second_a]
    assert len(loads) == 1 and multiplies[0].start < loads[0].end < first_block_end
    drains = [iv for iv in timeline.intervals["act"] if iv.opcode == "ACT"]
    assert drains[0].start < first_block_end
    assert any(d.start < m.end and m.start < d.end for d in drains for m in multiplies)


def test_prediction_bounds():
    compiled = compile_gemm(DEFAULT, 64, 64, 64)
    timeline = predict(compiled.program, DEFAULT)
    ideal = 64 * 64 * 64 // 64
    assert timeline.cycles > ideal
    assert set(timeline.intervals) == {"dma0", "dma1", "pe", "act"}
    assert timeline.busy("pe") >= ideal
    assert 0 < timeline.utilization()["pe"] <= 1


@pytest.mark.parametrize("call,message", [
    (lambda: compile_gemm(DEFAULT, 0, 4, 4), "m must be a positive integer"),
    (lambda: compile_gemm(DEFAULT, 4, 2.5, 4), "k must be a positive integer"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4)))], 4), "integer dtype"),
    (lambda: compile_layers(DEFAULT, [Linear(np.full((4, 4), 300))], 4), "weight values"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int)),
                                      Linear(np.zeros((5, 4), int))], 4), "has 5 rows"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int), relu=True)], 4),
     "out_dtype int32"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int), out_dtype="int8",
                                             scale=[1, 2])], 4), "scale must be a scalar"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int), out_dtype="int8",
                                             shift=40)], 4), "shift values"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int), out_dtype="int8",
                                             zero_point=200)], 4), "zero_point"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int), out_dtype="float32")], 4),
     "out_dtype"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int)),
                                      Linear(np.zeros((4, 4), int))], 4), "layers[0].out_dtype"),
    (lambda: compile_layers(DEFAULT, [ReLU()], 4), "must follow a Linear"),
    (lambda: compile_layers(DEFAULT, [Linear(np.zeros((4, 4), int)), ReLU()], 4),
     "Requantize before"),
    (lambda: compile_layers(TileConfig(sbuf=SbufConfig(depth=2)),
                            [Linear(np.zeros((300, 8), int))], 64), "does not fit the SBUF"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(CompileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_program_for_another_config_is_refused_by_the_model():
    from systolica.model.tile import ProgramMismatch
    compiled = compile_gemm(SMALL, 4, 4, 4)
    with pytest.raises(ProgramMismatch):
        TileModel(DEFAULT).run(compiled.program.encode())


def test_act_mode_of_plan():
    compiled = compile_layers(DEFAULT, [Linear(np.ones((8, 8), int), out_dtype="int16")], 8)
    assert compiled.plans[0].out_mode == ActMode.INT16
    assert compiled.output_dtype == np.int16
