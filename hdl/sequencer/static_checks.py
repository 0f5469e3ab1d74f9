"""The checks of an instruction that need no iteration over its repeats (docs/isa.md,
"Execution"), as an ordered list of ``(condition, IsaError)``: the instruction's error is the
code of the first condition that holds (OK if none does).

:class:`.engine.QueueEngine` registers the code as the instruction enters its slot.
Conditions of different opcodes are disjoint (each carries its opcode), so a list in priority
order is the nested checks of the ISA.
"""

from amaranth.hdl import *

from systolica.codes import IsaError
from systolica.config import DTYPES
from systolica.isa import (ACT_PARAM_ENTRIES, ACT_PARAM_GROUP, SEMAPHORES, Engine, Opcode,
                           OPCODE_ENGINES, Space)
from .pe_loop import matmul_static_checks


__all__ = ["static_checks", "first_error"]


def static_checks(slot, *, fetch_error, pc, loaded, load_pending, config, queue, fingerprint,
                  chip=None):
    """``[(condition, code)]`` of the instruction ``slot`` (an ``INSTRUCTION_LAYOUT`` view) on
    queue ``queue`` of a tile with ``config`` (``chip``: the ChipConfig of a chip's tile). The
    first entry is the fetch error (its DmaError detail is AXI_READ_ERROR)."""
    cfg, q = config, queue
    hdr = slot.header
    op = hdr.opcode
    known = Cat(op == o for o in Opcode).any()
    allowed = Cat(op == o for o, e in OPCODE_ENGINES.items() if e in (None, q.engine)).any()
    sem_bad = Cat(*(((p.count != 0) & (p.sem >= SEMAPHORES)) for p in (*hdr.wait, *hdr.signal)),
                  (hdr.wait[0].count != 0) & (hdr.wait[1].count != 0) &
                  (hdr.wait[0].sem == hdr.wait[1].sem)).any()
    chk = slot.body.check
    checks = [
        (fetch_error, IsaError.DMA_ERROR),
        (~known, IsaError.UNKNOWN_OPCODE),
        (~allowed, IsaError.WRONG_ENGINE),
        (((pc == 0) & (op != Opcode.CHECK)) |
         ((op == Opcode.CHECK) & (chk.fingerprint != fingerprint)), IsaError.CONFIG_MISMATCH),
        ((op == Opcode.CHECK) & (chk.queue != q.index), IsaError.QUEUE_MISMATCH),
        (sem_bad, IsaError.BAD_SEMAPHORE),
    ]

    def of(opcode, body):
        return [((op == opcode) & cond, code) for cond, code in body]

    R, Cc = cfg.array.rows, cfg.array.cols
    sb = cfg.sbuf
    if q.engine == Engine.PE:
        ls, mm = slot.body.load_stationary, slot.body.multiply_moving
        w_elems = sb.depth * sb.word_bytes // (DTYPES[cfg.array.stationary_dtype][0] // 8)
        checks += of(Opcode.LOAD_STATIONARY, [
            ((ls.k == 0) | (ls.k > R), IsaError.BAD_K),
            ((ls.n == 0) | (ls.n > Cc), IsaError.BAD_N),
            (ls.offset + ls.k > w_elems, IsaError.SBUF_RANGE),
            (load_pending, IsaError.LOAD_PENDING)])
        checks += of(Opcode.MULTIPLY_MOVING, [
            (~loaded, IsaError.MULTIPLY_BEFORE_LOAD),
            ((mm.m == 0) | (mm.repeat == 0), IsaError.BAD_COUNT)])
        checks += of(Opcode.MATMUL, matmul_static_checks(slot.body.matmul, R, Cc, load_pending))
    elif q.engine == Engine.ACT:
        a, ap = slot.body.act, slot.body.act_param
        lo, hi = -(1 << (cfg.act.scale_bits - 1)), (1 << (cfg.act.scale_bits - 1)) - 1
        checks += of(Opcode.ACT, [
            ((a.rows == 0) | (a.repeat == 0), IsaError.BAD_COUNT),
            ((a.cols == 0) | (a.cols > Cc), IsaError.BAD_N),
            (a.param >= ACT_PARAM_ENTRIES, IsaError.BAD_ACT_PARAM),
            (a.mode_high & C(not cfg.array.is_float), IsaError.BAD_ACT_PARAM)])  # fp32 PSUM
        bad_value = Cat(((i < ap.count) & ((ap.scale[i] < lo) | (ap.scale[i] > hi) |
                                           (ap.shift[i] > cfg.act.max_shift)))
                        for i in range(ACT_PARAM_GROUP)).any()
        checks += of(Opcode.ACT_PARAM, [
            ((ap.entry >= ACT_PARAM_ENTRIES) | (ap.count == 0) | (ap.count > ACT_PARAM_GROUP) |
             (ap.first_col + ap.count > Cc) | bad_value, IsaError.BAD_ACT_PARAM)])
    else:
        checks += _dma_checks(slot, cfg.dma, chip, of)
    return checks


def _dma_checks(slot, dc, chip, of):
    d = slot.body.dma_copy
    local = [(s.space == Space.DRAM) | (s.space == Space.SBUF) for s in (d.src, d.dst)]
    remote_dst = d.dst.space == Space.REMOTE_SBUF
    # A remote destination exists only on a chip's tile; it must lie inside the mesh.
    good_space = local[0] & (local[1] | (remote_dst if chip is not None else C(0)))

    def outside(x, y):
        if chip is None:
            return C(0)
        return (x >= chip.noc.width) | (y >= chip.noc.height)

    def beyond(value, bits, signed=False):
        """``value`` does not fit ``bits`` (the DMA's field): never truncated."""
        width = len(value)
        if bits >= width:
            return C(0)
        top = value[bits - 1:] if signed else value[bits:]
        return (top != 0) & (top != (1 << len(top)) - 1) if signed else top != 0
    too_wide = Cat(*(Cat(beyond(side.addr, dc.addr_width),
                         *(beyond(c, dc.count_bits) for c in side.count),
                         *(beyond(st, dc.addr_width, signed=True) for st in side.stride))
                     for side in (d.src, d.dst)),
                   beyond(d.elem_bytes, dc.elem_bits)).any()
    sr = slot.body.signal_remote
    return [
        *of(Opcode.DMA_COPY, [
            (~good_space, IsaError.BAD_DMA_SPACE),
            (remote_dst & outside(d.dst_tile_x, d.dst_tile_y), IsaError.BAD_REMOTE_TILE),
            (too_wide, IsaError.DMA_FIELD_RANGE)]),
        *of(Opcode.SIGNAL_REMOTE, [
            (C(chip is None), IsaError.BAD_DMA_SPACE),
            (outside(sr.tile_x, sr.tile_y), IsaError.BAD_REMOTE_TILE),
            (sr.sem >= SEMAPHORES, IsaError.BAD_SEMAPHORE)]),
    ]


def first_error(m, flags, codes, name):
    """A signal holding the code of the first set bit of ``flags`` (OK if none)."""
    code = Signal(IsaError, name=name)
    with m.If(flags == 0):
        m.d.comb += code.eq(IsaError.OK)
    for i, value in enumerate(codes):
        with m.Elif(flags[i]):
            m.d.comb += code.eq(value)
    return code
