"""The UART host bridge: framed requests from the host (``systolica.board.protocol``, which also
documents the frames) become AXI4-Lite register accesses (``lite``, onto the tile's host port)
and AXI4 DRAM bursts (``axi``); each request gets one reply.

* ``rx`` / ``tx``: byte streams (from ``UartRx`` / to ``UartTx``).
* A request's payload goes into a word-wide buffer (``MAX_DATA`` bytes, byte lanes) while its
  CRC is computed; nothing is issued on either bus before the CRC checked out, so a garbage or
  truncated frame changes nothing. MEM_READ data is collected in the same buffer, and the reply
  is sent once the burst has completed (its status is then known).
* ``timeout_cycles``: a frame whose next byte does not come within this many cycles is refused
  (``TIMEOUT``); an oversized length swallows bytes until the line is quiet that long
  (``BAD_LENGTH``).
* ``refused`` / ``skipped``: counters (wrapping, 16 bits) of refused requests and of bytes
  outside frames; INFO reports them.
"""

from contextlib import contextmanager

from amaranth.hdl import *
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from systolica.board.protocol import (
    ARGUMENT_BYTES, ARGUMENTS, BOUNDARY_BYTES, CRC_INIT, DATA_OFFSET, MAX_DATA, MAX_PAYLOAD,
    REPLY_SYNC, REQUEST_SYNC, VERSION, Command, Status, arguments_layout, crc16_update,
    info_layout)
from ..axi import BURST_INCR, RESP_OKAY, Axi4LiteSignature, Axi4Signature


__all__ = ["HostBridge"]


def _payload_bytes(command):
    return sum(n for _, n in ARGUMENTS[command])


