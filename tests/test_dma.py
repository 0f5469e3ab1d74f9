# amaranth: UnusedElaboratable=no
"""DMA engine: random strided descriptors in every direction checked byte-exactly against the
NumPy model (whole DRAM and SBUF compared, so bytes outside the destination must be unchanged),
random stalls on every channel, queues and round robin, semaphores, bad descriptors, AXI error
responses, burst rules, outstanding reads, and the real SBUF."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth.hdl import Module, Shape
from amaranth.lib import wiring

from systolica.codes import DmaError, codes_markdown
from systolica.config import ArrayConfig, ConfigError, DmaConfig, SbufConfig, TileConfig
from systolica.hdl.axi import RESP_DECERR, RESP_SLVERR
from systolica.hdl.contracts import dma_descriptor_layout
from systolica.hdl.dma import Dma
from systolica.testbench.dma import pack_descriptor, run_dma
from systolica.testbench.handshake import send, wait_for
from systolica.model.dma import (DmaSide, DmaTransfer, descriptor_field_ranges,
                                 dma_check_reference, dma_copy_reference, random_transfer,
                                 sbuf_address, side_offsets, side_range)
from systolica.testbench.dram import AxiDram
from systolica.testbench.sbuf_model import SbufPortModel
from systolica.testbench.sim import SimulationTimeout, run_simulation


DRAM_BYTES = 1 << 14

CONFIGS = {
    "w64": (DmaConfig(), SbufConfig(partitions=4, depth=64, word_bytes=8)),
    "w32-short-bursts-3q": (DmaConfig(data_width=32, max_burst=4, outstanding_reads=3,
                                      outstanding_writes=2, sbuf_reads=2, queues=3,
                                      queue_depth=2),
                            SbufConfig(partitions=4, depth=64, word_bytes=4)),
    "w128": (DmaConfig(data_width=128, max_burst=16, outstanding_reads=4),
             SbufConfig(partitions=2, depth=64, word_bytes=16)),
}


def tile(cfg, scfg):
    """A tile config around the DMA and SBUF sections under test."""
    n = min(scfg.partitions, 8)
    return TileConfig(array=ArrayConfig(rows=n, cols=n), sbuf=scfg, dma=cfg)


def make_dut(name):
    return Dma(config=tile(*CONFIGS[name]))


def check_code(t, cfg, scfg):
    return dma_check_reference(t, addr_width=cfg.addr_width, sbuf_bytes=sbuf_bytes(scfg),
                               semaphores=cfg.semaphores)


def sbuf_bytes(scfg):
    return scfg.partitions * scfg.partition_bytes


def regions(src_space, dst_space, scfg):
    """Disjoint source / destination regions when both sides are in the same memory."""
    size = {"dram": DRAM_BYTES, "sbuf": sbuf_bytes(scfg)}
    if src_space == dst_space:
        half = size[src_space] // 2
        return (0, half), (half, size[src_space])
    return (0, size[src_space]), (0, size[dst_space])


def corrupt(rng, t, cfg, scfg):
    """A bad variant of a good descriptor (the model says which error it must give)."""
    side = "src" if rng.random() < 0.5 else "dst"
    s = getattr(t, side)
    kind = rng.integers(5)
    if kind == 0:
        return replace(t, elem_bytes=0)
    if kind == 1:
        counts = list(s.counts)
        counts[int(rng.integers(3))] = 0
        return replace(t, **{side: replace(s, counts=tuple(counts))})
    if kind == 2:
        return replace(t, dst=replace(t.dst, counts=(t.dst.counts[0] + 1,) + t.dst.counts[1:]))
    spans = [(c - 1) * st for c, st in zip(s.counts, s.strides)]
    if kind == 3:       # the side's last byte is one beyond the end of its memory
        limit = sbuf_bytes(scfg) if s.space == "sbuf" else 1 << cfg.addr_width
        extent = sum(max(0, x) for x in spans) + t.elem_bytes
        if extent < 2:
            return replace(t, elem_bytes=0)
        return replace(t, **{side: replace(s, addr=limit + 1 - extent)})
    # below zero: move the lowest byte to -1
    lo = sum(min(0, x) for x in spans)
    return replace(t, **{side: replace(s, addr=-lo - 1)}) if -lo - 1 >= 0 else \
        replace(t, elem_bytes=0)


def random_queues(rng, cfg, scfg, n, *, max_elem=9, max_count=5, queues=None, bad=0.0):
    """``n`` random descriptors spread over the queues; a fraction ``bad`` of them corrupted."""
    queues = cfg.queues if queues is None else queues
    out = [[] for _ in range(queues)]
    for k in range(n):
        src_space, dst_space = rng.choice(["dram", "sbuf"], 2)
        src_region, dst_region = regions(src_space, dst_space, scfg)
        t = random_transfer(rng, src_space=str(src_space), dst_space=str(dst_space),
                            src_region=src_region, dst_region=dst_region, max_elem=max_elem,
                            max_count=max_count, semaphore=int(rng.integers(cfg.semaphores)),
                            config=cfg)
        if rng.random() < bad:
            t = corrupt(rng, t, cfg, scfg)
            assert check_code(t, cfg, scfg) != DmaError.OK, t
        out[int(rng.integers(queues))].append(t)
    return out


def execution_order(run, queues):
    """The descriptors in the order the DMA completed them (it runs one at a time), checking
    that each queue completed in order."""
    taken = [0] * len(queues)
    order = []
    for event in run.done:
        q = event["queue"]
        assert taken[q] < len(queues[q]), f"queue {q} completed more descriptors than it had"
        t = queues[q][taken[q]]
        assert event["semaphore"] == t.semaphore, "completion out of order within a queue"
        order.append((t, event))
        taken[q] += 1
    assert taken == [len(q) for q in queues], "not every descriptor completed"
    return order


def run_and_check(dut, queues, rng, *, expect=None, **kwargs):
    """Run, then compare the whole DRAM and SBUF with the model applied in execution order."""
    cfg, scfg = dut.config.dma, dut.config.sbuf
    dram = rng.integers(0, 256, DRAM_BYTES, dtype=np.uint8)
    sbuf = rng.integers(0, 256, (scfg.partitions, scfg.depth * scfg.word_bytes), dtype=np.uint8)
    ref_dram, ref_sbuf = dram.copy(), sbuf.reshape(-1).copy()
    run = run_dma(dut, queues, dram_mem=dram, sbuf_mem=sbuf, rng=rng, **kwargs)
    sem_expected = [0] * cfg.semaphores
    errors = 0
    for t, event in execution_order(run, queues):
        code = check_code(t, cfg, scfg)
        if expect is not None:
            code = expect(t, code)
        assert event["error"] == code, f"{t}: error {event['error']}, expected {code}"
        if code == DmaError.OK:
            dma_copy_reference(t, ref_dram, ref_sbuf)
        else:
            errors += 1
        if t.semaphore < cfg.semaphores:
            sem_expected[t.semaphore] = (sem_expected[t.semaphore] + 1) % (1 << cfg.semaphore_bits)
    assert np.array_equal(dram, ref_dram), \
        f"DRAM differs at {np.nonzero(dram != ref_dram)[0][:16]}"
    assert np.array_equal(sbuf.reshape(-1), ref_sbuf), \
        f"SBUF differs at {np.nonzero(sbuf.reshape(-1) != ref_sbuf)[0][:16]}"
    assert run.sem_values == sem_expected
    total = sum(len(q) for q in queues)
    assert run.status["done_count"] == total
    assert run.status["error_count"] == errors
    assert run.status["error"] == (errors > 0)
    assert run.status["busy"] == 0 and run.status["idle"] == 1
    return run


@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_descriptors_with_stalls(name, seed):
    rng = np.random.default_rng(seed)
    dut = make_dut(name)
    queues = random_queues(rng, dut.config.dma, dut.config.sbuf, 16, bad=0.2)
    run = run_and_check(dut, queues, rng, axi_stall=0.3, sbuf_stall=0.3, queue_stall=0.3,
                        read_latency=int(rng.integers(1, 12)), max_cycles=30_000)
    assert run.dram.stats["max_reads_seen"] <= dut.config.dma.outstanding_reads


def test_random_descriptors_no_stalls(seed):
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    queues = random_queues(rng, dut.config.dma, dut.config.sbuf, 12, max_elem=20, max_count=6)
    run_and_check(dut, queues, rng, read_latency=1, write_latency=1, max_cycles=30_000)


def test_long_contiguous_and_unaligned(seed):
    """Long rows: many bursts, 4 KiB crossings, unaligned starts and ends on both sides."""
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    scfg = dut.config.sbuf
    queues = [[], []]
    for k in range(4):
        n = int(rng.integers(600, 1800))
        src = int(rng.integers(4096 - 599, 4096))               # crosses a 4 KiB boundary
        dst = int(rng.integers(0, sbuf_bytes(scfg) - n))
        queues[0].append(DmaTransfer(DmaSide("dram", src, (n, 1, 1), (1, 0, 0)),
                                     DmaSide("sbuf", dst, (n, 1, 1), (1, 0, 0)), 1, k))
        back = int(rng.integers(8192 - 300, 8192 + 300))
        queues[1].append(DmaTransfer(DmaSide("sbuf", dst, (n, 1, 1), (1, 0, 0)),
                                     DmaSide("dram", back, (n, 1, 1), (1, 0, 0)), 1, 4 + k))
    run = run_and_check(dut, queues, rng, axi_stall=0.2, sbuf_stall=0.2, read_latency=20,
                        max_cycles=40_000)
    # Each source crosses a 4 KiB boundary: at least two read bursts each.
    assert run.dram.stats["ar"] >= 8 and run.dram.stats["aw"] >= 4


def test_reads_outstanding_and_bursts(seed):
    """Short bursts and a long latency: the DMA keeps `outstanding_reads` bursts in flight and
    never more; every burst obeys max_burst (the DRAM model checks 4 KiB and 256 beats)."""
    rng = np.random.default_rng(seed)
    cfg = DmaConfig(max_burst=2, outstanding_reads=5)
    scfg = SbufConfig(partitions=4, depth=64, word_bytes=8)
    dut = Dma(config=tile(cfg, scfg))
    t = DmaTransfer(DmaSide("dram", 0x0ffb, (512, 1, 1), (1, 0, 0)),
                    DmaSide("sbuf", 3, (512, 1, 1), (1, 0, 0)), 1, 0)
    run = run_and_check(dut, [[t]], rng, read_latency=40, max_reads=64, max_cycles=20_000)
    st = run.dram.stats
    assert st["max_reads_seen"] == 5
    assert st["ar"] >= 512 // 16
    # Bursts of at most 2 beats: 65 beats of data (512 bytes from an unaligned start) need >= 33.
    assert st["r_beats"] >= 65 and st["ar"] >= 33


def test_round_robin_keeps_both_queues_full(seed):
    """Both queues kept full: completions strictly alternate between them."""
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    queues = random_queues(rng, dut.config.dma, dut.config.sbuf, 24, max_elem=6, max_count=3,
                           queues=1)[0]
    queues = [queues[:12], queues[12:]]
    run = run_and_check(dut, queues, rng, read_latency=4, max_cycles=30_000)
    assert [e["queue"] for e in run.done] == [0, 1] * 12


@pytest.mark.slow
def test_long_run_both_queues_full(seed):
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    queues = random_queues(rng, dut.config.dma, dut.config.sbuf, 300, max_elem=12, max_count=6,
                           bad=0.1)
    run_and_check(dut, queues, rng, axi_stall=0.2, sbuf_stall=0.2, read_latency=10,
                  max_cycles=400_000)


def bad_descriptors(cfg, scfg):
    sb = sbuf_bytes(scfg)
    top = 1 << cfg.addr_width
    d = lambda a, c=(8, 1, 1), s=(1, 0, 0): DmaSide("dram", a, c, s)
    s_ = lambda a, c=(8, 1, 1), s=(1, 0, 0): DmaSide("sbuf", a, c, s)
    T = lambda src, dst, elem, sem: DmaTransfer(src, dst, elem, sem, cfg)
    return [
        (T(d(0), s_(0), 0, 0), DmaError.ZERO_SIZE),
        (T(d(0, (8, 0, 1)), s_(0), 1, 0), DmaError.ZERO_SIZE),
        (T(d(0), s_(0, (0, 1, 1)), 1, 0), DmaError.ZERO_SIZE),
        (T(d(0, (8, 2, 1), (1, 8, 0)), s_(0), 1, 1), DmaError.SIZE_MISMATCH),
        (T(d(0), s_(sb - 7), 1, 1), DmaError.SBUF_RANGE),                   # one byte beyond
        (T(d(0), s_(5, (8, 1, 1), (-1, 0, 0)), 1, 2), DmaError.SBUF_RANGE),  # below 0
        (T(s_(sb - 64, (4, 2, 1), (8, 64, 0)), d(0, (8, 1, 1)), 8, 2),
         DmaError.SBUF_RANGE),                                              # 2-D overrun
        (T(d(top - 4), s_(0), 1, 3), DmaError.DRAM_RANGE),                  # wraps 2**32
        (T(d(3, (8, 1, 1), (-1, 0, 0)), s_(0), 1, 3), DmaError.DRAM_RANGE),  # below 0
        (T(s_(0, (8, 1, 1), (4, 0, 0)), d(top - 8, (8, 1, 1), (4, 0, 0)), 4, 3),
         DmaError.DRAM_RANGE),
        (T(d(0), s_(0), 1, cfg.semaphores), DmaError.BAD_SEMAPHORE),
    ]


def test_bad_descriptors_set_errors_and_engine_goes_on(seed):
    rng = np.random.default_rng(seed)
    cfg = DmaConfig(semaphores=6)
    scfg = SbufConfig(partitions=4, depth=64, word_bytes=8)
    dut = Dma(config=tile(cfg, scfg))
    bad = bad_descriptors(cfg, scfg)
    for t, code in bad:     # the model agrees with the intended codes
        assert check_code(t, cfg, scfg) == code, t
    good = random_queues(rng, cfg, scfg, len(bad), queues=1)[0]
    # Bad and good interleaved on both queues; a good one after every bad one.
    queues = [[], []]
    for k, ((t, _), g) in enumerate(zip(bad, good)):
        queues[k % 2] += [t, g]
    run = run_and_check(dut, queues, rng, axi_stall=0.2, sbuf_stall=0.2, max_cycles=30_000)
    assert run.status["error_count"] == len(bad)
    codes = [e["error"] for e in run.done if e["error"] != DmaError.OK]
    assert run.status["last_error"] == codes[-1]
    # Bad descriptors do no access at all.
    assert run.dram.stats["ar"] + run.dram.stats["aw"] > 0


def _inject(errors):
    def expect(t, code):
        if code != DmaError.OK:
            return code
        for lo, hi, resp, reads, writes in errors:
            for side, is_read in ((t.src, True), (t.dst, False)):
                if side.space != "dram" or not (reads if is_read else writes):
                    continue
                offs = side_offsets(side, t.elem_bytes)
                if ((offs >= lo) & (offs < hi)).any():
                    return DmaError.AXI_READ_ERROR if is_read else DmaError.AXI_WRITE_ERROR
        return DmaError.OK
    return expect


def test_axi_read_error_poisons_descriptor(seed):
    """SLVERR / DECERR on reads: error code, nothing written after the error, engine goes on."""
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    scfg = dut.config.sbuf
    errors = [(0x1000, 0x1040, RESP_SLVERR, True, False),
              (0x2200, 0x2208, RESP_DECERR, True, False)]
    queues = [[
        # Entirely inside the error range: the SBUF destination must stay unchanged.
        DmaTransfer(DmaSide("dram", 0x1000, (64, 1, 1), (1, 0, 0)),
                    DmaSide("sbuf", 100, (64, 1, 1), (1, 0, 0)), 1, 0),
        DmaTransfer(DmaSide("dram", 0x0000, (32, 1, 1), (1, 0, 0)),
                    DmaSide("sbuf", 300, (32, 1, 1), (1, 0, 0)), 1, 1),
        DmaTransfer(DmaSide("dram", 0x2200, (4, 2, 1), (2, 16, 0)),
                    DmaSide("dram", 0x3000, (8, 1, 1), (2, 0, 0)), 2, 2),
        DmaTransfer(DmaSide("dram", 0x2400, (16, 1, 1), (1, 0, 0)),
                    DmaSide("sbuf", 700, (16, 1, 1), (1, 0, 0)), 1, 3),
    ]]
    dram = rng.integers(0, 256, DRAM_BYTES, dtype=np.uint8)
    sbuf = rng.integers(0, 256, (scfg.partitions, scfg.depth * scfg.word_bytes), dtype=np.uint8)
    dram0, sbuf0 = dram.copy(), sbuf.reshape(-1).copy()
    run = run_dma(dut, queues, dram_mem=dram, sbuf_mem=sbuf, rng=rng, errors=errors,
                  axi_stall=0.3, sbuf_stall=0.3, max_cycles=20_000)
    ok, read_error = DmaError.OK, DmaError.AXI_READ_ERROR
    assert [e["error"] for e in run.done] == [read_error, ok, read_error, ok]
    flat = sbuf.reshape(-1)
    assert np.array_equal(flat[100:164], sbuf0[100:164])           # poisoned from the start
    assert np.array_equal(flat[300:332], dram0[0:32])
    assert np.array_equal(flat[700:716], dram0[0x2400:0x2410])
    # The DRAM -> DRAM copy with a failing source: destination bytes are old or correct only.
    ref = dram0.copy()
    dma_copy_reference(queues[0][2], ref, sbuf0.copy())
    dst = np.arange(0x3000, 0x3010)
    assert np.all((dram[dst] == dram0[dst]) | (dram[dst] == ref[dst]))
    untouched = np.ones(DRAM_BYTES, bool)
    untouched[dst] = False
    assert np.array_equal(dram[untouched], dram0[untouched])
    untouched = np.ones(len(flat), bool)
    untouched[300:332] = untouched[700:716] = False
    assert np.array_equal(flat[untouched], sbuf0[untouched])
    assert run.status["error_count"] == 2 and run.status["last_error"] == DmaError.AXI_READ_ERROR


def test_axi_write_error(seed):
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    errors = [(0x3000, 0x3100, RESP_SLVERR, False, True)]
    queues = random_queues(rng, dut.config.dma, dut.config.sbuf, 6)
    queues[0].insert(0, DmaTransfer(DmaSide("sbuf", 0, (300, 1, 1), (1, 0, 0)),
                                    DmaSide("dram", 0x2f80, (300, 1, 1), (1, 0, 0)), 1, 0))
    expect = _inject(errors)

    # A write error drops the failing bursts in the DRAM model: model the copy minus that range.
    cfg, scfg = dut.config.dma, dut.config.sbuf
    dram = rng.integers(0, 256, DRAM_BYTES, dtype=np.uint8)
    sbuf = rng.integers(0, 256, (scfg.partitions, scfg.depth * scfg.word_bytes), dtype=np.uint8)
    ref_dram, ref_sbuf = dram.copy(), sbuf.reshape(-1).copy()
    run = run_dma(dut, queues, dram_mem=dram, sbuf_mem=sbuf, rng=rng, errors=errors,
                  axi_stall=0.3, sbuf_stall=0.3, max_cycles=30_000)
    saw_error = False
    for t, event in execution_order(run, queues):
        code = expect(t, check_code(t, cfg, scfg))
        assert event["error"] == code
        saw_error |= code == DmaError.AXI_WRITE_ERROR
        keep = ref_dram[0x3000:0x3100].copy()
        dma_copy_reference(t, ref_dram, ref_sbuf)
        if code == DmaError.AXI_WRITE_ERROR:
            # Beats in the failing range are not written (the model drops them); the rest is.
            ref_dram[0x3000:0x3100] = keep
    assert saw_error
    assert np.array_equal(dram, ref_dram)
    assert np.array_equal(sbuf.reshape(-1), ref_sbuf)


def memory_processes(dut, rng):
    """The DRAM and SBUF port models of ``dut`` for a hand-written testbench."""
    dram = AxiDram(dut.axi, size=DRAM_BYTES, rng=rng)
    sbuf = SbufPortModel(dut.sbuf, dut.config.sbuf, rng=rng)
    return dram.processes() + sbuf.processes()


def test_semaphore_subtract(seed):
    """Completions increment; the consumer's `sem_sub` subtracts (also in the same cycle)."""
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    memories = memory_processes(dut, rng)
    t = DmaTransfer(DmaSide("dram", 0, (8, 1, 1), (1, 0, 0)),
                    DmaSide("sbuf", 0, (8, 1, 1), (1, 0, 0)), 1, 3)

    async def bench(ctx):
        for k in range(5):
            await send(ctx, dut.queues[0], t.as_dict())
        await wait_for(ctx, lambda ctx: ctx.get(dut.done_count) == 5)
        assert ctx.get(dut.sem_values[3]) == 5
        ctx.set(dut.sem_sub.payload, {"id": 3, "amount": 2})
        ctx.set(dut.sem_sub.valid, 1)
        await ctx.tick()
        ctx.set(dut.sem_sub.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.sem_values[3]) == 3
        assert ctx.get(dut.sem_values[0]) == 0
        # A subtraction in the cycle of a completion: both apply.
        await send(ctx, dut.queues[1], t.as_dict())
        await wait_for(ctx, lambda ctx: ctx.get(dut.done))
        ctx.set(dut.sem_sub.payload, {"id": 3, "amount": 3})
        ctx.set(dut.sem_sub.valid, 1)
        await ctx.tick()
        ctx.set(dut.sem_sub.valid, 0)
        assert ctx.get(dut.sem_values[3]) == 1
        # Sticky error flag and clear_errors.
        await send(ctx, dut.queues[0], DmaTransfer(t.src, t.dst, 0, 2).as_dict())
        await wait_for(ctx, lambda ctx: ctx.get(dut.done_count) == 7)
        assert ctx.get(dut.error) == 1 and ctx.get(dut.last_error) == DmaError.ZERO_SIZE
        assert ctx.get(dut.sem_values[2]) == 1         # an error still signals its semaphore
        ctx.set(dut.clear_errors, 1)
        await ctx.tick()
        ctx.set(dut.clear_errors, 0)
        await ctx.tick()
        assert ctx.get(dut.error) == 0 and ctx.get(dut.error_count) == 1

    run_simulation(dut, [bench], processes=memories, max_cycles=3000)


