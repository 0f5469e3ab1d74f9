"""Stream drivers, sinks and a protocol checker for ``amaranth.lib.stream`` interfaces.

Payloads are passed as Python values (ints, lists, or dicts for struct layouts), exactly what
``ctx.set`` accepts. Random stalls come from a ``numpy.random.Generator`` so a printed seed replays
a failure. All functions are async and meant to be awaited from a testbench.

Stalls are per-cycle masks (:class:`StallPattern`): cycle ``c`` of a stream is a stall cycle iff
draw ``c`` of its generator is below the stall probability. The masks do not depend on what the
design does, so the compiled simulation backend (``systolica.testbench.backends``) replays exactly
the same stalls from the same seeds and gives the same cycle counts.
"""

import numpy as np

from .handshake import hold_check


__all__ = ["StreamSource", "StreamSink", "StallPattern", "check_stream_protocol", "to_python",
           "stream_by_path"]


def stream_by_path(component, path):
    """The member of ``component`` named by a dotted path (``"axi.ar"``, ``"queues.0"``): a
    stream interface or a port. Integer parts index arrays of interfaces."""
    obj = component
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() and not hasattr(obj, part) else getattr(obj, part)
    return obj


def to_python(value):
    """A ``data.Const`` (struct/array payload read with ``ctx.get``) as plain dicts/lists/ints."""
    from amaranth.lib import data
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [to_python(value[i]) for i in range(layout.length)]
        return {name: to_python(value[name]) for name, _ in layout}
    return value


class StallPattern:
    """Per-cycle stall decisions drawn from ``rng``: cycle ``c`` (counted from the start of the
    stream's use) stalls iff ``rng.random()`` draw number ``c`` is ``< stall``. Draws are made in
    chunks as cycles are reached; a chunked draw gives the same values as one long draw, so
    :meth:`mask` (used by the compiled backend) and indexing (used by the Python testbenches) agree.
    ``stall=0`` never touches ``rng``.
    """

    CHUNK = 4096

    def __init__(self, stall, rng):
        stall = float(stall)
        if not 0.0 <= stall <= 1.0:
            raise ValueError(f"stall must be a probability in [0, 1]; got {stall}")
        self.stall = stall
        self.rng = rng
        self._mask = np.zeros(0, dtype=bool)

    def _extend(self, n):
        if n > len(self._mask):
            if self.stall == 0.0:
                self._mask = np.zeros(max(n, 2 * len(self._mask)), dtype=bool)
            else:
                more = max(n - len(self._mask), self.CHUNK)
                self._mask = np.concatenate([self._mask, self.rng.random(more) < self.stall])

    def __getitem__(self, cycle):
        if cycle >= len(self._mask):
            self._extend(cycle + 1)
        return bool(self._mask[cycle])

    def mask(self, n, start=0):
        """Stall flags (bool array) of cycles ``start .. start+n-1``."""
        self._extend(start + n)
        return self._mask[start:start + n].copy()


class StreamSource:
    """Drives a stream's ``valid`` and ``payload`` from a list of payloads.

    ``stall`` is the probability of holding ``valid`` low in a cycle where a payload could be
    offered (random producer stalls): in such a cycle the source stalls iff the cycle is marked
    in its :class:`StallPattern` (``self.pattern``). Valid never waits on ready; a payload, once
    offered, is held until accepted. Returns the cycle offsets at which each payload was accepted.
    """

    def __init__(self, stream, *, stall=0.0, rng=None):
        self.stream = stream
        self.stall = stall
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.pattern = StallPattern(stall, self.rng)
        self.pattern_offset = 0     # pattern cycles used by earlier send() calls

    async def send(self, ctx, payloads):
        accepted_at = []
        cycle = 0
        base = self.pattern_offset
        for payload in payloads:
            while self.pattern[base + cycle]:
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
        self.pattern_offset = base + cycle
        return accepted_at


class StreamSink:
    """Collects ``count`` payloads from a stream, holding ``ready`` low with probability ``stall``
    each cycle (random consumer stalls: the cycles marked in ``self.pattern``, a
    :class:`StallPattern`). Returns (payloads, cycle offsets of acceptance)."""

    def __init__(self, stream, *, stall=0.0, rng=None):
        self.stream = stream
        self.stall = stall
        self.rng = rng if rng is not None else np.random.default_rng(1)
        self.pattern = StallPattern(stall, self.rng)
        self.pattern_offset = 0     # pattern cycles used by earlier receive() calls

    async def receive(self, ctx, count):
        payloads, cycles = [], []
        cycle = 0
        base = self.pattern_offset
        while len(payloads) < count:
            ready = not self.pattern[base + cycle]
            ctx.set(self.stream.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(self.stream.valid, self.stream.payload)
            if valid and ready:
                payloads.append(to_python(payload))
                cycles.append(cycle)
            cycle += 1
        ctx.set(self.stream.ready, 0)
        self.pattern_offset = base + cycle
        return payloads, cycles


def check_stream_protocol(stream, name="stream", domain="sync"):
    """A background process that fails the simulation if the producer breaks the stream rules:
    once ``valid`` is asserted it must stay asserted, with the payload unchanged, until accepted."""

    def fail(message):
        raise AssertionError(f"{name}: {message}")

    async def process(ctx):
        pending = None
        async for _, _, valid, ready, payload in ctx.tick(domain).sample(
                stream.valid, stream.ready, stream.payload):
            pending = hold_check(pending, valid, ready, to_python(payload), fail)

    return process
