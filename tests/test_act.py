# amaranth: UnusedElaboratable=no
"""ACT unit: requantisation bit-exact against model.reference.requantize (round half to even),
every output mode, saturation at both ends, shift 0 and max, scale extremes, ReLU, placement in
the SBUF, one row per cycle, errors. Runs PSUM -> ACT -> SBUF (hdl/tile_datapath.py without the
engine): PSUM is filled through its result stream, the SBUF is read back through its DMA port."""

import numpy as np
import pytest

from systolica.codes import ACT_MODE_BYTES, ActMode
from systolica.config import ActConfig, ArrayConfig, ConfigError, PsumConfig, SbufConfig
from systolica.hdl.act import Act
from systolica.hdl.tile_datapath import TileDatapath
from systolica.testbench.memories import accept_monitor, run_phases, tile_config
from systolica.model.reference import SbufModel, requantize, round_half_even_shift


ARRAY = ArrayConfig(rows=4, cols=4, result_addr_bits=5)
PSUM = PsumConfig(banks=2, bank_rows=16)
SBUF = SbufConfig(partitions=4, depth=32, word_bytes=8)
ACT = ActConfig(scale_bits=16, max_shift=31)
INT8, UINT8, INT16, INT32 = INT_MODES = (ActMode.INT8, ActMode.UINT8, ActMode.INT16, ActMode.INT32)


def fill_beats(acc):
    return [{"data": [int(x) for x in row], "tag": {"addr": a, "accumulate": 0, "last": 0}}
            for a, row in enumerate(acc)]


def act_expected(model, acc, scale, shift, cmds, *, max_shift, depth, word_bytes):
    """Apply the ACT commands to the SBUF model; returns the number of rows refused."""
    refused = 0
    for cmd in cmds:
        mode = cmd["mode"]
        dtype, size = mode.name.lower(), ACT_MODE_BYTES[mode]
        for i in range(cmd["rows"]):
            row = acc[cmd["psum_addr"] + i] if cmd["psum_addr"] + i < len(acc) else [0] * 4
            y = requantize(np.asarray(row)[:cmd["cols"]], np.asarray(scale)[:cmd["cols"]],
                           np.minimum(shift, max_shift)[:cmd["cols"]],
                           zero_point=cmd["zero_point"], relu=bool(cmd["relu"]), mode=mode)
            offset = cmd["offset"] + i
            if offset * size // word_bytes >= depth:
                refused += 1
                continue
            for c in range(cmd["cols"]):
                model.store(c, offset, [y[c]], dtype)
    return refused


def run_act(acc, scale, shift, cmds, *, seed=0, stall=0.0, act=ACT, array=ARRAY, psum=PSUM,
            sbuf=SBUF, record_writes=False, expected_fn=None):
    """``expected_fn`` (default :func:`act_expected`) applies the commands to the SBUF model."""
    rng = np.random.default_rng([seed, 99])
    init = SbufModel(sbuf.partitions, sbuf.depth, sbuf.word_bytes)
    init.bytes[:] = rng.integers(0, 256, size=init.bytes.shape, dtype=np.uint8)
    dut = TileDatapath(config=tile_config(array=array, sbuf=sbuf, psum=psum, act=act),
                       engine=False, sbuf_init=[init.words(p) for p in range(sbuf.partitions)])
    dump = [{"write": 0, "partition": p, "addr": a, "data": [0] * sbuf.word_bytes,
             "byte_enable": 0} for p in range(sbuf.partitions) for a in range(sbuf.depth)]
    writes = []

    async def set_params(ctx):
        ctx.set(dut.scale, [int(x) for x in scale])
        ctx.set(dut.shift, [int(x) for x in shift])

    async def wait_idle(ctx):
        while ctx.get(dut.act_busy):
            await ctx.tick()
        for _ in range(2):                      # the SBUF write of the last row lands
            await ctx.tick()

    async def errors(ctx):
        return {"act": ctx.get(dut.errors.act.as_value()), "shift": ctx.get(dut.errors.act.shift),
                "addr": ctx.get(dut.errors.act.addr), "sbuf": ctx.get(dut.errors.sbuf.as_value())}

    run = run_phases(dut, [{"result": fill_beats(acc)},
                           {"act_cmd": cmds},
                           {"dma.request": dump, "dma.response": len(dump)}],
                     seed=seed, stall=stall, before={0: set_params, 2: wait_idle}, final=errors,
                     check=["sbuf.vector_write"],
                     processes=[accept_monitor(dut.sbuf.vector_write, writes)]
                     if record_writes else [])
    got = [r["data"] for r in run["phases"][2]["dma.response"][0]]
    model = init
    refused = (expected_fn or act_expected)(model, acc, scale, shift, cmds, max_shift=act.max_shift,
                           depth=sbuf.depth, word_bytes=sbuf.word_bytes)
    expected = [model.read_word(p, a) for p in range(sbuf.partitions) for a in range(sbuf.depth)]
    return got, expected, run["final"], refused, writes