def test_watchdog_catches_a_stuck_slave(seed):
    """If the DRAM never answers, the run ends with the watchdog, not a hang."""
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    t = DmaTransfer(DmaSide("dram", 0, (8, 1, 1), (1, 0, 0)),
                    DmaSide("sbuf", 0, (8, 1, 1), (1, 0, 0)), 1, 0)
    with pytest.raises(SimulationTimeout):
        run_dma(dut, [[t]], rng=rng, axi_stall={"ar": 1.0}, max_cycles=300)


def test_config_errors():
    # The rules across sections are the TileConfig's: a Dma is never half built.
    with pytest.raises(ConfigError, match="data_width"):
        TileConfig(dma=DmaConfig(data_width=64), sbuf=SbufConfig(word_bytes=16))
    with pytest.raises(ConfigError, match="depth"):
        TileConfig(sbuf=SbufConfig(depth=100))
    with pytest.raises(ConfigError, match="addr_width"):
        TileConfig(dma=DmaConfig(addr_width=16), sbuf=SbufConfig(partitions=64, depth=1024))
    with pytest.raises(ConfigError, match="outstanding_reads"):
        DmaConfig(outstanding_reads=0)
    with pytest.raises(ConfigError, match="data_width"):
        DmaConfig(data_width=48)
    with pytest.raises(TypeError, match="TileConfig"):
        Dma(config=DmaConfig())
    with pytest.raises(TypeError):
        Dma(DmaConfig(), SbufConfig())          # keyword only
    assert Dma(config=TileConfig()).config == TileConfig()
    scfg = SbufConfig(partitions=4, depth=64, word_bytes=8)
    assert sbuf_address(scfg, 2, 5) == 2 * 512 + 5
    with pytest.raises(ValueError, match="partition"):
        sbuf_address(scfg, 4, 0)
    with pytest.raises(ValueError, match="offset"):
        sbuf_address(scfg, 0, 512)


