"""Remote operations between a chip's tiles (docs/chip.md), in RTL: chip tiles on a mesh
(testbench/chip_tiles.py), each with its own AXI4 DRAM model. Expected bytes come from NumPy
applications of the contract (a remote copy writes the destination tile's SBUF exactly as a
local copy would; a SIGNAL adds to the destination's semaphore after the data), never from the
RTL. Every run has the cycle watchdog of testbench/sim.py."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import DmaError, EngineState, IsaError
from systolica.config import (ArrayConfig, ChipConfig, NocConfig, PsumConfig, SbufConfig,
                              TileConfig)
from systolica.model.dma import DmaSide, side_offsets
from systolica.testbench.chip_tiles import run_tiles

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
PB = CFG.sbuf.partition_bytes
SBUF_BYTES = CFG.sbuf.partitions * PB
LINE = ChipConfig(tile=CFG, noc=NocConfig(width=3, height=1))      # tiles (0,0) (1,0) (2,0)
SQUARE = ChipConfig(tile=CFG, noc=NocConfig(width=2, height=2))
DATA = 0x1000                     # DRAM data area of every tile (programs sit at 0)
OUT = 0x2000                      # DRAM output area


def offsets(addr, counts, strides, elem):
    """Byte addresses of a side, in transfer order (dimension 0 innermost)."""
    c, s = tuple(counts) + (1,) * (3 - len(counts)), tuple(strides) + (0,) * (3 - len(strides))
    return side_offsets(DmaSide("sbuf", addr, c, s), elem)


def copy(dst, dst_side, src, src_side, elem):
    """Apply a copy (sides are (addr, counts, strides)) to the NumPy byte arrays."""
    d, s = offsets(*dst_side, elem), offsets(*src_side, elem)
    assert len(set(d.tolist())) == len(d), "test bug: overlapping destination"
    dst[d] = src[s]


def random_sbufs(rng, positions):
    return {p: rng.integers(0, 256, SBUF_BYTES, dtype=np.uint8) for p in positions}


def assert_all_done(runs, programs, chip=LINE):
    for p, run in runs.items():
        for name, info in run.queues.items():
            assert info["state"] is EngineState.DONE and info["error"] is IsaError.OK, \
                (p, name, info)
            assert info["retired"] == len(programs[p].queues[name]), (p, name, info)
        assert not run.status["halted"] and not run.status["datapath_error"], (p, run.status)
        assert run.remote["errors"] == {"semaphore_overflow": 0, "bad_signal": 0}, p
        assert run.remote["refused"] == 0
        assert run.remote["position"] == {"x": p[0], "y": p[1], "width": chip.noc.width,
                                          "height": chip.noc.height}


@pytest.mark.parametrize("stalls", [False, True], ids=["direct", "stalled"])
def test_remote_copies_3d_unaligned(stalls):
    """DRAM -> remote SBUF (3-D, 3-byte elements at odd addresses, crossing partitions) from
    tile 0 to tile 1; SBUF -> remote SBUF (3-D, negative stride) from tile 2 to tile 1; tile 1
    back to tile 0; tile 2 to itself. Every SBUF byte of every tile is checked: exactly the
    destinations changed. Each destination signals its waiter, which copies the data to DRAM."""
    seed = 5 + stalls
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    t0, t1, t2 = (0, 0), (1, 0), (2, 0)
    sbufs = random_sbufs(rng, (t0, t1, t2))
    drams = {p: np.zeros(1 << 14, np.uint8) for p in (t0, t1, t2)}
    for p in drams:
        drams[p][DATA:DATA + 1024] = rng.integers(0, 256, 1024, dtype=np.uint8)
    exp_sbuf = {p: v.copy() for p, v in sbufs.items()}
    exp_dram = {p: v.copy() for p, v in drams.items()}

    # tile 0: DRAM (3 x 2 x 5 elements of 3 bytes) -> tile 1's SBUF, partitions 0..2
    a_src = (DATA + 1, (5, 2, 3), (3, 17, 40))
    a_dst = (PB - 7, (5, 2, 3), (3, 15, PB + 1))
    # tile 2: its SBUF -> tile 1's SBUF (2-byte elements, a negative middle stride)
    b_src = (2 * PB + 33, (4, 3, 2), (2, 8, 41))
    b_dst = (3 * PB + 301, (4, 3, 2), (2, -8, 24))
    # tile 1: DRAM -> tile 0's SBUF (1-D, word-unaligned); tile 2: DRAM -> its own SBUF
    c_src, c_dst = (DATA + 3, (37,), (1,)), (PB + 101, (37,), (1,))
    d_src, d_dst = (DATA + 200, (6, 4), (1, 9)), (2 * PB + 400, (6, 4), (1, 11))
    copy(exp_sbuf[t1], a_dst, drams[t0], a_src, 3)
    copy(exp_sbuf[t1], b_dst, sbufs[t2], b_src, 2)
    copy(exp_sbuf[t0], c_dst, drams[t1], c_src, 1)
    copy(exp_sbuf[t2], d_dst, drams[t2], d_src, 1)
    # each receiver's waiter copies what arrived to its DRAM (linear, in transfer order)
    exp_dram[t1][OUT:OUT + 90] = exp_sbuf[t1][offsets(*a_dst, 3)]
    exp_dram[t1][OUT + 128:OUT + 128 + 48] = exp_sbuf[t1][offsets(*b_dst, 2)]
    exp_dram[t0][OUT:OUT + 37] = exp_sbuf[t0][offsets(*c_dst, 1)]
    exp_dram[t2][OUT:OUT + 24] = exp_sbuf[t2][offsets(*d_dst, 1)]

    def side(space, s):
        return space(s[0], s[1], s[2])
    lin = lambda addr, n, elem: isa.dram(addr, (n,), (elem,))      # noqa: E731
    programs = {
        t0: isa.Program.build(LINE, {
            "dma0": [isa.dma_copy(side(isa.dram, a_src), side(isa.remote_sbuf, a_dst), 3,
                                  dst_tile=t1),
                     isa.signal_remote(t1, 4, 1)],
            "dma1": [isa.dma_copy(side(isa.sbuf, c_dst), lin(OUT, 37, 1), waits=[(9, 1)])]}),
        t1: isa.Program.build(LINE, {
            "dma0": [isa.dma_copy(side(isa.dram, c_src), side(isa.remote_sbuf, c_dst),
                                  dst_tile=t0),
                     isa.signal_remote(t0, 9, 1),
                     isa.dma_copy(side(isa.sbuf, a_dst), lin(OUT, 30, 3), 3, waits=[(4, 1)])],
            "dma1": [isa.dma_copy(side(isa.sbuf, b_dst), lin(OUT + 128, 24, 2), 2,
                                  waits=[(6, 2)])]}),
        t2: isa.Program.build(LINE, {
            "dma0": [isa.dma_copy(side(isa.sbuf, b_src), side(isa.remote_sbuf, b_dst), 2,
                                  dst_tile=t1),
                     isa.signal_remote(t1, 6, 2)],
            "dma1": [isa.dma_copy(side(isa.dram, d_src), side(isa.remote_sbuf, d_dst),
                                  dst_tile=t2),
                     isa.signal_remote(t2, 1, 1),
                     isa.dma_copy(side(isa.sbuf, d_dst), lin(OUT, 24, 1), waits=[(1, 1)])]}),
    }
    data = {p: {DATA: drams[p][DATA:DATA + 1024].tobytes()} for p in drams}
    kwargs = dict(link_stall=0.4, command_stall=0.3, stall=0.3, jitter=4) if stalls else {}
    runs, _ = run_tiles(LINE, programs, data=data, sbuf_init=sbufs, max_cycles=40_000,
                        seed=seed, **kwargs)
    assert_all_done(runs, programs)
    for p in (t0, t1, t2):
        assert np.array_equal(runs[p].sbuf, exp_sbuf[p]), p
        assert np.array_equal(runs[p].dram[DATA:], exp_dram[p][DATA:]), p
        assert runs[p].semaphores == [0] * len(runs[p].semaphores), p
    # no flit lost or duplicated; only tile 1 sends to tile 0
    assert sum(r.remote["sent"] for r in runs.values()) == \
        sum(r.remote["received"] for r in runs.values())
    assert runs[t0].remote["received"] == runs[t1].remote["sent"]
    # at least one WRITE flit per SBUF word the copy touches, and the SIGNAL
    words = len({a // 8 for a in offsets(*a_dst, 3)})
    assert runs[t0].remote["sent"] >= words + 1


def test_data_then_signal_ordering_under_congestion():
    """Source S sends round r's block to D's SBUF and signals D; D's waiter copies the block to
    DRAM at once and signals S that the buffer is free for round r+1. A third tile F floods D
    over the same link meanwhile; every link, DRAM and command stream stalls at random. Every
    round's DRAM copy must hold that round's data (a signal ahead of its data would copy the
    previous round's bytes)."""
    seed = 23
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    S, F, D = (0, 0), (1, 0), (1, 1)           # S -> D: east then north; F -> D: north
    rounds, n = 4, 88
    blocks = rng.integers(0, 256, (rounds, n), dtype=np.uint8)
    flood = rng.integers(0, 256, 3 * 256, dtype=np.uint8)
    buf, flood_at = 2 * PB + 5, 3                # D's receive buffer, F's flood area
    s_q, d_q = [], []
    for r in range(rounds):
        waits = [(2, 1)] if r else []
        s_q += [isa.dma_copy(isa.dram(DATA + r * 128, (n,), (1,)),
                             isa.remote_sbuf(buf, (n,), (1,)), dst_tile=D, waits=waits),
                isa.signal_remote(D, 3, 1)]
        d_q += [isa.dma_copy(isa.sbuf(buf, (n,), (1,)), isa.dram(OUT + r * 128, (n,), (1,)),
                             waits=[(3, 1)]),
                isa.signal_remote(S, 2, 1)]
    f_q = [isa.dma_copy(isa.dram(DATA + 256 * i, (256,), (1,)),
                        isa.remote_sbuf(flood_at + 256 * i, (256,), (1,)), dst_tile=D)
           for i in range(3)] + [isa.signal_remote(D, 7, 3)]
    programs = {S: isa.Program.build(SQUARE, {"dma0": s_q}),
                F: isa.Program.build(SQUARE, {"dma1": f_q}),
                D: isa.Program.build(SQUARE, {"dma1": d_q, "dma0": [
                    isa.dma_copy(isa.sbuf(flood_at, (768,), (1,)), isa.dram(OUT + 1024, (768,),
                                                                           (1,)),
                                 waits=[(7, 3)])]})}
    data = {S: {DATA + r * 128: blocks[r].tobytes() for r in range(rounds)},
            F: {DATA: flood.tobytes()}}
    runs, _ = run_tiles(SQUARE, programs, data=data, max_cycles=60_000, seed=seed,
                        link_stall=0.35, command_stall=0.25, stall=0.3, jitter=6)
    for p, run in runs.items():
        for name, info in run.queues.items():
            assert info["state"] is EngineState.DONE and info["error"] is IsaError.OK, \
                (p, name, info)
    out = runs[D].dram
    for r in range(rounds):
        assert np.array_equal(out[OUT + r * 128:OUT + r * 128 + n], blocks[r]), f"round {r}"
    assert np.array_equal(out[OUT + 1024:OUT + 1024 + 768], flood)
    assert np.array_equal(runs[D].sbuf[buf:buf + n], blocks[-1])
    assert runs[D].remote["received"] == runs[S].remote["sent"] + runs[F].remote["sent"]
    assert runs[S].remote["received"] == rounds == runs[D].remote["sent"]
    # D's last "buffer free" has no round after it to consume it
    assert runs[S].semaphores[2] == 1
    for p, run in runs.items():
        assert sum(run.semaphores) == (p == S), p


def test_bad_remote_instructions_halt_at_the_source():
    """Each DMA queue gets one bad remote instruction (checked at the source: nothing is sent,
    nothing written anywhere); meanwhile tile 1 sends tile 2 a good copy and signal, which goes
    on. Halted engines report their pc and code."""
    rng = np.random.default_rng(8)
    t0, t1, t2 = (0, 0), (1, 0), (2, 0)
    sbufs = random_sbufs(rng, (t0, t1, t2))
    good = rng.integers(0, 256, 64, dtype=np.uint8)
    bad = {
        (t0, "dma0"): (isa.dma_copy(isa.dram(DATA, (8,), (1,)), isa.remote_sbuf(0, (8,), (1,)),
                                    dst_tile=(3, 0)), IsaError.BAD_REMOTE_TILE, DmaError.OK),
        (t0, "dma1"): (isa.dma_copy(isa.dram(DATA, (8,), (1,)), isa.remote_sbuf(0, (8,), (1,)),
                                    dst_tile=(0, 1)), IsaError.BAD_REMOTE_TILE, DmaError.OK),
        (t1, "dma0"): (isa.signal_remote((5, 0), 1, 1), IsaError.BAD_REMOTE_TILE, DmaError.OK),
        (t2, "dma0"): (isa.signal_remote(t1, isa.SEMAPHORES, 1), IsaError.BAD_SEMAPHORE,
                       DmaError.OK),
        (t2, "dma1"): (isa.dma_copy(isa.remote_sbuf(0, (8,), (1,)), isa.dram(OUT, (8,), (1,)),
                                    dst_tile=t1), IsaError.BAD_DMA_SPACE, DmaError.OK),
    }
    # remote SBUF range: refused by the DMA's checks, as locally (tile 1's second queue, after
    # its good copy to tile 2)
    out_of_range = isa.dma_copy(isa.dram(DATA, (16,), (1,)),
                                isa.remote_sbuf(SBUF_BYTES - 8, (16,), (1,)), dst_tile=t2)
    queues = {p: {} for p in (t0, t1, t2)}
    for (p, q), case in bad.items():
        if case is not None:
            # the bad instruction, then a copy that must never happen
            queues[p][q] = [case[0], isa.dma_copy(isa.dram(DATA, (8,), (1,)),
                                                  isa.remote_sbuf(8, (8,), (1,)), dst_tile=t1),
                            isa.signal_remote(t1, 2, 1)]
    queues[t1]["dma1"] = [isa.dma_copy(isa.dram(DATA, (64,), (1,)),
                                       isa.remote_sbuf(PB + 64, (64,), (1,)), dst_tile=t2),
                          isa.signal_remote(t2, 5, 1), out_of_range,
                          isa.signal_remote(t2, 2, 1)]
    queues[t2]["pe"] = [isa.nop(waits=[(5, 1)], signals=[(6, 1)])]
    programs = {p: isa.Program.build(LINE, q) for p, q in queues.items()}
    data = {t0: {DATA: bytes(64)}, t1: {DATA: good.tobytes()}, t2: {DATA: bytes(64)}}
    runs, _ = run_tiles(LINE, programs, data=data, sbuf_init=sbufs, max_cycles=30_000)
    for (p, q), case in bad.items():
        if case is None:
            continue
        info = runs[p].queues[q]
        assert info["state"] is EngineState.HALTED, (p, q, info)
        assert (info["error"], info["dma"], info["pc"]) == (case[1], case[2], 1), (p, q, info)
    info = runs[t1].queues["dma1"]
    assert info["state"] is EngineState.HALTED
    assert (info["error"], info["dma"], info["pc"]) == (IsaError.DMA_ERROR, DmaError.SBUF_RANGE, 3)
    # the good copy landed; nothing else was written anywhere
    exp = {p: v.copy() for p, v in sbufs.items()}
    exp[t2][PB + 64:PB + 128] = good
    for p in (t0, t1, t2):
        assert np.array_equal(runs[p].sbuf, exp[p]), p
        assert np.array_equal(runs[p].dram[OUT:OUT + 64], np.zeros(64, np.uint8))
    assert runs[t2].queues["pe"]["state"] is EngineState.DONE
    assert runs[t2].semaphores[6] == 1 and runs[t2].semaphores[2] == 0
    assert runs[t1].semaphores[2] == 0
    assert runs[t0].remote["sent"] == 0 and runs[t2].remote["sent"] == 0
    assert runs[t1].remote["sent"] == 64 // 8 + 1 == runs[t2].remote["received"]


def test_abort_releases_a_waiter_on_a_halted_remote_signaller():
    """Tile 0's queue halts before its SIGNAL_REMOTE; tile 1's waiter would wait forever: the
    host's abort of tile 1 releases it (ABORTED), while tile 1's other queue and tile 0 went
    on."""
    t0, t1 = (0, 0), (1, 0)
    programs = {
        t0: isa.Program.build(LINE, {
            "dma0": [isa.dma_copy(isa.dram(DATA, (8,), (1,)), isa.remote_sbuf(8, (8,), (1,)),
                                  dst_tile=(1, 4)), isa.signal_remote(t1, 3, 1)],
            "dma1": [isa.dma_copy(isa.dram(DATA, (8,), (1,)), isa.dram(OUT, (8,), (1,)))]}),
        t1: isa.Program.build(LINE, {
            "dma0": [isa.dma_copy(isa.sbuf(8, (8,), (1,)), isa.dram(OUT, (8,), (1,)),
                                  waits=[(3, 1)])],
            "dma1": [isa.dma_copy(isa.dram(DATA, (8,), (1,)), isa.dram(OUT + 64, (8,), (1,)))]}),
    }
    payload = bytes(range(1, 9))
    runs, _ = run_tiles(LINE, programs, data={t0: {DATA: payload}, t1: {DATA: payload}},
                        abort_after={t1: 1500}, max_cycles=20_000)
    a = runs[t0].queues
    assert (a["dma0"]["state"], a["dma0"]["error"], a["dma0"]["pc"]) == \
        (EngineState.HALTED, IsaError.BAD_REMOTE_TILE, 1)
    assert a["dma1"]["state"] is EngineState.DONE
    assert bytes(runs[t0].dram[OUT:OUT + 8]) == payload
    b = runs[t1].queues
    assert (b["dma0"]["state"], b["dma0"]["error"]) == (EngineState.HALTED, IsaError.ABORTED)
    assert b["dma1"]["state"] is EngineState.DONE
    assert bytes(runs[t1].dram[OUT + 64:OUT + 72]) == payload
    assert not runs[t1].dram[OUT:OUT + 8].any()
    assert runs[t0].remote["sent"] == 0 == runs[t1].remote["received"]


def test_remote_semaphore_overflow_is_dropped_and_flagged():
    """Two remote SIGNALs whose sum passes SEMAPHORE_MAX: the second is dropped, the
    semaphore keeps its value and REMOTE_ERRORS.semaphore_overflow is set; the receiver's
    engines go on (a local waiter consumes from the saturated semaphore)."""
    top = (1 << isa.SEMAPHORE_BITS) - 1
    t0, t1 = (0, 0), (1, 0)
    programs = {
        t0: isa.Program.build(LINE, {"dma0": [isa.signal_remote(t1, 3, top - 2),
                                              isa.signal_remote(t1, 3, 3),
                                              isa.signal_remote(t1, 4, 2)]}),
        t1: isa.Program.build(LINE, {"pe": [isa.nop(waits=[(4, 2)]),
                                            isa.nop(waits=[(3, 5)])]}),
    }
    runs, _ = run_tiles(LINE, programs, max_cycles=20_000)
    assert runs[t0].queues["dma0"]["state"] is EngineState.DONE
    assert runs[t0].remote["sent"] == 3 == runs[t1].remote["received"]
    assert runs[t1].queues["pe"]["state"] is EngineState.DONE
    assert runs[t1].semaphores[3] == top - 2 - 5 and runs[t1].semaphores[4] == 0
    assert runs[t1].remote["errors"] == {"semaphore_overflow": 1, "bad_signal": 0}
    assert runs[t0].remote["errors"]["semaphore_overflow"] == 0
