"""hdl/remote.py alone, with random stalls on every stream: the send side packs and arbitrates
every source's beats without losing, duplicating or reordering any source's; the receive side
writes WRITE flits to the SBUF port in arrival order and applies each SIGNAL only after every
earlier write was accepted; overflow and unknown semaphores are dropped and flagged."""

import numpy as np
import pytest
from amaranth.lib import data

from systolica.codes import RemoteKind
from systolica.config import (ArrayConfig, ChipConfig, NocConfig, PsumConfig, SbufConfig,
                              TileConfig)
from systolica.hdl.contracts import remote_flit_layout
from systolica.hdl.remote import RemoteInterface, SbufPortShare
from systolica.isa import SEMAPHORES
from systolica.testbench.sim import run_simulation
from systolica.testbench.streams import StreamSink, StreamSource, check_stream_protocol

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
CHIP = ChipConfig(tile=CFG, noc=NocConfig(width=3, height=2))
FLIT = remote_flit_layout(CHIP)


def random_write(rng):
    return {"tile": {"x": int(rng.integers(3)), "y": int(rng.integers(2))},
            "write": {"partition": int(rng.integers(4)), "addr": int(rng.integers(64)),
                      "byte_enable": int(rng.integers(256)),
                      "data": [int(b) for b in rng.integers(0, 256, 8)]}}


def random_signal(rng):
    return {"tile": {"x": int(rng.integers(3)), "y": int(rng.integers(2))},
            "signal": {"sem": int(rng.integers(SEMAPHORES)), "count": int(rng.integers(1 << 16))}}


def unpack(word):
    """A flit's payload bits as (kind, body dict) (from the layout, not the RTL)."""
    flit = data.Const(FLIT, word & ((1 << FLIT.size) - 1))
    kind = RemoteKind(flit.kind)
    if kind == RemoteKind.WRITE:
        w = flit.body.write
        return kind, {"partition": w.partition, "addr": w.addr, "byte_enable": w.byte_enable,
                      "data": [w.data[i] for i in range(8)]}
    return kind, {"sem": flit.body.signal.sem, "count": flit.body.signal.count}


def pack(kind, body):
    """A flit's payload bits (from the layout, not the RTL)."""
    member = "write" if kind == RemoteKind.WRITE else "signal"
    return FLIT.const({"kind": kind, "body": {member: body}}).as_value().value


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_send_side_keeps_every_source_in_order(stall):
    seed = 3 + int(stall * 10)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dut = RemoteInterface(config=CHIP)
    writes = [random_write(rng) for _ in range(40)]
    signals = [[random_signal(rng) for _ in range(12)] for _ in range(2)]
    got = {}

    async def sink(ctx):
        total = len(writes) + sum(map(len, signals))
        beats, _ = await StreamSink(dut.send, stall=stall, rng=np.random.default_rng(seed + 9)
                                    ).receive(ctx, total)
        got["beats"] = beats

    def sender(stream, payloads, s):
        async def bench(ctx):
            await StreamSource(stream, stall=stall, rng=np.random.default_rng(s)).send(
                ctx, payloads)
        return bench

    benches = [sender(dut.write, writes, seed + 1), sender(dut.signal[0], signals[0], seed + 2),
               sender(dut.signal[1], signals[1], seed + 3), sink]
    run_simulation(dut, benches, max_cycles=5000,
                   processes=[check_stream_protocol(dut.send, "send")])
    seen_writes, seen_signals = [], []
    for beat in got["beats"]:
        assert beat["last"] == 1
        kind, body = unpack(beat["data"])
        tile = {"x": beat["dst_x"], "y": beat["dst_y"]}
        if kind == RemoteKind.WRITE:
            seen_writes.append({"tile": tile, "write": body})
        else:
            seen_signals.append({"tile": tile, "signal": body})
    assert seen_writes == writes
    # the two signal queues interleave, each in order
    for q in range(2):
        mine = [s for s in seen_signals if s in signals[q]]
        assert mine == signals[q]
    assert len(seen_signals) == sum(map(len, signals))


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_receive_side_orders_signals_after_writes(stall):
    seed = 17 + int(stall * 10)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dut = RemoteInterface(config=CHIP)
    flits = []
    for _ in range(60):
        if rng.random() < 0.6:
            flits.append((RemoteKind.WRITE, random_write(rng)["write"]))
        else:
            sem = int(rng.integers(SEMAPHORES + 4))      # a few unknown ids
            flits.append((RemoteKind.SIGNAL, {"sem": sem, "count": int(rng.integers(50))}))
    n_writes = sum(k == RemoteKind.WRITE for k, _ in flits)
    applied, got = [], {}

    async def recv(ctx):
        beats = [{"src_x": 0, "src_y": 1, "data": pack(k, b), "last": 1}
                 for k, b in flits]
        await StreamSource(dut.recv, stall=stall, rng=np.random.default_rng(seed)).send(
            ctx, beats)

    async def sbuf(ctx):
        got["writes"], got["cycles"] = await StreamSink(
            dut.sbuf_write, stall=stall, rng=np.random.default_rng(seed + 1)).receive(
                ctx, n_writes)

    async def semaphores(ctx):
        cycle = 0
        async for _, _, valid, sem_id, amount in ctx.tick().sample(
                dut.sem.valid, dut.sem.id, dut.sem.amount):
            if valid:
                applied.append((cycle, sem_id, amount))
            cycle += 1

    run_simulation(dut, [recv, sbuf], max_cycles=5000, processes=[
        semaphores, check_stream_protocol(dut.sbuf_write, "sbuf_write")])
    expected_writes = [{"write": 1, **b} for k, b in flits if k == RemoteKind.WRITE]
    assert [{k: w[k] for k in ("write", "partition", "addr", "byte_enable", "data")}
            for w in got["writes"]] == expected_writes
    # each known SIGNAL applied once, in order, after every earlier write was accepted
    expected = [(b["sem"], b["count"], sum(k == RemoteKind.WRITE for k, _ in flits[:i]))
                for i, (k, b) in enumerate(flits) if k == RemoteKind.SIGNAL and
                b["sem"] < SEMAPHORES]
    assert [(s, a) for _, s, a in applied] == [(s, a) for s, a, _ in expected]
    for (cycle, _, _), (_, _, before) in zip(applied, expected):
        if before:
            assert got["cycles"][before - 1] < cycle