def test_verilog_export():
    """The registered block converts to Verilog with AXI and SBUF ports."""
    from systolica.blocks import get_block
    from systolica.config import default_config
    from systolica.synth.verilog import to_verilog
    block = get_block("dma")
    text = to_verilog(block.build(default_config()), block.top)
    for port in ("axi__ar__valid", "axi__w__payload", "axi__b__ready", "sbuf__request__payload",
                 "sbuf__response__valid", "queues__0__payload", "queues__1__ready", "sem_values"):
        assert port in text, port


class _DmaWithSbuf(wiring.Component):
    """The DMA connected to the real SBUF (hdl/sbuf.py)."""

    def __init__(self, dma, sbuf):
        self.dma = dma
        self.real_sbuf = sbuf
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = self.dma
        m.submodules.sbuf = self.real_sbuf
        wiring.connect(m, self.dma.sbuf, self.real_sbuf.dma)
        return m


def test_with_real_sbuf(seed):
    """DRAM -> real SBUF -> (SBUF -> SBUF) -> DRAM round trips, checked in DRAM."""
    Sbuf = pytest.importorskip("systolica.hdl.sbuf").Sbuf
    rng = np.random.default_rng(seed)
    scfg = SbufConfig(partitions=4, depth=64, word_bytes=8)
    cfg = DmaConfig()
    init_words = rng.integers(0, 1 << 62, (scfg.partitions, scfg.depth)).tolist()
    tile_config = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=scfg, dma=cfg)
    sbuf_hw = Sbuf(config=tile_config, init=init_words)
    dma = Dma(config=tile_config)
    top = _DmaWithSbuf(dma, sbuf_hw)
    init_bytes = np.array([[w.to_bytes(8, "little") for w in row] for row in init_words],
                          dtype=object)
    ref_sbuf = np.frombuffer(b"".join(b"".join(r) for r in init_bytes), dtype=np.uint8).copy()
    queue = []
    for k in range(3):
        queue.append(random_transfer(rng, src_space="dram", dst_space="sbuf",
                                     src_region=(0, 4096), dst_region=(0, 1024), semaphore=k))
        queue.append(random_transfer(rng, src_space="sbuf", dst_space="sbuf",
                                     src_region=(0, 1024), dst_region=(1024, 2048), semaphore=k))
        queue.append(random_transfer(rng, src_space="sbuf", dst_space="dram",
                                     src_region=(0, 2048), dst_region=(8192, 16384),
                                     semaphore=k))
    dram = rng.integers(0, 256, DRAM_BYTES, dtype=np.uint8)
    ref_dram = dram.copy()
    for t in queue:
        dma_copy_reference(t, ref_dram, ref_sbuf)
    run = run_dma(dma, [queue], dram_mem=dram, rng=rng, axi_stall=0.2, sbuf=False, top=top,
                  max_cycles=30_000)
    assert [e["error"] for e in run.done] == [DmaError.OK] * len(queue)
    assert np.array_equal(dram, ref_dram), f"DRAM differs at {np.nonzero(dram != ref_dram)[0][:16]}"



