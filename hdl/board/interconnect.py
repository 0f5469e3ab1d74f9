"""Two AXI4 masters onto one AXI4 slave (the board's DRAM): the tile and the host bridge.

The slave's ID is one bit wider than the masters': its top bit names the master, so R and B
beats go back by ID, whatever IDs each master uses. AR is arbitrated round-robin and held until
accepted. Writes are arbitrated per burst: the master whose AW is accepted owns W until its
WLAST has passed (AXI4 has no write interleaving), then AW is arbitrated again.
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..axi import Axi4Signature


__all__ = ["AxiArbiter"]


def _fields(view):
    return [name for name, _ in view.shape()]


class AxiArbiter(wiring.Component):
    """``m0``, ``m1``: the masters' ports (slaves here); ``slave``: the merged master port."""

    def __init__(self, *, addr_width, data_width, id_width):
        self._id_width = id_width
        master = Axi4Signature(addr_width=addr_width, data_width=data_width, id_width=id_width)
        merged = Axi4Signature(addr_width=addr_width, data_width=data_width,
                               id_width=id_width + 1)
        super().__init__({"m0": In(master), "m1": In(master), "slave": Out(merged)})

    def _pick(self, m, name, valid0, valid1, hold):
        """1 when m1 gets the channel this cycle: round-robin, and ``hold`` keeps the owner."""
        owner, last = Signal(name=f"{name}_owner"), Signal(name=f"{name}_last")
        pick = Signal(name=f"{name}_pick")
        m.d.comb += pick.eq(Mux(hold, owner, Mux(valid0 & valid1, ~last, valid1)))
        m.d.sync += owner.eq(pick)
        return pick, last

    def _address(self, m, pick, channel, m0, m1):
        out = getattr(self.slave, channel)
        ins = (getattr(m0, channel), getattr(m1, channel))
        m.d.comb += [
            out.valid.eq(Mux(pick, ins[1].valid, ins[0].valid)),
            ins[0].ready.eq(~pick & out.ready), ins[1].ready.eq(pick & out.ready),
        ]
        for name in _fields(out.payload):       # field by field: the ID widths differ
            if name == "id":
                low = [Mux(pick, ins[1].payload.id, ins[0].payload.id)] if self._id_width else []
                m.d.comb += out.payload.id.eq(Cat(*low, pick))
            else:
                m.d.comb += getattr(out.payload, name).eq(
                    Mux(pick, getattr(ins[1].payload, name), getattr(ins[0].payload, name)))

    def _response(self, m, channel, masters):
        src = getattr(self.slave, channel)
        to_m1 = src.payload.id[-1]
        for index, master in enumerate(masters):
            dst = getattr(master, channel)
            mine = to_m1 if index else ~to_m1
            m.d.comb += dst.valid.eq(src.valid & mine)
            for name in _fields(dst.payload):
                part = src.payload.id[:self._id_width] if name == "id" \
                    else getattr(src.payload, name)
                m.d.comb += getattr(dst.payload, name).eq(part)
        m.d.comb += src.ready.eq(Mux(to_m1, getattr(masters[1], channel).ready,
                                     getattr(masters[0], channel).ready))

    def elaborate(self, platform):
        m = Module()
        m0, m1, slave = self.m0, self.m1, self.slave

        # reads
        ar_locked = Signal()
        ar_pick, ar_last = self._pick(m, "ar", m0.ar.valid, m1.ar.valid, ar_locked)
        self._address(m, ar_pick, "ar", m0, m1)
        m.d.sync += ar_locked.eq(slave.ar.valid & ~slave.ar.ready)
        with m.If(slave.ar.valid & slave.ar.ready):
            m.d.sync += ar_last.eq(ar_pick)
        self._response(m, "r", (m0, m1))

        # writes: AW arbitrated while no burst owns W; the accepted master owns W until WLAST
        aw_locked, w_busy, w_owner = Signal(), Signal(), Signal()
        aw_pick, aw_last = self._pick(m, "aw", m0.aw.valid & ~w_busy, m1.aw.valid & ~w_busy,
                                      aw_locked)
        self._address(m, aw_pick, "aw", m0, m1)
        with m.If(w_busy):                    # no AW while a burst's data is in flight
            m.d.comb += [slave.aw.valid.eq(0), m0.aw.ready.eq(0), m1.aw.ready.eq(0)]
        aw_fire = slave.aw.valid & slave.aw.ready
        m.d.sync += aw_locked.eq(slave.aw.valid & ~slave.aw.ready)
        with m.If(aw_fire):
            m.d.sync += [aw_last.eq(aw_pick), w_busy.eq(1), w_owner.eq(aw_pick)]
        w_in = (m0.w, m1.w)
        m.d.comb += [
            slave.w.valid.eq(w_busy & Mux(w_owner, m1.w.valid, m0.w.valid)),
            slave.w.payload.eq(Mux(w_owner, m1.w.payload, m0.w.payload)),
            w_in[0].ready.eq(w_busy & ~w_owner & slave.w.ready),
            w_in[1].ready.eq(w_busy & w_owner & slave.w.ready),
        ]
        with m.If(slave.w.valid & slave.w.ready & slave.w.payload.last):
            m.d.sync += w_busy.eq(0)
        self._response(m, "b", (m0, m1))
        return m
