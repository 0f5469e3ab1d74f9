"""Beat descriptions of the DMA's AXI bursts: the burst register that drives AR / AW, and the
splitter that cuts queued bursts into data beats (R beats read, W beats to write)."""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR
from .contracts import index_bits


__all__ = ["BURST_BYTES_BITS", "burst_info_layout", "burst_layout", "queue_burst", "issue_burst",
           "DmaBeatSplitter"]

#: Width of a burst's byte count (256 beats of 32 bytes, within 4 KiB anyway).
BURST_BYTES_BITS = 14


def burst_info_layout(word_bytes):
    """What a beat splitter needs of a burst: the lane of its first byte and its bytes."""
    return data.StructLayout({"lo": unsigned(index_bits(word_bytes)),
                              "n": unsigned(BURST_BYTES_BITS)})


def burst_layout(word_bytes):
    """A burst queued for a beat splitter: its beat description and ``single``, whether its
    first beat is its last (computed when it is queued, so the splitter does not compare)."""
    return data.StructLayout({"lo": unsigned(index_bits(word_bytes)),
                              "n": unsigned(BURST_BYTES_BITS), "single": 1})


def queue_burst(burst, piece, word_bytes):
    """Statements loading ``burst`` (of :func:`burst_layout`) with a walker's ``piece``."""
    return [burst.lo.eq(piece.lo), burst.n.eq(piece.n),
            burst.single.eq(piece.n <= word_bytes - piece.lo)]


def issue_burst(m, channel, load, piece, word_bytes):
    """The AR / AW output register: loaded with a walker's burst ``piece`` when ``load``, held
    until ``ready``. INCR bursts of full bus width, ID 0."""
    with m.If(load):
        m.d.sync += [
            channel.valid.eq(1),
            channel.payload.addr.eq(piece.addr),
            channel.payload.len.eq(piece.beats - 1),
            channel.payload.size.eq(index_bits(word_bytes)),    # log2 of the bus width
            channel.payload.burst.eq(BURST_INCR),
            channel.payload.id.eq(0),
        ]
    with m.Elif(channel.ready):
        m.d.sync += channel.valid.eq(0)


class DmaBeatSplitter(wiring.Component):
    """Cuts the bursts of ``bursts`` into data beats (the first from lane ``lo``, later ones from
    lane 0) and presents the current beat from registers: ``valid``, ``lo``, ``n`` (bytes),
    ``last`` (the burst's last beat). ``take`` consumes the beat.

    A burst is taken from ``bursts`` with its first beat and the rest of it is cut from a
    register (``rest``), so ``bursts.ready`` never depends on the queue's payload (timing: the
    queue's read and the beat arithmetic are not in front of its level counter). Whether a
    beat is its burst's last is never compared in front of the beat registers either: it is
    the queued burst's ``single``, or ``rest_ends``, computed with ``rest``."""

    def __init__(self, *, word_bytes):
        self._W = word_bytes
        lane = unsigned(index_bits(word_bytes))
        super().__init__({
            "bursts": In(stream.Signature(burst_layout(word_bytes))),
            "valid": Out(1),
            "lo": Out(lane),
            "n": Out(range(word_bytes + 1)),
            "last": Out(1),
            "take": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = self._W
        head = self.bursts.payload
        cutting = Signal()                      # a burst's later beats are left in ``rest``
        rest = Signal(BURST_BYTES_BITS)         # ... its bytes not yet cut
        lo_now = Signal.like(self.lo)
        left = Signal(BURST_BYTES_BITS)
        room = Signal(range(W + 1))
        m.d.comb += [
            lo_now.eq(Mux(cutting, 0, head.lo)),
            left.eq(Mux(cutting, rest, head.n)),
            room.eq(W - lo_now),
        ]
        free = ~self.valid | self.take
        load = free & (cutting | self.bursts.valid)
        rest_ends = Signal()                    # ``rest`` fits in one beat (from lane 0)
        ends = Mux(cutting, rest_ends, head.single)
        with m.If(load):
            m.d.sync += [self.valid.eq(1), self.lo.eq(lo_now), self.n.eq(Mux(ends, left, room)),
                         self.last.eq(ends), cutting.eq(~ends), rest.eq(left - room),
                         # left - room <= W, beside the subtraction rather than after it
                         rest_ends.eq(Mux(cutting, rest <= 2 * W, head.n <= 2 * W - head.lo))]
        with m.Elif(self.take):
            m.d.sync += self.valid.eq(0)
        m.d.comb += self.bursts.ready.eq(free & ~cutting)
        return m
