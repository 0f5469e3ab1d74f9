"""Instruction-level model of a chip (docs/chip.md): X x Y tiles (:class:`~.tile.TileModel`, one
program each, all built for the :class:`~systolica.config.ChipConfig`) on one shared DRAM, and
the mesh NoC as message passing with exactly the contract's semantics:

* a ``DMA_COPY`` to ``REMOTE_SBUF`` reads its source when it executes (it *completes* when its
  flits have entered the network) and sends one message of WRITE flits (one per SBUF word the
  copy writes) to the destination tile; a ``SIGNAL_REMOTE`` sends one SIGNAL flit;
* messages from tile S to tile D travel on one channel, in order; the chip delivers the head of
  any channel at any time (the scheduler's choice), so a remote write lands at the destination
  some time after its copy completed, and a SIGNAL is applied only after every earlier write of
  its channel is in the SBUF;
* a remote SIGNAL that would take a semaphore past ``SEMAPHORE_MAX`` is dropped and flagged
  (``remote_errors[tile]["semaphore_overflow"]``); bad remote operations halt the source engine
  (``BAD_DMA_SPACE``, ``BAD_REMOTE_TILE``, ``BAD_SEMAPHORE``, ``DMA_ERROR`` + ``SBUF_RANGE``)
  before anything is sent.

**Checks across tiles** (:mod:`.checks`): one set of vector clocks spans every queue of every
tile and every channel (a channel is a clock of its own: a delivery joins the sender's clock at
send time, so a remote write is ordered before a destination access only through a chain that
runs through a SIGNAL of the *same* channel, or another chain that starts after the delivery).
One shadow memory covers the shared DRAM and every tile's SBUF and PSUM, so the model reports a
remote write racing with a local access, DRAM races between tiles, and a deadlock where every
unfinished queue of every tile waits, each with the instructions (tile, queue, pc) involved.
"""

import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from systolica import isa
from systolica.codes import EngineState
from systolica.config import ChipConfig
from systolica.model.checks import Access, Deadlock, RaceDetector, VectorClocks
from systolica.model.dma import side_offsets
from systolica.model.tile import (RemoteHook, RunContext, TileCheckError, TileModel, read_bytes,
                                  write_bytes)


__all__ = ["ChipModel", "ChipRunResult", "ChipCheckError", "sbuf_word_writes"]


class ChipCheckError(TileCheckError):
    """A chip run raced, deadlocked, halted or dropped a remote signal."""


def sbuf_word_writes(side, elem_bytes, word_bytes):
    """SBUF word writes (= remote WRITE flits) of a DMA destination side: the DMA's writer cuts
    every contiguous run (dimension 0 when its stride is ``elem_bytes``, else every element)
    into the SBUF words it touches (docs/dma.md)."""
    c0, c1, c2 = side.counts
    s0, s1, s2 = side.strides
    if s0 == elem_bytes:
        length = c0 * elem_bytes
        i2, i1 = np.meshgrid(np.arange(c2), np.arange(c1), indexing="ij")
        starts = side.addr + i2.ravel() * s2 + i1.ravel() * s1
    else:
        length = elem_bytes
        i2, i1, i0 = np.meshgrid(np.arange(c2), np.arange(c1), np.arange(c0), indexing="ij")
        starts = side.addr + i2.ravel() * s2 + i1.ravel() * s1 + i0.ravel() * s0
    first = starts // word_bytes
    last = (starts + length - 1) // word_bytes
    return int((last - first + 1).sum())


@dataclass
class _Message:
    kind: str                 # "write" or "signal"
    sender: Access            # the instruction that sent it
    clock: np.ndarray         # the sender's vector clock when it sent
    flits: int
    offsets: np.ndarray = None
    values: np.ndarray = None
    sem: int = 0
    count: int = 0


@dataclass
class _Channel:
    src: tuple
    dst: tuple
    index: int                                  # its clock in the chip's vector clocks
    queue: deque = field(default_factory=deque)
    sent_flits: int = 0
    delivered_flits: int = 0
    senders: list = field(default_factory=list)  # epoch - 1 -> Access of the delivery's sender
    writes: int = 0                             # WRITE flits delivered
    signals: int = 0                            # SIGNAL flits delivered