# --- descriptor fields: the host refuses what the hardware would cut; model == hardware ---------

WIDE = DmaConfig(addr_width=48, count_bits=32, elem_bits=24, semaphores=256)


def _one(config=DmaConfig()):
    return DmaTransfer(DmaSide("dram", 0, (8, 1, 1), (1, 0, 0)),
                       DmaSide("sbuf", 0, (8, 1, 1), (1, 0, 0)), 1, 0, config)


TOO_WIDE = [       # (change, message) with the default DmaConfig: 32-bit addresses, 8 semaphores
    (dict(src=DmaSide("dram", 1 << 32, (8, 1, 1), (1, 0, 0))),
     r"src\.addr must be in \[0, 4294967295\]"),
    (dict(dst=DmaSide("sbuf", 0, (65537, 1, 1), (1, 0, 0))),
     r"dst\.counts\[0\] must be in \[0, 65535\]"),
    (dict(elem_bytes=65538), r"elem_bytes must be in \[0, 65535\]"),
    (dict(src=DmaSide("dram", 0, (8, 1, 1), (1, (1 << 32) + 1, 0))),
     r"src\.strides\[1\] must be in \[-2147483648, 2147483647\]"),
    (dict(semaphore=8), r"semaphore must be in \[0, 7\]"),
    (dict(semaphore=-1), r"semaphore must be in \[0, 7\]"),
    (dict(elem_bytes=-1), r"elem_bytes must be in \[0, 65535\]"),
]


