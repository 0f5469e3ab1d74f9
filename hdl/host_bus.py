"""One AXI4-Lite slave cut into equal address windows, each forwarded to its own AXI4-Lite target.

``HostWindows(addr_width=, data_width=, window_bits=, targets=[addr widths], broadcast=None)``:
``bus`` (In) is the host's port; ``window_{i}`` (Out) reaches target i, which sees the offset
inside its window (``addr[:window_bits]``, zero-extended to its own address width). Window i
covers bytes ``[i << window_bits, (i + 1) << window_bits)``.

* An address beyond the last window answers DECERR here (reads return 0); nothing is forwarded.
* Inside a window the target answers (holes and read-only registers are its business: the
  ``RegisterFile`` answers SLVERR), so a bad access changes nothing anywhere.
* ``broadcast=(offset0, offset)``: a write to ``offset0`` of window 0 goes to window 0 at
  ``offset0`` *and* to every other window at ``offset`` — the same word, presented to every
  target in the same cycle — and answers the worst of their responses. The chip's CONTROL
  reaches every tile's CONTROL this way, so a start or abort hits every tile at once.

One write and one read are handled at a time (AXI4-Lite masters rarely issue more); AW and W are
accepted independently and held, every output is a register (no combinational path from the host
to a target), and ``valid`` is held until accepted on every channel. A write takes 3 cycles plus
the target's, a read 2 plus the target's.
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import RESP_DECERR, RESP_OKAY, Axi4LiteSignature


__all__ = ["HostWindows"]


class HostWindows(wiring.Component):
    def __init__(self, *, addr_width, data_width, window_bits, targets, broadcast=None):
        targets = list(targets)
        if not targets:
            raise ValueError("HostWindows needs at least one target window")
        if not isinstance(window_bits, int) or not 2 <= window_bits <= addr_width:
            raise ValueError(f"HostWindows window_bits must be in [2, addr_width={addr_width}]; "
                             f"got {window_bits!r}")
        if len(targets) << window_bits > 1 << addr_width:
            raise ValueError(f"HostWindows: {len(targets)} windows of 2**{window_bits} bytes do "
                             f"not fit a {addr_width}-bit address space")
        for i, width in enumerate(targets):
            if width < window_bits:
                raise ValueError(f"HostWindows target {i}: address width {width} is narrower "
                                 f"than the window ({window_bits} bits)")
        if broadcast is not None:
            if len(broadcast) != 2 or any(not 0 <= o < 1 << window_bits or o % 4
                                          for o in broadcast):
                raise ValueError(f"HostWindows broadcast must be two word offsets inside the "
                                 f"window; got {broadcast!r}")
        self._addr_width, self._window_bits = addr_width, window_bits
        self._targets, self._broadcast = targets, broadcast
        members = {"bus": In(Axi4LiteSignature(addr_width=addr_width, data_width=data_width))}
        for i, width in enumerate(targets):
            members[f"window_{i}"] = Out(Axi4LiteSignature(addr_width=width,
                                                           data_width=data_width))
        super().__init__(members)

    def window(self, i):
        return getattr(self, f"window_{i}")

    def elaborate(self, platform):
        m = Module()
        bus, wbits, n = self.bus, self._window_bits, len(self._targets)
        wins = [self.window(i) for i in range(n)]

        def decode(addr):
            index = addr[wbits:]
            return index, (index < n) if len(index) else C(1)

        # --- writes ----------------------------------------------------------------------------
        aw_held, w_held, issuing = Signal(), Signal(), Signal()
        aw_addr = Signal.like(bus.aw.payload.addr)
        aw_prot = Signal.like(bus.aw.payload.prot)
        w_data = Signal.like(bus.w.payload.data)
        w_strb = Signal.like(bus.w.payload.strb)
        aw_pend, w_pend, b_pend = Signal(n), Signal(n), Signal(n)
        offsets = [Signal(wbits, name=f"offset_{i}") for i in range(n)]
        b_resp = Signal(2)
        m.d.comb += [bus.aw.ready.eq(~aw_held), bus.w.ready.eq(~w_held)]
        with m.If(bus.aw.valid & bus.aw.ready):
            m.d.sync += [aw_held.eq(1), aw_addr.eq(bus.aw.payload.addr),
                         aw_prot.eq(bus.aw.payload.prot)]
        with m.If(bus.w.valid & bus.w.ready):
            m.d.sync += [w_held.eq(1), w_data.eq(bus.w.payload.data),
                         w_strb.eq(bus.w.payload.strb)]
        index, mapped = decode(aw_addr)
        low = aw_addr[:wbits]
        with m.If(aw_held & w_held & ~issuing & ~bus.b.valid):
            with m.If(~mapped):
                m.d.sync += [bus.b.valid.eq(1), bus.b.payload.resp.eq(RESP_DECERR)]
            with m.Else():
                is_broadcast = C(0)
                if self._broadcast is not None:
                    is_broadcast = (index == 0) & (low == self._broadcast[0])
                targets = Mux(is_broadcast, (1 << n) - 1, C(1, n) << index)
                m.d.sync += [issuing.eq(1), aw_pend.eq(targets), w_pend.eq(targets),
                             b_pend.eq(targets), b_resp.eq(RESP_OKAY)]
                for i in range(n):
                    if self._broadcast is not None and i:
                        m.d.sync += offsets[i].eq(Mux(is_broadcast, self._broadcast[1], low))
                    else:
                        m.d.sync += offsets[i].eq(low)
        resp_seen = b_resp      # the worst response so far: one signal per window, as a
        for i, win in enumerate(wins):  # Mux reading its input twice doubles at every level
            m.d.comb += [win.aw.valid.eq(aw_pend[i]), win.aw.payload.addr.eq(offsets[i]),
                         win.aw.payload.prot.eq(aw_prot),
                         win.w.valid.eq(w_pend[i]), win.w.payload.data.eq(w_data),
                         win.w.payload.strb.eq(w_strb), win.b.ready.eq(b_pend[i])]
            with m.If(win.aw.valid & win.aw.ready):
                m.d.sync += aw_pend[i].eq(0)
            with m.If(win.w.valid & win.w.ready):
                m.d.sync += w_pend[i].eq(0)
            b_fire = win.b.valid & win.b.ready
            with m.If(b_fire):
                m.d.sync += b_pend[i].eq(0)
            worst = Signal(2, name=f"resp_seen_{i}")
            m.d.comb += worst.eq(Mux(b_fire & (win.b.payload.resp > resp_seen),
                                     win.b.payload.resp, resp_seen))
            resp_seen = worst
        with m.If(issuing):
            m.d.sync += b_resp.eq(resp_seen)
            with m.If(~(aw_pend | w_pend | b_pend).any()):
                m.d.sync += [issuing.eq(0), bus.b.valid.eq(1), bus.b.payload.resp.eq(b_resp)]
        with m.If(bus.b.valid & bus.b.ready):
            m.d.sync += [bus.b.valid.eq(0), aw_held.eq(0), w_held.eq(0)]

        # --- reads -----------------------------------------------------------------------------
        ar_busy, r_wait = Signal(), Signal()
        ar_pend = Signal(n)
        r_index = Signal(range(n))
        r_offset = Signal(wbits)
        ar_prot = Signal.like(bus.ar.payload.prot)
        m.d.comb += bus.ar.ready.eq(~ar_busy)
        with m.If(bus.ar.valid & bus.ar.ready):
            index, mapped = decode(bus.ar.payload.addr)
            m.d.sync += ar_busy.eq(1)
            with m.If(mapped):
                m.d.sync += [ar_pend.eq(C(1, n) << index), r_wait.eq(1), r_index.eq(index),
                             r_offset.eq(bus.ar.payload.addr[:wbits]),
                             ar_prot.eq(bus.ar.payload.prot)]
            with m.Else():
                m.d.sync += [bus.r.valid.eq(1), bus.r.payload.resp.eq(RESP_DECERR),
                             bus.r.payload.data.eq(0)]
        for i, win in enumerate(wins):
            mine = r_wait & (r_index == i)
            m.d.comb += [win.ar.valid.eq(ar_pend[i]), win.ar.payload.addr.eq(r_offset),
                         win.ar.payload.prot.eq(ar_prot), win.r.ready.eq(mine)]
            with m.If(win.ar.valid & win.ar.ready):
                m.d.sync += ar_pend[i].eq(0)
            with m.If(win.r.valid & mine):
                m.d.sync += [r_wait.eq(0), bus.r.valid.eq(1),
                             bus.r.payload.data.eq(win.r.payload.data),
                             bus.r.payload.resp.eq(win.r.payload.resp)]
        with m.If(bus.r.valid & bus.r.ready):
            m.d.sync += [bus.r.valid.eq(0), ar_busy.eq(0)]
        return m
