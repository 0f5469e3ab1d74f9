"""The runtime on a chip: ``Device(ChipConfig(...), backend=...)`` compiles a GEMM over the mesh
(:func:`systolica.compiler.mesh.compile_mesh_gemm`) and runs one program per tile.

* ``model``: :class:`systolica.model.chip.ChipModel` with its checks across tiles (a race, a
  deadlock, a halt or a dropped remote signal raises :class:`~.device.DeviceError`); cycles are
  the chip performance model's (:func:`systolica.compiler.chip_perf.predict_chip`).
* ``amaranth`` / ``verilator``: the chip RTL through :func:`run_chip_rtl`, **the one hook** to
  the chip test bench (``systolica.testbench.chip.run_chip``, from the chip-top work).
"""

from dataclasses import dataclass, field

import numpy as np

from systolica.codes import EngineState, IsaError

from .device import BackendUnavailable, DeviceError, Execution

__all__ = ["ChipExecution", "run_chip_rtl", "chip_rtl_available", "execute_on_chip"]


@dataclass
class ChipExecution(Execution):
    """One run on a chip: :class:`~.device.Execution` plus ``mesh`` ``(X, Y)``, ``tiles``,
    ``tile_cycles[(x, y)]``, NoC ``noc_flits`` / ``lost_flits`` (None when an RTL run does
    not report them; ``noc_flits`` then is the programs' count), and DRAM traffic
    (``dram_bytes``: data + program images; ``min_dram_bytes``)."""
    mesh: tuple = (1, 1)
    tile_cycles: dict = field(default_factory=dict)
    noc_flits: int = 0
    lost_flits: int = 0

    @property
    def tiles(self):
        return self.mesh[0] * self.mesh[1]

    @property
    def dram_bytes(self):
        return self.compiled.dram_traffic

    @property
    def min_dram_bytes(self):
        return self.compiled.min_dram_bytes

    @property
    def utilization(self):
        """Useful MACs / (tiles x R x C x cycles)."""
        a = self.compiled.config.tile.array
        return (self.useful_macs / (self.tiles * a.rows * a.cols * self.cycles)
                if self.cycles else 0.0)


def chip_rtl_available():
    """``run_chip`` of the chip test bench, or :class:`~.device.BackendUnavailable`."""
    try:
        from systolica.testbench.chip import run_chip
    except ImportError as e:
        raise BackendUnavailable(
            f"the chip RTL backends need systolica.testbench.chip.run_chip (the chip top's test "
            f"bench), which this installation does not have ({e}); use backend='model'") from None
    return run_chip


