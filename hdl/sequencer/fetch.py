"""Instruction fetch: per-engine instruction queues filled from DRAM over an AXI4 read channel.

Each engine ``e`` has a program (``base[e]``: byte address, ``length[e]``: instructions), both
taken at a ``start`` pulse; the unit then fetches each program in order into that engine's queue
(``queue_depth`` instructions), round-robin between engines that have instructions left and room
for at least one. One burst is in flight at a time, decided in the cycle after the previous
one's last beat (or the second cycle after start) if some engine wanted one in the cycle
before; it takes the smallest of what was left, the queue's room in that cycle before (what
it held and the instruction whose last beat came then; so R beats are never back-pressured),
``256 // beats_per_instruction`` and the instructions before the next 4 KiB boundary. Instructions are
``instr_bytes`` bytes (a power-of-two multiple of the bus width), little-endian, at
``base + i * instr_bytes``; every one leaves with ``error`` set if any of its beats answered
SLVERR/DECERR. ``flush`` (abort) empties every queue and stops fetching; the beats of a burst in
flight are still taken and dropped, and ``busy`` stays high until they are.
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from systolica.hdl.axi import BURST_INCR, BOUNDARY_BYTES, axi4_addr_layout, axi4_r_layout
from systolica.hdl.lib import Queue, RoundRobinArbiter


__all__ = ["fetched_layout", "Fetch"]


def fetched_layout(instr_bits):
    return data.StructLayout({"bits": unsigned(instr_bits), "error": 1})


class Fetch(wiring.Component):
    def __init__(self, *, engines, instr_bits, addr_width, data_width, id_width, axi_id,
                 queue_depth=8):
        if instr_bits % data_width or (instr_bits // data_width) & (instr_bits // data_width - 1):
            raise ValueError(f"Fetch instr_bits must be a power-of-two multiple of data_width="
                             f"{data_width}; got {instr_bits}")
        if not 0 <= axi_id < (1 << id_width):
            raise ValueError(f"Fetch axi_id must fit in id_width={id_width}; got {axi_id}")
        if queue_depth < 2:
            raise ValueError(f"Fetch queue_depth must be >= 2; got {queue_depth}")
        self.engines, self.instr_bits = engines, instr_bits
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        self.axi_id, self.queue_depth = axi_id, queue_depth
        super().__init__({
            "ar": Out(stream.Signature(axi4_addr_layout(addr_width, id_width))),
            "r": In(stream.Signature(axi4_r_layout(data_width, id_width))),
            "base": In(unsigned(addr_width)).array(engines),
            "length": In(32).array(engines),
            "start": In(1),
            "flush": In(1),
            "instr": Out(stream.Signature(fetched_layout(instr_bits))).array(engines),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        E, F = self.engines, self.queue_depth
        W = self.data_width // 8
        I = self.instr_bits // 8
        k = I // W                                     # beats per instruction
        log_i = ceil_log2(I)
        max_n = min(F, 256 // k, BOUNDARY_BYTES // I)

        queues = [Queue(shape=fetched_layout(self.instr_bits), depth=F) for _ in range(E)]
        # Per queue: the next instruction's address and how many are left to fetch, counted
        # down from start (no 32-bit multiplexer or adder between the pick and a register).
        addr = [Signal(self.addr_width, name=f"fetch_addr{e}") for e in range(E)]
        left = [Signal(32, name=f"left{e}") for e in range(E)]
        inflight = [Signal(range(F + 1), name=f"inflight{e}") for e in range(E)]
        flushing = Signal()
        for e, q in enumerate(queues):
            m.submodules[f"queue{e}"] = q
            m.d.comb += [self.instr[e].valid.eq(q.o.valid & ~flushing),
                         self.instr[e].payload.eq(q.o.payload),
                         q.o.ready.eq(self.instr[e].ready | flushing)]
        # flush: drain the queues for as long as anything is in them
        with m.If(self.flush):
            m.d.sync += flushing.eq(1)
        with m.Elif(flushing & ~Cat(q.o.valid for q in queues).any()):
            m.d.sync += flushing.eq(0)

        # --- pick the next burst ---------------------------------------------------------------
        active = Signal()          # a burst in flight (AR issued or pending, R beats to come)
        stopped = Signal(init=1)   # after reset and flush until start
        # Each queue's burst limit from its program and address, registered: the smallest of
        # what is left, max_n and the instructions before the 4 KiB boundary. It is a cycle
        # late only just after that queue's burst was decided, and the burst is still active
        # then (its AR and at least one R beat follow), so no decision ever sees a stale one.
        # At start it is computed from base and length directly.
        most = [Signal(range(max_n + 1), name=f"most{e}") for e in range(E)]
        bits = len(most[0])

        def clip(value):
            """min(value, max_n) of an unsigned value: its high bits ORed, a small compare
            (not a 32-bit comparator's carry chain)."""
            high = value[bits:].any() if len(value) > bits else C(0)
            return Mux(high | (value[:bits] > max_n), max_n, value[:bits])
        def limit(at, count, name):
            to_boundary = Signal(range(BOUNDARY_BYTES // I + 1), name=name)
            m.d.comb += to_boundary.eq(
                (BOUNDARY_BYTES - at[:ceil_log2(BOUNDARY_BYTES)]) >> log_i)
            a, b = clip(count), clip(to_boundary)
            return Mux(a < b, a, b)
        for e in range(E):
            aligned = self.base[e] & ~(I - 1)              # base forced instruction-aligned
            # both limits found, start picks one (timing: start is late, the limit is deep)
            m.d.sync += most[e].eq(Mux(self.start,
                                       limit(aligned, self.length[e], f"to_boundary_base{e}"),
                                       limit(addr[e], left[e], f"to_boundary{e}")))
        # Each queue's burst size, registered (timing: the arbiter and the burst start at
        # flip-flops): one cycle old, it never exceeds the room now, which only grows between
        # decisions (instructions written into a queue were counted in flight), and the
        # decision after a burst comes at least three cycles after the one before (AR, the
        # last beat), when the queue's ``most`` is that of its new address. Zero after start
        # and flush.
        sizes = []
        for e, q in enumerate(queues):
            free = Signal(range(F + 1), name=f"free{e}")
            size = Signal(range(max_n + 1), name=f"size{e}")
            m.d.comb += free.eq(F - q.level - inflight[e])
            m.d.sync += size.eq(Mux(self.start | self.flush, 0,
                                    Mux(free < most[e], free, most[e])))
            sizes.append(size)
        arbiter = m.submodules.arbiter = RoundRobinArbiter(E)
        pick, pick_valid = arbiter.index, arbiter.valid
        m.d.comb += arbiter.requests.eq(Cat(s != 0 for s in sizes))
        n = Signal(range(max_n + 1))
        m.d.comb += n.eq(Array(sizes)[pick])

        beats_left = Signal(range(max_n * k + 1))
        decide = Signal()          # a burst is decided this cycle
        receiving = Signal()       # the AR was taken and R beats are to come
        kept = Signal(E)           # one-hot: the burst's queue, none while a flush drops it
        last_beat = Signal(init=int(k == 1))   # the next beat completes an instruction
        ar = self.ar
        with m.If(self.start):
            m.d.sync += [stopped.eq(0)]
            for e in range(E):
                m.d.sync += [addr[e].eq(self.base[e] & ~(I - 1)), left[e].eq(self.length[e])]
        with m.Elif(self.flush):
            m.d.sync += [stopped.eq(1), kept.eq(0)]     # the beats in flight are dropped
        with m.Elif(~active & ~stopped & pick_valid & ~flushing):
            m.d.comb += [arbiter.advance.eq(1), decide.eq(1)]
            m.d.sync += [active.eq(1), kept.eq(arbiter.grant), beats_left.eq(n * k),
                         ar.valid.eq(1), ar.payload.addr.eq(Array(addr)[pick]),
                         ar.payload.len.eq(n * k - 1),
                         ar.payload.size.eq(ceil_log2(W)), ar.payload.burst.eq(BURST_INCR),
                         ar.payload.id.eq(self.axi_id)]
            for e in range(E):
                with m.If(arbiter.grant[e]):
                    m.d.sync += [addr[e].eq(addr[e] + (sizes[e] << log_i)),
                                 left[e].eq(left[e] - sizes[e])]
        with m.If(ar.valid & ar.ready):
            m.d.sync += [ar.valid.eq(0), receiving.eq(1)]

        # --- R beats into instructions -------------------------------------------------------------
        # An instruction is written into its queue in the cycle after its last beat, from
        # registers (the assembled word, its error flag, the queue one-hot): the write enable
        # fans out to every LUT-RAM cell of the queue. It stays counted in ``inflight`` until
        # then, so the queue's room is never overstated.
        r = self.r
        m.d.comb += r.ready.eq(receiving)
        shift = Signal(self.instr_bits)    # the beats so far; after the last, the instruction
        error = Signal()                   # an error beat among those of the instruction so far
        pushing = Signal(E)                # one-hot: ``shift`` goes into this queue now
        pushed_error = Signal()
        beat = Signal(range(k))
        assembled = Cat(shift[self.data_width:], r.payload.data) if k > 1 else r.payload.data
        taken = r.valid & receiving
        bad_beat = r.payload.resp != 0
        m.d.sync += pushing.eq(Mux(taken & last_beat & ~self.flush, kept, 0))
        with m.If(taken):
            m.d.sync += [beats_left.eq(beats_left - 1), shift.eq(assembled)]
            with m.If(beats_left == 1):
                m.d.sync += [active.eq(0), receiving.eq(0)]
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), last_beat.eq(k == 1), error.eq(0),
                             pushed_error.eq(error | bad_beat)]
            with m.Else():
                m.d.sync += [beat.eq(beat + 1), last_beat.eq(beat == k - 2),
                             error.eq(error | bad_beat)]
        for e, q in enumerate(queues):
            m.d.comb += [q.i.valid.eq(pushing[e]), q.i.payload.bits.eq(shift),
                         q.i.payload.error.eq(pushed_error)]
            # the previous burst's last instruction may be written in this burst's decision cycle
            m.d.sync += inflight[e].eq(inflight[e] + Mux(decide & arbiter.grant[e], sizes[e], 0)
                                       - pushing[e])
        with m.If(self.flush):
            m.d.sync += [inflight[e].eq(0) for e in range(E)]
        m.d.comb += self.busy.eq(active | flushing | pushing.any())
        return m
