"""Stream drivers, sinks and a protocol checker for ``amaranth.lib.stream`` interfaces.

Payloads are passed as Python values (ints, lists, or dicts for struct layouts), exactly what
``ctx.set`` accepts. Random stalls come from a ``numpy.random.Generator`` so a printed seed replays
a failure. All functions are async and meant to be awaited from a testbench.
"""

import numpy as np


__all__ = ["StreamSource", "StreamSink", "check_stream_protocol", "to_python"]


def to_python(value):
    """A ``data.Const`` (struct/array payload read with ``ctx.get``) as plain dicts/lists/ints."""
    from amaranth.lib import data
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [to_python(value[i]) for i in range(layout.length)]
        return {name: to_python(value[name]) for name, _ in layout}
    return value


class StreamSource:
    """Drives a stream's ``valid`` and ``payload`` from a list of payloads.

    ``stall`` is the probability of holding ``valid`` low in a cycle where a payload could be
    offered (random producer stalls). Valid never waits on ready; a payload, once offered, is held
    until accepted. Returns the cycle offsets at which each payload was accepted.
    """

    def __init__(self, stream, *, stall=0.0, rng=None):
        self.stream = stream
        self.stall = stall
        self.rng = rng if rng is not None else np.random.default_rng(0)

    async def send(self, ctx, payloads):
        accepted_at = []
        cycle = 0
        for payload in payloads:
            while self.stall and self.rng.random() < self.stall:
                ctx.set(self.stream.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(self.stream.valid, 1)
            ctx.set(self.stream.payload, payload)
            while True:
                _, _, ready = await ctx.tick().sample(self.stream.ready)
                cycle += 1
                if ready:
                    accepted_at.append(cycle - 1)
                    break
        ctx.set(self.stream.valid, 0)
        return accepted_at


class StreamSink:
    """Collects ``count`` payloads from a stream, holding ``ready`` low with probability ``stall``
    each cycle (random consumer stalls). Returns (payloads, cycle offsets of acceptance)."""

    def __init__(self, stream, *, stall=0.0, rng=None):
        self.stream = stream
        self.stall = stall
        self.rng = rng if rng is not None else np.random.default_rng(1)

    async def receive(self, ctx, count):
        payloads, cycles = [], []
        cycle = 0
        while len(payloads) < count:
            ready = not (self.stall and self.rng.random() < self.stall)
            ctx.set(self.stream.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(self.stream.valid, self.stream.payload)
            if valid and ready:
                payloads.append(to_python(payload))
                cycles.append(cycle)
            cycle += 1
        ctx.set(self.stream.ready, 0)
        return payloads, cycles


def check_stream_protocol(stream, name="stream", domain="sync"):
    """A background process that fails the simulation if the producer breaks the stream rules:
    once ``valid`` is asserted it must stay asserted, with the payload unchanged, until accepted."""

    async def process(ctx):
        pending = None
        async for _, _, valid, ready, payload in ctx.tick(domain).sample(
                stream.valid, stream.ready, stream.payload):
            payload = to_python(payload)
            if pending is not None:
                if not valid:
                    raise AssertionError(f"{name}: valid dropped before the payload was accepted")
                if payload != pending:
                    raise AssertionError(f"{name}: payload changed while waiting for ready: "
                                         f"{pending!r} -> {payload!r}")
            pending = payload if (valid and not ready) else None

    return process