def run_chip_rtl(config, compiled, dram, *, backend, seed=0, max_cycles):
    """**The hook between the runtime and the chip RTL.** Runs ``compiled.programs`` on the chip
    RTL with ``dram`` (a uint8 array: the data at their addresses, the region below
    ``compiled.data_base`` free for the program images) and returns ``(dram after the run,
    chip cycles, {(x, y): tile cycles}, noc_flits or None, lost_flits or None, facts)``;
    ``facts``: ``received_flits`` (or None) and, where the test bench reports them,
    ``build_seconds`` (Verilog export and compile, or the cache lookup), ``build_cached`` and
    ``sim_seconds`` (the whole simulated run, register setup and readback included) and
    ``dram_bytes`` (the bytes the DRAM ports moved, instruction fetch included); ``busy_cycles``
    (``{"x,y/queue": the queue's BUSY_CYCLES register}``).

    Written against ``systolica.testbench.chip.run_chip(config, programs={(x, y): Program},
    dram=, dram_bytes=, program_bases=, max_cycles=, backend="amaranth" | "verilator", seed=)``
    returning a ``ChipRun`` (``dram``, ``tiles[(x, y)]``: ``TileRun`` with ``tile_cycles`` =
    the tile's CYCLES register and ``queues``). Chip cycles = the slowest tile's CYCLES. Flits:
    ``TileRun.extra["remote_flits_sent"]`` / ``["remote_flits_received"]`` (the tiles'
    REMOTE_FLITS_SENT / _RECEIVED registers) when the test bench reads them, else None. Every
    queue of every tile must end DONE (else :class:`~.device.DeviceError`)."""
    run_chip = chip_rtl_available()
    wb = config.tile.sbuf.word_bytes
    dram_bytes = max(1 << max(12, (len(dram) - 1).bit_length()), wb)
    # Every tile's master gets its own DRAM port (on Verilator always; on Amaranth the "ports"
    # model), as the chip's integrator gives each tile a memory channel.
    ports = {"dram_model": "ports"} if backend == "amaranth" else {}
    run = run_chip(config, compiled.programs, dram=dram, dram_bytes=dram_bytes,
                   program_bases=compiled.program_bases, max_cycles=max_cycles,
                   backend=backend, seed=seed, **ports)
    bad = []
    for xy, tile_run in run.tiles.items():
        for name, q in tile_run.queues.items():
            if EngineState(q["state"]) != EngineState.DONE:
                error = IsaError(q["error"]).name if q.get("error") is not None else ""
                bad.append(f"tile{xy} {name} {EngineState(q['state']).name} at pc {q['pc']} "
                           f"{error}".strip())
    if bad:
        raise DeviceError(f"the program did not finish on the chip ({backend}): " + "; ".join(bad))
    tile_cycles = {xy: int(t.tile_cycles) for xy, t in run.tiles.items()}
    sent = [t.extra.get("remote_flits_sent") for t in run.tiles.values()]
    received = [t.extra.get("remote_flits_received") for t in run.tiles.values()]
    flits = sum(sent) if None not in sent else None
    received = sum(received) if None not in received else None
    lost = flits - received if flits is not None and received is not None else None
    facts = {"received_flits": received}
    for key, name in (("build_seconds", "build_seconds"), ("build_cached", "build_cached"),
                      ("seconds", "sim_seconds")):
        if key in run.extra:
            facts[name] = run.extra[key]
    facts["busy_cycles"] = {f"{x},{y}/{name}": int(q["busy_cycles"])
                            for (x, y), t in run.tiles.items() for name, q in t.queues.items()}
    if "dram_ports" in run.extra:       # beats the DRAM ports moved (fetch included)
        facts["dram_bytes"] = sum(p["bytes"] for p in run.extra["dram_ports"].values())
    return (np.asarray(run.dram, dtype=np.uint8)[:len(dram)], max(tile_cycles.values()),
            tile_cycles, flits, lost, facts)


def execute_on_chip(device, compiled, a):
    """Run a :class:`~systolica.compiler.mesh.MeshCompiledProgram` on ``device``'s chip."""
    from systolica.model.chip import ChipModel
    from .profile import Profile
    config = device.config
    timeline = compiled.predict()
    dram = np.zeros(compiled.dram_bytes, dtype=np.uint8)
    for addr, raw in compiled.data(a).items():
        dram[addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)
    busy = {q: timeline.busy(q) for q in timeline.intervals}
    mesh = (config.noc.width, config.noc.height)
    if device.backend == "model":
        model = ChipModel(config, dram=dram)
        result = model.run(compiled.programs, seed=device.seed)
        if not result.ok:
            raise DeviceError("the programs did not run cleanly on the chip model:\n"
                              + "\n".join(result.problems()[:10]))
        return ChipExecution("model", compiled.unpack(model.dram), compiled, timeline.cycles,
                             timeline.cycles, Profile.from_timeline(timeline), busy,
                             measured=False, extra={"model_result": result,
                                                    "timeline": timeline},
                             mesh=mesh, tile_cycles=timeline.tile_cycles,
                             noc_flits=result.noc_flits, lost_flits=result.lost_flits)
    max_cycles = device.max_cycles or max(20_000, 4 * timeline.cycles + 10_000)
    out, cycles, tile_cycles, flits, lost, facts = run_chip_rtl(config, compiled, dram,
                                                         backend=device.backend,
                                                         seed=device.seed,
                                                         max_cycles=max_cycles)
    return ChipExecution(device.backend, compiled.unpack(out), compiled, cycles,
                         timeline.cycles, None, busy, measured=True,
                         extra={"timeline": timeline, "rtl": facts}, mesh=mesh,
                         tile_cycles=tile_cycles,
                         noc_flits=timeline.noc_flits if flits is None else flits,
                         lost_flits=lost)
