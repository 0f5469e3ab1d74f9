"""An AXI4-Lite register file generated from a :class:`systolica.registers.RegisterMap`.

For every register of the map the component has one port named after it (lower case), a
``data.StructLayout`` of its fields: ``Out`` for host-written registers (``rw`` fields hold the
last value written, ``pulse`` fields are high for the one cycle after a write of 1), ``In`` for
read-only ones (the gateware drives them; the host reads them). ``bus`` is the AXI4-Lite slave.

Protocol: AW and W are accepted independently (each is held until the other arrives), then the
write takes effect and B answers OKAY; write strobes select bytes. A read answers in the cycle
after AR with the register's value. The *window* it decodes is ``window`` bytes (default
:func:`~systolica.chip_registers.window_bytes`: ``2 ** ceil_log2`` of the end of the last
register; docs/chip.md): an address inside the window that no
register occupies (a hole) answers SLVERR, one beyond the window DECERR, a write to a read-only
register SLVERR; a refused access changes nothing and reads return 0. One write and one read may
be in progress at once; ``valid`` is never withdrawn and BREADY/RREADY backpressure holds the
response.
"""

from amaranth.hdl import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from systolica.chip_registers import window_bytes
from systolica.registers import RegisterMap
from .axi import RESP_DECERR, RESP_OKAY, RESP_SLVERR, Axi4LiteSignature


__all__ = ["RegisterFile", "register_layout", "window_bytes"]


def register_layout(reg):
    """The port layout of one register: its fields by name (gaps are not part of the port)."""
    return data.StructLayout({f.name: unsigned(f.width) for f in reg.fields})


class RegisterFile(wiring.Component):
    def __init__(self, regmap: RegisterMap, *, window=None):
        if not isinstance(regmap, RegisterMap):
            raise TypeError(f"RegisterFile regmap must be a RegisterMap; got {regmap!r}")
        smallest = window_bytes(regmap)
        window = smallest if window is None else window
        if (not isinstance(window, int) or window < smallest or window & (window - 1)
                or window > 1 << regmap.addr_width):
            raise ValueError(f"RegisterFile window must be a power of two in [{smallest}, "
                             f"2**{regmap.addr_width}] bytes; got {window!r}")
        self._map, self._window = regmap, window
        members = {"bus": In(Axi4LiteSignature(addr_width=regmap.addr_width,
                                               data_width=regmap.data_width))}
        for reg in regmap:
            direction = In if reg.access == "ro" else Out
            init = {f.name: f.reset for f in reg.fields if f.access == "rw"}
            members[reg.name.lower()] = direction(register_layout(reg), init=init or None) \
                if direction is Out else direction(register_layout(reg))
        super().__init__(members)

    @property
    def map(self):
        return self._map

    def elaborate(self, platform):
        m = Module()
        regmap, bus = self._map, self.bus
        wb = regmap.word_bytes
        low = (wb - 1).bit_length()

        window_bits = ceil_log2(self._window)

        def word_index(addr):
            return addr[low:]

        def response(addr, hit):
            """OKAY on a hit, SLVERR inside the window, DECERR beyond it."""
            inside = (addr[window_bits:] == 0) if window_bits < regmap.addr_width else C(1)
            return Mux(hit, RESP_OKAY, Mux(inside, RESP_SLVERR, RESP_DECERR))

        # --- write channel -----------------------------------------------------------------------
        aw_held = Signal()
        w_held = Signal()
        aw_addr = Signal(regmap.addr_width)
        w_data = Signal(regmap.data_width)
        w_strb = Signal(wb)
        m.d.comb += [bus.aw.ready.eq(~aw_held & ~bus.b.valid),
                     bus.w.ready.eq(~w_held & ~bus.b.valid)]
        with m.If(bus.aw.valid & bus.aw.ready):
            m.d.sync += [aw_held.eq(1), aw_addr.eq(bus.aw.payload.addr)]
        with m.If(bus.w.valid & bus.w.ready):
            m.d.sync += [w_held.eq(1), w_data.eq(bus.w.payload.data),
                         w_strb.eq(bus.w.payload.strb)]
        do_write = aw_held & w_held
        with m.If(bus.b.valid & bus.b.ready):
            m.d.sync += bus.b.valid.eq(0)
        bit_enable = Cat(w_strb[i // 8] for i in range(regmap.data_width))

        for reg in regmap:
            if reg.access == "ro":
                continue
            port = getattr(self, reg.name.lower())
            hit = do_write & (word_index(aw_addr) == reg.offset // wb)
            for f, lsb in reg.placed:
                value = port[f.name]
                new = w_data[lsb:lsb + f.width]
                en = bit_enable[lsb:lsb + f.width]
                if f.access == "pulse":
                    m.d.sync += value.eq(Mux(hit, new & en, 0))
                else:
                    with m.If(hit):
                        m.d.sync += value.eq((value & ~en) | (new & en))
        with m.If(do_write):
            writable = Cat(word_index(aw_addr) == reg.offset // wb for reg in regmap
                           if reg.access != "ro").any()
            m.d.sync += [aw_held.eq(0), w_held.eq(0), bus.b.valid.eq(1),
                         bus.b.payload.resp.eq(response(aw_addr, writable))]

        # --- read channel ------------------------------------------------------------------------
        m.d.comb += bus.ar.ready.eq(~bus.r.valid)
        with m.If(bus.r.valid & bus.r.ready):
            m.d.sync += bus.r.valid.eq(0)
        with m.If(bus.ar.valid & bus.ar.ready):
            index = word_index(bus.ar.payload.addr)
            m.d.sync += [bus.r.valid.eq(1), bus.r.payload.resp.eq(response(bus.ar.payload.addr,
                                                                            C(0))),
                         bus.r.payload.data.eq(0)]
            with m.Switch(index):
                for reg in regmap:
                    with m.Case(reg.offset // wb):
                        port = getattr(self, reg.name.lower())
                        word = 0
                        for f, lsb in reg.placed:
                            if f.access != "pulse":
                                word = word | (Value.cast(port[f.name]) << lsb)
                        m.d.sync += [bus.r.payload.resp.eq(RESP_OKAY),
                                     bus.r.payload.data.eq(word)]
        return m