@pytest.mark.parametrize("change, message", TOO_WIDE)
def test_host_refuses_values_wider_than_their_field(change, message):
    with pytest.raises(ValueError, match=message):
        replace(_one(), **change)
    if any(v == -1 for v in change.values()):
        return              # negative: refused for every DMA, even the widest
    # Built for a wider DMA, the same descriptor is refused when packed for this one.
    wide = replace(_one(WIDE), **change)
    with pytest.raises(ValueError, match=message):
        pack_descriptor(wide, DmaConfig())
    with pytest.raises(ValueError, match=message):
        run_dma(make_dut("w64"), [[wide]], max_cycles=100)


def test_negative_count_and_address_are_refused():
    with pytest.raises(ValueError, match=r"DmaSide\.counts\[2\] must be an integer >= 0"):
        DmaSide("dram", 0, (1, 1, -1), (1, 0, 0))
    with pytest.raises(ValueError, match=r"DmaSide\.addr must be an integer >= 0"):
        DmaSide("sbuf", -1)
    with pytest.raises(ValueError, match="elem_bytes must be an integer"):
        replace(_one(), elem_bytes=1.5)


@pytest.mark.parametrize("cfg", [DmaConfig(), WIDE, DmaConfig(addr_width=16, count_bits=2,
                                                                 elem_bits=1, semaphores=1)])
