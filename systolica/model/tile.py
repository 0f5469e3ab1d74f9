"""Instruction-level NumPy model of one tile: runs the same binary program as the RTL
(docs/isa.md) and reports the same error codes, plus what hardware cannot see (data races,
deadlocks: :mod:`.checks`).

Every queue executes in order; the model runs one instruction at a time, atomically (wait,
check, effect, signal), choosing among the queues whose next instruction can start: round robin
by default, or at random with ``seed`` (a race-free program gives the same final state under
every schedule). Memories (``dram``, ``sbuf``, ``psum``) persist across runs; a run starts from
the control state after reset (semaphores 0, no weights loaded, every ACT parameter (1, 0)).

State layout (docs/memories.md): ``sbuf`` is the linear SBUF (``partitions * partition_bytes``
uint8, partition after partition, as the DMA addresses it); ``psum`` is ``(banks * bank_rows, C)``
int64 accumulators (row = bank * bank_rows + row); ``dram`` is a uint8 array.
"""

import random

import numpy as np

from systolica import isa
from systolica.codes import (ACT_MODE_BYTES, ACT_MODE_FLOAT, ACT_MODE_RANGE, ActMode, DmaError,
                             EngineState, IsaError)
from systolica.config import TileConfig, dtype_numpy, is_float_dtype
from systolica.isa import Opcode, Space
from systolica.model.checks import Access, Deadlock, RaceDetector, VectorClocks
from systolica.model.dma import (DmaSide, DmaTransfer, dma_check_reference, dma_copy_reference,
                                 side_offsets, side_range)
from systolica.model.fp import act_convert_fp, matmul_fp, psum_accumulate_fp
from systolica.model.run import (ProgramMismatch, QueueResult, RemoteHook, RunContext,  # noqa: F401
                                 RunResult, TileCheckError)
from systolica.model.reference import requantize, wrap_signed


__all__ = ["TileModel", "RunResult", "QueueResult", "ProgramMismatch", "TileCheckError",
           "RunContext", "RemoteHook"]


#: SBUF element type of each ACT mode (floating-point outputs as their bit patterns).
_ACT_DTYPES = {ActMode.INT8: "<i1", ActMode.UINT8: "<u1", ActMode.INT16: "<i2",
               ActMode.INT32: "<i4", ActMode.BF16: "<u2", ActMode.FP8_E4M3: "<u1",
               ActMode.FP8_E5M2: "<u1", ActMode.FP32: "<u4"}


def _operand_dtype(name):
    """The NumPy type of a tensor-engine operand in the SBUF (little-endian)."""
    return dtype_numpy(name) if is_float_dtype(name) else np.dtype(name).newbyteorder("<")


class _Queue:
    def __init__(self, spec, words):
        self.spec, self.words = spec, words
        self.pc = 0
        self.headers = {}
        self.epoch_pcs = []
        self.static = {}              # pc -> the _Halt of its static checks (or None)
        self.loaded = False           # a LOAD_STATIONARY passed its checks (MULTIPLY_BEFORE_LOAD)
        self.pending = False          # ... and no MULTIPLY_MOVING since (LOAD_PENDING)
        self.result = QueueResult(spec.name, spec.engine)

    @property
    def active(self):
        return self.result.state not in (EngineState.DONE, EngineState.HALTED)

    def header(self):
        if self.pc not in self.headers:
            self.headers[self.pc] = isa.decode_header(self.words[self.pc])
        return self.headers[self.pc]


class _Halt(Exception):
    def __init__(self, code, detail=None):
        self.code, self.detail = code, detail


def write_bytes(memory, addr, array):
    """Store ``array``'s bytes in the byte array ``memory`` at ``addr``; the end address."""
    raw = np.ascontiguousarray(array).view(np.uint8).ravel()
    memory[addr:addr + raw.size] = raw
    return addr + raw.size


