"""Host-side drivers for the on-chip memories (SBUF, PSUM, ACT) in simulation.

:func:`run_phases` drives any component's streams in *phases*: within a phase every listed stream
runs at once (sources send their payloads, sinks take a count of payloads, each with random stalls);
a phase starts when every stream of the previous one is done and ``settle`` more cycles have passed.
That is what tests of multi-port blocks need: concurrent random traffic, then a quiet read-back.
It is :func:`systolica.testbench.backends.run_streams` (Amaranth backend) with each stream's
source or sink gated by a shared phase schedule.
"""

import operator

import numpy as np

from systolica.config import DmaConfig, TileConfig
from .backends import run_streams
from .streams import StallPattern, StreamSink, StreamSource, check_stream_protocol


__all__ = ["tile_config", "run_phases", "pack_word", "unpack_word", "accept_monitor"]


def tile_config(*, dma=None, **sections):
    """A :class:`TileConfig` of the given sections; the DMA section (which the memory blocks do
    not read) defaults to one that matches the SBUF word, so memory tests name only what they
    test."""
    if dma is None:
        sbuf = sections.get("sbuf") or TileConfig().sbuf
        dma = DmaConfig(data_width=8 * sbuf.word_bytes)
    return TileConfig(dma=dma, **sections)


def pack_word(byte_list):
    return int.from_bytes(bytes(byte_list), "little")


def unpack_word(value, nbytes):
    return list(int(value).to_bytes(nbytes, "little"))


def accept_monitor(stream, cycles):
    """A background process that appends to ``cycles`` every cycle (counted from the start of the
    simulation) in which ``stream`` transfers a payload; for streams inside a design."""

    async def process(ctx):
        cycle = 0
        async for _, _, valid, ready in ctx.tick().sample(stream.valid, stream.ready):
            if valid and ready:
                cycles.append(cycle)
            cycle += 1

    return process


class _Schedule:
    """The phase every gated stream is in, and the hooks run between phases."""

    def __init__(self, phases, streams, settle, before, final):
        self.phases, self.streams, self.settle = phases, streams, settle
        self.before, self.final = before, final
        self.phase, self.done, self.now = -1, [0] * len(phases), 0
        self.finished, self.final_value = False, None

    async def wait_phase(self, ctx, i):
        while self.phase != i:
            await ctx.tick()

    async def start(self, ctx):
        if 0 in self.before:
            await self.before[0](ctx)
        self.phase = 0

    async def stream_done(self, ctx, i):
        """Called by each stream at the end of phase ``i``; the last one advances the schedule."""
        self.done[i] += 1
        if self.done[i] == self.streams:
            for _ in range(self.settle):
                await ctx.tick()
            if i + 1 in self.before:
                await self.before[i + 1](ctx)
            self.phase += 1

    async def finish(self, ctx):
        await self.wait_phase(ctx, len(self.phases))
        if self.final is not None:
            self.final_value = await self.final(ctx)
        self.finished = True


class _Gated:
    """A stream source or sink that does its phase ``i`` work (``None``: idle) when the schedule
    reaches phase ``i``."""

    def _gate(self, schedule, index, seed):
        self.schedule, self.index, self.seed = schedule, index, seed

    def _restart_pattern(self, phase):
        # A fresh stall pattern per phase and stream: a phase's stalls do not depend on how long
        # the earlier phases took.
        self.pattern = StallPattern(self.stall, np.random.default_rng([self.seed, phase,
                                                                        self.index]))
        self.pattern_offset = 0

    async def _phases(self, ctx, works, run_one):
        schedule = self.schedule
        if self.index == 0:
            await schedule.start(ctx)
        results = []
        for i, work in enumerate(works):
            await schedule.wait_phase(ctx, i)
            start = schedule.now
            self._restart_pattern(i)
            results.append(None if work is None else await run_one(ctx, work, start))
            await schedule.stream_done(ctx, i)
        if self.index == 0:
            await schedule.finish(ctx)
        return results


class _PhasedSource(_Gated, StreamSource):
    def __init__(self, stream, schedule, index, *, stall, seed):
        StreamSource.__init__(self, stream, stall=stall)
        self._gate(schedule, index, seed)

    async def send(self, ctx, works):
        async def one(ctx, payloads, start):
            return [start + c for c in await StreamSource.send(self, ctx, payloads)]
        return await self._phases(ctx, works, one)


