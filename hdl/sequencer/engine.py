"""One instruction queue's front end: decode, check, wait, issue, in-order retire, signal.

An instruction moves through one slot: it is taken from the fetch queue, *checked* (one cycle,
plus one per repeat for MULTIPLY_MOVING / ACT, whose every repeat's SBUF and PSUM ranges are
checked before the first is issued), its waits are *granted* by the semaphore file (both at once,
consuming them), then it is *issued* (one command per repeat) and recorded in the in-order
*scoreboard*. The scoreboard's head retires when its command has completed (completion events
arrive in order per kind); a retiring instruction applies its signals and counts in ``retired``.

Every check comes before the wait (docs/isa.md, "Execution"): a bad instruction (any
:class:`~systolica.codes.IsaError`) consumes nothing and is never issued: the engine stops
taking instructions, lets the ones in flight retire, then halts with the code and the bad pc.
A retirement fails on a DMA error (known at completion) or when the semaphore file reports that
its signals would overflow (``overflow``): the queue halts at that scoreboard entry's pc and
nothing after it signals or retires. DMA_COPY waits and issues only with nothing in flight, ACT
issues one at a time, so a DMA error halts the queue before anything after it started.
``abort`` drops the slot, lets issued commands drain without signalling, then stops.

On a chip's tile a DMA queue also takes REMOTE_SBUF destinations (checked: BAD_DMA_SPACE for a
remote source, BAD_REMOTE_TILE outside the mesh; the DMA checks the SBUF range) and
SIGNAL_REMOTE (BAD_REMOTE_TILE, BAD_SEMAPHORE), which waits and issues, like DMA_COPY, only with
nothing in flight, shows its flit on ``remote_signal`` (kept shown until accepted, also
through an abort) and retires once the flit is accepted. A standalone tile halts on either with
BAD_DMA_SPACE.
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import DmaError, EngineState, IsaError
from systolica.config import DTYPES, ChipConfig, TileConfig
from systolica.hdl.contracts import dma_descriptor_layout, index_bits, remote_signal_layout
from systolica.hdl.lib import Queue
from systolica.isa import (ACT_PARAM_ENTRIES, ACT_PARAM_GROUP, INSTRUCTION_LAYOUT, SEMAPHORES,
                           OPCODE_ENGINES, SEMAPHORE_BITS, Engine, Opcode, Space)
from .fetch import fetched_layout
from .pe_loop import MatmulLoop
from .repeats import Repeats, repeat_fields
from .static_checks import first_error, static_checks
from .semaphores import semaphore_request_layout, semaphore_wait_layout


__all__ = ["engine_status_layout", "act_param_write_layout", "QueueEngine"]

_IMM, _KIND_A, _KIND_B = 0, 1, 2          # scoreboard kinds: immediate, first / second command
_ACCUMULATOR_BITS = 52                    # offset + repeat * step never overflows


def engine_status_layout():
    return data.StructLayout({
        "state": EngineState, "semaphore": unsigned(8), "pc": unsigned(32),
        "retired": unsigned(32), "busy_cycles": unsigned(32), "error": IsaError,
        "dma_error": DmaError,
    })


def act_param_write_layout(config: TileConfig):
    return data.StructLayout({
        "valid": 1, "entry": unsigned(index_bits(ACT_PARAM_ENTRIES)), "first_col": unsigned(16),
        "count": unsigned(8),
        "scale": data.ArrayLayout(signed(config.act.scale_bits), ACT_PARAM_GROUP),
        "shift": data.ArrayLayout(unsigned(8), ACT_PARAM_GROUP),
    })


class QueueEngine(wiring.Component):
    """The front end of queue ``queue`` (a :class:`systolica.isa.Queue`) of a tile with
    ``config`` (a :class:`TileConfig`, or a :class:`ChipConfig` for a chip's tile: its DMA
    queues then take remote copies and SIGNAL_REMOTE, whose flit leaves on ``remote_signal``);
    ``fingerprint`` is :func:`systolica.isa.fingerprint` of the config."""

    def __init__(self, *, config: TileConfig, queue, fingerprint, scoreboard_depth=8):
        self._chip = config if isinstance(config, ChipConfig) else None
        if self._chip is not None:
            config = config.tile
        if not isinstance(config, TileConfig):
            raise TypeError(f"QueueEngine config must be a TileConfig or ChipConfig; "
                            f"got {config!r}")
        self._config, self._queue, self._fingerprint = config, queue, fingerprint
        self._depth = scoreboard_depth
        sem_id = index_bits(SEMAPHORES)
        members = {
            "instr": In(stream.Signature(fetched_layout(INSTRUCTION_LAYOUT.size))),
            "start": In(1), "abort": In(1), "length": In(32),
            "wait": Out(semaphore_wait_layout(SEMAPHORES, SEMAPHORE_BITS)),
            "granted": In(1),
            "signal_ready": In(1),       # the semaphore file takes the signals shown
            "overflow": In(1),           # ... and they overflowed (none applied; 2 cycles later)
            "signal": Out(semaphore_request_layout(SEMAPHORES, SEMAPHORE_BITS)).array(2),
            "status": Out(engine_status_layout()),
            "active": Out(1),            # running, waiting, or draining in-flight commands
        }
        self._sem_id = sem_id
        kind = queue.engine
        if kind == Engine.DMA:
            noc = self._chip and self._chip.noc
            members.update({
                "desc": Out(stream.Signature(dma_descriptor_layout(config.dma, noc))),
                "dma_done": In(1), "dma_error": In(DmaError)})
            if self._chip is not None:
                members["remote_signal"] = Out(stream.Signature(
                    remote_signal_layout(self._chip)))
        elif kind == Engine.PE:
            from systolica.hdl.contracts import moving_command_layout, weights_command_layout
            members.update({
                "weights_cmd": Out(stream.Signature(weights_command_layout(config.sbuf,
                                                                           config.array))),
                "moving_cmd": Out(stream.Signature(moving_command_layout(config.sbuf,
                                                                         config.array))),
                "load_done": In(1), "multiply_done": In(1)})
        else:
            from systolica.hdl.contracts import act_command_layout
            members.update({
                "act_cmd": Out(stream.Signature(act_command_layout(config))),
                "act_written": In(1),    # the ACT wrote one row to the SBUF
                "param_write": Out(act_param_write_layout(config)),
                "param_busy": In(1),     # the table is writing an ACT_PARAM
                "param_entry": Out(index_bits(ACT_PARAM_ENTRIES))})
        super().__init__(members)

    # --- the engine -----------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        cfg, q = self._config, self._queue
        kind = q.engine
        st = self.status
        sb, arr = cfg.sbuf, cfg.array

        slot = Signal(INSTRUCTION_LAYOUT)
        slot_valid = Signal()
        phase = Signal(range(4))          # 0 CHECK(static), 1 CHECK repeats, 2 WAIT, 3 ISSUE
        pc = st.pc
        loaded = Signal()                 # a LOAD_STATIONARY was issued (since start)
        new_load = Signal()               # ... since the last multiply's first beat
        ended = Signal()                  # END issued
        halting = Signal()
        aborting = Signal()
        halt_code = Signal(IsaError)
        halt_detail = Signal(DmaError)
        # a SIGNAL_REMOTE flit shown and not yet accepted: kept shown (stream rule), also
        # through an abort, and the slot is not refilled under it
        signal_held = Signal()
        running = st.state == EngineState.RUNNING
        waiting = st.state == EngineState.WAITING
        live = running | waiting
        op = slot.header.opcode

        # scoreboard: in-order completion of issued commands
        # ``signals``: which of the two signals has a non-zero count (found at issue: timing)
        entry = data.StructLayout({"kind": 2, "retire": 1, "end": 1, "pc": unsigned(32),
                                   "signal": data.ArrayLayout(slot.header.signal.shape()
                                                              .elem_shape, 2),
                                   "signals": 2})
        # the head in flip-flops (timing: retirement, the signals shown and the wait's
        # ``may_fail`` start at registers, not at a LUT RAM read)
        board = m.submodules.scoreboard = Queue(shape=entry, depth=self._depth,
                                                registered_head=True)
        events = [Signal(range(self._depth + 2), name=f"events{k}") for k in range(3)]
        # ... and whether each count is non-zero, registered with it (timing: the head's
        # completion, and so the wait's ``may_fail``, from a few flip-flops)
        pending = [C(1)] + [Signal(name=f"events{k}_pending") for k in (1, 2)]
        event_in = [C(0), Signal(name="event_a"), Signal(name="event_b")]
        head = board.o.payload
        head_done = board.o.valid & ((head.kind == _IMM) | Array(pending)[head.kind])
        retiring = Signal()
        signalling = Signal()             # the head has signals for the semaphore file
        sent = Signal()                   # ... it took them last cycle: the head leaves now
        m.d.comb += [retiring.eq(head_done & (~signalling | sent)),
                     board.o.ready.eq(retiring)]
        for k in (1, 2):
            dec = retiring & (head.kind == k)
            inc = event_in[k]
            m.d.sync += events[k].eq(events[k] + inc - dec)
            # non-zero next from the flag and "exactly one" (timing: no adder before it)
            one = Signal(name=f"events{k}_one")
            with m.If(inc & ~dec):
                m.d.sync += [pending[k].eq(1), one.eq(~pending[k])]
            with m.Elif(dec & ~inc):
                m.d.sync += [pending[k].eq(~one), one.eq(events[k] == 2)]
        dma_error_seen = Signal(DmaError)
        in_flight = board.o.valid
        empty = ~board.o.valid

        # retire: signals, counters, END. A retiring instruction fails when its copy failed
        # (DMA_ERROR) or a signal would overflow (the semaphore file applies none of them);
        # then nothing after it signals or retires, and the queue halts at its pc.
        failed = Signal()                 # a retirement failed: the rest drains silently
        # A head whose signals the file took leaves the scoreboard in the next cycle (``sent``)
        # and its verdict, registered by the file, comes one cycle after that (``judging``):
        # its retirement counts (RETIRED, DONE) or fails then, and in that cycle nothing after
        # it retires, signals, waits, issues or enters the slot if it fails (timing: the
        # verdict reaches only a few gates before the engine's registers).
        judging = Signal()
        judged_pc = Signal.like(head.pc)
        judged_end = Signal()
        failing = judging & self.overflow
        stopped = failed | failing
        retire_now = retiring & head.retire & ~aborting & ~stopped
        dma_failed = dma_error_seen != DmaError.OK
        fail_now = retire_now & dma_failed
        counted = retire_now & ~dma_failed & ~sent        # counts now (no verdict to wait for)
        judged_ok = judging & ~self.overflow
        m.d.sync += [judging.eq(retire_now & sent), judged_pc.eq(head.pc),
                     judged_end.eq(head.end)]
        # the head's signals wait for the semaphore file (one engine's per cycle); the head
        # leaves in the cycle after it took them, and the file's verdict comes a cycle later
        m.d.comb += signalling.eq(head_done & head.retire & ~aborting & ~stopped & ~dma_failed &
                                  head.signals.any())
        m.d.sync += sent.eq(signalling & ~sent & self.signal_ready)
        # fail_now's and signalling's superset, from the head's registers alone (timing: the
        # wait's valid); the terms it leaves out (aborting, stopped) keep every wait off anyway
        may_fail = head_done & head.retire & (head.signals.any() | dma_failed)
        for j in range(2):
            sig = head.signal[j]
            m.d.comb += [self.signal[j].valid.eq(signalling & ~sent & head.signals[j]),
                         self.signal[j].id.eq(sig.sem), self.signal[j].amount.eq(sig.count)]
        m.d.sync += st.retired.eq(st.retired + counted + judged_ok)
        with m.If((counted & head.end) | (judged_ok & judged_end)):
            m.d.sync += st.state.eq(EngineState.DONE)
        with m.If(live & in_flight):
            m.d.sync += st.busy_cycles.eq(st.busy_cycles + 1)

        # --- per-kind completion events and the DMA error ------------------------------------
        if kind == Engine.DMA:
            m.d.comb += event_in[1].eq(self.dma_done)
            with m.If(self.dma_done & (self.dma_error != DmaError.OK)):
                m.d.sync += dma_error_seen.eq(self.dma_error)
        elif kind == Engine.PE:
            m.d.comb += [event_in[1].eq(self.load_done), event_in[2].eq(self.multiply_done)]
        else:
            # an ACT command is complete when its last row was written to the SBUF (one
            # command at a time: the rows written are this command's)
            rows_left = Signal.like(slot.body.act.rows)
            rows_last = Signal()          # rows_left == 1, registered with it (timing)
            with m.If(self.act_cmd.valid & self.act_cmd.ready):
                m.d.sync += [rows_left.eq(self.act_cmd.payload.rows),
                             rows_last.eq(self.act_cmd.payload.rows == 1)]
            with m.Elif(self.act_written & (rows_left != 0)):
                m.d.sync += [rows_left.eq(rows_left - 1), rows_last.eq(rows_left == 2)]
                m.d.comb += event_in[1].eq(rows_last)

        # --- the slot: take, check, wait, issue --------------------------------------------------
        length = Signal(32)               # the program's, taken at start (as the fetch takes it)
        # The checks that need no iteration run on the slot in the cycle after it was taken
        # (``fresh``) and their verdict is registered (timing: the fetch queue's read, the
        # checks and what the engine does with them in separate cycles). pc, loaded and
        # new_load cannot change in between: the slot is empty when an instruction is taken,
        # and they change only when one issues.
        slot_error = Signal()             # the fetch answered an error for it
        fresh = Signal()
        more = Signal()                   # pc < length (registered with pc: timing)
        checks = static_checks(slot, fetch_error=slot_error, pc=pc,
                               loaded=loaded, load_pending=new_load, config=cfg, queue=q,
                               fingerprint=self._fingerprint, chip=self._chip)
        checked_code = first_error(m, Cat(cond for cond, _ in checks),
                                   [code for _, code in checks], "checked_code")
        static_code = Signal(IsaError)
        static_bad = Signal()             # static_code != OK
        static_detail = Signal(DmaError)
        # the slot's opcode as one flag per opcode of this queue, registered with the checks
        # (timing: no opcode compare before what the flags steer); none for another queue's
        op_flags = {o: Signal(name=f"is_{o.name.lower()}") for o, e in OPCODE_ENGINES.items()
                    if e in (None, q.engine)}

        def op_is(opcode):
            return op_flags.get(opcode, C(0))
        take = live & ~slot_valid & ~ended & ~halting & ~aborting & ~signal_held & ~failing & more
        m.d.comb += self.instr.ready.eq(take | aborting | (st.state != EngineState.RUNNING) &
                                        (st.state != EngineState.WAITING))
        with m.If(take & self.instr.valid):
            m.d.sync += [slot.eq(self.instr.payload.bits), slot_error.eq(self.instr.payload.error),
                         slot_valid.eq(1), phase.eq(0), fresh.eq(1)]
        with m.If(fresh):
            m.d.sync += [fresh.eq(0), static_code.eq(checked_code),
                         static_bad.eq(checked_code != IsaError.OK),
                         *(flag.eq(op == o) for o, flag in op_flags.items()),
                         static_detail.eq(Mux(slot_error, DmaError.AXI_READ_ERROR, DmaError.OK))]

        # repeat iteration (checks, then issue), for MULTIPLY_MOVING and ACT
        reps = Repeats(accumulator_bits=_ACCUMULATOR_BITS)
        rep_first, rep_end, last_rep = reps.first, reps.end, reps.last
        acc_o, acc_p, rep_flags = reps.acc_o, reps.acc_p, reps.flags
        rows_, off0, psum0, step_o, step_p, repeat, limit, iterates = repeat_fields(
            m, slot, config=cfg, engine=kind, op_is=op_is)
        if kind != Engine.DMA:
            bank_rows, psum_rows = cfg.psum.bank_rows, cfg.psum.rows
            row_in_bank = acc_p[:bank_rows.bit_length() - 1]
            flags_now = Cat(acc_o + rows_ > limit, acc_p >= psum_rows,
                            row_in_bank + rows_ > bank_rows)
            rep_code = Mux(rep_flags[1], IsaError.PSUM_RANGE,
                           Mux(rep_flags[2], IsaError.PSUM_BANK, IsaError.SBUF_RANGE))

        def halt(code, detail=DmaError.OK):
            return [halting.eq(1), halt_code.eq(code), halt_detail.eq(detail), slot_valid.eq(0)]

        issue_ok = Signal()               # the kind's command stream may take a command now
        can_issue = Signal()              # the slot holds an instruction ready to issue
        # Nothing issues in a cycle where a retirement may fail: a DMA error, a signalling
        # head leaving (``sent``) or its overflow verdict (``stopped``, a register). The DMA
        # error term is ``retire_now & dma_failed`` from registers (its other terms are here).
        # A command leaves the slot (``issued``) into its stream's output register and the slot
        # moves on (next repeat, next instruction) at the same edge: one command per cycle.
        issued = Signal()                 # a command (or an immediate) left the slot this cycle
        m.d.comb += can_issue.eq(slot_valid & (phase == 3) & ~aborting & ~stopped & ~sent &
                                 ~(head_done & head.retire & dma_failed))
        # the waits are shown from the check on (the semaphore file checks them a cycle ahead)
        m.d.comb += [self.wait.pair[j].id.eq(slot.header.wait[j].sem) for j in range(2)]
        m.d.comb += [self.wait.pair[j].amount.eq(slot.header.wait[j].count) for j in range(2)]
        with m.If(slot_valid & ~aborting):
            with m.Switch(phase):
                with m.Case(0):
                    with m.If(fresh):
                        pass                      # the checks run
                    with m.Elif(static_bad):
                        m.d.sync += halt(static_code, static_detail)
                    with m.Elif(iterates):
                        m.d.sync += phase.eq(1)
                    with m.Else():
                        m.d.sync += phase.eq(2)
                if kind != Engine.DMA:
                    with m.Case(1):
                        with m.If(rep_end):
                            with m.If(rep_flags != 0):
                                m.d.sync += halt(rep_code)
                            with m.Else():
                                m.d.sync += phase.eq(2)
                with m.Case(2):
                    # DMA: the next copy waits only once the previous one completed (a DMA
                    # error halts the queue before anything after it consumed a wait). Nor
                    # does anything wait while a retirement might fail this cycle: the
                    # semaphore file's overflow verdict stays off the wait path (timing).
                    m.d.comb += self.wait.valid.eq(~may_fail & ~stopped &
                                                   (empty if kind == Engine.DMA else 1))
                    with m.If(self.wait.valid & self.granted):
                        m.d.sync += [phase.eq(3), st.state.eq(EngineState.RUNNING)]
                    with m.Else():
                        bad0 = slot.header.wait[0].count != 0
                        m.d.sync += [st.state.eq(EngineState.WAITING),
                                     st.semaphore.eq(Mux(bad0, slot.header.wait[0].sem,
                                                         slot.header.wait[1].sem))]
                with m.Case(3):
                    with m.If(can_issue & issue_ok & board.i.ready):
                        m.d.comb += issued.eq(1)
        # the scoreboard entry of an issued command
        last = Signal()                   # the instruction's last command (MATMUL: pe_loop's)
        m.d.comb += [last.eq(~iterates | last_rep if kind != Engine.DMA else 1),
                     board.i.valid.eq(issued),
                     board.i.payload.retire.eq(last),
                     board.i.payload.end.eq(op_is(Opcode.END)), board.i.payload.pc.eq(pc),
                     board.i.payload.signal.eq(Mux(last, slot.header.signal.as_value(), 0)),
                     board.i.payload.signals.eq(Cat(last & (s.count != 0)
                                                    for s in slot.header.signal))]
        with m.If(issued & last):
            m.d.sync += [slot_valid.eq(0), pc.eq(pc + 1), more.eq(pc + 1 < length)]
            with m.If(op_is(Opcode.END)):
                m.d.sync += ended.eq(1)

        # The repeat state's updates (rep, offsets, range flags) need neither slot_valid nor
        # aborting: an empty slot's are never read (an instruction taken starts in phase 0,
        # which sets them up). The checks of phase 1 wait for a MATMUL's scaling.
        phase0, phase1 = phase == 0, phase == 1
        matmul = None
        if kind == Engine.PE:
            matmul = MatmulLoop(rows=arr.rows, w_elements=sb.depth * sb.word_bytes //
                                (DTYPES[arr.stationary_dtype][0] // 8),
                                accumulator_bits=_ACCUMULATOR_BITS)
            checking = phase1 & ~matmul.scaling
        else:
            checking = phase1
        # the instruction's own (MULTIPLY_MOVING, ACT; MATMUL's within a k tile)
        restart = phase0 | (checking & rep_end)
        step = (checking & ~rep_end) | (issued & ~last)
        if matmul is not None:
            mm = op_is(Opcode.MATMUL)
            matmul.decide(m, slot=slot, mm=mm, phase0=phase0, phase1=phase1, phase2=phase == 2,
                          issued=issued, last_rep=last_rep)
            step = (checking & ~rep_end) | (issued & ~last & ~matmul.holds_repeat)
            reps.add(m, repeat=repeat, restart=restart | matmul.next_tile, step=step,
                     acc_o=[(restart, off0), (step, acc_o + step_o),
                            (matmul.scale_add, acc_o + matmul.a_step_shifted),
                            (matmul.next_tile, matmul.a_offset + slot.body.matmul.a_step)],
                     acc_p=[(restart | matmul.next_tile, psum0), (step, acc_p + step_p)],
                     flags=[(phase0, 0), (checking & ~rep_end, rep_flags | flags_now),
                            (matmul.scaled, matmul.w_out)])
        elif kind != Engine.DMA:
            reps.add(m, repeat=repeat, restart=restart, step=step,
                     acc_o=[(restart, off0), (step, acc_o + step_o)],
                     acc_p=[(restart, psum0), (step, acc_p + step_p)],
                     flags=[(phase0, 0), (checking & ~rep_end, rep_flags | flags_now)])

        # --- kind-specific issue ---------------------------------------------------------------
        is_cmd = Signal()
        if kind == Engine.DMA:
            d = slot.body.dma_copy
            desc = self._output_register(m, self.desc, "desc")
            m.d.comb += is_cmd.eq(op_is(Opcode.DMA_COPY))
            for name in ("src", "dst"):
                side, out = getattr(d, name), getattr(desc.payload, name)
                # (a remote destination is checked and walked as an SBUF one)
                m.d.comb += [out.sbuf.eq((side.space == Space.SBUF) |
                                         (side.space == Space.REMOTE_SBUF)),
                             out.addr.eq(side.addr)]
                m.d.comb += [out.count[i].eq(side.count[i]) for i in range(3)]
                m.d.comb += [out.stride[i].eq(side.stride[i]) for i in range(3)]
            m.d.comb += [desc.payload.elem_bytes.eq(d.elem_bytes),
                         desc.payload.semaphore.eq(q.index % cfg.dma.semaphores),
                         desc.valid.eq(can_issue & is_cmd & empty)]
            if self._chip is None:
                m.d.comb += issue_ok.eq(empty & (~is_cmd | desc.ready))   # fully serial
            else:
                # SIGNAL_REMOTE: one flit, sent once everything before it completed (a remote
                # copy completes when its last flit was accepted), retired when accepted.
                rs, sr = self.remote_signal, slot.body.signal_remote
                is_signal = op_is(Opcode.SIGNAL_REMOTE)
                m.d.comb += [
                    desc.payload.remote.valid.eq(d.dst.space == Space.REMOTE_SBUF),
                    desc.payload.remote.x.eq(d.dst_tile_x), desc.payload.remote.y.eq(d.dst_tile_y),
                    rs.payload.tile.x.eq(sr.tile_x), rs.payload.tile.y.eq(sr.tile_y),
                    rs.payload.signal.sem.eq(sr.sem), rs.payload.signal.count.eq(sr.count),
                    rs.valid.eq((can_issue & is_signal & empty) | signal_held),
                    issue_ok.eq(empty & Mux(is_cmd, desc.ready, ~is_signal | rs.ready)),
                ]
                m.d.sync += signal_held.eq(rs.valid & ~rs.ready)
        elif kind == Engine.PE:
            ls, mm = slot.body.load_stationary, slot.body.multiply_moving
            # no output register: the tile's PE command slices (Tile.pe_command_slices) are
            # one, and a second would delay every weight load by a cycle
            wc, mc = self.weights_cmd, self.moving_cmd
            ready_phase = can_issue
            m.d.comb += [
                wc.payload.offset.eq(ls.offset), wc.payload.rows.eq(ls.k),
                wc.payload.cols.eq(ls.n),
                wc.valid.eq(ready_phase & op_is(Opcode.LOAD_STATIONARY) & board.i.ready),
                mc.payload.offset.eq(acc_o), mc.payload.count.eq(mm.m),
                mc.payload.start.eq(new_load & rep_first), mc.payload.addr.eq(acc_p),
                mc.payload.accumulate.eq(mm.accumulate),
                mc.valid.eq(ready_phase & op_is(Opcode.MULTIPLY_MOVING) & board.i.ready),
            ]
            with m.If(op_is(Opcode.LOAD_STATIONARY)):
                m.d.comb += [issue_ok.eq(wc.ready), board.i.payload.kind.eq(_KIND_A)]
            with m.Elif(op_is(Opcode.MULTIPLY_MOVING)):
                m.d.comb += [issue_ok.eq(mc.ready), board.i.payload.kind.eq(_KIND_B)]
            with m.Else():
                m.d.comb += issue_ok.eq(1)
            with m.If(issued & op_is(Opcode.LOAD_STATIONARY)):
                m.d.sync += [loaded.eq(1), new_load.eq(1)]
            with m.If(issued & op_is(Opcode.MULTIPLY_MOVING) & rep_first):
                m.d.sync += new_load.eq(0)
            matmul.issue(m, slot=slot, mm=op_is(Opcode.MATMUL), issued=issued,
                         rep_first=rep_first, last_rep=last_rep, issue_ok=issue_ok, last=last,
                         can_issue=can_issue, board=board, weights_cmd=wc, moving_cmd=mc,
                         kinds=(_KIND_A, _KIND_B), loaded=loaded, new_load=new_load)
        else:
            a, ap = slot.body.act, slot.body.act_param
            ac = self._output_register(m, self.act_cmd, "act_cmd")
            m.d.comb += [
                ac.payload.psum_addr.eq(acc_p), ac.payload.rows.eq(a.rows),
                ac.payload.offset.eq(acc_o), ac.payload.cols.eq(a.cols),
                ac.payload.mode.eq(Cat(a.mode, a.mode_high)), ac.payload.relu.eq(a.relu),
                ac.payload.zero_point.eq(a.zero_point),
                ac.valid.eq(can_issue & op_is(Opcode.ACT) & empty),
            ]
            param_entry = Signal.like(self.param_entry)
            m.d.comb += self.param_entry.eq(param_entry)
            with m.If(op_is(Opcode.ACT)):
                m.d.comb += [issue_ok.eq(ac.ready & empty & ~self.param_busy),
                             board.i.payload.kind.eq(_KIND_A)]
            with m.Elif(op_is(Opcode.ACT_PARAM)):
                # never under a running ACT command or a table write
                m.d.comb += issue_ok.eq(empty & ~self.param_busy)
            with m.Else():
                m.d.comb += issue_ok.eq(1)
            with m.If(issued & op_is(Opcode.ACT)):
                m.d.sync += param_entry.eq(a.param)
            pw = self.param_write
            m.d.comb += [pw.valid.eq(issued & op_is(Opcode.ACT_PARAM)), pw.entry.eq(ap.entry),
                         pw.first_col.eq(ap.first_col), pw.count.eq(ap.count),
                         pw.shift.eq(ap.shift.as_value())]
            m.d.comb += [pw.scale[i].eq(ap.scale[i]) for i in range(ACT_PARAM_GROUP)]
        if kind == Engine.DMA:
            m.d.comb += board.i.payload.kind.eq(Mux(is_cmd, _KIND_A, _IMM))

        # --- state ------------------------------------------------------------------------------
        overrun = live & ~slot_valid & ~ended & ~halting & ~more
        with m.If(overrun):
            m.d.sync += halt(IsaError.QUEUE_OVERRUN)
        with m.If(fail_now | failing):
            m.d.sync += [failed.eq(1), halting.eq(1), slot_valid.eq(0),
                         pc.eq(Mux(failing, judged_pc, head.pc)),
                         halt_code.eq(Mux(failing, IsaError.SEMAPHORE_OVERFLOW,
                                          IsaError.DMA_ERROR)),
                         halt_detail.eq(dma_error_seen)]
        with m.If(live & halting & empty):
            m.d.sync += [st.state.eq(EngineState.HALTED), st.error.eq(halt_code),
                         st.dma_error.eq(halt_detail), halting.eq(0)]
        with m.If(self.abort):
            m.d.sync += [aborting.eq(1), slot_valid.eq(0)]
        with m.If(aborting & empty):
            m.d.sync += [aborting.eq(0), halting.eq(0)]
            with m.If(live):
                m.d.sync += [st.state.eq(EngineState.HALTED), st.error.eq(IsaError.ABORTED)]
        with m.If(self.start & ~live & ~aborting):
            m.d.sync += [pc.eq(0), length.eq(self.length), more.eq(self.length != 0),
                         st.retired.eq(0), st.busy_cycles.eq(0), st.error.eq(IsaError.OK),
                         st.dma_error.eq(DmaError.OK),
                         st.state.eq(Mux(self.length != 0, EngineState.RUNNING,
                                         EngineState.IDLE)),
                         loaded.eq(0), new_load.eq(0), ended.eq(0), halting.eq(0),
                         slot_valid.eq(0), dma_error_seen.eq(DmaError.OK), failed.eq(0)]
        m.d.comb += self.active.eq(live | aborting | in_flight | signal_held)
        return m

    @staticmethod
    def _output_register(m, port, name):
        """A two-entry register queue in front of command stream ``port`` (its head a register);
        returns its input stream. Its ``ready`` is "the entry behind the head is free", a
        flip-flop, so the consumer's ``ready`` does not reach the issue decision (timing), one
        command per cycle passes, and a command is held shown until accepted, also through an
        abort (the stream rule)."""
        register = m.submodules[f"{name}_register"] = Queue(
            shape=port.payload.shape(), depth=2, registered_head=True)
        wiring.connect(m, register.o, wiring.flipped(port))
        return register.i
