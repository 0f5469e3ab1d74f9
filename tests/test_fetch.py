# amaranth: UnusedElaboratable=no
"""hdl/sequencer/fetch.py alone against its contract (the module docstring): every queue gets its
program in order, with the error flag of the beats behind it; every burst is decided at the
earliest cycle, for the queue the round robin names, and is exactly as long as the smallest of
what is left, the queue's room, the 4 KiB boundary and 256 beats; flush drops everything."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from systolica.hdl.axi import BOUNDARY_BYTES, RESP_SLVERR, Axi4Signature
from systolica.hdl.sequencer.fetch import Fetch
from systolica.testbench.dram import AxiDram
from systolica.testbench.sim import run_simulation
from systolica.testbench.streams import StreamSink, check_stream_protocol

ADDR_WIDTH, ID_WIDTH, AXI_ID = 32, 4, 1


class FetchHarness(wiring.Component):
    """The fetch unit on a whole AXI4 master port (write channels idle), for :class:`AxiDram`."""

    def __init__(self, *, fetch):
        self.fetch = fetch
        super().__init__({"bus": wiring.Out(Axi4Signature(
            addr_width=ADDR_WIDTH, data_width=fetch.data_width, id_width=ID_WIDTH))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fetch = self.fetch
        wiring.connect(m, wiring.flipped(self.bus.ar), self.fetch.ar)
        wiring.connect(m, wiring.flipped(self.bus.r), self.fetch.r)
        m.d.comb += [self.bus.aw.valid.eq(0), self.bus.w.valid.eq(0), self.bus.b.ready.eq(0)]
        return m


def make(engines=4, instr_bits=512, data_width=64, depth=4):
    fetch = Fetch(engines=engines, instr_bits=instr_bits, addr_width=ADDR_WIDTH,
                  data_width=data_width, id_width=ID_WIDTH, axi_id=AXI_ID, queue_depth=depth)
    return FetchHarness(fetch=fetch)


def random_programs(rng, engines, instr_bytes, lengths, near_boundary):
    """(bases, lengths): programs that do not overlap, some starting a few instructions before
    a 4 KiB boundary so that their bursts must split there."""
    bases = []
    for e, n in enumerate(lengths):
        page = BOUNDARY_BYTES * (1 + 4 * e)
        if near_boundary[e]:
            base = page - instr_bytes * int(rng.integers(1, 4))
        else:
            base = page + instr_bytes * int(rng.integers(0, 8))
        bases.append(base + int(rng.integers(0, instr_bytes)) * (e == 1))   # unaligned: ignored
    return bases, list(lengths)


class BurstMonitor:
    """Follows the contract beside the RTL, from its ports alone: what each queue holds (R beats
    in, instructions out), what is left of each program, the round robin's last winner. At every
    AR it checks the engine, address and length; in every idle cycle it checks that a burst is
    decided when some queue wants one."""

    def __init__(self, harness, instr_bytes):
        f = harness.fetch
        self.f, self.bus = f, harness.bus
        self.E, self.F = f.engines, f.queue_depth
        self.I = instr_bytes
        self.k = instr_bytes * 8 // f.data_width
        self.max_n = min(self.F, 256 // self.k, BOUNDARY_BYTES // instr_bytes)
        self.last = self.E - 1              # the arbiter's reset state
        self.bursts = []                    # (engine, first instruction, instructions)
        self.run = None                     # per engine [base, length, fetched] after start

    def _start(self, bases, lengths):
        self.run = [[b & ~(self.I - 1), n, 0] for b, n in zip(bases, lengths)]

    def _wanting(self, occupancy):
        return [e for e in range(self.E)
                if self.run[e][2] < self.run[e][1] and occupancy[e] < self.F]

    async def process(self, ctx):
        f, bus = self.f, self.bus
        occupancy = [0] * self.E            # in the queue at the start of this cycle
        burst = None                        # [engine, beats left]
        beat = 0
        idle_wants = False                  # the previous cycle was idle with a queue wanting
        ar_was = False
        # A decision takes each queue's room of the cycle before it: what the queue holds and
        # the instruction whose last beat came in that cycle (counted until written).
        seen = occupancy                    # ... of the previous cycle
        decided_occupancy = occupancy
        was_start = False
        E = self.E
        signals = [bus.ar.valid, bus.ar.ready, bus.ar.payload.addr, bus.ar.payload.len,
                   bus.ar.payload.id, bus.r.valid, bus.r.ready, f.start, f.flush,
                   *[s for q in f.instr for s in (q.valid, q.ready)], *f.base, *f.length]
        async for _, _, *v in ctx.tick().sample(*signals):
            arvalid, arready, addr, length, axi_id, rvalid, rready, start, flush = v[:9]
            pops = [v[9 + 2 * e] and v[10 + 2 * e] for e in range(E)]
            assert not flush, "BurstMonitor follows runs without flush"
            if start:
                self._start(v[9 + 2 * E:9 + 3 * E], v[9 + 3 * E:9 + 4 * E])
            if arvalid and not ar_was:      # decided in the previous cycle
                assert idle_wants, "a burst decided later than the earliest cycle"
                assert burst is None, "a second burst while one is in flight"
                assert axi_id == AXI_ID
                wanting = self._wanting(decided_occupancy)
                assert wanting, "a burst with no queue wanting one"
                order = [(self.last + 1 + i) % self.E for i in range(self.E)]
                e = next(q for q in order if q in wanting)
                base, total, done = self.run[e]
                at = base + done * self.I
                to_boundary = (BOUNDARY_BYTES - at % BOUNDARY_BYTES) // self.I
                n = min(total - done, self.F - decided_occupancy[e], to_boundary, self.max_n)
                assert (addr, length + 1) == (at % (1 << ADDR_WIDTH), n * self.k), (
                    f"burst {len(self.bursts)}: engine {e}: AR at {addr:#x} of {length + 1} beats;"
                    f" the contract says {at:#x}, {n * self.k} beats")
                self.bursts.append((e, done, n))
                self.run[e][2] += n
                self.last = e
                burst = [e, n * self.k]
                idle_wants = False
            elif idle_wants:
                raise AssertionError("no burst decided in an idle cycle where a queue wanted one")
            ar_was = arvalid and not arready
            pushed = [0] * self.E
            if rvalid and rready:
                assert burst is not None, "an R beat taken with no burst in flight"
                beat += 1
                if beat == self.k:
                    beat = 0
                    pushed[burst[0]] = 1
                burst[1] -= 1
                finished = burst[1] == 0
            else:
                finished = False
            decided_occupancy = list(seen)
            # idle in this cycle (its decision shows as AR in the next): no burst, started
            # (not in this cycle or the one before), from the previous cycle's room
            if (self.run is not None and burst is None and not start and not was_start
                    and not arvalid):
                idle_wants = bool(self._wanting(seen))
            else:
                idle_wants = False
            seen = [o + p for o, p in zip(occupancy, pushed)]
            was_start = start
            if finished:
                burst = None
            occupancy = [o + p - q for o, p, q in zip(occupancy, pushed, pops)]
            assert all(0 <= o <= self.F for o in occupancy), f"queue overflow: {occupancy}"


def instruction_image(rng, dram, bases, lengths, instr_bytes):
    """Random instructions in DRAM; returns each program's instructions as ints."""
    programs = []
    for base, n in zip(bases, lengths):
        base &= ~(instr_bytes - 1)
        words = rng.integers(0, 256, n * instr_bytes, dtype=np.uint8)
        dram.write(base, words)
        programs.append([int.from_bytes(words[i * instr_bytes:(i + 1) * instr_bytes].tobytes(),
                                        "little") for i in range(n)])
    return programs


