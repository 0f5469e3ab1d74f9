# amaranth: UnusedElaboratable=no
"""SBUF: every port against the NumPy model (model.reference.SbufModel), alone and all at once
with random stalls; the moving reader's one-beat-per-cycle rate under DMA writes; errors."""

import numpy as np
import pytest

from systolica.config import ArrayConfig, ConfigError, PsumConfig, SbufConfig
from systolica.hdl.contracts import elements_per_word
from systolica.hdl.sbuf import Sbuf
from systolica.testbench.memories import pack_word, run_phases, tile_config
from systolica.model.reference import SbufModel


SBUF8 = SbufConfig(partitions=4, depth=32, word_bytes=8)
ARRAY8 = ArrayConfig(rows=4, cols=4, result_addr_bits=6)
# int16 operands, 4-byte words (2 elements per word), 5 partitions (not a power of two, so the
# partition field can hold out-of-range values) of 32 words (depth must be a power of two).
SBUF16 = SbufConfig(partitions=5, depth=32, word_bytes=4)
ARRAY16 = ArrayConfig(rows=4, cols=3, moving_dtype="int16", stationary_dtype="int16",
                      result_addr_bits=5)


def sbuf_tile(*, sbuf, array):
    """A tile of ``sbuf`` and ``array`` (PSUM small enough for every array here)."""
    return tile_config(sbuf=sbuf, array=array, psum=PsumConfig(banks=1, bank_rows=32))


def array_for(cfg):
    return ARRAY8 if cfg is SBUF8 else ARRAY16


def random_model(cfg, rng):
    model = SbufModel(cfg.partitions, cfg.depth, cfg.word_bytes)
    model.bytes[:] = rng.integers(0, 256, size=model.bytes.shape, dtype=np.uint8)
    return model


def make_sbuf(cfg, array, model):
    return Sbuf(config=sbuf_tile(sbuf=cfg, array=array),
                init=[model.words(p) for p in range(cfg.partitions)])


def moving_expected(model, array, cmd):
    beats = []
    mask = (1 << array.result_addr_bits) - 1
    for i in range(cmd["count"]):
        beats.append({
            "data": [model.element(k, cmd["offset"] + i, array.moving_dtype)
                     for k in range(array.rows)],
            "start": int(cmd["start"] and i == 0),
            "tag": {"addr": (cmd["addr"] + i) & mask, "accumulate": cmd["accumulate"],
                    "last": int(i == cmd["count"] - 1)},
        })
    return beats


def weights_expected(model, array, cmd):
    w = model.stationary(cmd["offset"], cmd["rows"], cmd["cols"], array.stationary_dtype)
    return [{"data": [int(x) for x in w[k]] + [0] * (array.cols - cmd["cols"]),
             "last": int(k == cmd["rows"] - 1)} for k in range(cmd["rows"])]


def random_moving_cmds(rng, cfg, array, n, *, max_count=12, addr_range=None):
    elems = cfg.depth * elements_per_word(cfg, array.moving_dtype)
    cmds = []
    for _ in range(n):
        count = int(rng.integers(1, max_count + 1))
        lo, hi = addr_range if addr_range else (0, elems)
        cmds.append({"offset": int(rng.integers(lo, hi - count + 1)), "count": count,
                     "start": int(rng.integers(2)), "addr": int(rng.integers(64)),
                     "accumulate": int(rng.integers(2))})
    return cmds


def random_weights_cmds(rng, cfg, array, n, *, addr_range=None):
    elems = cfg.depth * elements_per_word(cfg, array.stationary_dtype)
    cmds = []
    for _ in range(n):
        rows, cols = int(rng.integers(1, array.rows + 1)), int(rng.integers(1, array.cols + 1))
        lo, hi = addr_range if addr_range else (0, elems)
        cmds.append({"offset": int(rng.integers(lo, hi - rows + 1)), "rows": rows, "cols": cols})
    return cmds


