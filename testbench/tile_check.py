"""Model-vs-RTL equivalence: run one program on the instruction-level model
(:class:`systolica.model.tile.TileModel`) and on the tile RTL (:func:`run_tile`) from the same
DRAM image and compare everything both can see.

    run, result = check_against_model(config, program, data={0: bytes}, dram_bytes=1 << 13,
                                      program_base=4096)

Compared (bit-exactly): the final DRAM, SBUF and PSUM (on both backends), every queue's final state, pc, error code and DMA detail,
its retire sequence (the RTL retires in order, so ``RETIRED = n`` is the sequence ``0..n-1``),
and the final semaphores (unless the host aborted: abort clears them). The model's states map
to the registers as: DONE at END's pc = ``DONE`` with pc one past it (an empty queue: ``IDLE``),
HALTED = ``HALTED`` at the same pc, WAITING (deadlock) = ``WAITING`` at the same pc, or after
a host abort ``HALTED`` / ``ABORTED`` there.
"""

import numpy as np

from systolica.codes import DmaError, EngineState, IsaError
from systolica.model.tile import TileModel
from .tile import dram_image, run_tile


__all__ = ["check_against_model", "ModelMismatch", "expected_registers"]


class ModelMismatch(AssertionError):
    """The RTL's final state differs from the model's."""


def expected_registers(queue_result, aborted):
    """What the RTL's registers of one queue must read, from the model's :class:`QueueResult`:
    ``(state, pc, retired, error, dma)``."""
    q = queue_result
    retired = len(q.retired)
    detail = q.detail if q.detail is not None else DmaError.OK
    if q.state == EngineState.DONE:
        if not q.retired:
            return EngineState.IDLE, 0, 0, IsaError.OK, DmaError.OK
        return EngineState.DONE, q.pc + 1, retired, IsaError.OK, DmaError.OK
    if q.state == EngineState.HALTED:
        return EngineState.HALTED, q.pc, retired, q.error, detail
    if aborted:
        return EngineState.HALTED, q.pc, retired, IsaError.ABORTED, DmaError.OK
    return EngineState.WAITING, q.pc, retired, IsaError.OK, DmaError.OK


def check_against_model(config, program, *, data=None, dram_bytes=1 << 13, program_base=0,
                        image=None, schedule=None, **run_kwargs):
    """Run ``program`` on both; raise :class:`ModelMismatch` listing every difference, else
    return ``(TileRun, RunResult)``. ``run_kwargs`` go to :func:`run_tile` (stalls, backend,
    ``abort_after``, ...); ``schedule``: the model's schedule seed."""
    mem = dram_image(program, data or {}, dram_bytes, program_base, image)
    model = TileModel(config, dram=mem.copy())
    result = model.run(program.encode() if image is None else image, seed=schedule)
    run = run_tile(config, program, data=data, dram_bytes=dram_bytes,
                   program_base=program_base, image=image, **run_kwargs)
    aborted = run_kwargs.get("abort_after") is not None and \
        any(q["error"] is IsaError.ABORTED for q in run.queues.values())
    problems = []
    for name, ours, theirs in (("DRAM", run.dram, model.dram), ("SBUF", run.sbuf, model.sbuf),
                               ("PSUM", run.psum, model.psum)):
        if ours is None:
            continue
        if not np.array_equal(ours, theirs):
            where = np.argwhere(ours != theirs)
            problems.append(f"{name} differs at {len(where)} places, first {where[:4].tolist()}: "
                            f"RTL {ours[tuple(where[0])]} model {theirs[tuple(where[0])]}")
    for name, q in result.queues.items():
        if q.retired != list(range(len(q.retired))):
            problems.append(f"{name}: model retired out of order {q.retired}")
        info = run.queues[name]
        got = (info["state"], info["pc"], info["retired"], info["error"], info["dma"])
        want = expected_registers(q, aborted)
        if got != want:
            problems.append(f"{name}: RTL (state, pc, retired, error, dma) = {got}, model "
                            f"says {want}")
    if not aborted and run.semaphores != result.semaphores:
        problems.append(f"semaphores: RTL {run.semaphores} model {result.semaphores}")
    if problems:
        raise ModelMismatch("\n".join(problems))
    return run, result
