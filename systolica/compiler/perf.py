"""The analytical performance model (as SCALE-Sim's, but over the ISA program): cycle costs of
every instruction on a config (:class:`Costs`), a closed-form estimate of a plan
(:func:`estimate_plan`, used to choose block sizes) and :func:`predict`, which times a
:class:`~systolica.isa.Program` instruction by instruction: each queue in order, every wait
resolved against the times of the signals it consumes, the shared DMA engine one descriptor at a
time (docs/dma.md), the tensor engine streaming back-to-back multiplies behind its shadow-weight
loads, the ACT unit one command at a time and instruction fetch of 64-byte words over the AXI
bus. The result is a :class:`Timeline`: predicted cycles and, per queue, the busy intervals (the
same shape of data the runtime's profiler draws from an RTL run).

The constants come from the tile RTL's documentation (docs/tile.md, docs/dma.md) and were fitted
to the Amaranth simulation of small compiled GEMMs (benchmarks/gemm.py reports the error).
"""

from dataclasses import dataclass, field

import numpy as np

from systolica import isa
from systolica.config import TileConfig, dtype_numpy
from systolica.isa import Opcode

__all__ = ["Costs", "Interval", "Timeline", "predict", "estimate_plan", "PredictionError"]


class PredictionError(RuntimeError):
    """The program cannot be timed: it deadlocks (no queue can start and some have not ended)."""


@dataclass(frozen=True)
class Costs:
    """Cycle costs (see the module docstring)."""
    issue: int = 3              # cycles an instruction spends in its queue's slot (check/wait/issue)
    dma_setup: int = 20         # per descriptor: pick, check pipeline, decision, finish
    dma_run: int = 6            # per contiguous run read from DRAM (one AXI burst)
    dma_write_run: int = 2      # per contiguous run written to DRAM (AW, W beats, B response)
    pe_gap: int = 3             # cycles between back-to-back multiplies (command to first row)
    dram_latency: int = 4       # AXI read latency until the first beat
    act_setup: int = 6          # ACT: command to first row, and the 3 idle cycles of completion
    psum_settle: int = 3        # PSUM read-modify-write after the last result
    fetch_latency: int = 4      # instruction fetch: AR to first beat

    @staticmethod
    def bus_bytes(config):
        return config.dma.data_width // 8

    @staticmethod
    def pe_latency(config):
        a = config.array
        if a.is_float:      # pipelined fp32 adders (2 per row), product normalisation stage
            return 2 * a.rows + a.cols + a.multiplier_stages + (a.multiplier_stages > 0) + 3
        return a.rows + a.cols + a.multiplier_stages + 3


DEFAULT_COSTS = Costs()


@dataclass(frozen=True)
class Interval:
    """One instruction of one queue: busy from ``start`` to ``end`` (its waits end at ``start``;
    ``wait_from`` is when it was ready to issue)."""
    queue: str
    pc: int
    opcode: str
    wait_from: int
    start: int
    end: int


@dataclass
class Timeline:
    """What :func:`predict` (or an RTL run) found: ``cycles`` in all and every queue's
    intervals."""
    cycles: int
    intervals: dict = field(default_factory=dict)   # queue -> [Interval]
    source: str = "perf model"

    def busy(self, queue):
        """Cycles the queue's engine was busy (union of its intervals)."""
        total, last = 0, 0
        for iv in sorted(self.intervals.get(queue, ()), key=lambda iv: iv.start):
            lo = max(iv.start, last)
            if iv.end > lo:
                total += iv.end - lo
                last = iv.end
        return total

    def waiting(self, queue):
        return sum(max(0, iv.start - iv.wait_from) for iv in self.intervals.get(queue, ()))

    def utilization(self):
        """``{queue: busy / cycles}``."""
        return {q: (self.busy(q) / self.cycles if self.cycles else 0.0) for q in self.intervals}


def _dma_cycles(config, costs, insn):
    """(busy cycles, bytes moved) of a DMA_COPY."""
    eb = insn.elem_bytes
    bw = costs.bus_bytes(config)
    src, dst = insn.side("src"), insn.side("dst")
    elements = int(np.prod(src.counts))
    nbytes = elements * eb
    runs = 0
    contiguous = True
    for side in (src, dst):
        if side.strides[0] == eb:
            runs = max(runs, side.counts[1] * side.counts[2])
        else:
            contiguous = False
    run_cost = costs.dma_write_run if dst.space == isa.Space.DRAM else costs.dma_run
    if contiguous:
        per_run = _ceil(src.counts[0] * eb, bw)
        transfer = runs * (per_run + run_cost)
    else:
        transfer = elements + runs * run_cost
    latency = costs.dram_latency if src.space == isa.Space.DRAM else 0
    return costs.dma_setup + latency + transfer, nbytes


