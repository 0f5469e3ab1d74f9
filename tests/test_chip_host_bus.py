# amaranth: UnusedElaboratable=no
"""HostWindows, the chip's host decoder, alone: random accesses from a stalling host into
windows whose targets stall every channel and answer late, against a Python model of the
windows (DECERR beyond the last window, the target's own answer inside, the broadcast write
reaching every target and answering the worst response)."""

import numpy as np
import pytest

from systolica.hdl.axi import RESP_DECERR, RESP_OKAY, RESP_SLVERR
from systolica.hdl.host_bus import HostWindows
from systolica.testbench.axilite import AxiLiteHost
from systolica.testbench.sim import run_simulation

WINDOW_BITS = 8
TARGETS = 3
BROADCAST = (0x10, 0x20)          # window 0 offset 0x10 -> every other window at 0x20
READ_ONLY = 0xFC                  # each target refuses writes there (SLVERR)
REFUSES = [{READ_ONLY}, {READ_ONLY}, {READ_ONLY, BROADCAST[1]}]   # target 2 refuses broadcasts


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="window_bits"):
        HostWindows(addr_width=16, data_width=32, window_bits=1, targets=[16])
    with pytest.raises(ValueError, match="do not fit"):
        HostWindows(addr_width=12, data_width=32, window_bits=11, targets=[12, 12, 12])
    with pytest.raises(ValueError, match="narrower"):
        HostWindows(addr_width=16, data_width=32, window_bits=12, targets=[16, 11])
    with pytest.raises(ValueError, match="broadcast"):
        HostWindows(addr_width=16, data_width=32, window_bits=8, targets=[16], broadcast=(3, 4))


class _Target:
    """A word-addressed AXI4-Lite slave with random ready stalls and response delays."""

    def __init__(self, bus, rng, stall, finished, refuses):
        self.bus, self.rng, self.stall, self.refuses = bus, rng, stall, refuses
        self.finished = finished        # the host bench is done: stop serving
        self.mem = {}
        self.writes = []          # (offset, data) in order

    def _stalled(self):
        return self.rng.random() < self.stall

    async def _respond(self, ctx, channel, **payload):
        """Offer one response beat (after a random delay) and hold it until accepted."""
        while self._stalled():
            await ctx.tick()
        ctx.set(channel.valid, 1)
        for name, value in payload.items():
            ctx.set(getattr(channel.payload, name), value)
        while True:
            accepted = ctx.get(channel.ready)
            await ctx.tick()
            if accepted:
                break
        ctx.set(channel.valid, 0)

    async def writer(self, ctx):
        bus = self.bus
        while not self.finished:
            addr = data = None
            while (addr is None or data is None) and not self.finished:
                aw_ready = addr is None and not self._stalled()
                w_ready = data is None and not self._stalled()
                ctx.set(bus.aw.ready, aw_ready)
                ctx.set(bus.w.ready, w_ready)
                aw_fire = aw_ready and ctx.get(bus.aw.valid)
                w_fire = w_ready and ctx.get(bus.w.valid)
                seen_addr, seen_data = ctx.get(bus.aw.payload.addr), ctx.get(bus.w.payload.data)
                await ctx.tick()
                if aw_fire:
                    addr = seen_addr
                if w_fire:
                    data = seen_data
            ctx.set(bus.aw.ready, 0)
            ctx.set(bus.w.ready, 0)
            if self.finished:
                break
            ok = addr not in self.refuses
            if ok:
                self.mem[addr] = data
                self.writes.append((addr, data))
            await self._respond(ctx, bus.b, resp=RESP_OKAY if ok else RESP_SLVERR)

    async def reader(self, ctx):
        bus = self.bus
        while not self.finished:
            ready = not self._stalled()
            ctx.set(bus.ar.ready, ready)
            fire = ready and ctx.get(bus.ar.valid)
            addr = ctx.get(bus.ar.payload.addr)
            await ctx.tick()
            if not fire:
                continue
            ctx.set(bus.ar.ready, 0)
            await self._respond(ctx, bus.r, data=self.mem.get(addr, addr ^ 0xA5A5),
                                resp=RESP_OKAY)


@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_random_accesses_against_a_model(stall):
    seed = 3
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dut = HostWindows(addr_width=12, data_width=32, window_bits=WINDOW_BITS,
                      targets=[12] * TARGETS, broadcast=BROADCAST)
    finished = []                   # empty while the host runs (the targets' loop condition)
    targets = [_Target(dut.window(i), np.random.default_rng(seed + 1 + i), stall, finished,
                       REFUSES[i]) for i in range(TARGETS)]
    host = AxiLiteHost(dut.bus, rng=rng, stall=stall)
    model = [dict() for _ in range(TARGETS)]
    expected_writes = [[] for _ in range(TARGETS)]

    async def bench(ctx):
        for _ in range(120):
            window = int(rng.integers(0, TARGETS + 2))       # some beyond the last window
            offset = int(rng.choice([BROADCAST[0], READ_ONLY, 4 * rng.integers(0, 64)]))
            addr = (window << WINDOW_BITS) | offset
            value = int(rng.integers(0, 1 << 32))
            if rng.random() < 0.5:
                resp = await host.write(ctx, addr, value)
                if window >= TARGETS:
                    assert resp == RESP_DECERR
                    continue
                hits = [(window, offset)]
                if window == 0 and offset == BROADCAST[0]:
                    hits += [(t, BROADCAST[1]) for t in range(1, TARGETS)]
                # the worst answer of every target written; the others still take the write
                refused = any(off in REFUSES[t] for t, off in hits)
                assert resp == (RESP_SLVERR if refused else RESP_OKAY), (hex(addr), hits)
                for t, off in hits:
                    if off not in REFUSES[t]:
                        model[t][off] = value
                        expected_writes[t].append((off, value))
            else:
                data, resp = await host.read(ctx, addr)
                if window >= TARGETS:
                    assert (data, resp) == (0, RESP_DECERR)
                else:
                    assert (data, resp) == (model[window].get(offset, offset ^ 0xA5A5),
                                            RESP_OKAY), hex(addr)
        finished.append(True)

    serving = [p for t in targets for p in (t.writer, t.reader)]
    run_simulation(dut, [bench, *serving], max_cycles=60_000)
    for t in range(TARGETS):
        assert targets[t].writes == expected_writes[t]
    broadcasts = sum(off == BROADCAST[1] for off, _ in expected_writes[1])
    assert broadcasts > 1, broadcasts


def test_the_decoder_grows_linearly_with_the_windows():
    """A 4x4 chip has 17 windows: the decoder's RTLIL grows about linearly with them (the
    broadcast write's worst-response chain once made it double with every window: 38 MB of
    Verilog at 17 windows, the reason a 4x4 chip did not build)."""
    from amaranth.back import rtlil
    sizes = {}
    for n in (5, 17):
        sizes[n] = len(rtlil.convert(HostWindows(addr_width=20, data_width=32, window_bits=12,
                                                 targets=[12] * n, broadcast=(0, 4)),
                                     emit_src=False))
    assert sizes[17] < 6 * sizes[5], sizes
