"""The chip in the Amaranth simulator through :func:`systolica.testbench.chip.run_chip`: every
tile of a 2x2 chip runs its own GEMM at once from one shared DRAM (bit-exact against NumPy,
under random stalls on the DRAM and the host port), and the chip-wide abort stops hung tiles
while a bad instruction halts only its tile and a GEMM elsewhere finishes."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import EngineState, IsaError
from systolica.config import ArrayConfig, ChipConfig, PsumConfig, SbufConfig, TileConfig
from systolica.model.programs import gemm_program
from systolica.testbench.chip import DRAM_MODELS, chip_dram_image, chip_program, run_chip

TILE = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                  psum=PsumConfig(banks=2, bank_rows=16))
CHIP = ChipConfig(tile=TILE)                     # 2x2 mesh
DRAM_BYTES = 1 << 15


def _gemm(rng, shape, base):
    """(program for the chip, DRAM data, (C address, expected C)) of a GEMM at ``base``."""
    m, k, n = shape
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a_addr, b_addr, c_addr = base, base + 0x400, base + 0x800
    program, _ = gemm_program(TILE, m, k, n, a_addr=a_addr, b_addr=b_addr, c_addr=c_addr)
    data = {a_addr: a.tobytes(), b_addr: b.tobytes()}
    return chip_program(CHIP, program), data, (c_addr, a.astype(np.int32) @ b.astype(np.int32))


def _c(run, c_addr, expected):
    raw = run.dram[c_addr:c_addr + expected.nbytes].tobytes()
    return np.frombuffer(raw, np.int32).reshape(expected.shape)


def check_gemms(run, programs, data, expected):
    """Every tile's GEMM result, its registers and the chip registers of a run in which every
    tile ran a GEMM to the end; nothing else in the DRAM was written."""
    for pos, (c_addr, c) in expected.items():
        assert np.array_equal(_c(run, c_addr, c), c), pos
        tile = run.tiles[pos]
        assert tile.status == {"running": 0, "done": 1, "halted": 0, "datapath_error": 0}, pos
        for name, q in tile.queues.items():
            assert (q["state"], q["error"]) == (EngineState.DONE, IsaError.OK), (pos, name)
            assert q["retired"] == len(programs[pos].queues[name]), (pos, name)
        assert 0 < tile.tile_cycles < run.cycles
    assert run.chip["DONE"] == 0b1111 and run.chip["RUNNING"] == 0 and run.chip["HALTED"] == 0
    assert run.chip["STATUS"] == {"running": 0, "done": 1, "halted": 0}
    assert run.chip["NOC_STATUS"] == {"overflow": 0, "refused": 0}
    # the tiles share the DRAM: nothing outside the data, programs and results was written
    mem, _ = chip_dram_image(CHIP, programs, dram=data, dram_bytes=DRAM_BYTES)
    for c_addr, c in expected.values():
        mem[c_addr:c_addr + c.nbytes] = np.frombuffer(c.tobytes(), np.uint8)
    assert np.array_equal(run.dram, mem)


def test_a_standalone_program_is_rebuilt_for_the_chip():
    program, _ = gemm_program(TILE, 4, 4, 4, a_addr=0x4000, b_addr=0x4400, c_addr=0x4800)
    rebuilt = chip_program(CHIP, program)
    assert rebuilt.fingerprint == isa.fingerprint(CHIP) != program.fingerprint
    for name, insns in program.queues.items():
        assert rebuilt.queues[name][1:] == insns[1:]
        assert rebuilt.queues[name][0].opcode == isa.Opcode.CHECK


def test_dram_image_places_every_program_and_refuses_overlaps():
    rng = np.random.default_rng(0)
    p0, d0, _ = _gemm(rng, (4, 4, 4), 0x4000)
    p1, d1, _ = _gemm(rng, (4, 4, 4), 0x5000)
    mem, bases = chip_dram_image(CHIP, {(1, 0): p1, (0, 0): p0}, dram={**d0, **d1},
                                 dram_bytes=DRAM_BYTES)
    image0, image1 = p0.encode(), p1.encode()
    assert bases[(0, 0)] == 0 and bases[(1, 0)] == -(-len(image0) // 64) * 64
    assert mem[:len(image0)].tobytes() == image0
    assert mem[bases[(1, 0)]:bases[(1, 0)] + len(image1)].tobytes() == image1
    assert mem[0x5000:0x5010].tobytes() == d1[0x5000][:16]
    with pytest.raises(ValueError, match=r"tile \(1, 0\)'s program image .* overlaps"):
        chip_dram_image(CHIP, {(0, 0): p0, (1, 0): p1}, dram_bytes=DRAM_BYTES,
                        program_bases={(0, 0): 0, (1, 0): 64})
    with pytest.raises(ValueError, match=r"key \(2, 0\) is not a tile"):
        chip_dram_image(CHIP, {(2, 0): p0}, dram_bytes=DRAM_BYTES)
    with pytest.raises(ValueError, match="backend must be"):
        run_chip(CHIP, {(0, 0): p0}, backend="cxxrtl")
    with pytest.raises(ValueError, match="dram_model must be one of axiram, ports"):
        run_chip(CHIP, {(0, 0): p0}, dram_model="hbm")


@pytest.mark.parametrize("dram_model", DRAM_MODELS)
def test_gemm_on_every_tile_at_once(dram_model):
    seed = 5
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    # non-square shapes, K over two k tiles, M over two PSUM-bank blocks
    shapes = {(0, 0): (8, 4, 4), (1, 0): (5, 6, 3), (0, 1): (4, 8, 8), (1, 1): (20, 4, 4)}
    programs, data, expected = {}, {}, {}
    for i, (pos, shape) in enumerate(shapes.items()):
        programs[pos], d, expected[pos] = _gemm(rng, shape, 0x4000 + i * 0x1000)
        data.update(d)
    dram_options = {"stall": 0.2, "read_latency": 4}
    if dram_model == "axiram":
        dram_options["jitter"] = 3
    else:
        dram_options["max_reads"] = 4
    run = run_chip(CHIP, programs, dram=data, dram_bytes=DRAM_BYTES, max_cycles=40_000,
                   host_stall=0.2, command_stall=0.2, seed=seed, read_semaphores=False,
                   dram_model=dram_model, **dram_options)
    check_gemms(run, programs, data, expected)


def test_chip_wide_abort_and_a_bad_instruction():
    # (0, 0) runs a GEMM to the end; (1, 0) halts on a bad semaphore id; (0, 1) and (1, 1) wait
    # on a semaphore nobody signals, until the chip-wide abort releases them
    seed = 9
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    gemm, data, (c_addr, c) = _gemm(rng, (8, 8, 4), 0x4000)
    bad = isa.Program.build(CHIP, {"pe": [isa.nop(), isa.nop(waits=[(40, 1)])]})
    hung = isa.Program.build(CHIP, {"pe": [isa.nop(waits=[(3, 1)])],
                                    "dma0": [isa.nop(waits=[(4, 1)])]})
    programs = {(0, 0): gemm, (1, 0): bad, (0, 1): hung, (1, 1): hung}
    run = run_chip(CHIP, programs, dram=data, dram_bytes=DRAM_BYTES, max_cycles=40_000,
                   abort_after=3000, seed=seed, read_semaphores=False)
    assert np.array_equal(_c(run, c_addr, c), c)
    assert run.tiles[(0, 0)].status == {"running": 0, "done": 1, "halted": 0,
                                        "datapath_error": 0}
    pe = run.tiles[(1, 0)].queues["pe"]
    assert (pe["state"], pe["error"], pe["pc"]) == (EngineState.HALTED, IsaError.BAD_SEMAPHORE, 2)
    for pos in ((0, 1), (1, 1)):
        for name in ("pe", "dma0"):
            q = run.tiles[pos].queues[name]
            assert (q["state"], q["error"]) == (EngineState.HALTED, IsaError.ABORTED), (pos, name)
        assert run.tiles[pos].status["running"] == 0
    # bit y * X + x: (1, 0) is bit 1, (0, 1) bit 2, (1, 1) bit 3
    assert run.chip["RUNNING"] == 0
    assert run.chip["HALTED"] == 0b1110 and run.chip["DONE"] == 0b1111
    assert run.chip["STATUS"] == {"running": 0, "done": 1, "halted": 1}