def _ceil(a, b):
    return -(-a // b)


class _TileTimer:
    """The timing state of one tile's program (see :func:`predict`): every queue in order, the
    shared resources (one DMA engine, the tensor engine and its weight loads, the ACT unit,
    instruction fetch) and the semaphores' signal times."""

    def __init__(self, program, config, costs, name=None):
        self.config, self.costs, self.name = config, costs, name
        self.names = list(program.queues)
        self.queues = {q: list(program.queues[q]) for q in self.names}
        self.pc = {q: 0 for q in self.names}
        self.slot_free = {q: 0 for q in self.names}     # when the queue may issue again
        self.last_signal = {q: 0 for q in self.names}
        self.issue_times = {q: [] for q in self.names}
        self.units = [[] for _ in range(isa.SEMAPHORES)]   # signal times, in signal order
        self.taken = [0] * isa.SEMAPHORES
        self.res = {"dma": 0, "pe": 0, "load": 0, "act": 0, "fetch": 0}
        self.shadow_ready = None
        self.fetch_beats = _ceil(isa.WORD_BYTES, costs.bus_bytes(config))
        self.fetched = {q: [] for q in self.names}
        self.intervals = {q: [] for q in self.names}
        self.end_time = 0

    def _fetch_time(self, q, i):
        fetched, issued = self.fetched[q], self.issue_times[q]
        while len(fetched) <= i:
            j = len(fetched)
            room = issued[j - 4] if j >= 4 and len(issued) > j - 4 else 0
            start = max(self.res["fetch"], room)
            self.res["fetch"] = start + self.fetch_beats
            fetched.append(start + self.fetch_beats + self.costs.fetch_latency)
        return fetched[i]

    def _ready_time(self, q):
        insn = self.queues[q][self.pc[q]]
        t = self.slot_free[q]
        for s, n in insn.waits:
            if n:
                if self.taken[s] + n > len(self.units[s]):
                    return None
                t = max(t, self.units[s][self.taken[s] + n - 1])
        return max(t, self._fetch_time(q, self.pc[q]))

    def best(self):
        """``(time, queue)`` of the next instruction that can issue earliest, or None."""
        best = None
        for q in self.names:
            if self.pc[q] >= len(self.queues[q]):
                continue
            t = self._ready_time(q)
            if t is not None and (best is None or t < best[0]):
                best = (t, q)
        return best

    def signal(self, sem, count, time):
        self.units[sem].extend([time] * count)

    def execute(self, t, q):
        """Issue queue ``q``'s next instruction at ``t``; returns ``(instruction, start,
        done)``."""
        costs, config, res = self.costs, self.config, self.res
        insn = self.queues[q][self.pc[q]]
        for s, n in insn.waits:
            if n:
                self.taken[s] += n
        op = insn.opcode
        start = t
        if op == Opcode.DMA_COPY:
            start = max(t, res["dma"])
            dur, _ = _dma_cycles(config, costs, insn)
            done = start + dur
            res["dma"] = done
            nxt = done                      # one DMA_COPY in flight per queue
        elif op == Opcode.LOAD_STATIONARY:
            start = max(t, res["load"])
            done = start + insn.k
            res["load"] = done
            self.shadow_ready = done
            nxt = t + costs.issue
        elif op == Opcode.MULTIPLY_MOVING:
            start = max(t, res["pe"], self.shadow_ready or 0)
            self.shadow_ready = None
            busy = insn.m * insn.repeat + costs.pe_gap
            res["pe"] = start + busy
            done = start + busy + costs.pe_latency(config) + costs.psum_settle
            nxt = t + costs.issue
        elif op == Opcode.ACT:
            start = max(t, res["act"])
            done = start + costs.act_setup + insn.rows * insn.repeat
            res["act"] = done
            nxt = done                      # one ACT command at a time
        else:
            done = t + 1
            nxt = t + 1
        self.issue_times[q].append(t)
        self.slot_free[q] = max(nxt, t + 1)
        sig = max(done, self.last_signal[q])
        self.last_signal[q] = sig
        for s, n in insn.signals:
            if n:
                self.signal(s, n, sig)
        if op not in (Opcode.CHECK, Opcode.END, Opcode.NOP, Opcode.ACT_PARAM):
            busy_end = res["pe"] if op == Opcode.MULTIPLY_MOVING else done
            self.intervals[q].append(Interval(q, self.pc[q], op.name, t, start, busy_end))
        self.end_time = max(self.end_time, sig)
        self.pc[q] += 1
        return insn, start, done

    def stuck(self):
        return [q for q in self.names if self.pc[q] < len(self.queues[q])]


def predict(program: isa.Program, config: TileConfig, costs: Costs = DEFAULT_COSTS):
    """The :class:`Timeline` of ``program`` on ``config`` (see the module docstring)."""
    if not isinstance(config, TileConfig):
        raise TypeError(f"predict config must be a TileConfig; got {config!r}")
    if not isinstance(program, isa.Program):
        raise TypeError(f"predict program must be an isa.Program; got {program!r}")
    timer = _TileTimer(program, config, costs)
    while True:
        best = timer.best()
        if best is None:
            break
        timer.execute(*best)
    stuck = timer.stuck()
    if stuck:
        raise PredictionError("program deadlocks in the performance model: "
                              + ", ".join(f"{q} at pc {timer.pc[q]}" for q in stuck))
    return Timeline(timer.end_time, timer.intervals)


def estimate_plan(config: TileConfig, plan, costs: Costs = DEFAULT_COSTS):
    """Closed-form ``(cycles, bound, dram_bytes)`` of a :class:`~.plan.GemmPlan`: the busiest
    resource (tensor engine, DMA, ACT, instruction fetch) plus the fill before the first multiply
    and the drain after the last."""
    R, C = plan.rows, plan.cols
    a = config.array
    ea = dtype_numpy(a.moving_dtype).itemsize
    ew = dtype_numpy(a.stationary_dtype).itemsize
    from systolica.codes import ACT_MODE_BYTES
    ec = ACT_MODE_BYTES[plan.out_mode]
    bw = costs.bus_bytes(config)
    m, k, n = plan.m, plan.k, plan.n
    mb, m_blocks = plan.m_block, plan.m_blocks
    k_tiles, k_chunks, n_tiles, n_groups = plan.k_tiles, plan.k_chunks, plan.n_tiles, plan.n_groups
    tiles = m_blocks * n_tiles
    pairs = tiles * k_tiles
    pe = m * k_tiles * n_tiles + pairs * max(costs.pe_gap, 2 * costs.issue - mb)
    # DMA: descriptors, runs (one per partition per descriptor dimension 1/2) and beats
    dma = 0
    dram = 0
    if plan.a_source == "dram":
        a_loads = m_blocks * k_chunks * (n_groups if k_chunks > 1 else 1)
        a_desc = a_loads * (2 if k % R and k_chunks * plan.k_chunk > k_tiles - 1 else 1)
        a_bytes = m * k * ea * (n_groups if k_chunks > 1 else 1)
        dma += a_desc * (costs.dma_setup + costs.dram_latency) + \
            a_loads * plan.k_chunk * R * (costs.dma_run + _ceil(mb * ea, bw))
        dram += a_bytes
    w_loads = 1 if plan.w_resident else m_blocks * n_groups * k_chunks
    w_bytes = k * n * ew * (1 if plan.w_resident else m_blocks)
    w_runs = (n_tiles * C) if plan.w_resident else m_blocks * n_tiles * C * k_chunks
    w_desc = w_loads * (2 if n % C else 1)
    dma += w_desc * (costs.dma_setup + costs.dram_latency) + w_runs * costs.dma_run + \
        _ceil(w_bytes, bw)
    dram += w_bytes
    if plan.c_dest == "dram":
        dma += tiles * costs.dma_setup + m * n_tiles * 0 + \
            tiles * C * costs.dma_write_run + _ceil(m * n * ec, bw)
        dram += m * n * ec
    act = tiles * (costs.act_setup + mb + costs.issue)
    instructions = 2 * pairs + 2 * tiles + w_desc + (a_desc if plan.a_source == "dram" else 0)
    fetch = instructions * _ceil(isa.WORD_BYTES, bw)
    bounds = {"tensor engine": pe, "DMA": dma, "ACT": act, "instruction fetch": fetch}
    bound = max(bounds, key=bounds.get)
    first_a = (costs.dma_setup + plan.k_chunk * R * (costs.dma_run + _ceil(mb * ea, bw))
               if plan.a_source == "dram" else 0)
    first_w = costs.dma_setup + C * (costs.dma_run + _ceil(
        (k if plan.w_resident else min(k, plan.k_chunk * R)) * ew
        * (n_tiles if plan.w_resident else plan.n_group), bw))
    fill = first_a + first_w + 10 * costs.issue
    drain = (costs.pe_latency(config) + costs.psum_settle + costs.act_setup + mb
             + (costs.dma_setup + C * (costs.dma_run + _ceil(mb * ec, bw))
                if plan.c_dest == "dram" else 0))
    return int(bounds[bound] + fill + drain), bound, int(dram)
