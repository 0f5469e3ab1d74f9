"""An AXI4-Lite host (master) for async testbenches: register reads and writes with optional random
stalls on the valid side and the ready side, and a map-aware wrapper.

    host = AxiLiteHost(dut.host, rng=rng, stall=0.3)
    await host.write(ctx, 0x08, 1)
    value, resp = await host.read(ctx, 0x0C)
"""

import numpy as np

from systolica.hdl.axi import RESP_OKAY


__all__ = ["AxiLiteError", "AxiLiteHost", "RegisterHost"]


class AxiLiteError(AssertionError):
    """A register access answered with an error response where OKAY was expected."""


class AxiLiteHost:
    def __init__(self, bus, *, rng=None, stall=0.0):
        self.bus = bus
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.stall = float(stall)

    def _stalled(self):
        return self.stall > 0 and self.rng.random() < self.stall

    async def _idle(self, ctx):
        while self._stalled():
            await ctx.tick()

    async def write(self, ctx, addr, value, *, strb=None):
        """Write one register; returns the B response code."""
        bus = self.bus
        strb = (1 << len(bus.w.payload.strb)) - 1 if strb is None else strb
        await self._idle(ctx)
        ctx.set(bus.aw.payload.addr, addr)
        ctx.set(bus.aw.valid, 1)
        ctx.set(bus.w.payload.data, value)
        ctx.set(bus.w.payload.strb, strb)
        ctx.set(bus.w.valid, 1)
        aw_pending = w_pending = True
        while aw_pending or w_pending:
            aw_fire = aw_pending and ctx.get(bus.aw.ready)
            w_fire = w_pending and ctx.get(bus.w.ready)
            await ctx.tick()
            if aw_fire:
                aw_pending = False
                ctx.set(bus.aw.valid, 0)
            if w_fire:
                w_pending = False
                ctx.set(bus.w.valid, 0)
        while True:
            while self._stalled():
                await ctx.tick()
            ctx.set(bus.b.ready, 1)
            valid, resp = ctx.get(bus.b.valid), ctx.get(bus.b.payload.resp)
            await ctx.tick()
            ctx.set(bus.b.ready, 0)
            if valid:
                return resp

    async def read(self, ctx, addr):
        """Read one register; returns ``(value, resp)``."""
        bus = self.bus
        await self._idle(ctx)
        ctx.set(bus.ar.payload.addr, addr)
        ctx.set(bus.ar.valid, 1)
        while True:
            ready = ctx.get(bus.ar.ready)
            await ctx.tick()
            if ready:
                break
        ctx.set(bus.ar.valid, 0)
        while True:
            while self._stalled():
                await ctx.tick()
            ctx.set(bus.r.ready, 1)
            valid = ctx.get(bus.r.valid)
            value, resp = ctx.get(bus.r.payload.data), ctx.get(bus.r.payload.resp)
            await ctx.tick()
            ctx.set(bus.r.ready, 0)
            if valid:
                return value, resp


class RegisterHost:
    """Register accesses by name through a :class:`~systolica.registers.RegisterMap` whose
    registers sit at ``base`` + their offset (a window of a chip's host port); any response
    other than OKAY raises :class:`AxiLiteError`."""

    def __init__(self, bus, regmap, *, base=0, **kwargs):
        self.axil = AxiLiteHost(bus, **kwargs)
        self.map = regmap
        self.base = base

    async def write(self, ctx, name, value=None, **fields):
        reg = self.map[name]
        word = reg.encode(**fields) if value is None else value
        resp = await self.axil.write(ctx, self.base + reg.offset, word)
        if resp != RESP_OKAY:
            raise AxiLiteError(f"write {name}: response {resp}")

    async def read(self, ctx, name):
        reg = self.map[name]
        value, resp = await self.axil.read(ctx, self.base + reg.offset)
        if resp != RESP_OKAY:
            raise AxiLiteError(f"read {name}: response {resp}")
        return value

    async def fields(self, ctx, name):
        return self.map[name].decode(await self.read(ctx, name))