def random_acc(rng, rows, cols, bits=32):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(rows, cols), dtype=np.int64)


def test_round_half_even_model():
    """The rounding rule itself, on hand-checked values."""
    x = np.array([5, 6, 7, -5, -6, -7, 2, 3, -2, -3, 12, 13, -13, 0], dtype=object)
    got = round_half_even_shift(x, np.array([1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 5]))
    # 2.5->2, 3->3, 3.5->4, -2.5->-2, -3->-3, -3.5->-4, 0.5->0, 0.75->1, -0.5->0,
    # -0.75->-1, 1.5->2, 1.625->2, -1.625->-2, 0->0
    assert list(got) == [2, 3, 4, -2, -3, -4, 0, 1, 0, -1, 2, 2, -2, 0]
    assert list(requantize([[300, -300, 5, -5]], [1, 1, 1, 1], [0, 0, 1, 1])[0]) == \
        [127, -128, 2, -2]
    assert list(requantize([[300, -300, 5, -5]], [1] * 4, [0] * 4, mode=UINT8,
                           zero_point=10)[0]) == [255, 0, 15, 5]


def test_bad_configs():
    # Rules across sections are the TileConfig's: no half-configured unit is ever built.
    with pytest.raises(ConfigError, match="max_shift"):
        tile_config(act=ActConfig(scale_bits=8, max_shift=40), array=ARRAY,
                    psum=PSUM, sbuf=SBUF)
    with pytest.raises(ConfigError, match="max_shift"):
        ActConfig(max_shift=-1)
    with pytest.raises(ConfigError, match="scale_bits"):
        ActConfig(scale_bits=1)
    with pytest.raises(ConfigError, match="partitions.*cols"):
        tile_config(act=ACT, array=ArrayConfig(rows=4, cols=8), psum=PSUM,
                    sbuf=SbufConfig(partitions=4))
    with pytest.raises(ConfigError, match="bank_rows"):
        tile_config(sbuf=SBUF, array=ArrayConfig(rows=4, cols=4, result_addr_bits=3), psum=PSUM)
    with pytest.raises(TypeError, match="Act config must be a TileConfig"):
        Act(config=ACT)
    with pytest.raises(TypeError, match="TileDatapath config must be a TileConfig"):
        TileDatapath(config=SBUF)
    with pytest.raises(ValueError, match="init"):
        TileDatapath(config=tile_config(array=ARRAY, sbuf=SBUF, psum=PSUM, act=ACT),
                     sbuf_init=[[0]])


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_random_requantisation_all_modes(seed, stall):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    acc = random_acc(rng, PSUM.rows, ARRAY.cols, 24)
    scale = rng.integers(-(1 << 15), 1 << 15, size=4)
    shift = rng.integers(0, 32, size=4)
    cmds = []
    for mode in (INT8, UINT8, INT16, INT32, INT8, INT16):
        rows = int(rng.integers(1, 6))
        size = ACT_MODE_BYTES[mode]
        cmds.append({"psum_addr": int(rng.integers(0, PSUM.rows - rows + 1)), "rows": rows,
                     "offset": int(rng.integers(0, SBUF.depth * SBUF.word_bytes // size - rows)),
                     "cols": int(rng.integers(1, 5)), "mode": mode, "relu": int(rng.integers(2)),
                     "zero_point": int(rng.integers(-20, 20)) if mode != UINT8 else
                     int(rng.integers(0, 256))})
    got, expected, errors, refused, _ = run_act(acc, scale, shift, cmds, seed=seed, stall=stall)
    assert refused == 0
    assert got == expected
    assert errors["act"] == 0 and errors["sbuf"] == 0


@pytest.mark.parametrize("acc_bits, scale_bits, max_shift, banks", [(16, 8, 23, 1),
                                                                      (48, 12, 59, 4)])
def test_random_other_widths(seed, acc_bits, scale_bits, max_shift, banks):
    """Narrow and wide accumulators (int32 mode wraps a 48-bit accumulator to 32 bits), other
    scale widths, the largest shift of each, one PSUM bank and four."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    array = ArrayConfig(rows=4, cols=4, acc_bits=acc_bits, result_addr_bits=5)
    psum = PsumConfig(banks=banks, bank_rows=32 // banks)
    act = ActConfig(scale_bits=scale_bits, max_shift=max_shift)
    acc = random_acc(rng, psum.rows, 4, acc_bits)
    acc[0] = [-(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1, 0, -1]
    scale = rng.integers(-(1 << (scale_bits - 1)), 1 << (scale_bits - 1), size=4)
    scale[0] = -(1 << (scale_bits - 1))
    shift = rng.integers(0, max_shift + 1, size=4)
    shift[1] = max_shift
    # Element offsets: int8 at bytes 0..31, uint8 32..63, int16 64..127, int32 128..255.
    cmds = [{"psum_addr": 0, "rows": 32, "offset": 32 * min(mode.value, 1), "cols": 4,
             "mode": mode, "relu": int(mode == UINT8), "zero_point": 5 if mode != INT32 else 0}
            for mode in INT_MODES]
    got, expected, errors, refused, _ = run_act(acc, scale, shift, cmds, seed=seed, act=act,
                                                array=array, psum=psum)
    assert refused == 0
    assert got == expected
    assert errors["act"] == 0 and errors["sbuf"] == 0


def test_edges_saturation_shift_scale_ties():
    """Accumulator and scale extremes, shift 0 and 31, exact ties of both parities, saturation at
    both ends of every saturating mode, ReLU with a zero point."""
    big, small = (1 << 31) - 1, -(1 << 31)
    acc = np.array([
        [big, small, 0, 1],
        [small, big, -1, 1],
        [5, -5, 7, -7],              # with shift 1: 2.5, -2.5, 3.5, -3.5
        [6, -6, 2, -2],              # with shift 2: 1.5, -1.5, 0.5, -0.5
        [127, 128, -128, -129],
        [255, 256, -1, 0],
        [32767, 32768, -32768, -32769],
        [1 << 30, -(1 << 30), 3 << 29, -(3 << 29)],
    ] + [[i, -i, 3 * i, -3 * i] for i in range(24)], dtype=np.int64)
    cases = [
        ([1, 1, 1, 1], [0, 0, 0, 0]),
        ([-32768, 32767, -32768, 32767], [31, 31, 31, 31]),
        ([1, 1, 1, 1], [1, 1, 1, 1]),
        ([1, 1, 1, 1], [2, 2, 2, 2]),
        ([0, -1, 32767, -32768], [0, 5, 17, 30]),
    ]
    for scale, shift in cases:
        cmds = []
        for mode in INT_MODES:
            for relu in (0, 1):
                zp = {INT8: -3, UINT8: 100, INT16: 1000, INT32: 0}[mode]
                cmds.append({"psum_addr": 0, "rows": 8, "offset": 8 * (2 * mode.value + relu),
                             "cols": 4, "mode": mode, "relu": relu, "zero_point": zp})
        got, expected, errors, refused, _ = run_act(acc, scale, shift, cmds)
        assert refused == 0
        assert got == expected, f"scale={scale} shift={shift}"
        assert errors["act"] == 0


def test_max_shift_limit_and_runtime_clamp():
    """max_shift = acc_bits + scale_bits - 1 (the largest allowed) and a smaller max_shift with a
    larger shift at run time: clamped, error flag set."""
    rng = np.random.default_rng(2)
    acc = random_acc(rng, PSUM.rows, 4)
    act = ActConfig(scale_bits=16, max_shift=47)
    cmds = [{"psum_addr": 0, "rows": 8, "offset": 0, "cols": 4, "mode": INT16, "relu": 0,
             "zero_point": 0}]
    got, expected, errors, _, _ = run_act(acc, [-32768, 32767, 12345, -1], [47, 46, 40, 0], cmds,
                                          act=act)
    assert got == expected and errors["act"] == 0
    act = ActConfig(scale_bits=16, max_shift=20)
    got, expected, errors, _, _ = run_act(acc, [1000, -1000, 7, 3], [25, 31, 20, 3], cmds, act=act)
    assert got == expected
    assert errors["shift"] == 1


def test_out_of_range_offset_not_written():
    rng = np.random.default_rng(4)
    acc = random_acc(rng, PSUM.rows, 4, 12)
    # int32 rows: 2 per 8-byte word, 32 words -> element offsets 64.. are beyond the partition.
    cmds = [{"psum_addr": 0, "rows": 4, "offset": 62, "cols": 4, "mode": INT32, "relu": 0,
             "zero_point": 0},
            {"psum_addr": 4, "rows": 2, "offset": 0, "cols": 3, "mode": INT8, "relu": 0,
             "zero_point": 0}]
    got, expected, errors, refused, _ = run_act(acc, [1] * 4, [0] * 4, cmds)
    assert refused == 2
    assert got == expected
    assert errors["addr"] == 1 and errors["sbuf"] == 0


def test_one_row_per_cycle():
    rng = np.random.default_rng(6)
    acc = random_acc(rng, PSUM.rows, 4)
    cmds = [{"psum_addr": 0, "rows": 32, "offset": 0, "cols": 4, "mode": INT8, "relu": 1,
             "zero_point": 0},
            {"psum_addr": 3, "rows": 20, "offset": 100, "cols": 4, "mode": UINT8, "relu": 0,
             "zero_point": 7}]
    got, expected, _, _, writes = run_act(acc, rng.integers(-99, 99, size=4), [9, 8, 7, 6], cmds,
                                          record_writes=True)
    assert got == expected
    assert len(writes) == 52
    assert writes == list(range(writes[0], writes[0] + 52)), "ACT did not sustain 1 row/cycle"


def test_large_values_with_extreme_zero_points():
    """Rounded values around +-2**18 (where the hardware narrows them) with the most negative and
    most positive zero points, in every mode, with and without ReLU."""
    base = [(1 << 18) - 1, 1 << 18, -(1 << 18), -(1 << 18) - 1]
    acc = np.array([[x + d for x in base] for d in (-70000, -65536, -1, 0, 1, 65535, 70000)]
                   + [[0, 0, 0, 0]] * 25, dtype=np.int64)
    for zp in (-65536, 65535, -40000, 40000):
        cmds = [{"psum_addr": 0, "rows": 7, "offset": 8 * (2 * mode.value + relu), "cols": 4,
                 "mode": mode, "relu": relu, "zero_point": zp}
                for mode in (INT8, UINT8, INT16) for relu in (0, 1)]
        for scale, shift in (([1] * 4, [0] * 4), ([2, 3, -2, -3], [1, 1, 1, 1])):
            got, expected, errors, refused, _ = run_act(acc, scale, shift, cmds)
            assert refused == 0
            assert got == expected, f"zero_point={zp} scale={scale}"
            assert errors["act"] == 0


def test_error_in_the_cycle_of_a_clear_stays_set():
    """A sticky flag cleared in the very cycle an error happens keeps that error."""
    from systolica.testbench.sim import run_simulation
    dut = Act(config=tile_config(array=ARRAY, sbuf=SBUF, psum=PSUM,
                                 act=ActConfig(scale_bits=16, max_shift=20)))

    async def bench(ctx):
        ctx.set(dut.shift, [25, 0, 0, 0])        # > max_shift: clamped, flagged
        ctx.set(dut.psum.response.valid, 1)
        ctx.set(dut.clear_errors, 1)
        await ctx.tick()
        ctx.set(dut.psum.response.valid, 0)
        assert ctx.get(dut.errors.shift) == 1
        await ctx.tick()
        assert ctx.get(dut.errors.shift) == 0
        ctx.set(dut.clear_errors, 0)

    run_simulation(dut, [bench], max_cycles=20)
