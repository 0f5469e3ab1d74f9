"""What the hardware cannot see, found by the tile model (:mod:`.tile`): data races and deadlocks.

**Happens-before.** Every queue keeps a vector clock (one epoch per queue). An instruction
executes at epoch ``clock[q] += 1``. A signal ``(s, n)`` puts ``n`` units, each stamped with the
signalling queue's clock, at the back of semaphore ``s``; a wait ``(s, n)`` takes the ``n`` oldest
units and joins their clocks into its own (the *observed* unit matching of this run; running
several random schedules explores others). Signals are applied in program order (docs/isa.md),
so a unit's clock covers every earlier instruction of its queue.

**Races** (FastTrack-style shadow memory): for every byte of DRAM and SBUF and every PSUM
accumulator, the queue and epoch of its last write and, per queue, the epoch of its last read.
An access by queue q conflicts with the last write (or, for a write, with a read) of another
queue q' at epoch e when ``clock_q[q'] < e``: no chain of signals orders them.
"""

from collections import deque
from dataclasses import dataclass

import numpy as np


__all__ = ["Access", "Race", "Deadlock", "VectorClocks", "RaceDetector"]


@dataclass(frozen=True)
class Access:
    """One instruction of a run: its queue, pc and disassembly (and on a chip its ``tile``
    ``(x, y)``; ``via`` says how the access happened, e.g. a remote write's delivery)."""
    queue: str
    pc: int
    text: str
    tile: tuple = None
    via: str = ""

    def __str__(self):
        where = f"tile({self.tile[0]},{self.tile[1]}) " if self.tile is not None else ""
        via = f" ({self.via})" if self.via else ""
        return f"{where}{self.queue}[{self.pc}] {self.text}{via}"


@dataclass(frozen=True)
class Race:
    """Two instructions of different queues touch ``space`` at ``address`` (a byte of DRAM or
    the linear SBUF, or PSUM accumulator ``row * C + col``), at least one writing (``kind``:
    write-write, write-read or read-write, first access first), with no semaphore chain between
    them."""
    kind: str
    space: str
    address: int
    first: Access
    second: Access

    def __str__(self):
        return (f"{self.kind} race on {self.space} {self.address}: {self.first} "
                f"and {self.second} are not ordered by any semaphore chain")


@dataclass(frozen=True)
class Deadlock:
    """Every unfinished queue waits: ``waiting`` is each one's instruction and what it waits for
    (``[(semaphore, count, value now)]``)."""
    waiting: tuple

    def __str__(self):
        parts = [f"{access} waits for " + ", ".join(f"sem{s} >= {n} (is {v})" for s, n, v in w)
                 for access, w in self.waiting]
        return "deadlock: " + "; ".join(parts)


class VectorClocks:
    """Per-queue vector clocks and the stamped units of every semaphore."""

    def __init__(self, nqueues, nsems):
        self.clock = np.zeros((nqueues, nqueues), dtype=np.int64)
        self.units = [deque() for _ in range(nsems)]    # [count, clock] chunks, oldest first

    def tick(self, q):
        self.clock[q, q] += 1
        return int(self.clock[q, q])

    def signal(self, q, sem, count):
        self.units[sem].append([count, self.clock[q].copy()])

    def wait(self, q, sem, count):
        chunks = self.units[sem]
        while count:
            chunk = chunks[0]
            take = min(count, chunk[0])
            np.maximum(self.clock[q], chunk[1], out=self.clock[q])
            chunk[0] -= take
            count -= take
            if not chunk[0]:
                chunks.popleft()


class _Shadow:
    def __init__(self, name, size, nqueues):
        self.name = name
        self.size = size
        self.writer = np.full(size, -1, dtype=np.int16 if nqueues > 127 else np.int8)
        self.write_epoch = np.zeros(size, dtype=np.int32)
        self.read_epoch = {}      # queue -> epoch of its last read of every byte (made on first read)

    def reads_of(self, q):
        if q not in self.read_epoch:
            self.read_epoch[q] = np.zeros(self.size, dtype=np.int32)
        return self.read_epoch[q]


class RaceDetector:
    """Shadow memory over ``spaces`` (``{name: size}``) for ``nqueues`` queues. ``access`` checks
    one instruction's reads or writes and records them; races go to ``races`` (one per pair of
    instructions and kind)."""

    def __init__(self, spaces, nqueues, clocks: VectorClocks, describe):
        self.shadow = {name: _Shadow(name, size, nqueues) for name, size in spaces.items()}
        self.nqueues = nqueues
        self.clocks = clocks
        self.describe = describe          # (queue index, epoch) -> Access
        self.races = []
        self._seen = set()

    def _report(self, kind, space, idx, mask, other_q, other_epoch, q, epoch):
        """One race per (other instruction, this instruction, kind): the first byte of each."""
        epochs, first = np.unique(other_epoch[mask], return_index=True)
        positions = np.flatnonzero(mask)[first]
        for oe, i in zip(epochs, positions):
            key = (kind, space, other_q, int(oe), q, epoch)
            if key not in self._seen:
                self._seen.add(key)
                self.races.append(Race(kind, space, int(idx[i]), self.describe(other_q, int(oe)),
                                       self.describe(q, epoch)))

    def access(self, q, epoch, space, idx, write):
        if idx.size == 0:
            return
        sh = self.shadow[space]
        vc = self.clocks.clock[q]
        writer = sh.writer[idx]
        w_epoch = sh.write_epoch[idx]
        other = (writer >= 0) & (writer != q)
        if other.any():
            seen_epoch = vc[np.where(other, writer, 0)]
            mask = other & (w_epoch > seen_epoch)
            if mask.any():
                for oq in np.unique(writer[mask]):
                    sel = mask & (writer == oq)
                    self._report("write-write" if write else "write-read", space, idx, sel,
                                 int(oq), w_epoch, q, epoch)
        if write:
            for oq, reads in sh.read_epoch.items():
                if oq == q:
                    continue
                r_epoch = reads[idx]
                mask = r_epoch > vc[oq]
                if mask.any():
                    self._report("read-write", space, idx, mask, oq, r_epoch, q, epoch)
            sh.writer[idx] = q
            sh.write_epoch[idx] = epoch
            for reads in sh.read_epoch.values():
                reads[idx] = 0
        else:
            sh.reads_of(q)[idx] = epoch
