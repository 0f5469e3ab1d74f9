"""The RTL backends: the tile (``systolica.testbench.tile.TileSystem``: ``Tile`` + ``AxiRam``
DRAM) with its program and data in DRAM.

* ``amaranth``: a host bench over the tile's AXI4-Lite port programs the queues, starts the tile
  and, until ``STATUS.done``, samples every queue's ``<Q>_STATE`` and ``<Q>_RETIRED`` with the
  ``CYCLES`` register (one sample every ~40 cycles: the busy/wait timeline of the profile, and the
  progress bar), then reads ``<Q>_BUSY_CYCLES`` (exact per-engine busy cycles) and the DRAM.
* ``verilator``: ``run_tile(..., backend="verilator")`` (counters only, no timeline; the progress
  bar every ``PROGRESS_CYCLES``).

Imported lazily by :mod:`.device` (the model backend needs no gateware).
"""

import numpy as np

from systolica.codes import EngineState, IsaError

from .device import DeviceError, Execution, _verilator_run_tile
from .profile import Profile, Segment

__all__ = ["run_rtl"]


def _dram_bytes(compiled):
    size = 1 << max(12, (compiled.dram_bytes - 1).bit_length())
    return size


def _check_states(queues, where):
    bad = {name: q for name, q in queues.items() if q["state"] != EngineState.DONE}
    if bad:
        parts = []
        for name, q in bad.items():
            state = EngineState(q["state"]).name
            error = IsaError(q["error"]).name if q["error"] else ""
            parts.append(f"{name} {state} at pc {q['pc']} {error}".strip())
        raise DeviceError(f"the program did not finish on {where}: " + "; ".join(parts))


def run_rtl(device, compiled, data, timeline):
    config = device.config
    max_cycles = device.max_cycles or max(20_000, 4 * timeline.cycles + 10_000)
    if device.backend == "verilator":
        run_tile = _verilator_run_tile()
        bar = _progress_bar(compiled) if device.progress else None
        progress = None if bar is None else (lambda cycles: bar.update(max(0, cycles - bar.n)))
        try:
            run = run_tile(config, compiled.program, data=data, dram_bytes=_dram_bytes(compiled),
                           max_cycles=max_cycles, seed=device.seed, backend="verilator",
                           progress=progress)
        finally:
            if bar is not None:
                bar.close()
        _check_states(run.queues, "the tile (Verilator)")
        busy = {name: q["busy_cycles"] for name, q in run.queues.items()}
        return Execution("verilator", compiled.unpack(run.dram), compiled, run.tile_cycles,
                         timeline.cycles, None, busy, measured=True)
    result = _run_amaranth(config, compiled, data, max_cycles, device)
    _check_states(result["queues"], "the tile (Amaranth simulator)")
    busy = {name: q["busy_cycles"] for name, q in result["queues"].items()}
    profile = Profile(result["tile_cycles"], result["segments"],
                      "RTL, Amaranth simulator (registers sampled every ~40 cycles)")
    return Execution("amaranth", compiled.unpack(result["dram"]), compiled,
                     result["tile_cycles"], timeline.cycles, profile, busy,
                     measured=True, extra={"sim_cycles": result["sim_cycles"],
                                           "samples": len(result["samples"])})


def _segments(samples, names, end):
    """Per queue, merged (start, end, state) segments between samples."""
    tracks = {name: [] for name in names}
    for (t0, states0), (t1, _) in zip(samples, samples[1:] + [(end, None)]):
        for name in names:
            state, retired = states0[name]
            kind = {EngineState.RUNNING: "busy", EngineState.WAITING: "wait"}.get(state)
            if kind is None or t1 <= t0:
                continue
            track = tracks[name]
            if track and track[-1].kind == kind and track[-1].end == t0:
                track[-1] = Segment(track[-1].start, t1, kind, track[-1].label)
            else:
                track.append(Segment(t0, t1, kind, f"{kind} (retired {retired})"))
    return tracks


def _run_amaranth(config, compiled, data, max_cycles, device):
    from systolica.isa import tile_queues
    from systolica.testbench.axilite import RegisterHost
    from systolica.testbench.sim import run_simulation
    from systolica.testbench.tile import PROGRAM_BASE, TileSystem, dram_image

    wb = config.sbuf.word_bytes
    size = _dram_bytes(compiled)
    mem = dram_image(compiled.program, data, size)
    words = [int.from_bytes(mem[i:i + wb].tobytes(), "little") for i in range(0, size, wb)]
    system = TileSystem(config, dram_words=size // wb, init=words)
    host = RegisterHost(system.host, system.tile.register_map,
                        rng=np.random.default_rng(device.seed), stall=0.0)
    offsets = compiled.program.queue_offsets()
    names = [q.name for q in tile_queues(config)]
    out = {"samples": []}
    bar = _progress_bar(compiled) if device.progress else None

    async def bench(ctx):
        for name in names:
            off, n = offsets.get(name, (0, 0))
            await host.write(ctx, f"{name.upper()}_BASE", addr=PROGRAM_BASE + off)
            await host.write(ctx, f"{name.upper()}_LENGTH", instructions=n)
        await host.write(ctx, "CONTROL", start=1)
        while True:
            status = await host.fields(ctx, "STATUS")
            now = await host.read(ctx, "CYCLES")
            if device.trace:
                states = {}
                for name in names:
                    p = name.upper()
                    st = await host.fields(ctx, f"{p}_STATE")
                    states[name] = (EngineState(st["state"]), await host.read(ctx, f"{p}_RETIRED"))
                out["samples"].append((now, states))
            if bar is not None:
                bar.update(max(0, now - bar.n))
            if status["done"]:
                break
            if status["halted"]:    # the others may wait forever on it: release them
                await host.write(ctx, "CONTROL", abort=1)
                while (await host.fields(ctx, "STATUS"))["running"]:
                    pass
                break
            for _ in range(8):
                await ctx.tick()
        out["tile_cycles"] = await host.read(ctx, "CYCLES")
        queues = {}
        for name in names:
            p = name.upper()
            info = dict(await host.fields(ctx, f"{p}_STATE"))
            info["pc"] = await host.read(ctx, f"{p}_PC")
            info["busy_cycles"] = await host.read(ctx, f"{p}_BUSY_CYCLES")
            info["error"] = (await host.fields(ctx, f"{p}_ERROR"))["code"]
            queues[name] = info
        out["queues"] = queues
        out["dram"] = np.concatenate([
            np.frombuffer(ctx.get(system.ram.mem.data[i]).to_bytes(wb, "little"), np.uint8)
            for i in range(system.ram.depth)])

    try:
        out["sim_cycles"] = run_simulation(system, [bench], max_cycles=max_cycles)
    finally:
        if bar is not None:
            bar.close()
    out["segments"] = _segments(out["samples"], names, out["tile_cycles"])
    return out


def _progress_bar(compiled):
    """A tqdm bar over the predicted cycles of ``compiled``."""
    from tqdm import tqdm
    return tqdm(total=timeline_total(compiled), unit="cycle", desc="simulating the tile",
                leave=False)


def timeline_total(compiled):
    return compiled.predict().cycles
