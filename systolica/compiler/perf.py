"""The analytical performance model (as SCALE-Sim's, but over the ISA program): cycle costs of
every instruction on a config (:class:`Costs`), a closed-form estimate of a plan
(:func:`estimate_plan`, used to choose block sizes) and :func:`predict`, which times a
:class:`~systolica.isa.Program` instruction by instruction: each queue in order, every wait
resolved against the times of the signals it consumes, the shared DMA engine one descriptor at a
time (docs/dma.md; a store from the SBUF paced by the ``dma.sbuf_reads`` reads it keeps in
flight), the tensor engine streaming back-to-back multiplies (no gap) behind its shadow-weight
loads, the ACT unit one command at a time, and instruction fetch: 64-byte words in bursts of as
many instructions as a queue's 4-deep FIFO has room for, one burst at a time, fetching ahead of
the waits. Fetch and the DMA share the tile's one AXI read channel (hdl/tile.py): a DMA read is
stretched by the fetch beats that land in its window, and a fetch burst that starts while the
DMA reads waits for the DMA burst being served. Those two depend on each other's timing, so the
program is timed ``Costs.passes`` times, each pass using the mean of the two previous passes'
fetch and DMA-read logs. The result is a :class:`Timeline`: predicted cycles and, per queue, the busy intervals
(the same shape of data the runtime's profiler draws from an RTL run).

The constants were fitted to cycle-level traces of the tile RTL (every instruction's retire
cycle and every AR/R handshake, Amaranth simulator) of compiled GEMMs on 4x4, 8x8 and 16x16
tiles; tests/test_perf_model.py checks the prediction against RTL runs, and benchmarks/gemm.py
reports the error of large GEMMs on Verilator.
"""

import bisect
import itertools
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
    """Cycle costs (see the module docstring), fitted to cycle-level traces of the tile RTL
    (every instruction's retire cycle and every AR/R handshake, Amaranth simulator)."""
    issue: int = 3              # cycles from entering the queue's slot to issue (check/wait/issue)
    dma_setup: int = 20         # per descriptor: pick, check pipeline, decision, finish
    dma_run: int = 1            # per contiguous run read from DRAM (its own AXI burst)
    dma_write_run: int = 3      # per contiguous run written to DRAM (AW, W beats, B response)
    sbuf_read_round_trip: int = 7   # DMA SBUF read: request to response (dma.sbuf_reads in flight)
    pe_gap: int = 0             # cycles between back-to-back multiplies (they stream)
    dram_latency: int = 4       # AXI read latency until the first beat
    act_setup: int = 6          # ACT: command to first row, and the 3 idle cycles of completion
    psum_settle: int = 3        # PSUM read-modify-write after the last result
    fetch_latency: int = 4      # instruction fetch: AR to first beat
    fetch_depth: int = 4        # instructions per queue's fetch FIFO (Tile's fetch_depth)
    dma_first_read: int = 14    # DMA: descriptor taken to its first AR (pick, check, walk)
    dram_read_queue: int = 2    # AR requests the DRAM (AxiRam) queues besides the burst it serves
    reader_words: int = 2       # SBUF column reader: words buffered ahead of the engine
    passes: int = 4             # passes over the program to settle the shared AXI read channel
    memory: int = 2             # a pass uses the mean of this many previous passes' logs

    @staticmethod
    def bus_bytes(config):
        return config.dma.data_width // 8

    @staticmethod
    def pe_latency(config):
        a = config.array
        if a.is_float:      # pipelined fp32 adders (2 per row), product normalisation stage
            return 2 * a.rows + a.cols + a.multiplier_stages + (a.multiplier_stages > 0) + 3
        return a.rows + a.cols + a.multiplier_stages + 3

    def sbuf_read_rate(self, config):
        """SBUF words per cycle the DMA reads (it keeps ``dma.sbuf_reads`` reads in flight)."""
        return min(1.0, config.dma.sbuf_reads / self.sbuf_read_round_trip)


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
    """(busy cycles without the read channel's sharing, R beats it needs, bytes moved) of a
    DMA_COPY: setup, then one run per contiguous piece of either side; a DRAM read needs its R
    beats (shared with instruction fetch), an SBUF read is paced by ``dma.sbuf_reads``."""
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
    reads_dram = src.space == isa.Space.DRAM
    run_cost = costs.dma_write_run if dst.space == isa.Space.DRAM else costs.dma_run
    if contiguous:
        beats = runs * _ceil(src.counts[0] * eb, bw)
        if src.space == isa.Space.SBUF:
            pace = costs.sbuf_read_rate(config) / (2 if dst.space == isa.Space.SBUF else 1)
            transfer = int(beats / pace) + runs * run_cost
        else:
            transfer = beats + runs * run_cost
    else:
        beats = elements
        transfer = elements + runs * run_cost
    latency = costs.dram_latency if reads_dram else 0
    return costs.dma_setup + latency + transfer, (beats if reads_dram else 0), nbytes