def random_dma(rng, cfg, n, *, addrs, write_prob=0.5, model=None):
    reqs = []
    for _ in range(n):
        write = rng.random() < write_prob
        reqs.append({
            "write": int(write), "partition": int(rng.integers(cfg.partitions)),
            "addr": int(rng.choice(addrs)),
            "data": [int(x) for x in rng.integers(0, 256, size=cfg.word_bytes)],
            "byte_enable": int(rng.integers(1 << cfg.word_bytes)) if write else 0,
        })
    return reqs


def apply_dma(model, reqs):
    """The responses the model gives to ``reqs`` applied in order (and the writes applied)."""
    responses = []
    for r in reqs:
        if r["write"]:
            model.write_word(r["partition"], r["addr"], r["data"], r["byte_enable"])
        else:
            responses.append(model.read_word(r["partition"], r["addr"]))
    return responses


def dump_requests(cfg):
    return [{"write": 0, "partition": p, "addr": a, "data": [0] * cfg.word_bytes,
             "byte_enable": 0} for p in range(cfg.partitions) for a in range(cfg.depth)]


def dump_model(model):
    return [model.read_word(p, a) for p in range(model.partitions) for a in range(model.depth)]


def responses(run, phase):
    return [r["data"] for r in run["phases"][phase]["dma.response"][0]]


def test_bad_configs():
    with pytest.raises(ConfigError, match="partitions"):
        SbufConfig(partitions=0)
    with pytest.raises(ConfigError, match="depth"):
        SbufConfig(depth=1)
    with pytest.raises(ConfigError, match="word_bytes"):
        SbufConfig(word_bytes=3)
    with pytest.raises(ConfigError, match="partitions.*array.rows"):
        tile_config(sbuf=SbufConfig(partitions=2), array=ArrayConfig(rows=4))
    with pytest.raises(ConfigError, match="depth.*power of two"):
        tile_config(sbuf=SbufConfig(depth=24))
    with pytest.raises(TypeError, match="Sbuf config must be a TileConfig"):
        Sbuf(config=SBUF8)
    with pytest.raises(ValueError, match="init"):
        Sbuf(config=sbuf_tile(sbuf=SBUF8, array=ARRAY8), init=[[0]])


@pytest.mark.parametrize("cfg", [SBUF8, SBUF16], ids=["w8", "w4"])
def test_dma_port_random(seed, cfg):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    array = array_for(cfg)
    model = random_model(cfg, rng)
    dut = make_sbuf(cfg, array, model)
    reqs = random_dma(rng, cfg, 150, addrs=range(cfg.depth))
    reqs += [dict(r, write=0) for r in reqs[:40]]          # read back some written words
    expected = apply_dma(model, reqs)
    run = run_phases(dut, [{"dma.request": reqs, "dma.response": len(expected)},
                           {"dma.request": dump_requests(cfg),
                            "dma.response": cfg.partitions * cfg.depth}],
                     seed=seed, stall=0.3)
    assert responses(run, 0) == expected
    assert responses(run, 1) == dump_model(model)


@pytest.mark.parametrize("cfg", [SBUF8, SBUF16], ids=["w8", "w4"])
def test_moving_and_weights_readers(seed, cfg):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    array = array_for(cfg)
    model = random_model(cfg, rng)
    mcmds = random_moving_cmds(rng, cfg, array, 12)
    wcmds = random_weights_cmds(rng, cfg, array, 8)
    mexp = [b for c in mcmds for b in moving_expected(model, array, c)]
    wexp = [r for c in wcmds for r in weights_expected(model, array, c)]
    run = run_phases(make_sbuf(cfg, array, model),
                     [{"moving_cmd": mcmds, "moving": len(mexp),
                       "weights_cmd": wcmds, "weights": len(wexp)}],
                     seed=seed, stall=0.3)
    assert run["phases"][0]["moving"][0] == mexp
    assert run["phases"][0]["weights"][0] == wexp