class _PhasedSink(_Gated, StreamSink):
    def __init__(self, stream, schedule, index, *, stall, seed):
        StreamSink.__init__(self, stream, stall=stall)
        self._gate(schedule, index, seed)

    async def receive(self, ctx, works):
        async def one(ctx, count, start):
            payloads, cycles = await StreamSink.receive(self, ctx, count)
            return payloads, [start + c for c in cycles]
        return await self._phases(ctx, works, one)


class _Background(StreamSource):
    """A background process (monitor) run as one of run_streams' sources, until the schedule has
    finished: its ``ctx`` ends the process at the first tick after that."""

    class _Stop(Exception):
        pass

    class _Context:
        def __init__(self, ctx, schedule):
            self._ctx, self._schedule = ctx, schedule

        def __getattr__(self, name):
            return getattr(self._ctx, name)

        def tick(self, *args, **kwargs):
            return _Background._Tick(self._ctx.tick(*args, **kwargs), self._schedule)

    class _Tick:
        def __init__(self, trigger, schedule):
            self._trigger, self._schedule = trigger, schedule

        def sample(self, *values):
            return _Background._Tick(self._trigger.sample(*values), self._schedule)

        def __await__(self):
            if self._schedule.finished:
                raise _Background._Stop
            return (yield from self._trigger.__await__())

        async def __aiter__(self):
            while True:
                yield await self

    def __init__(self, process, schedule):
        super().__init__(None)
        self.process, self.schedule = process, schedule

    async def send(self, ctx, _payloads):
        try:
            await self.process(_Background._Context(ctx, self.schedule))
        except _Background._Stop:
            pass
        return []


def run_phases(dut, phases, *, seed=0, stall=0.0, stalls=None, settle=4, max_cycles=None,
               check=(), final=None, processes=(), before=None):
    """Run ``phases`` (a list of ``{stream_path: payloads (list) | count (int)}``; a list makes
    the stream a source, an int a sink) on ``dut``.

    ``stall`` is the per-cycle stall probability of every stream, ``stalls`` overrides it per
    stream path. ``check`` names output streams to watch with :func:`check_stream_protocol`
    (all sinks are checked anyway). ``before`` maps a phase index to an async ``(ctx) -> None``
    run just before that phase starts. ``final`` is an async ``(ctx) -> value`` run after the
    last phase; its value is returned as ``out["final"]``. ``processes`` are background processes
    (monitors), run until then.

    Returns ``{"phases": [{path: accepted cycles (source) or (payloads, cycles) (sink)}],
    "final": ..., "cycles": simulated cycles}``; cycles are absolute simulation cycles.
    """
    stalls = dict(stalls or {})
    paths = []
    for phase in phases:
        for path in phase:
            if path not in paths:
                paths.append(path)
    schedule = _Schedule(phases, len(paths), settle, dict(before or {}), final)
    sources, sinks = {}, {}
    for index, path in enumerate(paths):
        works = [phase.get(path) for phase in phases]
        kinds = {type(w) for w in works if w is not None}
        if len(kinds) != 1 or not kinds <= {list, int}:
            raise ValueError(f"run_phases: stream {path!r} must get payload lists (a source) or "
                             f"counts (a sink) in every phase that names it")
        stream = operator.attrgetter(path)(dut)
        gated = _PhasedSource if list in kinds else _PhasedSink
        entry = (gated(stream, schedule, index, stall=stalls.get(path, stall), seed=seed), works)
        (sources if list in kinds else sinks)[path] = entry

    async def clock(ctx):
        async for _ in ctx.tick():
            schedule.now += 1

    monitored = [check_stream_protocol(operator.attrgetter(p)(dut), p)
                 for p in check if p not in sinks]
    for i, process in enumerate([clock, *monitored, *processes]):
        sources[f"background {i}"] = (_Background(process, schedule), [])
    if max_cycles is None:
        work = sum(len(w) if isinstance(w, list) else w for ph in phases for w in ph.values())
        worst = max([stall, *stalls.values()]) if stalls else stall
        max_cycles = int(10 * (work + 20 * len(phases)) / (1 - worst)) + 500
    run = run_streams(dut, sources=sources, sinks=sinks, max_cycles=max_cycles,
                      backend="amaranth")
    results = [dict() for _ in phases]
    for path in paths:
        per_phase = run.accepted[path] if path in sources else run.received[path]
        for i, value in enumerate(per_phase):
            if value is not None:
                results[i][path] = value
    return {"phases": results, "final": schedule.final_value, "cycles": run.sim_cycles}