@dataclass
class ChipRunResult:
    """A chip run: ``tiles[(x, y)]`` (each tile's :class:`~.tile.RunResult`: queues, semaphores,
    retire log), the ``races`` and the ``deadlock`` across the chip, ``remote_errors[(x, y)]``
    (``{"semaphore_overflow": bool}``, as the tile's ``REMOTE_ERRORS``), and the NoC accounting:
    ``noc_flits`` sent (WRITE flits + SIGNAL flits), ``delivered_flits``, ``dropped_signals``,
    per channel ``channel_flits[(src, dst)]``."""
    tiles: dict
    races: list
    deadlock: Deadlock
    remote_errors: dict
    noc_flits: int
    delivered_flits: int
    dropped_signals: int
    channel_flits: dict
    write_flits: int = 0
    signal_flits: int = 0

    @property
    def lost_flits(self):
        """Flits sent but never delivered (the model delivers every flit it accepts: 0 unless
        the run was cut short)."""
        return self.noc_flits - self.delivered_flits

    @property
    def halted(self):
        return {(t, n): q for t, r in self.tiles.items() for n, q in r.halted.items()}

    @property
    def ok(self):
        return (not self.races and self.deadlock is None and not self.dropped_signals
                and all(q.state == EngineState.DONE for r in self.tiles.values()
                        for q in r.queues.values()))

    def problems(self):
        out = [str(r) for r in self.races]
        if self.deadlock is not None:
            out.append(str(self.deadlock))
        for (tile, name), q in self.halted.items():
            detail = f" ({q.detail.name})" if q.detail is not None else ""
            out.append(f"tile({tile[0]},{tile[1]}) {name} halted at pc {q.pc}: "
                       f"{q.error.name}{detail}")
        for tile, errors in self.remote_errors.items():
            if errors["semaphore_overflow"]:
                out.append(f"tile({tile[0]},{tile[1]}) dropped a remote signal (semaphore "
                           f"overflow: REMOTE_ERRORS.semaphore_overflow)")
        return out

    def check(self):
        """Raise :class:`ChipCheckError` listing every race, the deadlock, every halt and every
        dropped remote signal."""
        if not self.ok:
            raise ChipCheckError("\n".join(self.problems()))
        return self


class _TileHook(RemoteHook):
    def __init__(self, chip, tile):
        self.chip, self.tile = chip, tile
        self.fingerprint = chip.fingerprint
        self.mesh = (chip.config.noc.width, chip.config.noc.height)

    def _send(self, tile_model, dst, message):
        channel = self.chip._channels[(self.tile, dst)]
        channel.queue.append(message)
        channel.sent_flits += message.flits

    def _sender(self, tile_model, via):
        q = next(q for q in tile_model._queues
                 if tile_model._ctx.queue_base + q.spec.index == tile_model._qi)
        return tile_model._access_of(q, q.pc, via)

    def write(self, tile_model, dst_tile, dst_side, elem_bytes, values):
        flits = sbuf_word_writes(dst_side, elem_bytes, self.chip.config.tile.sbuf.word_bytes)
        offsets = side_offsets(dst_side, elem_bytes)
        clock = tile_model._clocks.clock[tile_model._qi].copy()
        self._send(tile_model, dst_tile, _Message(
            "write", self._sender(tile_model, f"remote write to tile{dst_tile}"), clock, flits,
            offsets=offsets, values=np.array(values, dtype=np.uint8)))

    def signal(self, tile_model, dst_tile, sem, count):
        clock = tile_model._clocks.clock[tile_model._qi].copy()
        self._send(tile_model, dst_tile, _Message(
            "signal", self._sender(tile_model, f"remote signal to tile{dst_tile}"), clock, 1,
            sem=sem, count=count))