def test_field_ranges_are_the_layout_widths(cfg):
    layout = dma_descriptor_layout(cfg)
    ranges = descriptor_field_ranges(cfg)
    side = layout["src"].shape
    shapes = {"addr": side["addr"].shape, "count": side["count"].shape.elem_shape,
              "stride": side["stride"].shape.elem_shape,
              "elem_bytes": layout["elem_bytes"].shape, "semaphore": layout["semaphore"].shape}
    for name, shape in shapes.items():
        shape = Shape.cast(shape)
        lo, hi, bits = ranges[name]
        assert bits == shape.width, name
        assert (lo, hi) == ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if shape.signed
                            else (0, (1 << bits) - 1)), name


def _extreme(rng, kind, ranges, elem):
    """A value of field ``kind`` that fits: an end of its range, near one, or anywhere."""
    lo, hi, _ = ranges[kind]
    pick = int(rng.integers(6))
    if kind == "stride" and pick == 5:
        return int(rng.choice([0, elem, -elem]))
    return [lo, hi, hi - 1, min(lo + 1, hi), int(rng.integers(lo, hi + 1)),
            int(rng.integers(0, min(hi, 9) + 1))][pick]


def _mutate(rng, t, cfg):
    """``t`` with one or two fields set to values that fit their fields (often extreme)."""
    ranges = descriptor_field_ranges(cfg)
    for _ in range(int(rng.integers(1, 3))):
        kind = str(rng.choice(["addr", "count", "stride", "elem_bytes", "semaphore"]))
        value = _extreme(rng, kind, ranges, t.elem_bytes)
        if kind in ("elem_bytes", "semaphore"):
            t = replace(t, **{kind: value})
            continue
        name = str(rng.choice(["src", "dst"]))
        side = getattr(t, name)
        if kind == "addr":
            side = replace(side, addr=value)
        else:
            attr = "counts" if kind == "count" else "strides"
            values = list(getattr(side, attr))
            values[int(rng.integers(3))] = value
            side = replace(side, **{attr: tuple(values)})
        t = replace(t, **{name: side})
    return t


