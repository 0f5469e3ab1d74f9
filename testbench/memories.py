"""Host-side drivers for the on-chip memories (SBUF, PSUM, ACT) in simulation.

:func:`run_phases` drives any component's streams in *phases*: within a phase every listed stream
runs at once (sources send their payloads, sinks take a count of payloads, each with random stalls);
a phase starts when every stream of the previous one is done and ``settle`` more cycles have passed.
That is what tests of multi-port blocks need: concurrent random traffic, then a quiet read-back.
"""

import numpy as np

from .sim import run_simulation
from .streams import StreamSink, StreamSource, check_stream_protocol


__all__ = ["stream_by_path", "run_phases", "pack_word", "unpack_word", "accept_monitor"]


def stream_by_path(component, path):
    obj = component
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


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


def run_phases(dut, phases, *, seed=0, stall=0.0, stalls=None, settle=4, max_cycles=None,
               check=(), final=None, processes=(), before=None):
    """Run ``phases`` (a list of ``{stream_path: payloads (list) | count (int)}``; a list makes
    the stream a source, an int a sink) on ``dut``.

    ``stall`` is the per-cycle stall probability of every stream, ``stalls`` overrides it per
    stream path. ``check`` names output streams to watch with :func:`check_stream_protocol`
    (all sinks are checked anyway). ``final`` is an async ``(ctx) -> value`` run after the last
    phase; its value is returned as ``out["final"]``.

    Returns ``{"phases": [{path: accepted cycles (source) or (payloads, cycles) (sink)}],
    "final": ..., "cycles": simulated cycles}``; cycles are absolute simulation cycles.
    """
    stalls = dict(stalls or {})
    paths = []
    for phase in phases:
        for path in phase:
            if path not in paths:
                paths.append(path)
    before = dict(before or {})
    state = {"phase": -1, "done": [0] * len(phases), "now": 0}
    results = [dict() for _ in phases]
    out = {"phases": results, "final": None}

    async def clock(ctx):
        async for _ in ctx.tick():
            state["now"] += 1

    def make(index, path):
        stream = stream_by_path(dut, path)
        p_stall = stalls.get(path, stall)

        async def tb(ctx):
            if index == 0:
                if 0 in before:
                    await before[0](ctx)
                state["phase"] = 0
            for i, phase in enumerate(phases):
                while state["phase"] != i:
                    await ctx.tick()
                work = phase.get(path)
                rng = np.random.default_rng([seed, i, index])
                start = state["now"]
                if isinstance(work, list):
                    cycles = await StreamSource(stream, stall=p_stall, rng=rng).send(ctx, work)
                    results[i][path] = [start + c for c in cycles]
                elif isinstance(work, int):
                    payloads, cycles = await StreamSink(stream, stall=p_stall, rng=rng).receive(
                        ctx, work)
                    results[i][path] = (payloads, [start + c for c in cycles])
                state["done"][i] += 1
                if state["done"][i] == len(paths):
                    for _ in range(settle):
                        await ctx.tick()
                    if i + 1 in before:
                        await before[i + 1](ctx)
                    state["phase"] += 1
            if index == 0:
                while state["phase"] != len(phases):
                    await ctx.tick()
                if final is not None:
                    out["final"] = await final(ctx)
        return tb

    sinks = {path for phase in phases for path, w in phase.items() if isinstance(w, int)}
    monitors = [check_stream_protocol(stream_by_path(dut, p), p)
                for p in sorted(sinks | set(check))]
    if max_cycles is None:
        work = sum(len(w) if isinstance(w, list) else w for ph in phases for w in ph.values())
        worst = max([stall, *stalls.values()]) if stalls else stall
        max_cycles = int(10 * (work + 20 * len(phases)) / (1 - worst)) + 500
    out["cycles"] = run_simulation(dut, [make(i, p) for i, p in enumerate(paths)],
                                   max_cycles=max_cycles,
                                   processes=[clock, *monitors, *processes])
    return out
