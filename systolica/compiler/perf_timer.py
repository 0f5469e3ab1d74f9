"""The instruction-by-instruction timer of the performance model (:mod:`.perf`): the cycle
costs (:class:`Costs`) and :class:`_TileTimer`, one tile's queues, engines, instruction fetch
and shared AXI read channel timed as one discrete-event simulation, in time order.

What it follows, each from the RTL (docs/compiler.md, "Performance model"):

* every queue in order: an instruction enters the queue's slot when the previous one has left
  it and it is in the queue's fetch FIFO, waits there for its semaphores and issues ``issue``
  cycles after entering at the earliest (a DMA copy or an ACT command only once the previous
  one of its queue has completed);
* the fetch unit (hdl/sequencer/fetch.py): one burst in flight at a time, round robin between
  the queues whose 4-deep FIFO has room, each burst as many instructions as that FIFO has room
  for when it is decided;
* the shared AXI read channel (hdl/tile.py, the DRAM model's 2-deep AR queue): a fetch request
  made while the DMA streams a read waits behind ``dram_read_queue + 1`` of the DMA's bursts,
  and the DMA read loses the fetch burst's beats;
* one DMA engine for all DMA queues, one descriptor at a time; a store paced by the
  ``dma.sbuf_reads`` SBUF reads it keeps in flight;
* the SBUF write port shared by the ACT's vector writes and the DMA's writes (they alternate
  on a conflict, so both run at half rate while they overlap);
* the tensor engine streaming multiplies back to back behind its shadow-weight loads; the
  SBUF's moving reader takes the next MULTIPLY_MOVING only when the current one has
  ``reader_words`` words left;
* the register slice on each PE command stream (hdl/tile.py): a command issued in cycle t
  reaches its SBUF reader in t + ``pe_command_slice`` at the earliest, and the slice holds
  ``pe_command_room`` commands, so the PE queue issues a command once the one that many
  before it on the same stream was taken by the reader (and runs that far ahead of it);
* the ACT unit one command at a time.

A DMA copy's or ACT command's end can still move after it was timed (a fetch burst, or the
other unit's SBUF writes, landing in it later in time order); the copies queued behind it on
the DMA engine move with it, and so do their signals: nothing has consumed those yet, because
every event before their end is handled first.
"""

import bisect
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from systolica import isa
from systolica.config import dtype_numpy
from systolica.isa import Opcode

__all__ = ["Costs", "DEFAULT_COSTS", "Interval"]


@dataclass(frozen=True)
class Costs:
    """Cycle costs (see the module docstring), measured on cycle-level traces of the tile RTL
    (every instruction's retire cycle, every AR/R handshake, the fetch FIFO levels and the
    engines' command handshakes; Amaranth simulator)."""
    issue: int = 4              # cycles from entering the queue's slot to issue (check x2/wait/issue)
    dma_setup: int = 20         # per descriptor: pick, check pipeline, decision, finish
    dma_first_read: int = 14    # descriptor taken to its first AR (pick, check, walk)
    dma_run: int = 1            # per contiguous run read from DRAM (its own AXI burst)
    dma_write_run: int = 3      # per contiguous run written to DRAM (AW, W beats, B response)
    sbuf_read_round_trip: int = 7   # DMA SBUF read: request to response (dma.sbuf_reads in flight)
    pe_gap: int = 0             # cycles between back-to-back multiplies (they stream)
    dram_latency: int = 4       # AXI read latency until the first beat
    dma_read_tail: int = 4      # a DMA read's last R beat to the copy's completion
    dram_read_queue: int = 2    # AR requests the DRAM (AxiRam) queues besides the burst it serves
    reader_words: int = 4       # SBUF column reader: words buffered ahead of the engine
    pe_command_slice: int = 1   # PE command: the queue's issue to its SBUF reader (hdl/tile.py)
    pe_command_room: int = 2    # ... commands the register slice holds per stream
    act_setup: int = 7          # ACT: command to first row, and the 3 idle cycles of completion
    psum_settle: int = 3        # PSUM read-modify-write after the last result
    fetch_latency: int = 4      # instruction fetch: burst decided to its first beat
    fetch_write: int = 1        # an instruction's last beat to its FIFO write (registered)
    fetch_depth: int = 4        # instructions per queue's fetch FIFO (Tile's fetch_depth)
    passes: int = 1             # predict_chip's timing passes (one is enough: every
    memory: int = 1             # interaction is timed in time order; earlier ones unused)

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