def _inside(side, elem, region):
    lo, end = side_range(side, elem)
    return region[0] <= lo and end <= region[1] and side.elements * elem <= 2048


def test_random_fitting_descriptors_model_agrees_with_hardware(seed):
    """Descriptors whose every value fits its field, many at the ends of the fields' ranges:
    the hardware gives the model's code for each and changes memory exactly as the model."""
    rng = np.random.default_rng(seed)
    cfg = DmaConfig(semaphores=6)
    scfg = SbufConfig(partitions=4, depth=64, word_bytes=8)
    dut = Dma(config=tile(cfg, scfg))
    queues = [[], []]
    verdicts = set()
    for k in range(40):
        src_space, dst_space = (str(x) for x in rng.choice(["dram", "sbuf"], 2))
        src_region, dst_region = regions(src_space, dst_space, scfg)
        t = random_transfer(rng, src_space=src_space, dst_space=dst_space,
                            src_region=src_region, dst_region=dst_region,
                            semaphore=int(rng.integers(cfg.semaphores)), config=cfg)
        if rng.random() < 0.8:
            mutated = _mutate(rng, t, cfg)
            code = check_code(mutated, cfg, scfg)
            # A good one must stay inside its regions (disjoint, and inside the DRAM model).
            if code != DmaError.OK or (_inside(mutated.src, mutated.elem_bytes, src_region) and
                                       _inside(mutated.dst, mutated.elem_bytes, dst_region)):
                t = mutated
        verdicts.add(check_code(t, cfg, scfg))
        queues[int(rng.integers(2))].append(t)
    assert len(verdicts) >= 3, verdicts
    run_and_check(dut, queues, rng, axi_stall=0.2, sbuf_stall=0.2, queue_stall=0.2,
                  max_cycles=60_000)


def test_boundary_descriptors_that_fit(seed):
    """The largest values that fit, each alone: the checks judge them exactly (no wrap)."""
    rng = np.random.default_rng(seed)
    cfg = DmaConfig(semaphores=6)
    scfg = SbufConfig(partitions=4, depth=64, word_bytes=8)
    top, cmax, emax = (1 << 32) - 1, (1 << 16) - 1, (1 << 16) - 1
    d = lambda a, c=(8, 1, 1), s=(1, 0, 0): DmaSide("dram", a, c, s)
    s_ = lambda a, c=(8, 1, 1), s=(1, 0, 0): DmaSide("sbuf", a, c, s)
    T = lambda src, dst, elem=1, sem=0: DmaTransfer(src, dst, elem, sem, cfg)
    cases = [
        (T(d(top, (1, 1, 1)), s_(0, (1, 1, 1)), 2), DmaError.DRAM_RANGE),
        (T(d(top - 7), s_(0)), DmaError.OK),                # the last 8 bytes of the space
        (T(d(0, (cmax, cmax, cmax)), s_(0, (cmax, cmax, cmax))), DmaError.SBUF_RANGE),
        (T(d(0, (cmax, 1, 1), (-(1 << 31), 0, 0)), s_(0, (cmax, 1, 1))), DmaError.SBUF_RANGE),
        (T(d((1 << 31) + 1, (2, 1, 1), ((1 << 31) - 1, 0, 0)), s_(0, (2, 1, 1))),
         DmaError.DRAM_RANGE),                              # one byte beyond 2**32
        (T(d(0, (1, 1, 1)), s_(0, (1, 1, 1)), emax), DmaError.SBUF_RANGE),
        (T(d(0, (1, 1, 1)), d(1 << 20, (1, 1, 1)), emax), DmaError.OK),
        (T(d(0), s_(0), 1, 7), DmaError.BAD_SEMAPHORE),
        (T(d(0, (cmax, 1, 1)), s_(0, (1, cmax, 2))), DmaError.SIZE_MISMATCH),
    ]
    for t, code in cases:
        assert check_code(t, cfg, scfg) == code, t
    # The good ones would reach beyond the DRAM model: judge only the failing ones in hardware.
    dut = Dma(config=tile(cfg, scfg))
    bad = [t for t, code in cases if code != DmaError.OK]
    run_and_check(dut, [bad], rng, max_cycles=5_000)