class ChipModel:
    """A chip (``config``) of X x Y :class:`~.tile.TileModel` tiles sharing one DRAM of
    ``dram_bytes`` (or the given ``dram`` array). ``tiles[(x, y)]`` are the tile models (their
    ``sbuf`` and ``psum`` persist across runs, as the DRAM does)."""

    def __init__(self, config: ChipConfig, *, dram_bytes=1 << 20, dram=None):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"ChipModel config must be a ChipConfig; got {config!r}")
        config.validate()
        self.config = config
        self.fingerprint = isa.fingerprint(config)
        self.dram = (np.zeros(dram_bytes, dtype=np.uint8) if dram is None
                     else np.asarray(dram, dtype=np.uint8))
        if self.dram.ndim != 1:
            raise ValueError("ChipModel dram must be a 1-D uint8 array")
        noc = config.noc
        self.coords = [(x, y) for y in range(noc.height) for x in range(noc.width)]
        self.tiles = {xy: TileModel(config.tile, dram=self.dram, remote=_TileHook(self, xy))
                      for xy in self.coords}
        self._channels = {}

    def write_dram(self, addr, array):
        return write_bytes(self.dram, addr, array)

    def read_dram(self, addr, shape, dtype):
        return read_bytes(self.dram, addr, shape, dtype)

    # --- running --------------------------------------------------------------------------------

    def _programs(self, programs):
        if not isinstance(programs, dict):
            raise TypeError("ChipModel.run programs must be a dict {(x, y): Program or image}")
        unknown = [xy for xy in programs if xy not in self.tiles]
        if unknown:
            noc = self.config.noc
            raise ValueError(f"ChipModel.run programs: tile(s) {unknown} are not in the "
                             f"{noc.width}x{noc.height} mesh")
        empty = isa.Program({}, self.fingerprint)
        return {xy: programs.get(xy, empty) for xy in self.coords}

    @staticmethod
    def _destinations(program):
        """The tiles a program may send to (remote operations' destination fields)."""
        if not isinstance(program, isa.Program):
            try:
                program = isa.decode(bytes(program))
            except isa.IsaEncodingError:
                return set()
        out = set()
        for insns in program.queues.values():
            for insn in insns:
                if insn.opcode == isa.Opcode.SIGNAL_REMOTE:
                    out.add((insn.tile_x, insn.tile_y))
                elif insn.opcode == isa.Opcode.DMA_COPY and \
                        insn.fields["dst_space"] == isa.Space.REMOTE_SBUF:
                    out.add((insn.dst_tile_x, insn.dst_tile_y))
        return out

    def run(self, programs, *, seed=None, check_header=True):
        """Run ``programs`` (``{(x, y): Program or image}``; absent tiles run nothing) until no
        queue of any tile can start and every channel is empty. ``seed``: random interleaving
        of the tiles' queues and the channels' deliveries (``None``: round robin). Returns a
        :class:`ChipRunResult`."""
        programs = self._programs(programs)
        nq = len(isa.tile_queues(self.config.tile))
        channels = {}
        for xy, program in programs.items():
            for dst in sorted(self._destinations(program)):
                if dst in self.tiles:
                    channels[(xy, dst)] = _Channel(xy, dst, len(self.coords) * nq + len(channels))
        self._channels = channels
        nclocks = len(self.coords) * nq + len(channels)
        clocks = VectorClocks(nclocks, len(self.coords) * isa.SEMAPHORES)
        spaces = {"dram": self.dram.size}
        for xy, tile in self.tiles.items():
            spaces[f"sbuf{xy}"] = tile.sbuf.size
            spaces[f"psum{xy}"] = tile.psum.size
        races = RaceDetector(spaces, nclocks, clocks, self._describe)
        self._clocks = clocks
        for i, xy in enumerate(self.coords):
            ctx = RunContext(clocks, races, i * nq, i * isa.SEMAPHORES,
                             {"sbuf": f"sbuf{xy}", "psum": f"psum{xy}"})
            self.tiles[xy].start(programs[xy], check_header=check_header, context=ctx)
        self.remote_errors = {xy: {"semaphore_overflow": False} for xy in self.coords}
        self._dropped = 0
        logs = {xy: [] for xy in self.coords}
        rng = random.Random(seed) if seed is not None else None
        turn = 0
        while True:
            ready = [(xy, q) for xy in self.coords for q in self.tiles[xy].ready_queues()]
            ready += [(None, c) for c in channels.values() if c.queue]
            if not ready:
                break
            if rng is not None:
                choice = rng.choice(ready)
            else:
                choice = ready[turn % len(ready)]
                turn += 1
            xy, what = choice
            if xy is None:
                self._deliver(what, races)
            else:
                self.tiles[xy].step(what, logs[xy])
        results = {xy: self.tiles[xy].finish(logs[xy], races=False) for xy in self.coords}
        waiting = tuple(w for xy in self.coords for w in self.tiles[xy].waiting())
        return ChipRunResult(
            results, list(races.races), Deadlock(waiting) if waiting else None,
            self.remote_errors, sum(c.sent_flits for c in channels.values()),
            sum(c.delivered_flits for c in channels.values()), self._dropped,
            {key: c.sent_flits for key, c in channels.items()},
            sum(c.writes for c in channels.values()), sum(c.signals for c in channels.values()))

    def _describe(self, qi, epoch):
        nq = len(isa.tile_queues(self.config.tile))
        if qi < len(self.coords) * nq:
            return self.tiles[self.coords[qi // nq]]._describe(qi % nq, epoch)
        channel = next(c for c in self._channels.values() if c.index == qi)
        return channel.senders[epoch - 1]

    def _deliver(self, channel, races):
        """Apply the head message of ``channel`` at its destination."""
        message = channel.queue.popleft()
        clocks = self._clocks
        ci = channel.index
        np.maximum(clocks.clock[ci], message.clock, out=clocks.clock[ci])
        epoch = clocks.tick(ci)
        channel.senders.append(message.sender)
        channel.delivered_flits += message.flits
        tile = self.tiles[channel.dst]
        if message.kind == "write":
            channel.writes += message.flits
            races.access(ci, epoch, f"sbuf{channel.dst}", message.offsets, True)
            # Later writes win: the last occurrence of every destination byte.
            rev = message.offsets[::-1]
            unique, first = np.unique(rev, return_index=True)
            tile.sbuf[unique] = message.values[len(rev) - 1 - first]
            return
        channel.signals += 1
        sem, count = message.sem, message.count
        if tile.semaphores[sem] + count > isa.SEMAPHORE_MAX:
            self.remote_errors[channel.dst]["semaphore_overflow"] = True
            self._dropped += 1
            return
        if count:
            tile.semaphores[sem] += count
            clocks.signal(ci, self.coords.index(channel.dst) * isa.SEMAPHORES + sem, count)