@pytest.mark.parametrize("instr_bits,data_width,depth", [(512, 64, 4), (512, 64, 8),
                                                          (128, 128, 4), (256, 64, 2)])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_fetch_programs_bursts_and_round_robin(seed, instr_bits, data_width, depth, stall):
    rng = np.random.default_rng(seed)
    E, I = 4, instr_bits // 8
    harness = make(engines=E, instr_bits=instr_bits, data_width=data_width, depth=depth)
    fetch = harness.fetch
    lengths = [int(rng.integers(1, 40)) for _ in range(E - 1)] + [0]     # one empty program
    rng.shuffle(lengths)
    bases, lengths = random_programs(rng, E, I, lengths, rng.random(E) < 0.5)
    dram = AxiDram(harness.bus, size=BOUNDARY_BYTES * (4 * E + 2), read_latency=4,
                   stall={"ar": stall, "r": stall}, rng=np.random.default_rng(rng.integers(1 << 32)))
    programs = instruction_image(rng, dram, bases, lengths, I)
    # one instruction of a non-empty program answers SLVERR on its last beat
    bad_engine = next(e for e in range(E) if lengths[e])
    bad = int(rng.integers(lengths[bad_engine]))
    bad_addr = (bases[bad_engine] & ~(I - 1)) + bad * I + I - data_width // 8
    dram.add_error(bad_addr, bad_addr + 1, resp=RESP_SLVERR)
    programs[bad_engine][bad] &= (1 << (instr_bits - data_width)) - 1   # an error beat reads 0
    sinks = [StreamSink(fetch.instr[e], stall=0.6 if e % 2 else stall,
                        rng=np.random.default_rng(rng.integers(1 << 32))) for e in range(E)]
    monitor = BurstMonitor(harness, I)
    got = {}

    async def control(ctx):
        for e in range(E):
            ctx.set(fetch.base[e], bases[e])
            ctx.set(fetch.length[e], lengths[e])
        await ctx.tick().repeat(3)
        ctx.set(fetch.start, 1)
        await ctx.tick()
        ctx.set(fetch.start, 0)
        for e in range(E):          # taken at start: later writes change nothing until the next
            ctx.set(fetch.base[e], bases[(e + 1) % E])
            ctx.set(fetch.length[e], lengths[e] + 5)

    def sink(e):
        async def receive(ctx):
            got[e], _ = await sinks[e].receive(ctx, lengths[e])
        return receive

    async def drained(ctx):
        while len(got) < E:
            await ctx.tick()
        await ctx.tick().repeat(2)
        assert not ctx.get(fetch.busy), "busy with every program fetched"

    run_simulation(harness, [control, drained, *[sink(e) for e in range(E)]],
                   processes=[*dram.processes(), monitor.process,
                              *[check_stream_protocol(fetch.instr[e], f"instr{e}")
                                for e in range(E)]],
                   max_cycles=400 * (sum(lengths) + 4))
    for e in range(E):
        assert [p["bits"] for p in got[e]] == programs[e], f"queue {e}'s instructions"
        assert [p["error"] for p in got[e]] == [int(e == bad_engine and i == bad)
                                                for i in range(lengths[e])], f"queue {e}'s errors"
        covered = sorted((first, n) for q, first, n in monitor.bursts if q == e)
        assert sum(n for _, n in covered) == lengths[e]
    assert dram.stats["ar"] == len(monitor.bursts)