def test_sticky_error_set_in_the_cycle_of_a_clear_stays_set(seed):
    """`clear_errors` held high through a failing completion: the error that completes in that
    cycle is not lost (it clears one cycle later, as the clear goes on)."""
    rng = np.random.default_rng(seed)
    dut = make_dut("w64")
    memories = memory_processes(dut, rng)
    bad = DmaTransfer(DmaSide("dram", 0, (8, 1, 1), (1, 0, 0)),
                      DmaSide("sbuf", 0, (8, 1, 1), (1, 0, 0)), 0, 1)
    seen = []

    async def bench(ctx):
        ctx.set(dut.clear_errors, 1)
        await send(ctx, dut.queues[0], bad.as_dict())
        await wait_for(ctx, lambda ctx: ctx.get(dut.done))
        await ctx.tick()
        seen.append(ctx.get(dut.error))             # set in the cycle of the clear: kept
        await ctx.tick()
        seen.append(ctx.get(dut.error))             # the clear still high: now cleared
        ctx.set(dut.clear_errors, 0)
        await send(ctx, dut.queues[1], bad.as_dict())
        await wait_for(ctx, lambda ctx: ctx.get(dut.done))
        await ctx.tick()
        for _ in range(3):
            seen.append(ctx.get(dut.error))         # no clear: stays set
            await ctx.tick()

    run_simulation(dut, [bench], processes=memories, max_cycles=2000)
    assert seen == [1, 0, 1, 1, 1]


def test_docs_error_table_is_generated_from_the_codes():
    from pathlib import Path
    text = (Path(__file__).parent.parent / "docs" / "dma.md").read_text()
    assert codes_markdown((DmaError,)) in text


@pytest.mark.parametrize("seed", [1, 2])
def test_realigner_against_a_byte_queue(seed):
    """The realigner alone, with random chunks, pops and stalls, against a list of bytes: its
    level, ``inp.ready`` (room for a whole word), ``out_avail``, ``out_fire``, and the popped
    bytes at their lanes with their strobes, every cycle; ``clear`` empties it."""
    from systolica.hdl.dma_realign import DmaRealigner
    W = 8
    dut = DmaRealigner(W)
    rng = np.random.default_rng(seed)
    counts = {"push": 0, "pop": 0, "both": 0, "full": 0}

    async def bench(ctx):
        queue = []
        for cycle in range(3000):
            clear = rng.random() < 0.01
            lo = int(rng.integers(0, W))
            n = int(rng.integers(1, W - lo + 1))
            data = rng.integers(0, 256, W, dtype=np.uint8)
            out_n = int(rng.integers(1, W + 1))
            out_lo = int(rng.integers(0, W - out_n + 1))
            valid, want, space = (bool(rng.random() < p) for p in (0.7, 0.6, 0.8))
            ctx.set(dut.inp.valid, valid)
            ctx.set(dut.inp.payload, {"data": int.from_bytes(data.tobytes(), "little"),
                                      "lo": lo, "n": n})
            ctx.set(dut.out_valid, want)
            ctx.set(dut.out_lo, out_lo)
            ctx.set(dut.out_n, out_n)
            ctx.set(dut.out_space, space)
            ctx.set(dut.clear, clear)
            assert ctx.get(dut.level) == len(queue), cycle
            ready = len(queue) <= 3 * W
            assert ctx.get(dut.inp.ready) == ready, cycle
            assert ctx.get(dut.out_avail) == (len(queue) >= out_n), cycle
            fire = want and space and len(queue) >= out_n
            assert ctx.get(dut.out_fire) == fire, cycle
            if fire:
                got = ctx.get(dut.out_data).to_bytes(W, "little")
                assert list(got[out_lo:out_lo + out_n]) == queue[:out_n], cycle
                assert ctx.get(dut.out_strb) == ((1 << out_n) - 1) << out_lo, cycle
            await ctx.tick()
            pushed = valid and ready
            counts["full"] += not ready
            counts["push"] += pushed
            counts["pop"] += fire
            counts["both"] += pushed and fire
            if clear:
                queue = []
                continue
            if fire:
                del queue[:out_n]
            if pushed:
                queue += [int(b) for b in data[lo:lo + n]]

    run_simulation(dut, [bench], max_cycles=4000)
    # Every case was seen often: pushes, pops, both at once, and a full queue refusing a chunk.
    assert min(counts.values()) > 100, counts
