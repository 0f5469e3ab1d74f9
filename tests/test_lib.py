# amaranth: UnusedElaboratable=no
"""hdl/lib: Queue, SkidBuffer, RoundRobinArbiter, StickyFlags against Python models of their contracts."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from systolica.hdl.lib import Queue, RoundRobinArbiter, SkidBuffer, StickyFlags
from systolica.testbench.sim import SimulationTimeout, run_simulation
from systolica.testbench.streams import StreamSink, StreamSource, check_stream_protocol

PAIR = data.StructLayout({"a": signed(5), "b": data.ArrayLayout(unsigned(3), 2)})


def random_pairs(rng, n):
    return [{"a": int(rng.integers(-16, 16)), "b": [int(v) for v in rng.integers(0, 8, 2)]}
            for _ in range(n)]


# --- Queue ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("registered_head", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("stall_in,stall_out", [(0.0, 0.0), (0.4, 0.1), (0.1, 0.6), (0.5, 0.5)])
def test_queue_in_order_with_stalls_and_level(seed, depth, stall_in, stall_out, registered_head):
    """Both heads have one cycle behaviour: ``level``, ``i.ready`` and ``o.valid`` every cycle
    follow what was accepted and taken at the previous edges."""
    rng = np.random.default_rng(seed)
    queue = Queue(shape=PAIR, depth=depth, registered_head=registered_head)
    payloads = random_pairs(rng, 60)
    src = StreamSource(queue.i, stall=stall_in, rng=np.random.default_rng(rng.integers(1 << 32)))
    snk = StreamSink(queue.o, stall=stall_out, rng=np.random.default_rng(rng.integers(1 << 32)))
    got, levels = {}, []

    async def feed(ctx):
        await src.send(ctx, payloads)

    async def collect(ctx):
        got["payloads"], _ = await snk.receive(ctx, len(payloads))

    async def level_model(ctx):
        # level counts what was accepted and not yet taken, as of the previous edges
        stored = 0
        async for _, _, level, i_valid, i_ready, o_valid, o_ready in ctx.tick().sample(
                queue.level, queue.i.valid, queue.i.ready, queue.o.valid, queue.o.ready):
            levels.append(level)
            assert level == stored, (level, stored)
            assert bool(i_ready) == (stored < depth) and bool(o_valid) == (stored > 0)
            stored += int(i_valid and i_ready) - int(o_valid and o_ready)

    run_simulation(queue, [feed, collect], max_cycles=2000,
                   processes=[level_model, check_stream_protocol(queue.o, "o")])
    assert got["payloads"] == payloads
    assert max(levels) <= depth
    if stall_out > stall_in:
        assert max(levels) == depth, "a slow consumer fills the queue"


def test_queue_full_stalls_the_producer_forever_without_a_consumer():
    queue = Queue(shape=8, depth=2)

    async def feed(ctx):
        await StreamSource(queue.i).send(ctx, [1, 2, 3])

    with pytest.raises(SimulationTimeout, match="within 50 cycles"):
        run_simulation(queue, [feed], max_cycles=50)


@pytest.mark.parametrize("depth", [0, -1, 1.5, True, None])
def test_queue_bad_depth(depth):
    with pytest.raises(ValueError, match="Queue depth must be a positive integer"):
        Queue(shape=8, depth=depth)


def test_queue_bad_registered_head():
    with pytest.raises(TypeError, match="Queue registered_head must be a bool"):
        Queue(shape=8, depth=2, registered_head=1)


def test_queue_bad_shape():
    with pytest.raises(TypeError):
        Queue(shape="eight", depth=2)


# --- SkidBuffer -----------------------------------------------------------------------------------

@pytest.mark.parametrize("stall_in,stall_out", [(0.0, 0.0), (0.4, 0.1), (0.1, 0.6), (0.5, 0.5)])
def test_skid_buffer_in_order_with_stalls(seed, stall_in, stall_out):
    rng = np.random.default_rng(seed)
    skid = SkidBuffer(shape=PAIR)
    payloads = random_pairs(rng, 80)
    src = StreamSource(skid.i, stall=stall_in, rng=np.random.default_rng(rng.integers(1 << 32)))
    snk = StreamSink(skid.o, stall=stall_out, rng=np.random.default_rng(rng.integers(1 << 32)))
    got = {}

    async def feed(ctx):
        await src.send(ctx, payloads)

    async def collect(ctx):
        got["payloads"], got["cycles"] = await snk.receive(ctx, len(payloads))

    async def model(ctx):
        # i.ready depends on registered state only: it is high while at most one is held.
        held = 0
        async for _, _, i_valid, i_ready, o_valid, o_ready in ctx.tick().sample(
                skid.i.valid, skid.i.ready, skid.o.valid, skid.o.ready):
            assert bool(i_ready) == (held < 2) and bool(o_valid) == (held > 0), held
            held += int(i_valid and i_ready) - int(o_valid and o_ready)
            assert 0 <= held <= 2

    run_simulation(skid, [feed, collect], max_cycles=2000,
                   processes=[model, check_stream_protocol(skid.o, "o")])
    assert got["payloads"] == payloads
    if stall_in == stall_out == 0.0:
        cycles = got["cycles"]
        assert cycles[-1] - cycles[0] == len(payloads) - 1, "one payload per cycle"


def test_skid_buffer_bad_shape():
    with pytest.raises(TypeError):
        SkidBuffer(shape="eight")


# --- RoundRobinArbiter ----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 5])
def test_arbiter_fair_and_one_hot(seed, n):
    """Requesters hold their request until granted (and used); every persistent requester is
    granted within n used grants; grant is one-hot among the requests; index matches it."""
    rng = np.random.default_rng(seed)
    arb = RoundRobinArbiter(n)
    stats = {"grants": 0}

    async def bench(ctx):
        requests = 0
        waited = [0] * n              # used grants since each requester started waiting
        for _ in range(400):
            requests |= int(rng.integers(0, 1 << n))
            advance = int(rng.random() < 0.7)
            ctx.set(arb.requests, requests)
            ctx.set(arb.advance, advance)
            grant, index, valid = ctx.get(arb.grant), ctx.get(arb.index), ctx.get(arb.valid)
            assert valid == (requests != 0)
            if requests:
                assert grant & requests == grant and bin(grant).count("1") == 1
                assert grant == 1 << index
            else:
                assert grant == 0
            if valid and advance:
                stats["grants"] += 1
                requests &= ~grant
                for i in range(n):
                    if i == index:
                        waited[i] = 0
                    elif requests >> i & 1:
                        waited[i] += 1
                        assert waited[i] < n, f"requester {i} waited {waited[i]} grants"
            await ctx.tick()

    run_simulation(arb, [bench], max_cycles=1000)
    assert stats["grants"] > 100


def test_arbiter_advance_semantics():
    """Without advance the winner stays (a requester that lost downstream keeps its turn); with
    it the winner becomes lowest priority; the search starts at 0 after reset."""
    arb = RoundRobinArbiter(4)

    async def bench(ctx):
        ctx.set(arb.requests, 0b1111)
        assert ctx.get(arb.index) == 0
        for _ in range(3):                         # no advance: the same winner
            await ctx.tick()
            assert ctx.get(arb.index) == 0
        order = []
        ctx.set(arb.advance, 1)
        for _ in range(8):
            order.append(ctx.get(arb.index))
            await ctx.tick()
        assert order == [0, 1, 2, 3, 0, 1, 2, 3]
        ctx.set(arb.requests, 0b1001)              # last winner 3: next search starts at 0
        assert ctx.get(arb.index) == 0
        await ctx.tick()
        assert ctx.get(arb.index) == 3
        ctx.set(arb.requests, 0)                   # advance without a request changes nothing
        await ctx.tick()
        ctx.set(arb.requests, 0b1001)              # last winner still 0: 3 comes next
        assert ctx.get(arb.index) == 3

    run_simulation(arb, [bench], max_cycles=100)


@pytest.mark.parametrize("n", [0, -2, 2.0])
def test_arbiter_bad_n(n):
    with pytest.raises(ValueError, match="RoundRobinArbiter n must be a positive integer"):
        RoundRobinArbiter(n)


# --- StickyFlags ----------------------------------------------------------------------------------

def test_sticky_flags_set_wins_over_clear(seed):
    rng = np.random.default_rng(seed)
    sticky = StickyFlags(6)

    async def bench(ctx):
        model = 0
        for _ in range(300):
            events, clear = int(rng.integers(0, 64)) * int(rng.random() < 0.3), \
                int(rng.random() < 0.2)
            ctx.set(sticky.set, events)
            ctx.set(sticky.clear, clear)
            await ctx.tick()
            model = events if clear else model | events   # a bit set while clearing stays
            assert ctx.get(sticky.flags) == model
            assert ctx.get(sticky.any) == (model != 0)

    run_simulation(sticky, [bench], max_cycles=400)


def test_sticky_flags_struct_layout_and_same_cycle():
    layout = data.StructLayout({"overflow": 1, "bad_address": 1, "timeout": 1})
    sticky = StickyFlags(layout)

    async def bench(ctx):
        ctx.set(sticky.set, {"overflow": 1})
        await ctx.tick()
        ctx.set(sticky.set, {"timeout": 1})
        ctx.set(sticky.clear, 1)                   # clears overflow, keeps the new timeout
        await ctx.tick()
        flags = ctx.get(sticky.flags)
        assert (flags.overflow, flags.bad_address, flags.timeout) == (0, 0, 1)
        ctx.set(sticky.set, {})
        await ctx.tick()                           # clear alone clears
        assert ctx.get(sticky.flags).as_value().value == 0 and ctx.get(sticky.any) == 0

    run_simulation(sticky, [bench], max_cycles=20)