@pytest.mark.parametrize("cfg", [SBUF8, SBUF16], ids=["w8", "w4"])
def test_moving_one_beat_per_cycle_during_dma_writes(cfg):
    """Back-to-back moving commands (any offset, even a single element per word) while the DMA
    writes every cycle: one moving beat every cycle, one DMA write every cycle."""
    rng = np.random.default_rng(3)
    array = array_for(cfg)
    model = random_model(cfg, rng)
    half = cfg.depth * elements_per_word(cfg, array.moving_dtype) // 2
    mcmds = random_moving_cmds(rng, cfg, array, 10, max_count=20, addr_range=(0, half))
    mcmds += [{"offset": 2 * i + 1, "count": 1, "start": 0, "addr": i, "accumulate": 0}
              for i in range(6)]
    dma = random_dma(rng, cfg, 150, addrs=range(cfg.depth // 2, cfg.depth), write_prob=1.0)
    mexp = [b for c in mcmds for b in moving_expected(model, array, c)]
    run = run_phases(make_sbuf(cfg, array, model),
                     [{"moving_cmd": mcmds, "moving": len(mexp), "dma.request": dma}])
    payloads, cycles = run["phases"][0]["moving"]
    assert payloads == mexp
    assert cycles == list(range(cycles[0], cycles[0] + len(mexp))), "moving beats stalled"
    dma_cycles = run["phases"][0]["dma.request"]
    assert dma_cycles == list(range(dma_cycles[0], dma_cycles[0] + len(dma))), "DMA stalled"


@pytest.mark.parametrize("cfg", [SBUF8, SBUF16], ids=["w8", "w4"])
def test_moving_and_weights_together_full_rate(cfg):
    """Long moving and weights commands at the same time, with DMA reads competing: with 8
    elements per word both run at one beat per cycle; with 2 (int16 in 4-byte words) the two
    column readers need every read slot, so the moving stream keeps its rate and the weights get
    the rest; the DMA still progresses in both."""
    rng = np.random.default_rng(4)
    array = array_for(cfg)
    model = random_model(cfg, rng)
    m_elems = cfg.depth * elements_per_word(cfg, array.moving_dtype)
    mcmds = [{"offset": 1 + 9 * i, "count": m_elems // 2, "start": 1, "addr": 0,
              "accumulate": 0} for i in range(3)]
    w_elems = cfg.depth * elements_per_word(cfg, array.stationary_dtype)
    wcmds = [{"offset": (3 + 5 * i) % (w_elems - array.rows), "rows": array.rows,
              "cols": array.cols} for i in range(12)]
    dma = random_dma(rng, cfg, 20, addrs=range(cfg.depth), write_prob=0.0)
    mexp = [b for c in mcmds for b in moving_expected(model, array, c)]
    wexp = [r for c in wcmds for r in weights_expected(model, array, c)]
    run = run_phases(make_sbuf(cfg, array, model),
                     [{"moving_cmd": mcmds, "moving": len(mexp), "weights_cmd": wcmds,
                       "weights": len(wexp), "dma.request": dma,
                       "dma.response": len(dma)}])
    ph = run["phases"][0]
    assert ph["moving"][0] == mexp and ph["weights"][0] == wexp
    assert [r["data"] for r in ph["dma.response"][0]] == apply_dma(model, dma)
    cycles = ph["moving"][1]
    assert cycles[-1] - cycles[0] + 1 <= len(mexp) + 2 * len(dma), "moving beats stalled"
    cycles = ph["weights"][1]
    if cfg is SBUF8:
        assert cycles == list(range(cycles[0], cycles[0] + len(wexp))), "weight rows stalled"


@pytest.mark.parametrize("cfg", [SBUF8, SBUF16], ids=["w8", "w4"])
def test_all_ports_at_once(seed, cfg):
    """DMA reads/writes, moving and weights reads and vector writes at once with random stalls.
    Reads cover the untouched lower half; DMA writes and vector writes share partitions but not
    words (so the result is order-independent); a final dump checks every byte."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    array = array_for(cfg)
    P, D, WB = cfg.partitions, cfg.depth, cfg.word_bytes
    model = random_model(cfg, rng)
    dut = make_sbuf(cfg, array, model)
    read_words = D // 2
    m_elems = read_words * elements_per_word(cfg, array.moving_dtype)
    w_elems = read_words * elements_per_word(cfg, array.stationary_dtype)
    mcmds = random_moving_cmds(rng, cfg, array, 10, addr_range=(0, m_elems))
    wcmds = random_weights_cmds(rng, cfg, array, 6, addr_range=(0, w_elems))
    mexp = [b for c in mcmds for b in moving_expected(model, array, c)]
    wexp = [r for c in wcmds for r in weights_expected(model, array, c)]
    dma_reads = random_dma(rng, cfg, 60, addrs=range(read_words), write_prob=0.0)
    dma_writes = random_dma(rng, cfg, 60, addrs=range(read_words, 3 * D // 4), write_prob=1.0)
    dma = [r for pair in zip(dma_reads, dma_writes) for r in pair]
    vectors = []
    for _ in range(60):
        vectors.append({
            "addr": int(rng.integers(3 * D // 4, D)),
            "data": [[int(x) for x in rng.integers(0, 256, size=WB)] for _ in range(P)],
            "byte_enable": [int(rng.integers(1 << WB)) for _ in range(P)],
        })
    expected_reads = apply_dma(model, dma)
    for v in vectors:
        model.vector_write(v["addr"], v["data"], v["byte_enable"])

    async def errors(ctx):
        return ctx.get(dut.errors.as_value())

    run = run_phases(dut, [
        {"dma.request": dma, "dma.response": len(expected_reads), "moving_cmd": mcmds,
         "moving": len(mexp), "weights_cmd": wcmds, "weights": len(wexp),
         "vector_write": vectors},
        {"dma.request": dump_requests(cfg), "dma.response": P * D},
    ], seed=seed, stall=0.3, final=errors)
    ph = run["phases"][0]
    assert responses(run, 0) == expected_reads
    assert ph["moving"][0] == mexp
    assert ph["weights"][0] == wexp
    assert responses(run, 1) == dump_model(model)
    assert run["final"] == 0


def test_vector_write_vs_dma_write_same_partition():
    """Vector writes enabling every partition and DMA writes every cycle: every conflict, they
    alternate, both complete, all bytes land."""
    cfg, array = SBUF8, ARRAY8
    model = SbufModel(cfg.partitions, cfg.depth, cfg.word_bytes)
    dut = make_sbuf(cfg, array, model)
    rng = np.random.default_rng(11)
    vectors = [{"addr": 16 + i % 16,
                "data": [[int(x) for x in rng.integers(0, 256, size=8)] for _ in range(4)],
                "byte_enable": [0xFF] * 4} for i in range(30)]
    dma = random_dma(rng, cfg, 30, addrs=range(16), write_prob=1.0)
    for v in vectors:
        model.vector_write(v["addr"], v["data"], v["byte_enable"])
    apply_dma(model, dma)
    run = run_phases(dut, [{"vector_write": vectors, "dma.request": dma},
                           {"dma.request": dump_requests(cfg), "dma.response": 4 * 32}])
    assert responses(run, 1) == dump_model(model)
    ph = run["phases"][0]
    end = max(ph["vector_write"][-1], ph["dma.request"][-1])
    start = min(ph["vector_write"][0], ph["dma.request"][0])
    assert end - start + 1 <= 60 + 2


def test_errors_out_of_range():
    """Partition >= P, commands past the end, empty/oversized commands: error bits set, nothing
    else touched, every request answered. (Word addresses cannot be out of range: the depth is a
    power of two, so the address fields of the DMA port and the vector write hold exactly it.)"""
    cfg, array = SBUF16, ARRAY16
    rng = np.random.default_rng(5)
    model = random_model(cfg, rng)
    dut = make_sbuf(cfg, array, model)
    # Words the readers below touch (0-2, 30-31) are not written here: ports are not ordered.
    good = random_dma(rng, cfg, 10, addrs=range(4, cfg.depth - 2), write_prob=0.5)
    bad = [
        {"write": 1, "partition": 5, "addr": 3, "data": [1] * 4, "byte_enable": 0xF},
        {"write": 1, "partition": 7, "addr": 3, "data": [1] * 4, "byte_enable": 0xF},
        {"write": 0, "partition": 6, "addr": 0, "data": [0] * 4, "byte_enable": 0},
    ]
    reqs = good[:5] + bad + good[5:]
    expected = apply_dma(model, reqs)
    elems = cfg.depth * 2
    mcmds = [{"offset": elems - 3, "count": 6, "start": 1, "addr": 0, "accumulate": 0},
             {"offset": 0, "count": 0, "start": 1, "addr": 0, "accumulate": 0},
             {"offset": 4, "count": 2, "start": 0, "addr": 9, "accumulate": 1}]
    wcmds = [{"offset": elems - 1, "rows": 3, "cols": 3},
             {"offset": 0, "rows": 0, "cols": 3}, {"offset": 0, "rows": 4, "cols": 0},
             {"offset": 1, "rows": 2, "cols": 2}]
    mexp = [b for c in mcmds for b in moving_expected(model, array, c)]
    wexp = [r for c in wcmds if c["rows"] and c["cols"] for r in weights_expected(model, array, c)]

    async def errors(ctx):
        return {name: ctx.get(getattr(dut.errors, name))
                for name in ("dma", "moving", "weights", "vector")}

    run = run_phases(dut, [
        {"dma.request": reqs, "dma.response": len(expected), "moving_cmd": mcmds,
         "moving": len(mexp), "weights_cmd": wcmds, "weights": len(wexp)},
        {"dma.request": dump_requests(cfg), "dma.response": cfg.partitions * cfg.depth},
    ], seed=5, stall=0.2, final=errors)
    assert responses(run, 0) == expected
    assert run["phases"][0]["moving"][0] == mexp
    assert run["phases"][0]["weights"][0] == wexp
    assert responses(run, 1) == dump_model(model)
    assert run["final"] == {"dma": 1, "moving": 1, "weights": 1, "vector": 0}


def test_clear_errors():
    cfg, array = SBUF16, ARRAY16
    dut = Sbuf(config=sbuf_tile(sbuf=cfg, array=array))
    bad = [{"write": 1, "partition": 6, "addr": 0, "data": [0] * 4, "byte_enable": 1}]

    async def clear(ctx):
        before = ctx.get(dut.errors.dma)
        ctx.set(dut.clear_errors, 1)
        await ctx.tick()
        ctx.set(dut.clear_errors, 0)
        await ctx.tick()
        return before, ctx.get(dut.errors.dma)

    run = run_phases(dut, [{"dma.request": bad}], final=clear)
    assert run["final"] == (1, 0)


def test_word_packing_matches_model():
    model = SbufModel(2, 4, 8)
    model.store(1, 3, [-2, 300], "int16")
    assert model.words(1)[0] == pack_word([0, 0, 0, 0, 0, 0, 0xFE, 0xFF])
    assert model.words(1)[1] == pack_word([0x2C, 0x01, 0, 0, 0, 0, 0, 0])


@pytest.mark.slow
@pytest.mark.parametrize("target, bram, per_partition", [("ecp5", ("DP16KD", "PDPW16KD"), 1),
                                                        ("ice40", ("SB_RAM40_4K",), 2)])
def test_synthesis_maps_partitions_to_block_ram(target, bram, per_partition):
    """8 partitions x 1 KiB (256 words of 4 bytes): every partition becomes block RAM (one
    PDPW16KD/DP16KD on ECP5, two SB_RAM40_4K on iCE40), and the logic around them stays far below
    the 65,536 bits of storage (it scales with partitions x word width, not with depth)."""
    from systolica.synth.flow import synthesize
    cfg = SbufConfig(partitions=8, depth=256, word_bytes=4)
    tile = sbuf_tile(sbuf=cfg, array=ArrayConfig(rows=8, cols=8))
    report = synthesize(Sbuf(config=tile), "systolica_sbuf", target)
    print(report)
    brams = sum(report["cells"].get(name, 0) for name in bram)
    assert brams == per_partition * cfg.partitions
    assert report["ffs"] < 4096     # (the column readers' 4-word buffers are 2,048 of them)
    assert report["luts"] < 4096


@pytest.mark.slow
def test_default_depth_on_ecp5_uses_the_block_ram_output_registers():
    """At depth 2,048 on ECP5 every byte of a partition is one DP16KD, 2,048 x 9 on both ports,
    whose output register is the word's register (hdl/sbuf_ram.py): the word address on
    AD13..AD3 (AD2..AD0 low, as yosys' own mapping has them), and no fabric flip-flop for the
    read word."""
    import json
    import tempfile
    from systolica.synth.flow import synthesize
    cfg = SbufConfig(partitions=2, depth=2048, word_bytes=4)
    tile = sbuf_tile(sbuf=cfg, array=ArrayConfig(rows=2, cols=2, result_addr_bits=6))
    with tempfile.TemporaryDirectory() as workdir:
        report = synthesize(Sbuf(config=tile), "systolica_sbuf", "ecp5", workdir=workdir,
                            keep=True)
        with open(f"{workdir}/systolica_sbuf.json") as f:
            cells = json.load(f)["modules"]["systolica_sbuf"]["cells"]
    rams = [c for c in cells.values() if c["type"] == "DP16KD"]
    assert report["cells"].get("DP16KD") == len(rams) == cfg.partitions * cfg.word_bytes
    for ram in rams:
        params, pins = ram["parameters"], ram["connections"]
        assert params["REGMODE_B"] == "OUTREG" and params["REGMODE_A"] == "NOREG"
        assert int(params["DATA_WIDTH_A"], 2) == int(params["DATA_WIDTH_B"], 2) == 9
        for side in "AB":
            assert [pins[f"AD{side}{i}"] for i in range(3)] == [["0"]] * 3
            assert all(pins[f"AD{side}{i}"][0] not in ("0", "1", "x") for i in range(3, 14))
        assert pins["WEB"] == ["0"] and pins["OCEB"] == ["1"]
        assert pins["CEB"][0] not in ("0", "1", "x")    # the read's enable
    # The generic memory's word register (P x 32 bits) is gone into the block RAMs (initial
    # contents keep a partition on the generic memory).
    generic = synthesize(Sbuf(config=tile, init=[[1]] * cfg.partitions), "systolica_sbuf",
                         "ecp5")
    assert "DP16KD" in generic["cells"]
    assert report["ffs"] == generic["ffs"] - cfg.partitions * 32


def test_dma_reads_one_per_cycle():
    """Back-to-back DMA reads of every partition are accepted every cycle, answered in order."""
    cfg, array = SBUF8, ARRAY8
    model = random_model(cfg, np.random.default_rng(8))
    reqs = [{"write": 0, "partition": i % 4, "addr": (7 * i) % 32, "data": [0] * 8,
             "byte_enable": 0} for i in range(100)]
    run = run_phases(make_sbuf(cfg, array, model),
                     [{"dma.request": reqs, "dma.response": len(reqs)}])
    assert responses(run, 0) == apply_dma(model, reqs)
    cycles = run["phases"][0]["dma.request"]
    assert cycles == list(range(cycles[0], cycles[0] + len(reqs)))


def test_error_in_the_cycle_of_a_clear_stays_set():
    """A sticky flag cleared in the very cycle an error happens keeps that error."""
    from systolica.testbench.sim import run_simulation
    dut = Sbuf(config=sbuf_tile(sbuf=SBUF16, array=ARRAY16))

    async def bench(ctx):
        ctx.set(dut.dma.request.valid, 1)   # partition 6 >= 5: not written, flagged
        ctx.set(dut.dma.request.payload, {"write": 1, "partition": 6, "addr": 0,
                                          "data": [0] * 4, "byte_enable": 1})
        ctx.set(dut.clear_errors, 1)
        await ctx.tick()
        ctx.set(dut.dma.request.valid, 0)
        assert ctx.get(dut.errors.dma) == 1
        await ctx.tick()
        assert ctx.get(dut.errors.dma) == 0
        ctx.set(dut.clear_errors, 0)

    run_simulation(dut, [bench], max_cycles=20)


READERS = ("moving", "weights", "dma")
WRITERS = ("vector", "dma")


# Writes up to 3 cycles before and after the read: past every register stage of the read
# (the block RAM's inputs, its output, the word's register: READ_LATENCY = 3) and the write's.
@pytest.mark.parametrize("delay", range(-3, 4), ids=lambda d: f"write_at_{d:+d}")
@pytest.mark.parametrize("reader,writer", [(r, w) for r in READERS for w in WRITERS
                                           if (r, w) != ("dma", "dma")])
def test_read_during_write_returns_new_bytes(reader, writer, delay):
    """A read of the word being written in the same cycle returns the written bytes (and the
    old value of the others); earlier too, later the old word. A moving or
    weights command accepted in cycle t reads its word in cycle t + 1, a DMA read accepted in
    cycle t reads in cycle t; the write is accepted in that cycle + ``delay``."""
    from systolica.testbench.sim import run_simulation
    cfg, array = SBUF8, ARRAY8
    rng = np.random.default_rng(100 + 10 * READERS.index(reader) + delay)
    model = random_model(cfg, rng)
    dut = make_sbuf(cfg, array, model)
    word, lane, part = 5, 3, 2                  # the word read; its element; the DMA partition
    data = [[int(x) for x in rng.integers(0, 256, size=cfg.word_bytes)]
            for _ in range(cfg.partitions)]
    enables = [0b10101010 | (1 << lane)] + [int(rng.integers(1, 256)) | (1 << lane)
                                              for _ in range(cfg.partitions - 1)]
    if writer == "vector":
        write_port = dut.vector_write
        write = {"addr": word, "data": data, "byte_enable": enables}
    else:
        write_port = dut.dma.request
        write = {"write": 1, "partition": part, "addr": word, "data": data[part],
                 "byte_enable": enables[part]}
    offset = word * cfg.word_bytes + lane
    start, read_port = 3, {"moving": dut.moving_cmd, "weights": dut.weights_cmd,
                           "dma": dut.dma.request}[reader]
    read = {"moving": {"offset": offset, "count": 1, "start": 1, "addr": 0, "accumulate": 0},
            "weights": {"offset": offset, "rows": 1, "cols": array.cols},
            "dma": {"write": 0, "partition": part, "addr": word, "data": [0] * 8,
                    "byte_enable": 0}}[reader]
    read_cycle = start + (reader != "dma")
    schedule = {start: [(read_port, read)]}
    schedule.setdefault(read_cycle + delay, []).append((write_port, write))
    outputs = []

    async def bench(ctx):
        for stream in (dut.moving, dut.weights, dut.dma.response):
            ctx.set(stream.ready, 1)
        for cycle in range(20):
            for port in (read_port, write_port):
                ctx.set(port.valid, 0)
            for port, payload in schedule.get(cycle, []):
                ctx.set(port.valid, 1)
                ctx.set(port.payload, payload)
            for port, _ in schedule.get(cycle, []):
                assert ctx.get(port.ready), f"cycle {cycle}: not accepted"
            for stream in (dut.moving, dut.weights, dut.dma.response):
                if ctx.get(stream.valid):
                    outputs.append([int(x) for x in ctx.get(stream.payload.data)])
            await ctx.tick()

    old = SbufModel(cfg.partitions, cfg.depth, cfg.word_bytes)
    old.bytes[:] = model.bytes
    if writer == "vector":
        model.vector_write(word, data, enables)
    else:
        model.write_word(part, word, data[part], enables[part])
    seen = model if delay <= 0 else old
    run_simulation(dut, [bench], max_cycles=40)
    assert len(outputs) == 1
    if reader == "dma":
        assert outputs[0] == seen.read_word(part, word)
    elif reader == "moving":
        assert outputs[0] == [seen.element(k, offset, array.moving_dtype)
                              for k in range(array.rows)]
    else:
        assert outputs[0] == [
            int(x) for x in seen.stationary(offset, 1, array.cols, array.stationary_dtype)[0]]