def _dma_burst(config, insn):
    """Beats of a DMA_COPY's typical DRAM read burst (one contiguous run, at most max_burst)."""
    src = insn.side("src")
    bw = config.dma.data_width // 8
    run = src.counts[0] * insn.elem_bytes if src.strides[0] == insn.elem_bytes else bw
    return min(config.dma.max_burst, _ceil(run, bw), 4096 // bw)


def _ceil(a, b):
    return -(-a // b)


class _FetchLog:
    """When instruction fetch used the read channel: beats per cycle window, for a DMA read to
    look up how many beats it lost to fetch."""

    def __init__(self):
        self.events = []

    def add(self, start, beats):
        self.events.append((start, beats))

    def freeze(self):
        self.events.sort()
        self.times = [t for t, _ in self.events]
        self.cum = list(itertools.accumulate((b for _, b in self.events), initial=0))
        return self

    def beats(self, lo, hi):
        """Fetch beats issued in [lo, hi)."""
        return self.cum[bisect.bisect_left(self.times, hi)] - \
            self.cum[bisect.bisect_left(self.times, lo)]


class _DmaReadLog:
    """When the DMA read DRAM, and in bursts of how many beats: a fetch burst that starts then
    waits for the one being served (the AR arbiter alternates)."""

    def __init__(self):
        self.windows = []
        self.starts = []

    def add(self, start, end, burst):
        """A read from ``start`` to ``end`` (the DMA engine runs one at a time, in order)."""
        self.windows.append((start, end, burst))
        self.starts.append(start)

    def freeze(self):
        return self

    def wait_at(self, t, queued):
        """Cycles a fetch request at ``t`` waits for the DMA: while the DMA streams a read, the
        DRAM holds ``queued`` of its bursts besides the one it serves, and the AR arbiter is
        locked on the DMA's next one, so the fetch burst is served after about
        ``queued + 1`` DMA bursts (never after the DMA read ends)."""
        i = bisect.bisect_right(self.starts, t) - 1
        if i >= 0 and self.windows[i][0] <= t < self.windows[i][1]:
            return min((queued + 1) * self.windows[i][2], self.windows[i][1] - t)
        return 0


class _TileTimer:
    """The timing state of one tile's program (see :func:`predict`): every queue in order, the
    shared resources (one DMA engine, the tensor engine and its weight loads, the ACT unit,
    instruction fetch) and the semaphores' signal times. ``previous``: earlier passes'
    ``(fetch log, DMA read log)`` pairs (the shared AXI read channel); this pass's own are
    ``fetch_log`` and ``dma_log`` (:meth:`logs` once it has run)."""

    def __init__(self, program, config, costs, name=None, previous=()):
        self.config, self.costs, self.name = config, costs, name
        self.previous = list(previous)
        self.weight = 1 / len(self.previous) if self.previous else 0.0
        self.fetch_log, self.dma_log = _FetchLog(), _DmaReadLog()
        self.names = list(program.queues)
        self.queues = {q: list(program.queues[q]) for q in self.names}
        self.pc = {q: 0 for q in self.names}
        self.slot_free = {q: 0 for q in self.names}     # when the next instruction may enter
        self.issue_ready = {q: 0 for q in self.names}   # ... and issue at the earliest
        self.last_signal = {q: 0 for q in self.names}
        self.units = [[] for _ in range(isa.SEMAPHORES)]   # signal times, in signal order
        self.taken = [0] * isa.SEMAPHORES
        self.res = {"dma": 0, "pe": 0, "load": 0, "act": 0, "fetch": 0}
        self.shadow_ready = None
        self.moving_free = 0            # when the SBUF's moving reader takes the next multiply
        word_elems = config.sbuf.word_bytes // dtype_numpy(config.array.moving_dtype).itemsize
        self.reader_ahead = costs.reader_words * max(1, word_elems)
        self.fetch_beats = _ceil(isa.WORD_BYTES, costs.bus_bytes(config))
        self.fetched = {q: [] for q in self.names}      # when each instruction is in its FIFO
        self.entered = {q: [] for q in self.names}      # when each one entered the queue's slot
        self.rr_last = len(self.names) - 1
        self.max_burst = min(costs.fetch_depth, 256 // self.fetch_beats)
        self.intervals = {q: [] for q in self.names}
        self.end_time = 0

    def logs(self):
        """This pass's ``(fetch log, DMA read log)``, for the next pass's ``previous``."""
        return self.fetch_log.freeze(), self.dma_log.freeze()

    def _room_time(self, q):
        """When q's fetch FIFO has room for its next unfetched instruction j (instruction
        j - fetch_depth has left the FIFO for the queue's slot), or None: not known yet, or
        nothing left to fetch."""
        j, depth = len(self.fetched[q]), self.costs.fetch_depth
        if j >= len(self.queues[q]):
            return None
        if j < depth:
            return 0
        entered = self.entered[q]
        return entered[j - depth] if j - depth < len(entered) else None

    def _next_fetch(self):
        """``(time, queue)`` of the fetch unit's next burst: one burst at a time, as soon as a
        queue's FIFO has room for one instruction, round robin among the queues that want one
        then (hdl/sequencer/fetch.py); None while no queue has room."""
        rooms = {q: self._room_time(q) for q in self.names}
        wanting = [r for r in rooms.values() if r is not None]
        if not wanting:
            return None
        when = max(self.res["fetch"], min(wanting))
        n = len(self.names)
        for step in range(1, n + 1):
            q = self.names[(self.rr_last + step) % n]
            if rooms[q] is not None and rooms[q] <= when:
                return when, q
        return None

    def _fetch(self, when, q):
        """Issue q's fetch burst decided at ``when``: as many instructions as its FIFO has room
        for then; the burst waits behind the DMA's queued read bursts (earlier passes' logs)."""
        fetched, entered, depth = self.fetched[q], self.entered[q], self.costs.fetch_depth
        j = len(fetched)
        left_fifo = bisect.bisect_right(entered, when)
        n = max(1, min(depth - (j - left_fifo), len(self.queues[q]) - j, self.max_burst))
        start = when + self.dma_log.wait_at(when, self.costs.dram_read_queue)
        first = start + self.costs.fetch_latency
        self.res["fetch"] = first + n * self.fetch_beats
        self.fetch_log.add(start, n * self.fetch_beats)
        fetched.extend(first + (b + 1) * self.fetch_beats for b in range(n))
        self.rr_last = self.names.index(q)
        self._enter(q)

    def _enter(self, q):
        """q's next instruction enters the queue's slot once the slot is free and it is
        fetched (it then waits there for its semaphores)."""
        i = self.pc[q]
        if len(self.entered[q]) == i and i < len(self.fetched[q]):
            self.entered[q].append(max(self.slot_free[q], self.fetched[q][i]))

    def _ready_time(self, q):
        """When q's next instruction's waits are met (None: not yet signalled)."""
        insn = self.queues[q][self.pc[q]]
        t = max(self.entered[q][self.pc[q]] + self.costs.issue, self.issue_ready[q])
        for s, n in insn.waits:
            if n:
                if self.taken[s] + n > len(self.units[s]):
                    return None
                t = max(t, self.units[s][self.taken[s] + n - 1])
        return t

    def best(self):
        """``(time, queue)`` of the next instruction that can issue earliest, or None. Fetch
        bursts decided before then are issued first (their times do not depend on later
        events)."""
        while True:
            best = None
            for q in self.names:
                i = self.pc[q]
                if i >= len(self.queues[q]) or len(self.entered[q]) <= i:
                    continue
                t = self._ready_time(q)
                if t is None:
                    continue
                if best is None or t < best[0]:
                    best = (t, q)
            burst = self._next_fetch()
            if burst is None or (best is not None and burst[0] > best[0]):
                return best
            self._fetch(*burst)

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
            dur, r_beats, _ = _dma_cycles(config, costs, insn)
            if r_beats and self.previous:
                base = dur
                for _ in range(4):      # fixed point: the stretched window holds more fetch
                    lost = self.weight * sum(f.beats(start, start + dur)
                                             for f, _ in self.previous)
                    dur = base + min(round(lost), base)   # fetch takes at most half
            done = start + dur
            if r_beats:
                self.dma_log.add(start + costs.dma_first_read, done, _dma_burst(config, insn))
            res["dma"] = done
            leave, nxt = t + 1, done        # one DMA_COPY in flight per queue
        elif op == Opcode.LOAD_STATIONARY:
            start = max(t, res["load"])
            done = start + insn.k
            res["load"] = done
            self.shadow_ready = done
            leave = nxt = t + 1
        elif op == Opcode.MULTIPLY_MOVING:
            # the SBUF's moving reader takes a command once the previous one has
            # reader_ahead beats left to stream: the queue's slot waits for it
            accept = max(t, self.moving_free)
            start = max(accept, res["pe"], self.shadow_ready or 0)
            self.shadow_ready = None
            busy = insn.m * insn.repeat + costs.pe_gap
            res["pe"] = start + busy
            last_accept = max(accept, start + busy - insn.m - self.reader_ahead) \
                if insn.repeat > 1 else accept
            self.moving_free = max(last_accept + 1, start + busy - self.reader_ahead)
            done = start + busy + costs.pe_latency(config) + costs.psum_settle
            leave = nxt = last_accept + 1
        elif op == Opcode.ACT:
            start = max(t, res["act"])
            done = start + costs.act_setup + insn.rows * insn.repeat
            res["act"] = done
            leave, nxt = t + 1, done        # one ACT command at a time
        else:
            done = leave = nxt = t + 1
        # the next instruction enters the slot when this one leaves it, and issues `issue`
        # cycles later at the earliest (DMA and ACT: once this one has completed)
        self.slot_free[q] = leave
        self.issue_ready[q] = nxt
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
        self._enter(q)
        return insn, start, done

    def stuck(self):
        return [q for q in self.names if self.pc[q] < len(self.queues[q])]


def predict(program: isa.Program, config: TileConfig, costs: Costs = DEFAULT_COSTS):
    """The :class:`Timeline` of ``program`` on ``config`` (see the module docstring)."""
    if not isinstance(config, TileConfig):
        raise TypeError(f"predict config must be a TileConfig; got {config!r}")
    if not isinstance(program, isa.Program):
        raise TypeError(f"predict program must be an isa.Program; got {program!r}")
    # Fetch and the DMA share the AXI read channel: a DMA read is stretched by the fetch beats
    # that fall in its window, a fetch burst waits behind a DMA burst. Both depend on the
    # schedule, so the program is timed again with the earlier passes' logs; damped, each pass
    # sees the mean of the two previous passes' (a pass that was too fast packs fetch into the
    # DMA's windows and makes the next one too slow, and back).
    history = []
    for _ in range(max(1, costs.passes)):
        timer = _TileTimer(program, config, costs, previous=history[-costs.memory:])
        _run(timer)
        history.append(timer.logs())
    return Timeline(timer.end_time, timer.intervals)


def _run(timer):
    """Time ``timer``'s program to its end (PredictionError if it deadlocks)."""
    while True:
        best = timer.best()
        if best is None:
            break
        timer.execute(*best)
    stuck = timer.stuck()
    if stuck:
        raise PredictionError("program deadlocks in the performance model: "
                              + ", ".join(f"{q} at pc {timer.pc[q]}" for q in stuck))


def estimate_plan(config: TileConfig, plan, costs: Costs = DEFAULT_COSTS):
    """Closed-form ``(cycles, bound, dram_bytes)`` of a :class:`~.plan.GemmPlan`: the busiest
    resource (tensor engine; the DMA engine, which runs one descriptor at a time and shares the
    AXI read channel with instruction fetch; the ACT unit) plus the fill before the first
    multiply and the drain after the last."""
    from systolica.codes import ACT_MODE_BYTES
    R, C = plan.rows, plan.cols
    a = config.array
    ea = dtype_numpy(a.moving_dtype).itemsize
    ew = dtype_numpy(a.stationary_dtype).itemsize
    ec = ACT_MODE_BYTES[plan.out_mode]
    bw = costs.bus_bytes(config)
    pace = costs.sbuf_read_rate(config)
    m, k, n = plan.m, plan.k, plan.n
    mb, m_blocks = plan.m_block, plan.m_blocks
    k_tiles, k_chunks, n_tiles, n_groups = plan.k_tiles, plan.k_chunks, plan.n_tiles, plan.n_groups
    tiles = m_blocks * n_tiles
    pairs = tiles * k_tiles
    # the engine streams multiplies back to back; a pair of instructions needs 2 issue slots
    pe = m * k_tiles * n_tiles + pairs * max(costs.pe_gap, 2 * costs.issue - mb)
    setup = costs.dma_setup + costs.dram_latency
    reads = 0           # DMA cycles reading DRAM (A, W)
    descriptors = 0
    dram = 0
    if plan.a_source == "dram":
        a_loads = m_blocks * k_chunks * (n_groups if k_chunks > 1 else 1)
        a_desc = a_loads * (2 if k % R and k_chunks * plan.k_chunk > k_tiles - 1 else 1)
        a_bytes = m * k * ea * (n_groups if k_chunks > 1 else 1)
        a_runs = a_loads * plan.k_chunk * R
        reads += a_desc * setup + a_runs * (costs.dma_run + _ceil(mb * ea, bw))
        descriptors += a_desc
        dram += a_bytes
    w_loads = 1 if plan.w_resident else m_blocks * n_groups * k_chunks
    w_bytes = k * n * ew * (1 if plan.w_resident else m_blocks)
    w_runs = (n_tiles * C) if plan.w_resident else m_blocks * n_tiles * C * k_chunks
    w_desc = w_loads * (2 if n % C else 1)
    reads += w_desc * setup + w_runs * costs.dma_run + max(_ceil(w_bytes, bw), w_runs)
    descriptors += w_desc
    dram += w_bytes
    writes = 0
    if plan.c_dest == "dram":
        writes = tiles * costs.dma_setup + tiles * C * costs.dma_write_run + \
            int(tiles * C * _ceil(mb * ec, bw) / pace)
        dram += m * n * ec
    act = tiles * (costs.act_setup + mb + costs.issue)
    instructions = 2 * pairs + 2 * tiles + descriptors
    fetch = instructions * _ceil(isa.WORD_BYTES, bw)
    # fetch beats that land while the DMA reads stretch those reads (one AXI read channel)
    span = max(pe, reads + writes, act, fetch)
    dma = reads + writes + int(fetch * min(1.0, reads / span))
    bounds = {"tensor engine": pe, "DMA": dma, "ACT": act, "instruction fetch": fetch + reads}
    bound = max(bounds, key=bounds.get)
    first_a = (costs.dma_setup + plan.k_chunk * R * (costs.dma_run + _ceil(mb * ea, bw))
               if plan.a_source == "dram" else 0)
    first_w = costs.dma_setup + C * (costs.dma_run + _ceil(
        (k if plan.w_resident else min(k, plan.k_chunk * R)) * ew * plan.n_group, bw))
    fill = first_a + first_w + 10 * costs.issue
    drain = (costs.pe_latency(config) + costs.psum_settle + costs.act_setup + mb
             + (costs.dma_setup + C * (costs.dma_write_run + int(_ceil(mb * ec, bw) / pace))
                if plan.c_dest == "dram" else 0))
    # A read channel loaded beyond half the engine's time starves the 4-deep fetch FIFOs
    # (fetch bursts wait behind DMA bursts): a margin that steers the search away from
    # fetch-heavy plans (small M blocks with W streamed) that the RTL has not confirmed.
    margin = max(0, fetch + reads - pe // 2) // 4
    return int(bounds[bound] + fill + drain + margin), bound, int(dram)
