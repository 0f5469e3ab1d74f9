# amaranth: UnusedElaboratable=no
"""The AXI4 DRAM simulation model (testbench/dram.py), driven by a Python AXI master: data, latency,
outstanding limits, error injection, and every protocol check it promises."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from systolica.hdl.axi import (BURST_FIXED, BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR,
                               Axi4LiteSignature, Axi4Signature)
from systolica.testbench.dram import AxiDram, AxiProtocolError
from systolica.testbench.handshake import receive, send
from systolica.testbench.sim import run_simulation


class AxiMasterStub(wiring.Component):
    """The testbench drives the master side of the port; ``cycle`` counts clock cycles."""

    def __init__(self, data_width=64):
        super().__init__({"axi": Out(Axi4Signature(addr_width=32, data_width=data_width,
                                                   id_width=4)),
                          "cycle": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.cycle.eq(self.cycle + 1)
        return m


def ar(addr, beats, *, size=3, burst=BURST_INCR, id=0):
    return {"id": id, "addr": addr, "len": beats - 1, "size": size, "burst": burst}


async def write_burst(ctx, axi, addr, words, strb=0xFF, last_at=None):
    await send(ctx, axi.aw, ar(addr, len(words)))
    for i, word in enumerate(words):
        last = (i == len(words) - 1) if last_at is None else (i == last_at)
        await send(ctx, axi.w, {"data": word, "strb": strb, "last": last})


async def read_burst(ctx, axi, addr, beats):
    await send(ctx, axi.ar, ar(addr, beats))
    out = []
    for _ in range(beats):
        p = await receive(ctx, axi.r)
        out.append((p.data, p.resp, p.last))
    return out


def test_signatures():
    sig = Axi4Signature(addr_width=40, data_width=128, id_width=6)
    assert sig.data_bytes == 16
    assert sig == Axi4Signature(addr_width=40, data_width=128, id_width=6)
    assert sig != Axi4Signature(addr_width=40, data_width=64, id_width=6)
    assert set(sig.members) == {"ar", "r", "aw", "w", "b"}
    lite = Axi4LiteSignature(addr_width=16)
    assert set(lite.members) == {"ar", "r", "aw", "w", "b"}
    with pytest.raises(ValueError, match="data_width"):
        Axi4Signature(addr_width=32, data_width=48)
    with pytest.raises(ValueError, match="addr_width"):
        Axi4Signature(addr_width=8, data_width=64)
    with pytest.raises(ValueError, match="AXI4-Lite data_width"):
        Axi4LiteSignature(addr_width=16, data_width=128)


def test_write_then_read_with_stalls(seed):
    rng = np.random.default_rng(seed)
    dut = AxiMasterStub()
    dram = AxiDram(dut.axi, size=1 << 14, read_latency=5, stall=0.4, rng=rng)
    bursts = []
    for _ in range(6):
        beats = int(rng.integers(1, 9))
        addr = int(rng.integers(0, (1 << 14) // 8 - beats)) * 8
        if (addr >> 12) != ((addr + 8 * beats - 1) >> 12):
            addr = (addr >> 12) << 12
        bursts.append((addr, [int(x) for x in rng.integers(0, 1 << 63, beats)]))
    responses = []
    readback = []

    async def bench(ctx):
        for addr, words in bursts:
            await write_burst(ctx, dut.axi, addr, words)
            responses.append((await receive(ctx, dut.axi.b)).resp)
        for addr, words in bursts:
            readback.append(await read_burst(ctx, dut.axi, addr, len(words)))

    run_simulation(dut, [bench], processes=dram.processes(), max_cycles=5000)
    assert responses == [RESP_OKAY] * len(bursts)
    final = {}
    for addr, words in bursts:                    # later bursts overwrite earlier ones
        for i, w in enumerate(words):
            final[addr + 8 * i] = w
    for (addr, words), beats in zip(bursts, readback):
        assert [b[1] for b in beats] == [RESP_OKAY] * len(words)
        assert [b[2] for b in beats] == [0] * (len(words) - 1) + [1]
        assert [b[0] for b in beats] == [final[addr + 8 * i] for i in range(len(words))]
    for a, w in final.items():
        assert int.from_bytes(dram.mem[a:a + 8].tobytes(), "little") == w


def test_read_latency_and_outstanding_limit(seed):
    """First beat no earlier than `read_latency` cycles after AR; at most `max_reads` bursts
    accepted before their data has returned; bursts in flight are pipelined."""
    rng = np.random.default_rng(seed)
    dut = AxiMasterStub()
    dram = AxiDram(dut.axi, size=1 << 12, read_latency=30, max_reads=3, rng=rng)
    dram.write(0, rng.integers(0, 256, 1 << 12, dtype=np.uint8))
    ar_cycles, r_cycles = [], []

    async def issue(ctx):
        for k in range(5):
            ctx.set(dut.axi.ar.payload, ar(64 * k, 4))
            ctx.set(dut.axi.ar.valid, 1)
            while True:
                _, _, ready, cycle = await ctx.tick().sample(dut.axi.ar.ready, dut.cycle)
                if ready:
                    ar_cycles.append(cycle)
                    break
        ctx.set(dut.axi.ar.valid, 0)

    async def collect(ctx):
        ctx.set(dut.axi.r.ready, 1)
        data = []
        while len(data) < 20:
            _, _, valid, payload, cycle = await ctx.tick().sample(
                dut.axi.r.valid, dut.axi.r.payload, dut.cycle)
            if valid:
                data.append(payload.data)
                r_cycles.append(cycle)
        expect = [int.from_bytes(dram.mem[8 * i:8 * i + 8].tobytes(), "little")
                  for k in range(5) for i in range(8 * k, 8 * k + 4)]
        assert data == expect

    run_simulation(dut, [issue, collect], processes=dram.processes(), max_cycles=2000)
    assert r_cycles[0] - ar_cycles[0] >= 30
    assert dram.stats["max_reads_seen"] == 3
    # The 4th AR waits until the first burst has fully returned.
    assert ar_cycles[3] >= r_cycles[3]
    # The first three bursts are pipelined: their 12 beats arrive back to back.
    assert r_cycles[11] - r_cycles[0] == 11


def test_error_injection(seed):
    rng = np.random.default_rng(seed)
    dut = AxiMasterStub()
    dram = AxiDram(dut.axi, size=1 << 12, rng=rng, stall=0.2)
    dram.write(0, rng.integers(0, 256, 1 << 12, dtype=np.uint8))
    dram.add_error(0x100, 0x108, resp=RESP_SLVERR)
    dram.add_error(0x200, 0x240, resp=RESP_DECERR, reads=False)
    before = dram.mem.copy()
    results = {}

    async def bench(ctx):
        results["read"] = await read_burst(ctx, dut.axi, 0xf8, 3)
        results["beyond"] = await read_burst(ctx, dut.axi, 0xff8, 1)  # last word: fine
        await write_burst(ctx, dut.axi, 0x1f8, [1, 2, 3])
        results["b_err"] = (await receive(ctx, dut.axi.b)).resp
        results["read_ok"] = await read_burst(ctx, dut.axi, 0x200, 1)   # writes-only error
        await write_burst(ctx, dut.axi, 0x300, [5])
        results["b_ok"] = (await receive(ctx, dut.axi.b)).resp

    run_simulation(dut, [bench], processes=dram.processes(), max_cycles=3000)
    resp = [b[1] for b in results["read"]]
    assert resp == [RESP_OKAY, RESP_SLVERR, RESP_OKAY]
    assert results["read"][1][0] == 0
    assert results["read"][0][0] == int.from_bytes(before[0xf8:0x100].tobytes(), "little")
    assert results["beyond"][0][1] == RESP_OKAY
    assert results["b_err"] == RESP_DECERR
    assert results["read_ok"][0][1] == RESP_OKAY
    assert results["b_ok"] == RESP_OKAY
    # The failing write burst's beat at 0x1f8 (outside the range) is written, the others not.
    assert int.from_bytes(dram.mem[0x1f8:0x200].tobytes(), "little") == 1
    assert np.array_equal(dram.mem[0x200:0x210], before[0x200:0x210])
    assert int.from_bytes(dram.mem[0x300:0x308].tobytes(), "little") == 5


def test_access_beyond_memory_is_decerr():
    dut = AxiMasterStub()
    dram = AxiDram(dut.axi, size=1 << 12)
    got = {}

    async def bench(ctx):
        got["r"] = await read_burst(ctx, dut.axi, 1 << 12, 2)

    run_simulation(dut, [bench], processes=dram.processes(), max_cycles=500)
    assert [b[1] for b in got["r"]] == [RESP_DECERR] * 2


def _violation(kind):
    """A testbench that breaks one rule."""
    async def bench(ctx, axi):
        if kind == "cross_4k":
            await send(ctx, axi.ar, ar(0xff8, 2))
        elif kind == "fixed_burst":
            await send(ctx, axi.ar, ar(0, 2, burst=BURST_FIXED))
        elif kind == "wrong_size":
            await send(ctx, axi.aw, ar(0, 2, size=2))
        elif kind == "valid_dropped":
            ctx.set(axi.ar.payload, ar(0, 1))
            ctx.set(axi.ar.valid, 1)
            await ctx.tick()
            ctx.set(axi.ar.valid, 0)
        elif kind == "payload_changed":
            ctx.set(axi.ar.payload, ar(0, 1))
            ctx.set(axi.ar.valid, 1)
            await ctx.tick()
            ctx.set(axi.ar.payload, ar(8, 1))
        elif kind == "w_before_aw":
            await send(ctx, axi.w, {"data": 1, "strb": 0xFF, "last": 1})
        elif kind == "wlast_early":
            await write_burst(ctx, axi, 0, [1, 2, 3], last_at=1)
        elif kind == "wlast_missing":
            await write_burst(ctx, axi, 0, [1, 2], last_at=5)
        elif kind == "strobe_below_start":
            await write_burst(ctx, axi, 3, [1], strb=0xFF)
        for _ in range(20):
            await ctx.tick()
    return bench


# Channels that must not be ready (so the master has to hold valid) for some violations.
_STALL = {"valid_dropped": {"ar": 1.0}, "payload_changed": {"ar": 1.0}}


_MESSAGE = {"cross_4k": "crosses a 4 KiB boundary", "fixed_burst": "burst type",
            "wrong_size": "size 2", "valid_dropped": "AR: valid dropped",
            "payload_changed": "AR: payload changed", "w_before_aw": "WVALID before the AW",
            "wlast_early": "WLAST=1 on beat 1", "wlast_missing": "WLAST=0 on beat 1",
            "strobe_below_start": "below the start address"}


@pytest.mark.parametrize("kind", list(_MESSAGE))
def test_protocol_violations_fail_the_run(kind):
    dut = AxiMasterStub()
    dram = AxiDram(dut.axi, size=1 << 13, stall=_STALL.get(kind, 0.0))
    bench = _violation(kind)

    async def testbench(ctx):
        await bench(ctx, dut.axi)

    with pytest.raises(AxiProtocolError, match=_MESSAGE[kind]):
        run_simulation(dut, [testbench], processes=dram.processes(), max_cycles=500)


def test_unaligned_start_strobes_are_legal():
    """The same partial-strobe write that starts at its own address is accepted."""
    dut = AxiMasterStub()
    dram = AxiDram(dut.axi, size=1 << 12)

    async def bench(ctx):
        await write_burst(ctx, dut.axi, 3, [0x1122334455667788], strb=0xF8)
        assert (await receive(ctx, dut.axi.b)).resp == RESP_OKAY

    run_simulation(dut, [bench], processes=dram.processes(), max_cycles=500)
    assert list(dram.mem[:8]) == [0, 0, 0, 0x55, 0x44, 0x33, 0x22, 0x11]


def test_bad_model_parameters():
    dut = AxiMasterStub()
    with pytest.raises(ValueError, match="size= and mem="):
        AxiDram(dut.axi)
    with pytest.raises(ValueError, match="read_latency"):
        AxiDram(dut.axi, size=64, read_latency=0)
    with pytest.raises(ValueError, match="stall channel"):
        AxiDram(dut.axi, size=64, stall={"x": 0.5})
    with pytest.raises(ValueError, match="SLVERR"):
        AxiDram(dut.axi, size=64).add_error(0, 8, resp=RESP_OKAY)

