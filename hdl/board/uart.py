"""8N1 UART receiver and transmitter with a fixed ``divisor`` (clock cycles per bit).

* ``UartRx``: ``pin`` (idle high) -> ``o`` (stream of bytes). The pin goes through a two-flop
  synchroniser; a start bit is confirmed at its middle, each bit is sampled at its middle. A byte
  whose stop bit is low is dropped and pulses ``framing_error``; a byte completed while the last
  one still waits on ``o`` is dropped and pulses ``overrun``.
* ``UartTx``: ``i`` (stream of bytes) -> ``pin``: start bit, 8 data bits LSB first, stop bit.
"""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out


__all__ = ["UartRx", "UartTx", "check_divisor"]

MIN_DIVISOR = 4


def check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor (clock cycles per bit) must be an integer >= "
                         f"{MIN_DIVISOR}; got {divisor!r}")
    return divisor


class _Uart(wiring.Component):
    def __init__(self, *, divisor):
        self._divisor = check_divisor(divisor)
        super().__init__()


class UartRx(_Uart):
    pin: In(1, init=1)
    o: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        pin = Signal(init=1)
        m.submodules.sync_pin = FFSynchronizer(self.pin, pin, init=1)
        timer = Signal(range(d))
        bit = Signal(range(9))
        shift = Signal(8)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~pin):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(pin):                      # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), shift.eq(Cat(shift[1:], pin)),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~pin):
                        m.d.sync += self.framing_error.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shift)]
                    m.next = "IDLE"
        return m


class UartTx(_Uart):
    i: In(stream.Signature(8))
    pin: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bits = Signal(range(11))
        shift = Signal(10, init=0x3FF)
        m.d.comb += [self.i.ready.eq(bits == 0), self.pin.eq(shift[0])]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq(Cat(C(0, 1), self.i.payload, C(1, 1))), bits.eq(10),
                         timer.eq(d - 1)]
        with m.Elif(bits != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [shift.eq(Cat(shift[1:], C(1, 1))), bits.eq(bits - 1),
                             timer.eq(d - 1)]
        return m