def _ceil(a, b):
    return -(-a // b)


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
            # paced by the SBUF reads in flight, or by the AXI writes (their AW and B
            # handshakes overlap the slower SBUF reads)
            pace = costs.sbuf_read_rate(config) / (2 if dst.space == isa.Space.SBUF else 1)
            transfer = max(int(beats / pace), beats + runs * run_cost)
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


class _Run:
    """A timed DMA copy or ACT command whose end may still move. ``busy_from``..``done``: when
    it uses the shared resource (a DMA read: the R channel; an SBUF write: the write port);
    ``burst``: a DMA read's typical burst; ``paced``: it reads the SBUF (and loses a cycle to
    each word the engine's moving reader reads); ``slots``: ``(semaphore, index)`` of the signals it
    made; ``interval``: index of its Interval in its queue's list."""
    __slots__ = ("q", "start", "busy_from", "done", "reads", "to_sbuf", "burst", "paced",
                 "slots", "interval")

    def __init__(self, q, start, busy_from, done, reads=False, to_sbuf=False, burst=0,
                 paced=False):
        self.q, self.start, self.busy_from, self.done = q, start, busy_from, done
        self.reads, self.to_sbuf, self.burst, self.paced = reads, to_sbuf, burst, paced
        self.slots, self.interval = [], None

    def overlap(self, lo, hi):
        return max(0, min(self.done, hi) - max(self.busy_from, lo))


class _TileTimer:
    """The timing state of one tile's program (see the module docstring): every queue in order,
    the fetch unit, the DMA engine, the tensor engine and its weight loads, the ACT unit and the
    semaphores' signal times. :meth:`best` gives the next instruction to issue (handling the
    fetch bursts decided before it), :meth:`execute` issues it. ``name`` and ``previous`` (a
    chip's tile: its position and its earlier passes' :meth:`logs`) are kept for
    :func:`~.chip_perf.predict_chip`; one pass needs no earlier ones."""

    def __init__(self, program, config, costs, name=None, previous=()):
        self.config, self.costs, self.name = config, costs, name
        self.previous = list(previous)
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
        # when each reader took the last `pe_command_room` commands of its stream
        self.taken_by_reader = {s: deque(maxlen=costs.pe_command_room)
                                for s in ("weights", "moving")}
        word_elems = config.sbuf.word_bytes // dtype_numpy(config.array.moving_dtype).itemsize
        self.moving_per_word = max(1, word_elems)
        self.reader_ahead = costs.reader_words * self.moving_per_word
        self.fetch_beats = _ceil(isa.WORD_BYTES, costs.bus_bytes(config))
        self.max_burst = min(costs.fetch_depth, 256 // self.fetch_beats)
        self.fetched = {q: [] for q in self.names}      # when each instruction is in its FIFO
        self.entered = {q: [] for q in self.names}      # when each one entered the queue's slot
        self.rr_last = len(self.names) - 1
        self.dma_runs = []              # DMA copies not yet over, in the engine's order
        self.act_runs = []              # ACT commands not yet over
        self.pe_streams = []            # (start, end) of the engine's multiplies not yet over
        self.fetch_bursts = []          # (decided, first beat, beats), for profiles and tests
        self.intervals = {q: [] for q in self.names}
        self.end_time = 0

    def logs(self):
        """What a later pass would be given (this timer needs none): the fetch bursts."""
        return (tuple(self.fetch_bursts),)

    # --- instruction fetch --------------------------------------------------------------------

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
        then; None while no queue has room."""
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
        for then. It waits behind the DMA's queued read bursts, and the DMA read it lands in
        loses its beats."""
        fetched, depth = self.fetched[q], self.costs.fetch_depth
        j = len(fetched)
        left_fifo = bisect.bisect_right(self.entered[q], when)
        n = max(1, min(depth - (j - left_fifo), len(self.queues[q]) - j, self.max_burst))
        beats = n * self.fetch_beats
        reading = self._dma_reading(when + 1)      # its AR goes out the next cycle
        wait = self._dma_wait(reading, when) if reading else 0
        first = when + wait + self.costs.fetch_latency
        self.res["fetch"] = first + beats
        self.fetch_bursts.append((when, first, beats))
        fetched.extend(first + (b + 1) * self.fetch_beats + self.costs.fetch_write
                       for b in range(n))
        self.rr_last = self.names.index(q)
        self._enter(q)
        if reading and wait < self._read_end(reading) - when:
            self._extend(reading, beats)    # served before the DMA's last bursts
        elif not reading:                   # a DMA read starting while this burst is served
            later = next((r for r in self.dma_runs if r.reads and r.busy_from > when + 1),
                         None)
            if later is not None and later.busy_from < first + beats:
                self._extend(later, first + beats - later.busy_from)

    def _read_end(self, run):
        return run.done - self.costs.dma_read_tail

    def _dma_reading(self, t):
        """The DMA copy reading DRAM at ``t``, or None."""
        for run in self.dma_runs:
            if run.reads and run.busy_from <= t < self._read_end(run):
                return run
            if run.busy_from > t:
                break
        return None

    def _dma_wait(self, run, when):
        """Cycles a fetch request at ``when`` waits for ``run``'s read bursts: the DRAM holds
        ``dram_read_queue`` of them besides the one it serves and the AR arbiter is locked on
        the DMA's next one, so the fetch is served after about ``dram_read_queue + 1`` bursts
        (never after the read ends); they move at half rate under the ACT's SBUF writes."""
        wait = min((self.costs.dram_read_queue + 1) * run.burst, self._read_end(run) - when)
        if run.to_sbuf:
            base = wait
            for _ in range(2):
                wait = base + sum(a.overlap(when, when + wait) for a in self.act_runs) // 2
        return wait

    def _enter(self, q):
        """q's next instruction enters the queue's slot once the slot is free and it is
        fetched (it then waits there for its semaphores)."""
        i = self.pc[q]
        if len(self.entered[q]) == i and i < len(self.fetched[q]):
            self.entered[q].append(max(self.slot_free[q], self.fetched[q][i]))

    # --- runs whose end moves -----------------------------------------------------------------

    def _extend(self, run, delta):
        """``run`` ends ``delta`` cycles later; on the DMA engine, the copies queued behind it
        start and end that much later too."""
        if delta <= 0:
            return
        chain = self.dma_runs if run in self.dma_runs else [run]
        for later in chain[chain.index(run):]:
            if later is not run:
                later.start += delta
                later.busy_from += delta
            later.done += delta
            self._moved(later)
        key = "dma" if chain is self.dma_runs else "act"
        self.res[key] = max(self.res[key], chain[-1].done)

    def _moved(self, run):
        """Carry ``run``'s new start and end into its signals, interval and queue."""
        for sem, index in run.slots:
            self.units[sem][index] = run.done
        ivs = self.intervals[run.q]
        if run.interval is not None:
            ivs[run.interval] = replace(ivs[run.interval], start=run.start, end=run.done)
        self.issue_ready[run.q] = max(self.issue_ready[run.q], run.done)
        self.last_signal[run.q] = max(self.last_signal[run.q], run.done)
        self.end_time = max(self.end_time, run.done)

    def _share_write_port(self, run, others):
        """The ACT's and the DMA's SBUF writes alternate where they overlap: each of ``run``
        and the ``others`` it overlaps loses half the overlap."""
        for other in others:
            shared = other.overlap(run.busy_from, run.done)
            if shared > 1:
                self._extend(other, shared // 2)
                self._extend(run, shared // 2)

    def _share_read_port(self, run, streams):
        """The moving reader reads the SBUF before the DMA: while the engine streams, a paced
        SBUF read loses a cycle per word it reads (one per ``moving_per_word`` rows)."""
        for lo, hi in streams:
            self._extend(run, run.overlap(lo, hi) // self.moving_per_word)

    def _prune(self, now):
        self.dma_runs = [r for r in self.dma_runs if r.done > now]
        self.act_runs = [r for r in self.act_runs if r.done > now]
        self.pe_streams = [p for p in self.pe_streams if p[1] > now]

    # --- queues -------------------------------------------------------------------------------

    def _ready_time(self, q):
        """When q's next instruction's waits are met (None: not yet signalled)."""
        insn = self.queues[q][self.pc[q]]
        phases = self.costs.issue
        if insn.opcode in (Opcode.MULTIPLY_MOVING, Opcode.ACT, Opcode.MATMUL):
            phases += insn.repeat + 1       # the repeat range check, one cycle per iteration
        if insn.opcode == Opcode.MATMUL:    # the bit-serial multiply to the last k tile
            phases += max(insn.tiles - 1, 0).bit_length() + 1
        t = max(self.entered[q][self.pc[q]] + phases, self.issue_ready[q])
        for s, n in insn.waits:
            if n:
                if self.taken[s] + n > len(self.units[s]):
                    return None
                t = max(t, self.units[s][self.taken[s] + n - 1])
        return t

    def best(self):
        """``(time, queue)`` of the next instruction that can issue earliest, or None. Fetch
        bursts decided before then are issued first."""
        while True:
            best = None
            for q in self.names:
                i = self.pc[q]
                if i >= len(self.queues[q]) or len(self.entered[q]) <= i:
                    continue
                t = self._ready_time(q)
                if t is not None and (best is None or t < best[0]):
                    best = (t, q)
            burst = self._next_fetch()
            if burst is None or (best is not None and burst[0] > best[0]):
                return best
            self._fetch(*burst)

    def signal(self, sem, count, time):
        self.units[sem].extend([time] * count)

    def execute(self, t, q):
        """Issue queue ``q``'s next instruction at ``t``; returns ``(instruction, start,
        done)`` (a DMA copy's or ACT command's ``done`` as timed now: it may move later)."""
        costs, config, res = self.costs, self.config, self.res
        self._prune(t)
        insn = self.queues[q][self.pc[q]]
        for s, n in insn.waits:
            if n:
                self.taken[s] += n
        op = insn.opcode
        start = t
        run = None
        if op == Opcode.DMA_COPY:
            start = max(t, res["dma"])
            dur, r_beats, _ = _dma_cycles(config, costs, insn)
            to_sbuf = insn.side("dst").space == isa.Space.SBUF and bool(r_beats)
            paced = insn.side("src").space == isa.Space.SBUF
            run = _Run(q, start, start + costs.dma_first_read, start + dur, reads=bool(r_beats),
                       to_sbuf=to_sbuf, burst=_dma_burst(config, insn) if r_beats else 0,
                       paced=paced)
            self.dma_runs.append(run)
            res["dma"] = run.done
            if paced:
                self._share_read_port(run, self.pe_streams)
            if run.reads:       # its first burst waits for the fetch burst being served
                self._extend(run, res["fetch"] - run.busy_from)
            leave = t + 1                   # the next copy of the queue issues once done
        elif op == Opcode.LOAD_STATIONARY:
            issued, start, done = self._load(t, insn.k)
            leave = nxt = issued + 1
        elif op == Opcode.MULTIPLY_MOVING:
            start, done, leave = self._multiply(t, insn.m, insn.repeat)
            nxt = leave
        elif op == Opcode.MATMUL:
            # the expansion the sequencer issues (hdl/sequencer/pe_loop.py): a k tile's load
            # one cycle after the previous tile's last multiply, its first multiply one cycle
            # after the load; no check or wait between them
            issue, start = t, None
            for _, k, _, _ in isa.matmul_tiles(insn, config.array.rows):
                issued, _, _ = self._load(issue, k)
                first, done, issue = self._multiply(issued + 1, insn.m, insn.repeat)
                self.intervals[q].append(Interval(q, self.pc[q], op.name, t, first, res["pe"]))
                start = first if start is None else start
            leave = nxt = issue
        elif op == Opcode.ACT:
            start = max(t, res["act"])
            first = start + costs.act_setup
            run = _Run(q, start, first, first + insn.rows * insn.repeat)
            self.act_runs.append(run)
            res["act"] = run.done
            leave = t + 1                   # one ACT command at a time
        elif op == Opcode.ACT_PARAM:
            # the table takes one column per cycle after the issue; the queue's next ACT or
            # ACT_PARAM waits for it (held here for any next instruction: the ACT queue's
            # others are END and NOP)
            done = leave = t + 1
            nxt = t + 1 + insn.count
        else:
            done = leave = nxt = t + 1
        if run is not None:
            done = nxt = run.done
        # the next instruction enters the slot when this one leaves it, and issues `issue`
        # cycles later at the earliest (DMA and ACT: once this one has completed)
        self.slot_free[q] = leave
        self.issue_ready[q] = nxt
        sig = max(done, self.last_signal[q])
        self.last_signal[q] = sig
        for s, n in insn.signals:
            if n:
                if run is not None:
                    run.slots += [(s, len(self.units[s]) + i) for i in range(n)]
                self.signal(s, n, sig)
        if op not in (Opcode.CHECK, Opcode.END, Opcode.NOP, Opcode.ACT_PARAM, Opcode.MATMUL):
            busy_end = res["pe"] if op == Opcode.MULTIPLY_MOVING else done
            if run is not None:
                run.interval = len(self.intervals[q])
            self.intervals[q].append(Interval(q, self.pc[q], op.name, t, start, busy_end))
        self.end_time = max(self.end_time, sig)
        self.pc[q] += 1
        self._enter(q)
        if run is not None and (run.to_sbuf or op == Opcode.ACT):
            others = self.act_runs if run.to_sbuf else [r for r in self.dma_runs if r.to_sbuf]
            self._share_write_port(run, [r for r in others if r is not run])
        return insn, start, done

    def _slice_issue(self, stream, t):
        """When the PE queue can issue a command on ``stream`` at ``t`` or later: once the
        register slice has room (the command ``pe_command_room`` before it was taken)."""
        taken = self.taken_by_reader[stream]
        return max(t, taken[0] + 1) if len(taken) == taken.maxlen else t

    def _load(self, t, k):
        """A LOAD_STATIONARY of ``k`` rows the queue may issue at ``t``: ``(issued, start,
        done)``; the weights reader takes it when the previous load has streamed."""
        issued = self._slice_issue("weights", t)
        start = max(issued + self.costs.pe_command_slice, self.res["load"])
        self.taken_by_reader["weights"].append(start)
        done = start + k
        self.res["load"] = self.shadow_ready = done
        return issued, start, done

    def _multiply(self, t, m, repeat):
        """A MULTIPLY_MOVING of ``repeat`` x ``m`` rows the queue may issue at ``t``: ``(start,
        done, when the queue may issue its next command)``. Repeats issue one per cycle as the
        slice has room; the moving reader takes a repeat once the previous one has
        ``reader_ahead`` beats left to stream (the stream has no gap between repeats)."""
        costs, res = self.costs, self.res
        issue, taken, start = t, None, None
        for r in range(repeat):
            issue = self._slice_issue("moving", issue)
            free = self.moving_free if r == 0 else \
                max(taken + 1, start + r * m - self.reader_ahead)
            taken = max(issue + costs.pe_command_slice, free)
            self.taken_by_reader["moving"].append(taken)
            if r == 0:
                start = max(taken, res["pe"], self.shadow_ready or 0)
            issue += 1
        self.shadow_ready = None
        busy = m * repeat + costs.pe_gap
        res["pe"] = start + busy
        stream = (start, start + busy)
        self.pe_streams.append(stream)
        for paced in [r for r in self.dma_runs if r.paced]:
            self._share_read_port(paced, [stream])
        self.moving_free = max(taken + 1, start + busy - self.reader_ahead)
        done = start + busy + costs.pe_latency(self.config) + costs.psum_settle
        return start, done, issue

    def stuck(self):
        return [q for q in self.names if self.pc[q] < len(self.queues[q])]
