"""The slot's repeat state (:class:`.engine.QueueEngine`): the repeat counter with its flags,
the SBUF and PSUM offsets of the repeat being checked or issued, and the range flags seen.

Every register here takes one of a few values whose conditions exclude each other
(:func:`choose`): a clock enable and one AND-OR level behind conditions made of a few
flip-flops, not a chain of multiplexers in statement order (timing)."""

import functools
import operator

from amaranth.hdl import *


__all__ = ["choose", "Repeats"]


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
