"""What a run of the tile model (:mod:`.tile`) gives and takes: its results
(:class:`RunResult`, :class:`QueueResult`), its errors, the happens-before context a run records
into (:class:`RunContext`) and the hook a chip gives its tiles (:class:`RemoteHook`)."""

from dataclasses import dataclass, field

from systolica.codes import DmaError, EngineState, IsaError
from systolica.isa import Engine
from systolica.model.checks import Deadlock, RaceDetector, VectorClocks


__all__ = ["ProgramMismatch", "TileCheckError", "QueueResult", "RunResult", "RunContext",
           "RemoteHook"]


class ProgramMismatch(ValueError):
    """The program was built for another config (fingerprint) or names queues this tile lacks."""


class TileCheckError(AssertionError):
    """A run raced, deadlocked or halted (:meth:`RunResult.check`)."""


@dataclass
class QueueResult:
    """The end of one queue: ``state`` (DONE, HALTED or WAITING), ``pc`` (the halted or waiting
    instruction; for DONE the END's pc), ``error`` and ``detail`` (the DmaError of a DMA_ERROR),
    and the pcs it retired, in order."""
    name: str
    engine: Engine
    state: EngineState = EngineState.IDLE
    pc: int = 0
    error: IsaError = IsaError.OK
    detail: DmaError = None
    retired: list = field(default_factory=list)


@dataclass
class RunResult:
    queues: dict
    semaphores: list
    races: list
    deadlock: Deadlock
    retire_log: list            # (queue, pc) in the order the model retired them

    @property
    def halted(self):
        return {n: q for n, q in self.queues.items() if q.state == EngineState.HALTED}

    @property
    def ok(self):
        return (not self.races and self.deadlock is None
                and all(q.state == EngineState.DONE for q in self.queues.values()))

    def problems(self):
        out = [str(r) for r in self.races]
        if self.deadlock is not None:
            out.append(str(self.deadlock))
        for name, q in self.halted.items():
            detail = f" ({q.detail.name})" if q.detail is not None else ""
            out.append(f"{name} halted at pc {q.pc}: {q.error.name}{detail}")
        return out

    def check(self):
        """Raise :class:`TileCheckError` listing every race, the deadlock and every halt."""
        if not self.ok:
            raise TileCheckError("\n".join(self.problems()))
        return self


@dataclass
class RunContext:
    """The happens-before state a run records into: vector ``clocks``, the ``races`` detector,
    this tile's first queue index and semaphore index in them, and the detector's name of each
    local memory (a chip shares one context among its tiles: ``dram`` is common, every tile's
    SBUF and PSUM are their own spaces)."""
    clocks: VectorClocks
    races: RaceDetector
    queue_base: int = 0
    sem_base: int = 0
    spaces: dict = field(default_factory=dict)


class RemoteHook:
    """What a chip gives each of its tiles (:class:`systolica.model.chip.ChipModel`): the
    ``tile`` ``(x, y)``, the chip's ``fingerprint`` and ``mesh`` ``(width, height)``, and the
    two remote operations, called when a checked instruction executes: ``write(tile_model,
    dst_tile, dst_side, elem_bytes, values)`` (a REMOTE_SBUF copy: ``values`` are the source
    bytes in transfer order, ``dst_side`` a :class:`~systolica.model.dma.DmaSide` in the
    destination's SBUF) and ``signal(tile_model, dst_tile, sem, count)`` (SIGNAL_REMOTE)."""
    tile = None
    fingerprint = None
    mesh = (1, 1)

    def write(self, tile_model, dst_tile, dst_side, elem_bytes, values):
        raise NotImplementedError

    def signal(self, tile_model, dst_tile, sem, count):
        raise NotImplementedError