def read_bytes(memory, addr, shape, dtype):
    """A copy of ``shape`` elements of ``dtype`` from the byte array ``memory`` at ``addr``."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    return memory[addr:addr + size].copy().view(dtype).reshape(shape)


class TileModel:
    """One tile (``config``) with ``dram_bytes`` of DRAM (or the given ``dram`` array).

    ``remote``: the hook of a chip's tile (:class:`RemoteHook`, given by
    :class:`systolica.model.chip.ChipModel`): it names the tile, the chip's fingerprint and mesh,
    and takes the tile's remote operations (REMOTE_SBUF copies, SIGNAL_REMOTE). Without it the
    tile is standalone and remote operations halt with ``BAD_DMA_SPACE`` (docs/chip.md)."""

    def __init__(self, config: TileConfig, *, dram_bytes=1 << 20, dram=None, remote=None):
        if not isinstance(config, TileConfig):
            raise TypeError(f"TileModel config must be a TileConfig; got {config!r}")
        self.config = config
        self.remote = remote
        s, a, p = config.sbuf, config.array, config.psum
        self.dram = (np.zeros(dram_bytes, dtype=np.uint8) if dram is None
                     else np.asarray(dram, dtype=np.uint8))
        if self.dram.ndim != 1:
            raise ValueError("TileModel dram must be a 1-D uint8 array")
        self.sbuf = np.zeros(s.partitions * s.partition_bytes, dtype=np.uint8)
        # Integer engines: int64 accumulators; floating point: fp32 (docs/floating_point.md).
        self.psum = np.zeros((p.rows, a.cols), dtype=np.float32 if a.is_float else np.int64)
        self.queue_specs = isa.tile_queues(config)
        self.fingerprint = isa.fingerprint(config) if remote is None else remote.fingerprint
        self.tile = None if remote is None else remote.tile
        self._reset_control()

    # --- host-side helpers ----------------------------------------------------------------------

    def sbuf_partitions(self, dtype=np.uint8):
        """The SBUF as ``(partitions, elements)`` of ``dtype`` (a view)."""
        s = self.config.sbuf
        return self.sbuf.reshape(s.partitions, s.partition_bytes).view(np.dtype(dtype))

    def write_dram(self, addr, array):
        return write_bytes(self.dram, addr, array)

    def read_dram(self, addr, shape, dtype):
        return read_bytes(self.dram, addr, shape, dtype)

    def _reset_control(self):
        c = self.config.array.cols
        self.semaphores = [0] * isa.SEMAPHORES
        self.weights_active = None          # (K, C) int64 of the weights in use
        self.weights_shadow = None          # loaded, not yet switched to
        self.act_scale = np.ones((isa.ACT_PARAM_ENTRIES, c), dtype=np.int64)
        self.act_shift = np.zeros((isa.ACT_PARAM_ENTRIES, c), dtype=np.int64)

    # --- running --------------------------------------------------------------------------------

    def run(self, program, *, seed=None, check_header=True):
        """Run a :class:`~systolica.isa.Program` or its binary image. ``seed``: random schedule
        (``None``: round robin). Raises :class:`ProgramMismatch` when the image's fingerprint is
        not this config's (unless ``check_header=False``: then the queues' CHECKs halt them)."""
        self.start(program, check_header=check_header)
        log = []
        rng = random.Random(seed) if seed is not None else None
        turn = 0
        while True:
            ready = self.ready_queues()
            if not ready:
                break
            if rng is not None:
                q = rng.choice(ready)
            else:
                q = min(ready, key=lambda x: (x.spec.index - turn) % len(self._queues))
                turn = q.spec.index + 1
            self.step(q, log)
        return self.finish(log)

    def start(self, program, *, check_header=True, context=None):
        """Load ``program`` and reset the control state; the run is then driven by
        :meth:`ready_queues`, :meth:`step` and :meth:`finish` (:meth:`run` does all of it; a
        chip interleaves its tiles' steps). ``context``: the chip's shared happens-before state
        (:class:`RunContext`); default: this tile's own."""
        if isinstance(program, isa.Program):
            fp = program.fingerprint
            words = {name: [isa.encode_word(i) for i in insns]
                     for name, insns in program.queues.items()}
        else:
            fp, words = isa.decode_words(bytes(program))
        where = "" if self.tile is None else f"tile {self.tile}: "
        if check_header and fp != self.fingerprint:
            raise ProgramMismatch(f"{where}program built for config fingerprint 0x{fp:08x}; this "
                                  f"tile's is 0x{self.fingerprint:08x}")
        known = {q.name: q for q in self.queue_specs}
        unknown = [n for n in words if n not in known]
        if unknown:
            raise ProgramMismatch(f"{where}program has queue(s) {', '.join(unknown)}; this tile "
                                  f"has {', '.join(known)}")
        self._reset_control()
        queues = [_Queue(spec, words.get(spec.name, [])) for spec in self.queue_specs]
        for q in queues:
            if not q.words:
                q.result.state = EngineState.DONE       # an empty queue is never started
        self._queues = queues
        if context is None:
            clocks = VectorClocks(len(queues), isa.SEMAPHORES)
            spaces = {"dram": self.dram.size, "sbuf": self.sbuf.size, "psum": self.psum.size}
            context = RunContext(clocks, RaceDetector(spaces, len(queues), clocks,
                                                      self._describe))
        self._ctx = context
        self._clocks = context.clocks

    def ready_queues(self):
        """The queues whose next instruction can start now (a bad one halts at once)."""
        return [q for q in self._queues if q.active and self._can_start(q)]

    def waiting(self):
        """``[(Access, ((sem, count, value now), ...))]`` of every unfinished queue."""
        out = []
        for q in self._queues:
            if q.active:
                _, waits, _ = q.header()
                out.append((self._access_of(q, q.pc),
                            tuple((s, n, self.semaphores[s]) for s, n in waits if n)))
        return out

    def finish(self, log, *, races=True):
        """The :class:`RunResult` once no queue can start (``races``: include this run's races;
        a chip reports them for all its tiles at once)."""
        waiting = self.waiting()
        for q in self._queues:
            if q.active:
                q.result.state = EngineState.WAITING
                q.result.pc = q.pc
        return RunResult({q.spec.name: q.result for q in self._queues}, list(self.semaphores),
                         list(self._ctx.races.races) if races else [],
                         Deadlock(tuple(waiting)) if waiting and races else None, log)

    def _describe(self, qi, epoch):
        q = self._queues[qi]
        return self._access_of(q, q.epoch_pcs[epoch - 1])

    def _access_of(self, q, pc, via=""):
        if pc >= len(q.words):
            return Access(q.spec.name, pc, "<past the end>", self.tile, via)
        try:
            text = isa.disassemble_instruction(isa.decode_word(q.words[pc]))
        except isa.IsaEncodingError as e:
            text = f"<{e}>"
        return Access(q.spec.name, pc, text, self.tile, via)

    @staticmethod
    def _bad_semaphores(waits, signals):
        used = [s for s, n in (*waits, *signals) if n]
        if any(s >= isa.SEMAPHORES for s in used):
            return True
        return waits[0][1] and waits[1][1] and waits[0][0] == waits[1][0]

    def _static_error(self, q):
        """The :class:`_Halt` of the instruction at ``q.pc`` found from its word and the queue's
        own earlier instructions (docs/isa.md, "Execution": checked before its waits), or None.
        Cached per pc: only this queue's earlier instructions change what it depends on."""
        pc = q.pc
        if pc in q.static:
            return q.static[pc]
        halt = None
        try:
            if pc >= len(q.words):
                raise _Halt(IsaError.QUEUE_OVERRUN)
            code, waits, signals = q.header()
            try:
                opcode = Opcode(code)
            except ValueError:
                raise _Halt(IsaError.UNKNOWN_OPCODE) from None
            engine = isa.OPCODE_ENGINES[opcode]
            if engine is not None and engine != q.spec.engine:
                raise _Halt(IsaError.WRONG_ENGINE)
            insn = isa.decode_word(q.words[pc])
            if (pc == 0 and opcode != Opcode.CHECK) or \
                    (opcode == Opcode.CHECK and insn.fingerprint != self.fingerprint):
                raise _Halt(IsaError.CONFIG_MISMATCH)
            if opcode == Opcode.CHECK and insn.queue != q.spec.index:
                raise _Halt(IsaError.QUEUE_MISMATCH)
            if self._bad_semaphores(waits, signals):
                raise _Halt(IsaError.BAD_SEMAPHORE)
            check = getattr(self, f"_check_{opcode.name.lower()}", None)
            if check is not None:
                check(insn, q)
        except _Halt as h:
            halt = h
        q.static[pc] = halt
        return halt

    def _can_start(self, q):
        if self._static_error(q) is not None:
            return True
        _, waits, _ = q.header()
        return all(self.semaphores[s] >= n for s, n in waits if n)

    def step(self, q, log):
        """Execute the next instruction of ready queue ``q`` (one of :meth:`ready_queues`)."""
        result = q.result
        result.state = EngineState.RUNNING
        pc = q.pc
        try:
            halt = self._static_error(q)
            if halt is not None:
                raise halt
            code, waits, signals = q.header()
            opcode = Opcode(code)
            ctx = self._ctx
            qi = ctx.queue_base + q.spec.index
            self._epoch = self._clocks.tick(qi)
            q.epoch_pcs.append(pc)
            self._qi = qi
            for s, n in waits:
                if n:
                    self.semaphores[s] -= n
                    self._clocks.wait(qi, ctx.sem_base + s, n)
            insn = isa.decode_word(q.words[pc])
            getattr(self, f"_exec_{opcode.name.lower()}")(insn, q)
            added = {}
            for s, n in signals:
                if n:
                    added[s] = added.get(s, 0) + n
            if any(self.semaphores[s] + n > isa.SEMAPHORE_MAX for s, n in added.items()):
                raise _Halt(IsaError.SEMAPHORE_OVERFLOW)
            for s, n in signals:
                if n:
                    self.semaphores[s] += n
                    self._clocks.signal(qi, ctx.sem_base + s, n)
        except _Halt as halt:
            result.state, result.pc = EngineState.HALTED, pc
            result.error, result.detail = halt.code, halt.detail
            return
        result.retired.append(pc)
        log.append((q.spec.name, pc))
        result.pc = pc
        q.pc = pc + 1
        if opcode == Opcode.END:
            result.state = EngineState.DONE

    def _access(self, space, idx, write):
        self._ctx.races.access(self._qi, self._epoch, self._ctx.spaces.get(space, space),
                               np.asarray(idx, dtype=np.int64).ravel(), write)

    # --- instructions ---------------------------------------------------------------------------

    def _exec_end(self, insn, q):
        pass

    _exec_nop = _exec_check = _exec_end       # CHECK: all of it is in _static_error

    def _dma_sides(self, insn):
        return [insn.side(name) for name in ("src", "dst")]

    def _check_remote_tile(self, x, y):
        """A remote operation's destination tile: BAD_DMA_SPACE outside a chip, BAD_REMOTE_TILE
        outside the mesh (docs/chip.md, "Errors")."""
        if self.remote is None:
            raise _Halt(IsaError.BAD_DMA_SPACE)
        width, height = self.remote.mesh
        if x >= width or y >= height:
            raise _Halt(IsaError.BAD_REMOTE_TILE)

    def _check_dma_copy(self, insn, q):
        dma = self.config.dma
        src, dst = self._dma_sides(insn)
        if src.space not in (Space.DRAM, Space.SBUF) or \
                dst.space not in (Space.DRAM, Space.SBUF, Space.REMOTE_SBUF):
            raise _Halt(IsaError.BAD_DMA_SPACE)
        if dst.space == Space.REMOTE_SBUF:
            self._check_remote_tile(insn.dst_tile_x, insn.dst_tile_y)
        lo, hi = -(1 << (dma.addr_width - 1)), (1 << (dma.addr_width - 1))
        for side in (src, dst):
            if (side.addr >= 1 << dma.addr_width or any(c >= 1 << dma.count_bits for c in side.counts)
                    or any(not lo <= st < hi for st in side.strides)):
                raise _Halt(IsaError.DMA_FIELD_RANGE)
        if insn.elem_bytes >= 1 << dma.elem_bits:
            raise _Halt(IsaError.DMA_FIELD_RANGE)

    def _check_signal_remote(self, insn, q):
        self._check_remote_tile(insn.tile_x, insn.tile_y)
        if insn.sem >= isa.SEMAPHORES:
            raise _Halt(IsaError.BAD_SEMAPHORE)

    def _exec_dma_copy(self, insn, q):
        """The DMA's own checks (docs/dma.md) come at execution, after the waits. A remote SBUF
        destination is checked as a local SBUF (every tile has the same SBUF); its bytes go to
        the chip as one message of WRITE flits, in the order the DMA writes them."""
        dma = self.config.dma
        sides = self._dma_sides(insn)
        remote = sides[1].space == Space.REMOTE_SBUF
        src, dst = (DmaSide("dram" if s.space == Space.DRAM else "sbuf", s.addr, tuple(s.counts),
                            tuple(s.strides)) for s in sides)
        transfer = DmaTransfer(src, dst, insn.elem_bytes, config=dma)
        code = dma_check_reference(transfer, addr_width=dma.addr_width, sbuf_bytes=self.sbuf.size,
                                   semaphores=1)
        if code is not DmaError.OK:
            raise _Halt(IsaError.DMA_ERROR, code)
        for side, error in ((src, DmaError.AXI_READ_ERROR), (dst, DmaError.AXI_WRITE_ERROR)):
            if side.space == "dram" and side_range(side, insn.elem_bytes)[1] > self.dram.size:
                raise _Halt(IsaError.DMA_ERROR, error)    # beyond the DRAM: DECERR, nothing written
        src_offsets = side_offsets(src, insn.elem_bytes)
        self._access(src.space, src_offsets, False)
        if remote:
            values = (self.dram if src.space == "dram" else self.sbuf)[src_offsets]
            self.remote.write(self, (insn.dst_tile_x, insn.dst_tile_y), dst, insn.elem_bytes,
                              values)
            return
        self._access(dst.space, side_offsets(dst, insn.elem_bytes), True)
        dma_copy_reference(transfer, self.dram, self.sbuf)

    def _exec_signal_remote(self, insn, q):
        self.remote.signal(self, (insn.tile_x, insn.tile_y), insn.sem, insn.count)

    def _partition_bytes(self, partitions, first_elem, count, elem_bytes):
        pb = self.config.sbuf.partition_bytes
        return (np.arange(partitions)[:, None] * pb + first_elem * elem_bytes
                + np.arange(count * elem_bytes)[None, :])

    def _elements(self, dtype_or_bytes):
        nbytes = dtype_or_bytes if isinstance(dtype_or_bytes, int) else \
            np.dtype(dtype_or_bytes).itemsize
        return self.config.sbuf.partition_bytes // nbytes

    def _check_load_stationary(self, insn, q):
        a = self.config.array
        if not 1 <= insn.k <= a.rows:
            raise _Halt(IsaError.BAD_K)
        if not 1 <= insn.n <= a.cols:
            raise _Halt(IsaError.BAD_N)
        if insn.offset + insn.k > self._elements(_operand_dtype(a.stationary_dtype)):
            raise _Halt(IsaError.SBUF_RANGE)
        if q.pending:
            raise _Halt(IsaError.LOAD_PENDING)

    def _exec_load_stationary(self, insn, q):
        a = self.config.array
        dtype = _operand_dtype(a.stationary_dtype)
        view = self.sbuf_partitions(dtype)
        w = np.zeros((insn.k, a.cols), dtype=dtype if a.is_float else np.int64)
        w[:, :insn.n] = view[:insn.n, insn.offset:insn.offset + insn.k].T
        self._access("sbuf", self._partition_bytes(insn.n, insn.offset, insn.k, dtype.itemsize),
                     False)
        self.weights_shadow = w
        q.loaded = q.pending = True

    def _check_ranges(self, steps, count, elements, *, sbuf_out=False):
        """Every repeat's PSUM rows and SBUF elements; the first code in the order PSUM_RANGE,
        PSUM_BANK, SBUF_RANGE that any repeat has (the hardware checks all repeats first).
        ``sbuf_out``: another SBUF range of the instruction (a MATMUL's W) is out already."""
        p = self.config.psum
        seen = {IsaError.SBUF_RANGE} if sbuf_out else set()
        for row, offset in steps:
            if row >= p.rows:
                seen.add(IsaError.PSUM_RANGE)
            if row % p.bank_rows + count > p.bank_rows:
                seen.add(IsaError.PSUM_BANK)
            if offset + count > elements:
                seen.add(IsaError.SBUF_RANGE)
        for code in (IsaError.PSUM_RANGE, IsaError.PSUM_BANK, IsaError.SBUF_RANGE):
            if code in seen:
                raise _Halt(code)

    @staticmethod
    def _repeat_steps(insn):
        """(PSUM row, SBUF element) of every repeat of a MULTIPLY_MOVING or an ACT."""
        return [(insn.psum_addr + r * insn.psum_step, insn.offset + r * insn.offset_step)
                for r in range(insn.repeat)]

    def _check_multiply_moving(self, insn, q):
        if not q.loaded:
            raise _Halt(IsaError.MULTIPLY_BEFORE_LOAD)
        if insn.m == 0 or insn.repeat == 0:
            raise _Halt(IsaError.BAD_COUNT)
        self._check_ranges(self._repeat_steps(insn), insn.m,
                           self._elements(_operand_dtype(self.config.array.moving_dtype)))

    def _exec_multiply_moving(self, insn, q):
        a = self.config.array
        dtype = _operand_dtype(a.moving_dtype)
        view = self.sbuf_partitions(dtype)
        if self.weights_shadow is not None:          # the first multiply after a load switches
            self.weights_active, self.weights_shadow = self.weights_shadow, None
        q.pending = False
        w = self.weights_active
        k, cols, m = w.shape[0], a.cols, insn.m
        for row, offset in self._repeat_steps(insn):
            moving = view[:k, offset:offset + m].T
            self._access("sbuf", self._partition_bytes(k, offset, m, dtype.itemsize), False)
            self._access("psum", (row + np.arange(m))[:, None] * cols + np.arange(cols), True)
            if a.is_float:
                product = matmul_fp(moving, w)
                if insn.accumulate:
                    product = psum_accumulate_fp(self.psum[row:row + m], product)
                self.psum[row:row + m] = product
                continue
            product = moving.astype(np.int64) @ w
            if insn.accumulate:
                product = product + self.psum[row:row + m]
            self.psum[row:row + m] = wrap_signed(product, a.acc_bits)

    def _check_matmul(self, insn, q):
        """Every k tile's loads and multiplies checked before the first is issued (the checks
        of LOAD_STATIONARY and MULTIPLY_MOVING, one code for the whole loop)."""
        a = self.config.array
        if not 1 <= insn.k_last <= a.rows:
            raise _Halt(IsaError.BAD_K)
        if not 1 <= insn.n <= a.cols:
            raise _Halt(IsaError.BAD_N)
        if insn.tiles == 0 or insn.m == 0 or insn.repeat == 0:
            raise _Halt(IsaError.BAD_COUNT)
        if q.pending:
            raise _Halt(IsaError.LOAD_PENDING)
        tiles = isa.matmul_tiles(insn, a.rows)
        w_elems = self._elements(_operand_dtype(a.stationary_dtype))
        moving = self._elements(_operand_dtype(a.moving_dtype))
        steps = [(row, a_off + off - insn.offset) for _, _, a_off, _ in tiles
                 for row, off in self._repeat_steps(insn)]
        self._check_ranges(steps, insn.m, moving,
                           sbuf_out=any(w_off + k > w_elems for w_off, k, _, _ in tiles))

    def _exec_matmul(self, insn, q):
        for w_off, k, a_off, accumulate in isa.matmul_tiles(insn, self.config.array.rows):
            self._exec_load_stationary(isa.load_stationary(w_off, k, insn.n), q)
            self._exec_multiply_moving(isa.multiply_moving(
                a_off, insn.m, insn.psum_addr, accumulate=accumulate, repeat=insn.repeat,
                offset_step=insn.offset_step, psum_step=insn.psum_step), q)

    def _check_act_param(self, insn, q):
        a, act = self.config.array, self.config.act
        count = insn.count
        scale, shift = insn.scale[:count], insn.shift[:count]
        lo, hi = -(1 << (act.scale_bits - 1)), (1 << (act.scale_bits - 1)) - 1
        if (insn.entry >= isa.ACT_PARAM_ENTRIES or not 1 <= count <= isa.ACT_PARAM_GROUP
                or insn.first_col + count > a.cols or any(not lo <= s <= hi for s in scale)
                or any(s > act.max_shift for s in shift)):
            raise _Halt(IsaError.BAD_ACT_PARAM)

    def _exec_act_param(self, insn, q):
        count = insn.count
        cols = slice(insn.first_col, insn.first_col + count)
        self.act_scale[insn.entry, cols] = insn.scale[:count]
        self.act_shift[insn.entry, cols] = insn.shift[:count]

    def _check_act(self, insn, q):
        a = self.config.array
        if insn.rows == 0 or insn.repeat == 0:
            raise _Halt(IsaError.BAD_COUNT)
        if not 1 <= insn.cols <= a.cols:
            raise _Halt(IsaError.BAD_N)
        if insn.param >= isa.ACT_PARAM_ENTRIES:
            raise _Halt(IsaError.BAD_ACT_PARAM)
        if ActMode(insn.mode) in ACT_MODE_FLOAT and not a.is_float:
            raise _Halt(IsaError.BAD_ACT_PARAM)        # float outputs need an fp32 PSUM
        self._check_ranges(self._repeat_steps(insn), insn.rows,
                           self._elements(ACT_MODE_BYTES[ActMode(insn.mode)]))

    def _exec_act(self, insn, q):
        a = self.config.array
        mode = ActMode(insn.mode)
        dtype = np.dtype(_ACT_DTYPES[mode])
        view = self.sbuf_partitions(dtype)
        rows, cols = insn.rows, insn.cols
        scale = self.act_scale[insn.param, :cols]
        shift = self.act_shift[insn.param, :cols]
        for row, offset in self._repeat_steps(insn):
            self._access("psum", (row + np.arange(rows))[:, None] * a.cols + np.arange(cols), False)
            self._access("sbuf", self._partition_bytes(cols, offset, rows, ACT_MODE_BYTES[mode]),
                         True)
            if a.is_float:
                y = act_convert_fp(self.psum[row:row + rows, :cols], scale, shift, mode=mode,
                                   relu=bool(insn.relu), zero_point=insn.zero_point)
                view[:cols, offset:offset + rows] = y.T.view(dtype)
                continue
            y = requantize(self.psum[row:row + rows, :cols], scale, shift,
                           zero_point=insn.zero_point, relu=bool(insn.relu), mode=mode)
            view[:cols, offset:offset + rows] = y.T.astype(dtype)