def test_receive_flags_overflow_and_unknown_semaphores():
    dut = RemoteInterface(config=CHIP)
    flags = {}

    async def bench(ctx):
        src = StreamSource(dut.recv)
        ctx.set(dut.sem_overflow, 1)       # the semaphore file refuses this signal
        await src.send(ctx, [{"src_x": 1, "src_y": 0, "last": 1,
                              "data": pack(RemoteKind.SIGNAL, {"sem": 3, "count": 1})}])
        ctx.set(dut.sem_overflow, 0)
        await ctx.tick()
        flags["after_overflow"] = (ctx.get(dut.semaphore_overflow), ctx.get(dut.bad_signal))
        await src.send(ctx, [{"src_x": 1, "src_y": 0, "last": 1, "data": pack(
            RemoteKind.SIGNAL, {"sem": SEMAPHORES + 1, "count": 1})}])
        await ctx.tick()
        flags["after_unknown"] = (ctx.get(dut.semaphore_overflow), ctx.get(dut.bad_signal))
        ctx.set(dut.clear_errors, 1)
        await ctx.tick()
        ctx.set(dut.clear_errors, 0)
        await ctx.tick()
        flags["cleared"] = (ctx.get(dut.semaphore_overflow), ctx.get(dut.bad_signal))
        flags["received"] = ctx.get(dut.flits_received)

    run_simulation(dut, [bench], max_cycles=200)
    assert flags == {"after_overflow": (1, 0), "after_unknown": (1, 1), "cleared": (0, 0),
                     "received": 2}


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_sbuf_port_share_passes_both_and_answers_the_dma(stall):
    """DMA requests (reads and writes) and remote writes share one SBUF port: every request
    arrives once, each source's in order; responses go to the DMA."""
    seed = 31 + int(stall * 10)
    rng = np.random.default_rng(seed)
    dut = SbufPortShare(config=CFG)

    def req(write):
        return {"write": int(write), "partition": int(rng.integers(4)),
                "addr": int(rng.integers(64)), "byte_enable": int(rng.integers(256)) * write,
                "data": [int(b) for b in rng.integers(0, 256, 8)] if write else [0] * 8}
    dma = [req(rng.random() < 0.5) for _ in range(30)]
    remote = [req(True) for _ in range(30)]
    responses = [{"data": [int(b) for b in rng.integers(0, 256, 8)]} for _ in range(10)]
    got = {}

    async def dma_source(ctx):
        await StreamSource(dut.dma.request, stall=stall, rng=np.random.default_rng(seed)).send(
            ctx, dma)

    async def remote_source(ctx):
        await StreamSource(dut.remote, stall=stall, rng=np.random.default_rng(seed + 1)).send(
            ctx, remote)

    async def sbuf(ctx):
        got["requests"], _ = await StreamSink(dut.sbuf.request, stall=stall,
                                              rng=np.random.default_rng(seed + 2)).receive(
            ctx, len(dma) + len(remote))

    async def answer(ctx):
        await StreamSource(dut.sbuf.response, stall=stall,
                           rng=np.random.default_rng(seed + 3)).send(ctx, responses)

    async def dma_sink(ctx):
        got["responses"], _ = await StreamSink(dut.dma.response, stall=stall,
                                               rng=np.random.default_rng(seed + 4)).receive(
            ctx, len(responses))

    run_simulation(dut, [dma_source, remote_source, sbuf, answer, dma_sink], max_cycles=3000,
                   processes=[check_stream_protocol(dut.sbuf.request, "sbuf.request")])
    reqs = got["requests"]
    remote_ids = [i for i, r in enumerate(reqs) if r in remote and r not in dma]
    assert [r for r in reqs if r in remote and r not in dma] == \
        [r for r in remote if r not in dma]
    assert [r for r in reqs if r in dma and r not in remote] == \
        [r for r in dma if r not in remote]
    assert len(reqs) == len(dma) + len(remote) and remote_ids
    assert got["responses"] == responses
