"""The chip's performance model: every tile timed as by :func:`.perf.predict` (its queues,
DMA engine, tensor engine, ACT and instruction fetch), the tiles joined by the NoC:

* a remote copy occupies its tile's DMA engine as any copy (descriptor setup, runs, one
  8-byte word per cycle: the NoC takes one SBUF word per flit, about one flit per cycle per
  link); its last flit reaches the destination ``4 + (2 + link_stages) * hops`` cycles after it
  left (docs/noc.md, zero load, XY hops), or later when the destination's network interface is
  still taking another stream (one flit per cycle into its SBUF);
* a SIGNAL flit arrives after every earlier flit of its (source, destination) pair and then
  adds to the destination's semaphore.

Link contention between streams that share a link is not modelled (the mesh GEMM puts at most
one A stream and one B stream on a link).
"""

from dataclasses import dataclass, field

from systolica import isa
from systolica.config import ChipConfig
from systolica.isa import Opcode, Space

from .perf import DEFAULT_COSTS, Costs, PredictionError, Timeline, _TileTimer

__all__ = ["ChipTimeline", "predict_chip", "remote_flits"]


def remote_flits(insn, config: ChipConfig):
    """NoC flits of one instruction: a remote copy's SBUF word writes, 1 for SIGNAL_REMOTE."""
    from systolica.model.chip import sbuf_word_writes
    from systolica.model.dma import DmaSide
    if insn.opcode == Opcode.SIGNAL_REMOTE:
        return 1
    if insn.opcode == Opcode.DMA_COPY and insn.fields["dst_space"] == Space.REMOTE_SBUF:
        d = insn.side("dst")
        return sbuf_word_writes(DmaSide("sbuf", d.addr, tuple(d.counts), tuple(d.strides)),
                                insn.elem_bytes, config.tile.sbuf.word_bytes)
    return 0


@dataclass
class Transfer:
    """One remote copy: source and destination tile, flits, when its DMA started and finished
    sending, and when its last flit was in the destination's SBUF."""
    src: tuple
    dst: tuple
    flits: int
    start: int
    sent: int
    arrived: int

    @property
    def latency(self):
        """Cycles from the end of sending to the last flit's arrival (hops and contention)."""
        return self.arrived - self.sent


@dataclass
class ChipTimeline:
    """What :func:`predict_chip` found: ``cycles`` (the last tile's end), ``tiles[(x, y)]``
    (each tile's :class:`~.perf.Timeline`), ``transfers`` (every remote copy) and the flits."""
    cycles: int
    tiles: dict
    transfers: list = field(default_factory=list)
    noc_flits: int = 0
    signal_flits: int = 0
    source: str = "chip perf model"

    @property
    def tile_cycles(self):
        return {xy: t.cycles for xy, t in self.tiles.items()}

    @property
    def intervals(self):
        """Every tile's intervals, queues named ``x,y/queue`` (for profiles)."""
        return {f"{x},{y}/{q}": ivs for (x, y), t in self.tiles.items()
                for q, ivs in t.intervals.items()}

    def busy(self, queue):
        xy, _, q = queue.partition("/")
        x, y = (int(v) for v in xy.split(","))
        return self.tiles[(x, y)].busy(q)

    def forwarding(self):
        """``{"transfers", "mean_latency", "max_latency", "mean_transfer_cycles"}``."""
        if not self.transfers:
            return {"transfers": 0, "mean_latency": 0, "max_latency": 0,
                    "mean_transfer_cycles": 0}
        n = len(self.transfers)
        return {"transfers": n,
                "mean_latency": round(sum(t.latency for t in self.transfers) / n, 1),
                "max_latency": max(t.latency for t in self.transfers),
                "mean_transfer_cycles": round(sum(t.arrived - t.start for t in self.transfers)
                                              / n, 1)}

    def to_dict(self):
        return {"cycles": self.cycles,
                "tile_cycles": {f"{x},{y}": c for (x, y), c in self.tile_cycles.items()},
                "noc_flits": self.noc_flits, "signal_flits": self.signal_flits,
                "forwarding": self.forwarding()}


def predict_chip(programs, config: ChipConfig, costs: Costs = DEFAULT_COSTS):
    """The :class:`ChipTimeline` of ``programs`` (``{(x, y): Program}``) on ``config``."""
    if not isinstance(config, ChipConfig):
        raise TypeError(f"predict_chip config must be a ChipConfig; got {config!r}")
    for xy, program in programs.items():
        if not isinstance(program, isa.Program):
            raise TypeError(f"predict_chip programs[{xy}] must be an isa.Program")
    # as predict: each tile's fetch and DMA share its AXI read channel, so the chip is timed
    # costs.passes times, every tile's timer seeing its own earlier passes' logs
    history = {xy: [] for xy in programs}
    for _ in range(max(1, costs.passes)):
        timers, transfers, flits, signals = _chip_pass(programs, config, costs, history)
        for xy, timer in timers.items():
            history[xy].append(timer.logs())
    tiles = {xy: Timeline(timer.end_time, timer.intervals) for xy, timer in timers.items()}
    return ChipTimeline(max((t.cycles for t in tiles.values()), default=0), tiles, transfers,
                        flits, signals)


def _chip_pass(programs, config, costs, history):
    """One pass of :func:`predict_chip`: ``(timers, transfers, flits, signals)``."""
    noc = config.noc
    timers = {xy: _TileTimer(program, config.tile, costs, xy,
                             previous=history[xy][-costs.memory:])
              for xy, program in programs.items()}
    per_hop = 2 + noc.link_stages
    eject_free = {xy: 0 for xy in timers}
    channel_last = {}
    transfers = []
    flits = signals = 0
    while True:
        best = None
        for xy, timer in timers.items():
            b = timer.best()
            if b is not None and (best is None or b[0] < best[0]):
                best = (b[0], xy, b[1])
        if best is None:
            break
        t, xy, q = best
        insn, start, done = timers[xy].execute(t, q)
        n = remote_flits(insn, config)
        if not n:
            continue
        flits += n
        if insn.opcode == Opcode.SIGNAL_REMOTE:
            dst = (insn.tile_x, insn.tile_y)
        else:
            dst = (insn.dst_tile_x, insn.dst_tile_y)
        if dst not in timers:
            continue
        hops = abs(dst[0] - xy[0]) + abs(dst[1] - xy[1])
        arrive = done + 4 + per_hop * hops
        arrive = max(arrive, channel_last.get((xy, dst), 0) + 1)
        if insn.opcode == Opcode.SIGNAL_REMOTE:
            signals += 1
            channel_last[(xy, dst)] = arrive
            if insn.count:
                timers[dst].signal(insn.sem, insn.count, arrive)
            continue
        arrive = max(arrive, eject_free[dst] + n)
        eject_free[dst] = arrive
        channel_last[(xy, dst)] = arrive
        transfers.append(Transfer(xy, dst, n, start, done, arrive))
    stuck = {xy: timer.stuck() for xy, timer in timers.items() if timer.stuck()}
    if stuck:
        raise PredictionError("programs deadlock in the chip performance model: " + ", ".join(
            f"tile {xy} {q} at pc {timers[xy].pc[q]}" for xy, qs in stuck.items() for q in qs))
    return timers, transfers, flits, signals