def test_fetch_flush_drops_burst_and_restarts(seed):
    """Flush in the middle of a burst with full queues: nothing more leaves, busy falls once the
    burst's beats are taken, and the next start fetches the new programs from their start."""
    rng = np.random.default_rng(seed)
    E, I = 4, 64
    harness = make(engines=E)
    fetch = harness.fetch
    dram = AxiDram(harness.bus, size=BOUNDARY_BYTES * 20, read_latency=6, stall=0.3,
                   rng=np.random.default_rng(rng.integers(1 << 32)))
    first_bases, first_lengths = random_programs(rng, E, I, [20] * E, [False] * E)
    instruction_image(rng, dram, first_bases, first_lengths, I)
    second_bases = [b + 32 * I for b in first_bases]
    second_lengths = [int(rng.integers(1, 10)) for _ in range(E)]
    second = instruction_image(rng, dram, second_bases, second_lengths, I)
    got = {}

    async def start(ctx, bases, lengths):
        for e in range(E):
            ctx.set(fetch.base[e], bases[e])
            ctx.set(fetch.length[e], lengths[e])
        ctx.set(fetch.start, 1)
        await ctx.tick()
        ctx.set(fetch.start, 0)

    async def bench(ctx):
        await start(ctx, first_bases, first_lengths)
        # queues fill (nobody takes), then flush while a burst's beats arrive
        for _ in range(300):
            *_, rvalid, rready, level = await ctx.tick().sample(
                harness.bus.r.valid, harness.bus.r.ready, fetch.instr[E - 1].valid)
            if rvalid and rready and level:
                break
        ctx.set(fetch.flush, 1)
        await ctx.tick()
        ctx.set(fetch.flush, 0)
        for cycle in range(200):
            assert not any(ctx.get(fetch.instr[e].valid) for e in range(E)), "valid after flush"
            if not ctx.get(fetch.busy):
                break
            await ctx.tick()
        else:
            raise AssertionError("busy did not fall after flush")
        await ctx.tick().repeat(5)
        assert not any(ctx.get(fetch.instr[e].valid) for e in range(E)), "fetched while stopped"
        await start(ctx, second_bases, second_lengths)
        for e in range(E):
            got[e], _ = await StreamSink(fetch.instr[e], stall=0.3,
                                         rng=np.random.default_rng(e)).receive(
                ctx, second_lengths[e])

    run_simulation(harness, [bench], processes=dram.processes(), max_cycles=20_000)
    for e in range(E):
        assert [p["bits"] for p in got[e]] == second[e], f"queue {e} after the restart"
        assert not any(p["error"] for p in got[e])