class HostBridge(wiring.Component):
    def __init__(self, *, addr_width, data_width, id_width, lite_addr_width=16,
                 lite_data_width=32, dram_bytes, clock_hz, timeout_cycles):
        if lite_data_width != 32 or lite_addr_width > 16:
            raise ValueError(f"HostBridge: the protocol carries 16-bit register addresses and "
                             f"32-bit data; got lite_addr_width={lite_addr_width}, "
                             f"lite_data_width={lite_data_width}")
        if data_width // 8 > MAX_DATA:
            raise ValueError(f"HostBridge data_width must be at most {8 * MAX_DATA}; "
                             f"got {data_width}")
        if not isinstance(timeout_cycles, int) or timeout_cycles < 2:
            raise ValueError(f"HostBridge timeout_cycles must be an integer >= 2; "
                             f"got {timeout_cycles!r}")
        self._addr_width, self._data_width = addr_width, data_width
        self._dram_bytes, self._clock_hz = dram_bytes, int(clock_hz)
        self._timeout = timeout_cycles
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "lite": Out(Axi4LiteSignature(addr_width=lite_addr_width, data_width=32)),
            "axi": Out(Axi4Signature(addr_width=addr_width, data_width=data_width,
                                     id_width=id_width)),
            "refused": Out(16),
            "skipped": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        rx, tx, lite, axi = self.rx, self.tx, self.lite, self.axi
        W = self._data_width // 8
        lanes = exact_log2(W)
        words = MAX_DATA // W

        buf = m.submodules.buffer = memory.Memory(shape=unsigned(8 * W), depth=words, init=[])
        wr = buf.write_port(granularity=8)
        rd = buf.read_port()
        rd_seen = Signal.like(rd.addr)            # the address rd.data belongs to
        m.d.sync += rd_seen.eq(rd.addr)
        fresh = rd_seen == rd.addr

        command = Signal(8)
        length = Signal(16)
        count = Signal(16)                        # bytes of the current field / reply
        crc = Signal(16)
        args = Signal(8 * ARGUMENT_BYTES)
        idle = Signal(range(self._timeout + 1))   # cycles since the last byte of a frame
        status = Signal(Status)
        reply_length = Signal(16)
        reply_from_buffer = Signal()
        small = Signal(info_layout().size)        # INFO / REG_READ reply bytes
        beat = Signal(range(words + 1))
        beats = Signal(range(words + 1))
        bus_error = Signal()
        aw_done, w_done = Signal(), Signal()

        byte = rx.payload
        got = rx.valid & rx.ready
        timed_out = idle == self._timeout

        def view(cmd):
            return data.View(arguments_layout(cmd), args[:arguments_layout(cmd).size])

        def reply(code, nbytes=0, from_buffer=False):
            m.d.sync += [status.eq(code), reply_length.eq(nbytes),
                         reply_from_buffer.eq(from_buffer), count.eq(0)]
            if not isinstance(code, Status) or code != Status.OK:
                with m.If(code != Status.OK):
                    m.d.sync += self.refused.eq(self.refused + 1)
            m.next = "REPLY_HEADER"

        @contextmanager
        def frame_byte():
            """Inside a frame: take a byte (CRC, count) or time out."""
            m.d.comb += rx.ready.eq(1)
            with m.If(got):
                m.d.sync += [crc.eq(crc16_update(crc, byte)), count.eq(count + 1)]
                yield
            with m.Elif(timed_out):
                reply(Status.TIMEOUT)

        def address_sent(channel, next_state):
            with m.If(channel.ready):
                m.d.sync += channel.valid.eq(0)
                m.next = next_state

        def write_response(channel):
            m.d.comb += channel.ready.eq(1)
            with m.If(channel.valid):
                reply(Mux(channel.payload.resp == RESP_OKAY, Status.OK, Status.AXI_ERROR))

        def dram_access_ok(addr, nbytes):
            # inside the DRAM, so a refused request writes nothing (no partial bursts)
            high_ok = (addr >> self._addr_width) == 0 if self._addr_width < 32 else C(1)
            return ((nbytes != 0) & (nbytes <= MAX_DATA) & (nbytes[:lanes] == 0) &
                    (addr[:lanes] == 0) & high_ok & (addr + nbytes <= self._dram_bytes) &
                    (addr[:exact_log2(BOUNDARY_BYTES)] + nbytes <= BOUNDARY_BYTES))

        m.d.sync += idle.eq(Mux(got | timed_out, 0, idle + 1))
        with m.If(tx.ready):
            m.d.sync += tx.valid.eq(0)
        m.d.comb += [rd.addr.eq(beat), wr.addr.eq((count - DATA_OFFSET)[lanes:]),
                     wr.data.eq(Cat([byte] * W))]
        burst_size = C(lanes, 3)
        for channel in (axi.ar, axi.aw):
            m.d.comb += [channel.payload.size.eq(burst_size),
                         channel.payload.burst.eq(BURST_INCR)]
        m.d.comb += lite.w.payload.strb.eq(0xF)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += rx.ready.eq(1)
                with m.If(got):
                    with m.If(byte == REQUEST_SYNC):
                        m.d.sync += [crc.eq(CRC_INIT), count.eq(0)]
                        m.next = "HEADER"
                    with m.Else():
                        m.d.sync += self.skipped.eq(self.skipped + 1)

            with m.State("HEADER"), frame_byte():
                with m.Switch(count):
                    with m.Case(0):
                        m.d.sync += command.eq(byte)
                    with m.Case(1):
                        m.d.sync += length[:8].eq(byte)
                    with m.Default():
                        full = Cat(length[:8], byte)
                        m.d.sync += [length[8:].eq(byte), count.eq(0)]
                        with m.If(full > MAX_PAYLOAD):
                            m.next = "DISCARD"
                        with m.Elif(full == 0):
                            m.next = "CRC"
                        with m.Else():
                            m.next = "PAYLOAD"

            with m.State("PAYLOAD"), frame_byte():
                for i in range(ARGUMENT_BYTES):
                    with m.If(count == i):
                        m.d.sync += args.word_select(i, 8).eq(byte)
                with m.If(count >= DATA_OFFSET):
                    m.d.comb += wr.en.eq(1 << (count - DATA_OFFSET)[:lanes])
                with m.If(count == length - 1):
                    m.d.sync += count.eq(0)
                    m.next = "CRC"

            with m.State("CRC"), frame_byte():
                with m.If(count == 1):
                    m.next = "CHECK"

            with m.State("DISCARD"):
                m.d.comb += rx.ready.eq(1)
                with m.If(timed_out):
                    reply(Status.BAD_LENGTH)

            with m.State("CHECK"):
                with m.If(crc != 0):
                    reply(Status.BAD_CRC)
                with m.Else():
                    m.next = "EXECUTE"

            with m.State("EXECUTE"):
                with m.Switch(command):
                    with m.Case(Command.INFO):
                        with m.If(length != _payload_bytes(Command.INFO)):
                            reply(Status.BAD_LENGTH)
                        with m.Else():
                            info = data.View(info_layout(), small)
                            m.d.sync += [info.version.eq(VERSION), info.word_bytes.eq(W),
                                         info.max_data.eq(MAX_DATA),
                                         info.dram_bytes.eq(self._dram_bytes),
                                         info.clock_hz.eq(self._clock_hz),
                                         info.refused.eq(self.refused),
                                         info.skipped.eq(self.skipped)]
                            reply(Status.OK, info_layout().size // 8)
                    with m.Case(Command.REG_READ):
                        with m.If(length != _payload_bytes(Command.REG_READ)):
                            reply(Status.BAD_LENGTH)
                        with m.Else():
                            m.d.sync += [lite.ar.valid.eq(1),
                                         lite.ar.payload.addr.eq(view(Command.REG_READ).addr)]
                            m.next = "REG_READ"
                    with m.Case(Command.REG_WRITE):
                        with m.If(length != _payload_bytes(Command.REG_WRITE)):
                            reply(Status.BAD_LENGTH)
                        with m.Else():
                            args_w = view(Command.REG_WRITE)
                            m.d.sync += [lite.aw.valid.eq(1), lite.aw.payload.addr.eq(args_w.addr),
                                         lite.w.valid.eq(1), lite.w.payload.data.eq(args_w.data),
                                         aw_done.eq(0), w_done.eq(0)]
                            m.next = "REG_WRITE"
                    with m.Case(Command.MEM_READ):
                        args_r = view(Command.MEM_READ)
                        with m.If(length != _payload_bytes(Command.MEM_READ)):
                            reply(Status.BAD_LENGTH)
                        with m.Elif(~dram_access_ok(args_r.addr, args_r.nbytes)):
                            reply(Status.BAD_ARGUMENT)
                        with m.Else():
                            n = args_r.nbytes[lanes:]
                            m.d.sync += [axi.ar.valid.eq(1), axi.ar.payload.addr.eq(args_r.addr),
                                         axi.ar.payload.len.eq(n - 1), beats.eq(n), beat.eq(0),
                                         bus_error.eq(0)]
                            m.next = "MEM_READ"
                    with m.Case(Command.MEM_WRITE):
                        addr = view(Command.MEM_WRITE).addr
                        nbytes = (length - DATA_OFFSET)[:16]
                        with m.If((length < DATA_OFFSET + W) | (nbytes[:lanes] != 0)):
                            reply(Status.BAD_LENGTH)
                        with m.Elif(~dram_access_ok(addr, nbytes)):
                            reply(Status.BAD_ARGUMENT)
                        with m.Else():
                            n = nbytes[lanes:]
                            m.d.sync += [axi.aw.valid.eq(1), axi.aw.payload.addr.eq(addr),
                                         axi.aw.payload.len.eq(n - 1), beats.eq(n), beat.eq(0)]
                            m.next = "MEM_WRITE_AW"
                    with m.Default():
                        reply(Status.BAD_COMMAND)

            with m.State("REG_READ"):
                address_sent(lite.ar, "REG_READ_R")
            with m.State("REG_READ_R"):
                m.d.comb += lite.r.ready.eq(1)
                with m.If(lite.r.valid):
                    m.d.sync += small.eq(lite.r.payload.data)
                    with m.If(lite.r.payload.resp == RESP_OKAY):
                        reply(Status.OK, 4)
                    with m.Else():
                        reply(Status.AXI_ERROR)

            with m.State("REG_WRITE"):
                with m.If(lite.aw.ready):
                    m.d.sync += [lite.aw.valid.eq(0), aw_done.eq(1)]
                with m.If(lite.w.ready):
                    m.d.sync += [lite.w.valid.eq(0), w_done.eq(1)]
                with m.If((aw_done | lite.aw.ready) & (w_done | lite.w.ready)):
                    m.next = "REG_WRITE_B"
            with m.State("REG_WRITE_B"):
                write_response(lite.b)

            with m.State("MEM_READ"):
                address_sent(axi.ar, "MEM_READ_R")
            with m.State("MEM_READ_R"):
                m.d.comb += [axi.r.ready.eq(1), wr.addr.eq(beat), wr.data.eq(axi.r.payload.data)]
                with m.If(axi.r.valid):
                    m.d.comb += wr.en.eq(-1)
                    m.d.sync += [beat.eq(beat + 1),
                                 bus_error.eq(bus_error | (axi.r.payload.resp != RESP_OKAY))]
                    with m.If(axi.r.payload.last):
                        m.d.sync += beat.eq(0)
                        with m.If(bus_error | (axi.r.payload.resp != RESP_OKAY)):
                            reply(Status.AXI_ERROR)
                        with m.Else():
                            reply(Status.OK, beats << lanes, from_buffer=True)

            with m.State("MEM_WRITE_AW"):               # rd.addr = beat 0 meanwhile
                address_sent(axi.aw, "MEM_WRITE_W")
            with m.State("MEM_WRITE_W"):
                last = beat == beats - 1
                m.d.comb += [axi.w.valid.eq(fresh), axi.w.payload.data.eq(rd.data),
                             axi.w.payload.strb.eq(-1), axi.w.payload.last.eq(last)]
                with m.If(axi.w.valid & axi.w.ready):     # one bubble per beat: UART-bound
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(last):
                        m.next = "MEM_WRITE_B"
            with m.State("MEM_WRITE_B"):
                m.d.sync += beat.eq(0)
                write_response(axi.b)

            # reply: sync, status, length, payload, crc (MSB first)
            free = ~tx.valid | tx.ready

            def send(value, next_crc=True):
                m.d.sync += [tx.valid.eq(1), tx.payload.eq(value)]
                if next_crc:
                    m.d.sync += crc.eq(crc16_update(crc, value))

            with m.State("REPLY_HEADER"):
                header = Array([C(REPLY_SYNC, 8), status.as_value(), reply_length[:8],
                                reply_length[8:]])
                with m.If(free):
                    send(header[count[:2]], next_crc=False)
                    m.d.sync += [crc.eq(Mux(count == 0, CRC_INIT,     # the sync byte is not in it
                                            crc16_update(crc, header[count[:2]]))),
                                 count.eq(count + 1)]
                    with m.If(count == 3):
                        m.d.sync += count.eq(0)
                        m.next = "REPLY_DATA"
            with m.State("REPLY_DATA"):
                with m.If(reply_length == 0):
                    m.next = "REPLY_CRC"
                with m.Else():
                    m.d.comb += rd.addr.eq(count[lanes:])
                    value = Mux(reply_from_buffer, rd.data.word_select(count[:lanes], 8),
                                small.word_select(count[:exact_log2(len(small) // 8)], 8))
                    with m.If(free & (~reply_from_buffer | fresh)):
                        send(value)
                        m.d.sync += count.eq(count + 1)
                        with m.If(count == reply_length - 1):
                            m.d.sync += count.eq(0)
                            m.next = "REPLY_CRC"
            with m.State("REPLY_CRC"):
                with m.If(free):
                    send(Mux(count == 0, crc[8:], crc[:8]), next_crc=False)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 1):
                        m.d.sync += count.eq(0)
                        m.next = "IDLE"
        return m
