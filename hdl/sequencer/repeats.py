"""The slot's repeat state (:class:`.engine.QueueEngine`): the repeat counter with its flags,
the SBUF and PSUM offsets of the repeat being checked or issued, and the range flags seen.

Every register here takes one of a few values whose conditions exclude each other
(:func:`choose`): a clock enable and one AND-OR level behind conditions made of a few
flip-flops, not a chain of multiplexers in statement order (timing)."""

import functools
import operator

from amaranth.hdl import *

from systolica.codes import ACT_MODE_BYTES
from systolica.config import DTYPES
from systolica.isa import Engine, Opcode


__all__ = ["choose", "Repeats", "repeat_fields"]


def choose(m, target, choices):
    """``target`` takes the value of the one ``(condition, value)`` of ``choices`` whose
    condition holds (they exclude each other) and keeps its value while none does."""
    with m.If(Cat(cond for cond, _ in choices).any()):
        m.d.sync += target.eq(functools.reduce(
            operator.or_, [Mux(cond, value, 0) for cond, value in choices]))


class Repeats:
    """``rep`` counts the repeats (checked, then issued) with three flags registered with it
    (timing: no counter compare before what they steer): ``first`` (rep == 0), ``end`` (rep ==
    repeat: the repeat checks are done) and ``last`` (rep + 1 >= repeat: the last repeat
    issues). ``acc_o`` / ``acc_p``: the repeat's SBUF / PSUM offsets, wide enough that offset +
    repeat * step never overflows; ``flags``: SBUF_RANGE, PSUM_RANGE, PSUM_BANK seen."""

    def __init__(self, *, accumulator_bits):
        self.rep = Signal(16)
        self.first, self.end, self.last = Signal(), Signal(), Signal()
        self.acc_o = Signal(accumulator_bits)
        self.acc_p = Signal(accumulator_bits)
        self.flags = Signal(3)

    def add(self, m, *, repeat, restart, step, acc_o, acc_p, flags):
        """``restart``: rep to 0, ``step``: rep + 1 (exclusive); ``acc_o``, ``acc_p``,
        ``flags``: each register's :func:`choose` list."""
        rep = self.rep
        choose(m, rep, [(restart, 0), (step, rep + 1)])
        choose(m, self.first, [(restart, 1), (step, 0)])
        # rep + 1 <= repeat wherever rep counts: rep + 1 == repeat is ``last``
        choose(m, self.end, [(restart, repeat == 0), (step, self.last)])
        choose(m, self.last, [(restart, repeat <= 1), (step, rep + 2 >= repeat)])
        choose(m, self.acc_o, acc_o)
        choose(m, self.acc_p, acc_p)
        choose(m, self.flags, flags)


def repeat_fields(m, slot, *, config, engine, op_is):
    """The repeat fields of queue kind ``engine``'s iterating instructions in ``slot``:
    ``(rows, offset, psum_addr, offset_step, psum_step, repeat, limit, iterates)``, ``limit``
    the SBUF elements per partition of the moving operand (ACT: of its output mode) and
    ``iterates`` whether the slot holds one (``op_is``: the engine's opcode flags). MATMUL
    starts with MULTIPLY_MOVING's fields, so they read alike; a DMA queue has none."""
    sbuf_bytes = config.sbuf.depth * config.sbuf.word_bytes
    if engine == Engine.PE:
        body = slot.body.multiply_moving
        rows = body.m
        limit = sbuf_bytes // (DTYPES[config.array.moving_dtype][0] // 8)
        iterates = op_is(Opcode.MULTIPLY_MOVING) | op_is(Opcode.MATMUL)
    elif engine == Engine.ACT:
        body = slot.body.act
        rows = body.rows
        limit = Signal(range(sbuf_bytes + 1))
        with m.Switch(Cat(body.mode, body.mode_high)):
            for mode, nbytes in ACT_MODE_BYTES.items():
                with m.Case(mode.value):
                    m.d.comb += limit.eq(sbuf_bytes // nbytes)
        iterates = op_is(Opcode.ACT)
    else:
        return C(0), C(0), C(0), C(0), C(0), C(1), C(0), C(0)
    return (rows, body.offset, body.psum_addr, body.offset_step, body.psum_step, body.repeat,
            limit, iterates)
