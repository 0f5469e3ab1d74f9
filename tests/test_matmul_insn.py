"""MATMUL (the PE queue's k loop in one instruction, docs/isa.md): encoding, the model against
NumPy and against the LOAD_STATIONARY / MULTIPLY_MOVING pairs it stands for, the model against
the tile RTL (Amaranth simulator; random stalls on the command streams), and its errors (same
code, same pc, nothing written, on both)."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import ActMode, IsaError
from systolica.config import ArrayConfig, PsumConfig, SbufConfig, TileConfig
from systolica.isa import Opcode
from systolica.model.tile import TileModel
from systolica.testbench.tile_check import check_against_model

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
PB = CFG.sbuf.partition_bytes
R = CFG.array.rows
DRAM, BASE = 1 << 14, 8192
A_DRAM, W_DRAM = 0, 2048          # A^T (K rows of M bytes) and W (N rows of K bytes) in DRAM


def test_encode_decode_round_trip(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        fields = {name: int(rng.integers(0, 1 << min(width, 30)))
                  for name, width in (("offset", 32), ("m", 32), ("psum_addr", 32),
                                      ("repeat", 16), ("offset_step", 32), ("psum_step", 32),
                                      ("a_step", 32), ("w_offset", 32), ("w_step", 32),
                                      ("tiles", 16), ("k_last", 16), ("n", 16))}
        insn = isa.Instruction(Opcode.MATMUL, accumulate=int(rng.integers(2)),
                               waits=[(3, 2)], signals=[(4, 1), (5, 7)], **fields)
        assert isa.decode_word(insn.encode()) == insn
        program = isa.Program.build(CFG, {"pe": [insn]})
        assert isa.decode(program.encode()) == program
        assert isa.assemble(isa.disassemble(program)) == program
    # the multiply's fields sit at MULTIPLY_MOVING's bits
    mm = isa.multiply_moving(5, 6, 7, repeat=2, offset_step=3, psum_step=9, accumulate=True)
    mt = isa.matmul(5, 6, 7, repeat=2, offset_step=3, psum_step=9, accumulate=True,
                    w_offset=1, tiles=2, k_last=1, n=1)
    width = isa.BODY_LAYOUTS[Opcode.MULTIPLY_MOVING].size + isa.HEADER_LAYOUT.size
    mask = (1 << width) - 1 - 0xff
    assert int.from_bytes(mm.encode(), "little") & mask == int.from_bytes(mt.encode(),
                                                                          "little") & mask


def test_bad_fields_are_named():
    with pytest.raises(isa.IsaEncodingError, match="MATMUL.tiles must be an integer"):
        isa.matmul(0, 1, 0, w_offset=0, tiles=1 << 16, k_last=1, n=1)
    with pytest.raises(isa.IsaEncodingError, match="MATMUL has no field"):
        isa.Instruction(Opcode.MATMUL, k=3)


def _gemm_queues(m, k, n, *, repeat=1, matmul=True, accumulate=False, psum_addr=0):
    """C (m x n, repeat times over consecutive A blocks) = A @ W with K = k: A^T's K rows of
    repeat*m bytes at SBUF offset 0, W's n columns of K bytes at offset 256; one MATMUL, or the
    LOAD_STATIONARY / MULTIPLY_MOVING pairs it stands for."""
    rows = repeat * m
    tiles, k_last = -(-k // R), k - (-(-k // R) - 1) * R
    # k tile t of A: its rows in partitions 0..R-1 at offset t * rows; W's column j in partition j
    dma = [isa.dma_copy(isa.dram(A_DRAM + t * R * rows, (rows, min(R, k - t * R)), (1, rows)),
                        isa.sbuf(t * rows, (rows, min(R, k - t * R)), (1, PB)))
           for t in range(tiles)]
    dma.append(isa.dma_copy(isa.dram(W_DRAM, (k, n), (1, k)), isa.sbuf(256, (k, n), (1, PB)),
                            signals=[(0, 1)]))
    steps = dict(repeat=repeat, offset_step=m, psum_step=m)
    if matmul:
        pe = [isa.matmul(0, m, psum_addr, w_offset=256, tiles=tiles, k_last=k_last, n=n,
                         a_step=rows, w_step=R, accumulate=accumulate, waits=[(0, 1)],
                         signals=[(1, 1)], **steps)]
    else:
        pe = []
        for t in range(tiles):
            pe.append(isa.load_stationary(256 + t * R, min(R, k - t * R), n,
                                          waits=[(0, 1)] if t == 0 else []))
            pe.append(isa.multiply_moving(t * rows, m, psum_addr,
                                          accumulate=accumulate or t > 0,
                                          signals=[(1, 1)] if t == tiles - 1 else [], **steps))
    act = [isa.act(psum_addr, rows, 384 // 4, n, mode=ActMode.INT32, waits=[(1, 1)], signals=[(2, 1)]),
           isa.dma_copy(isa.sbuf(384, (rows * 4, n), (1, PB)), isa.dram(4096, (rows * 4, n),
                                                                       (1, rows * 4)),
                        waits=[(2, 1)])]
    return {"dma0": dma, "pe": pe, "act": act[:1], "dma1": act[1:]}


def _operands(rng, rows, k, n):
    a = rng.integers(-128, 128, (rows, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    return a, w, {A_DRAM: np.ascontiguousarray(a.T).tobytes(),
                  W_DRAM: np.ascontiguousarray(w.T).tobytes()}


def _model_run(program, data):
    model = TileModel(CFG, dram_bytes=DRAM)
    for addr, raw in data.items():
        model.dram[addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)
    return model, model.run(program)


@pytest.mark.parametrize("m,k,n,repeat", [(4, 4, 4, 1), (8, 13, 3, 1), (5, 16, 4, 2),
                                          (16, 1, 1, 1), (3, 7, 4, 3)])
def test_model_matches_numpy_and_the_pairs(seed, m, k, n, repeat):
    rng = np.random.default_rng(seed)
    a, w, data = _operands(rng, repeat * m, k, n)
    want = a.astype(np.int64) @ w.astype(np.int64)
    results = []
    for matmul in (True, False):
        model, result = _model_run(isa.Program.build(CFG, _gemm_queues(
            m, k, n, repeat=repeat, matmul=matmul)), data)
        assert result.ok, result
        got = model.read_dram(4096, (n, repeat * m), "<i4").T
        assert np.array_equal(got, want)
        results.append((model.psum.copy(), model.sbuf.copy()))
    assert all(np.array_equal(x, y) for x, y in zip(*results))


def test_accumulate_adds_to_the_psum(seed):
    """accumulate=1 on k tile 0 adds the whole product to what PSUM holds."""
    rng = np.random.default_rng(seed)
    a, w, data = _operands(rng, 4, 9, 4)
    program = isa.Program.build(CFG, {
        "dma0": _gemm_queues(4, 9, 4)["dma0"],
        "pe": [isa.matmul(0, 4, 0, w_offset=256, tiles=3, k_last=1, n=4, a_step=4, w_step=R,
                          waits=[(0, 1)]),
               isa.matmul(0, 4, 0, w_offset=256, tiles=3, k_last=1, n=4, a_step=4, w_step=R,
                          accumulate=True)]})
    model, result = _model_run(program, data)
    assert result.ok
    assert np.array_equal(model.psum[:4, :4], 2 * (a.astype(np.int64) @ w.astype(np.int64)))


# --- the RTL ------------------------------------------------------------------------------------

def _check(program, data, **kwargs):
    return check_against_model(CFG, program, data=data, dram_bytes=DRAM, program_base=BASE,
                               max_cycles=60_000, **kwargs)


@pytest.mark.parametrize("m,k,n,repeat", [(8, 13, 3, 1), (3, 7, 4, 3), (16, 4, 4, 1)])
def test_rtl_matches_the_model(seed, m, k, n, repeat):
    rng = np.random.default_rng(seed)
    a, w, data = _operands(rng, repeat * m, k, n)
    run, result = _check(isa.Program.build(CFG, _gemm_queues(m, k, n, repeat=repeat)), data)
    assert result.ok and run.status["done"]
    got = np.frombuffer(run.dram[4096:4096 + 4 * n * repeat * m].tobytes(), "<i4")
    assert np.array_equal(got.reshape(n, repeat * m).T, a.astype(np.int64) @ w.astype(np.int64))


def test_rtl_under_command_stalls(seed):
    """30 % stalls on every command stream (weights, moving, ACT, DMA) and on the AXI ports,
    a MATMUL after a MATMUL (back to back), then a MULTIPLY_MOVING reusing its last weights."""
    rng = np.random.default_rng(seed)
    a, w, data = _operands(rng, 8, 11, 4)
    queues = _gemm_queues(8, 11, 4)
    mt = queues["pe"][0]
    queues["pe"] = [mt, mt.replace(waits=[], signals=[], psum_addr=16),
                    isa.multiply_moving(2 * 8, 8, 24, accumulate=True)]
    run, result = _check(isa.Program.build(CFG, queues), data, stall=0.3, jitter=5,
                         read_latency=3, command_stall=0.3, seed=seed % 1000)
    assert result.ok and run.status["done"]


MT = dict(w_offset=256, tiles=3, k_last=2, n=4, a_step=32, w_step=4)
BAD = [
    ("k_last0", isa.matmul(0, 4, 0, **{**MT, "k_last": 0}), IsaError.BAD_K),
    ("k_last>R", isa.matmul(0, 4, 0, **{**MT, "k_last": R + 1}), IsaError.BAD_K),
    ("n0", isa.matmul(0, 4, 0, **{**MT, "n": 0}), IsaError.BAD_N),
    ("n>C", isa.matmul(0, 4, 0, **{**MT, "n": 5}), IsaError.BAD_N),
    ("tiles0", isa.matmul(0, 4, 0, **{**MT, "tiles": 0}), IsaError.BAD_COUNT),
    ("m0", isa.matmul(0, 0, 0, **MT), IsaError.BAD_COUNT),
    ("repeat0", isa.matmul(0, 4, 0, repeat=0, **MT), IsaError.BAD_COUNT),
    # the last k tile's W passes the partition's end (the first two are inside)
    ("w-last-tile", isa.matmul(0, 4, 0, **{**MT, "w_offset": PB - 9}), IsaError.SBUF_RANGE),
    # the last full tile's W is out, the last (shorter) one's would fit
    ("w-full-tile", isa.matmul(0, 4, 0, **{**MT, "w_offset": PB - 12, "w_step": 7,
                                           "k_last": 1}), IsaError.SBUF_RANGE),
    ("a-last-tile", isa.matmul(PB - 67, 4, 0, **MT), IsaError.SBUF_RANGE),
    ("a-huge-step", isa.matmul(0, 4, 0, **{**MT, "a_step": (1 << 32) - 1}), IsaError.SBUF_RANGE),
    ("w-huge-step", isa.matmul(0, 4, 0, **{**MT, "w_step": (1 << 32) - 1}), IsaError.SBUF_RANGE),
    ("psum-range", isa.matmul(0, 4, 32, **MT), IsaError.PSUM_RANGE),
    ("psum-bank", isa.matmul(0, 8, 12, **MT), IsaError.PSUM_BANK),
    ("psum-2nd-repeat", isa.matmul(0, 8, 0, repeat=2, psum_step=12, **MT), IsaError.PSUM_BANK),
    ("bank-before-sbuf", isa.matmul(PB - 67, 8, 12, **MT), IsaError.PSUM_BANK),
    ("many-tiles", isa.matmul(0, 4, 0, **{**MT, "tiles": 65535, "w_step": 0, "a_step": 1}),
     IsaError.SBUF_RANGE),
    ("load-pending", isa.matmul(0, 4, 0, **MT), IsaError.LOAD_PENDING),
]


@pytest.mark.parametrize("bad,code", [(c[1], c[2]) for c in BAD], ids=[c[0] for c in BAD])
def test_bad_matmul_model_and_rtl_agree(seed, bad, code):
    """The bad MATMUL at pc 2 (after a load that no multiply used for ``load-pending``, else
    after a good MATMUL): the same code and pc on both, nothing of it issued (the memories equal
    the model's, which writes nothing for it), the other queues done."""
    rng = np.random.default_rng(seed)
    _, _, data = _operands(rng, 8, 8, 4)
    first = isa.load_stationary(256, 4, 4) if code is IsaError.LOAD_PENDING else \
        isa.matmul(0, 4, 0, **MT)
    program = isa.Program.build(CFG, {"pe": [first, bad, isa.nop(signals=[(1, 1)])]})
    model, before = _model_run(isa.Program.build(CFG, {"pe": [first]}), data)
    run, result = _check(program, data)
    pe = result.queues["pe"]
    assert (pe.error, pe.pc) == (code, 2)
    assert np.array_equal(run.psum, model.psum)      # only the first instruction's effect
    assert all(q.state.name == "DONE" for name, q in result.queues.items() if name != "pe")


def test_random_programs_use_matmul(seed):
    """Random race-free programs generate MATMUL; the first one with one runs on the RTL."""
    from systolica.model.random_programs import random_program
    rng = np.random.default_rng(seed)
    for _ in range(20):
        program = random_program(CFG, rng, operations=24, dram_bytes=4096)
        if any(i.opcode == Opcode.MATMUL for i in program.queues["pe"]):
            break
    else:
        raise AssertionError("no MATMUL in 20 random programs")
    run, result = _check(program, {0: rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()})
    assert result.ok and run.status["done"]


def test_race_checks_see_every_k_tile():
    """A DMA writing only the last k tile's W (or A) with no semaphore to the MATMUL is a
    race the model reports, naming the MATMUL; W outside every tile's range is none."""
    def races(dst):
        program = isa.Program.build(CFG, {
            "dma0": [isa.dma_copy(isa.dram(0, (2,), (1,)), isa.sbuf(dst, (2,), (1,)))],
            "pe": [isa.matmul(0, 4, 0, **MT)]})
        return TileModel(CFG, dram_bytes=DRAM).run(program).races
    last_w = MT["w_offset"] + 2 * MT["w_step"]                  # partition 0, k tile 2's W
    last_a = 2 * MT["a_step"] + 1                               # partition 0, k tile 2's A
    for dst in (last_w, last_a):
        found = races(dst)
        assert found and "matmul" in str(found[0]) and "dma_copy" in str(found[0])
    assert races(last_w + MT["k_last"]) == []                  # just past the last tile's W


def test_rtl_on_verilator_same_cycles_as_amaranth(seed):
    """The MATMUL GEMM on the Verilator backend: the model's final state, and the same cycle
    count as the Amaranth simulator."""
    from systolica.testbench.backends import backend_available
    if not backend_available("verilator")[0]:
        pytest.skip("needs Verilator")
    rng = np.random.default_rng(seed)
    a, w, data = _operands(rng, 9, 7, 4)
    program = isa.Program.build(CFG, _gemm_queues(3, 7, 4, repeat=3))
    runs = [_check(program, data, backend=b)[0] for b in ("verilator", "amaranth")]
    assert runs[0].tile_cycles == runs[1].tile_cycles
    for name in ("dram", "sbuf", "psum"):
        assert np.array_equal(getattr(runs[0], name), getattr(runs[1], name)), name
    assert np.any(runs[0].psum)
