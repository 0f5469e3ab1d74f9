"""Stages 1-2 of the router with pipelined allocation (``NocConfig.allocation = "pipelined"``):
the input unit of one port, which also picks, one cycle ahead, the VC this input offers the
switch.

Each VC has a FIFO in LUT RAM (the flit, and beside it the route a head flit asks for, computed
when it arrives) and the per-VC packet state (``active``/``oport``/``ovc``, as in
:class:`~systolica.hdl.noc.input_unit.InputUnit`). Every cycle the unit computes which flit will
be at the head of each VC *next* cycle — the current head, or, if this cycle's request is
granted, the one behind it; either may be the flit arriving on the link now (written at the end
of the cycle) — checks it against the output ports' credit and VC state of this cycle, and
registers one round-robin choice: ``req_vc``, ``req_to`` (the port, one-hot; 0: no request),
``req_head``, ``req_ovc`` (the output VC; ``req_valid`` = any ``req_to``). Both outcomes of this
cycle's grant are computed and the grant only selects between them, so the request register is
exact (it always names the flit at the head of ``req_vc``, and the port that flit wants), and a
flit that arrives on the link in cycle t can win the switch in t+1: still 2 cycles per hop. The
credit and VC checks made one cycle ahead can be stale by one cycle; the router repeats them on
the registered request only in any-VC mode (the VC a head is offered). In in-order mode the
request needs no check: a flit is only requested with two credits on its output VC (at most
one flit per output leaves in a cycle, so one is left), and a head only asks for an output VC
that is free and that no other input's registered head request would take (``claimed``).

``grant`` (in): this cycle's request won its output; the flit leaves, its credit goes back
upstream on the next cycle. ``grant_ovc``: the output VC a head flit takes. Sticky
``overflow``: a flit arrived for a full VC (a broken upstream); it was dropped.
"""

from amaranth.hdl import *
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import NocConfig
from systolica.hdl.contracts import index_bits
from systolica.hdl.lib import StickyFlags
from systolica.hdl.noc.flit import LinkSignature, check_noc_config, flit_layout
from systolica.hdl.noc.route_compute import RouteCompute


__all__ = ["LookaheadInputUnit", "one_hot_select"]


class LookaheadInputUnit(wiring.Component):
    """Input ``outs``: the output ports this input can turn into; ``x``, ``y``: the router's
    position (for the route computation of arriving head flits)."""

    def __init__(self, *, config: NocConfig, x, y, outs):
        check_noc_config(config, "LookaheadInputUnit")
        RouteCompute.validate(config, x, y, "LookaheadInputUnit")
        self._config, self._x, self._y = config, x, y
        self._outs = tuple(sorted(outs))
        V = config.vcs
        vc_shape = unsigned(index_bits(V))
        super().__init__({
            "link": In(LinkSignature(config)),
            # Output-port state of this cycle (for the one-cycle-ahead checks).
            "credit_many": In(data.ArrayLayout(V, 5)),   # at least 2 credits
            "free": In(data.ArrayLayout(V, 5)),
            # in-order mode: another input's registered request is a head that will hold
            # that output VC if it wins (so this input does not ask for it too)
            "claimed": In(data.ArrayLayout(V, 5)),
            "vc_avail": In(5),                       # any-VC mode: the VC allocator's offer
            # The registered request and the flit it names.
            "req_valid": Out(1),
            "req_vc": Out(vc_shape),
            "req_to": Out(5),                        # one-hot: the port it wants
            "req_head": Out(1),                      # the flit is a head
            "req_holds": Out(1),                     # ... and not a tail: it holds its VC
            "req_tail": Out(1),                      # the flit is a tail
            # in-order mode, per (output port, VC), one-hot: the output VC the request holds
            # if it wins (req_holds), registered with it
            "req_claims": Out(data.ArrayLayout(V, 5)),
            "req_ovc": Out(vc_shape),                # its output VC (heads, any-VC: offered)
            "flit": Out(flit_layout(config)),
            "grant": In(1),
            "grant_ovc": In(vc_shape),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        V, B = cfg.vcs, cfg.buffer_depth
        link = self.link
        meta_layout = data.StructLayout({"to": 5, "head": 1, "tail": 1})   # to: one-hot port

        rc = m.submodules.route = RouteCompute(config=cfg, x=self._x, y=self._y)
        m.d.comb += [rc.dst_x[0].eq(link.flit.dst_x), rc.dst_y[0].eq(link.flit.dst_y)]
        link_meta = Signal(meta_layout)
        m.d.comb += [link_meta.head.eq(link.flit.head), link_meta.tail.eq(link.flit.tail)]
        m.d.comb += [link_meta.to[p].eq(rc.port[0] == p) for p in range(5)]

        oport = Signal(data.ArrayLayout(5, V))          # per VC: its packet's port, one-hot
        ovc = Signal(data.ArrayLayout(unsigned(index_bits(V)), V))
        active = Signal(V)
        leave = Signal(V)
        dropped = Signal(V)
        heads = []            # per VC: the head flit (FIFO read at the read pointer)
        head_meta = []
        cand_stay, cand_next = [], []   # per VC: (valid, meta) of next cycle's head
        for v in range(V):
            flits = m.submodules[f"flits{v}"] = memory.Memory(shape=flit_layout(cfg), depth=B,
                                                             init=[])
            metas = m.submodules[f"meta{v}"] = memory.Memory(shape=meta_layout, depth=B,
                                                            init=[])
            level = Signal(range(B + 1), name=f"level{v}")
            wr = Signal(range(B), name=f"wr{v}")
            rd = Signal(range(B), name=f"rd{v}")
            rd1 = Signal(range(B), init=1 % B, name=f"rd1_{v}")   # rd + 1 (mod B)
            arrive = Signal(name=f"arrive{v}")
            write = Signal(name=f"write{v}")
            m.d.comb += [
                arrive.eq(link.valid & (link.flit.vc == v)),
                write.eq(arrive & (level != B)),
                dropped[v].eq(arrive & (level == B)),
            ]
            for mem, value in ((flits, link.flit), (metas, link_meta)):
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(wr), wp.data.eq(value), wp.en.eq(write)]
            # The head and the one behind it: their flags and route in registers (so the
            # choice below starts from flip-flops), refilled from the RAM at rd + 2 / the link.
            flit_rp = flits.read_port(domain="comb")
            meta2_rp = metas.read_port(domain="comb")
            rd2 = Signal(range(B), init=2 % B, name=f"rd2_{v}")
            m.d.comb += [flit_rp.addr.eq(rd), meta2_rp.addr.eq(rd2)]
            head_m = Signal(meta_layout, name=f"head_meta{v}")
            next_m = Signal(meta_layout, name=f"next_meta{v}")
            heads.append(flit_rp.data)
            head_meta.append(head_m)

            def step(ptr):
                return Mux(ptr == B - 1, 0, ptr + 1)

            with m.If(write):
                m.d.sync += wr.eq(step(wr))
            with m.If(leave[v]):
                m.d.sync += [rd.eq(rd1), rd1.eq(rd2), rd2.eq(step(rd2))]
            # (both sums ready before the grant: `leave` only picks one)
            m.d.sync += level.eq(Mux(leave[v], level + write - 1, level + write))
            with m.If(leave[v]):
                m.d.sync += [head_m.eq(Mux(level > 1, next_m, link_meta)),
                             next_m.eq(Mux(level > 2, meta2_rp.data, link_meta))]
            with m.Else():
                m.d.sync += [head_m.eq(Mux(level != 0, head_m, link_meta)),
                             next_m.eq(Mux(level > 1, next_m, link_meta))]

            # Next cycle's head: the current one if it stays, the one behind it if it leaves
            # (either may be the flit arriving now).
            cand_stay.append((Mux(level != 0, 1, arrive),
                              meta_layout(Mux(level != 0, head_m, link_meta))))
            cand_next.append((Mux(level > 1, 1, (level == 1) & arrive),
                              meta_layout(Mux(level > 1, next_m, link_meta))))

        overflow = m.submodules.overflow = StickyFlags(1)
        m.d.comb += [overflow.set.eq(dropped.any()), self.overflow.eq(overflow.flags)]

        # --- the registered request and the flit it names ------------------------------------
        req_vc = self.req_vc
        m.d.comb += [
            self.flit.eq(Array(heads)[req_vc] if V > 1 else heads[0]),
            self.req_valid.eq(self.req_to.any()),
        ]
        m.d.comb += [leave[v].eq(self.grant & (req_vc == v)) for v in range(V)]
        if cfg.in_order:
            m.d.comb += self.req_ovc.eq(req_vc)
        req_meta = Array(head_meta)[req_vc] if V > 1 else head_meta[0]
        with m.If(self.grant):
            m.d.sync += [active.bit_select(req_vc, 1).eq(~req_meta.tail),
                         self.link.credit.eq(1), self.link.credit_vc.eq(req_vc)]
            with m.If(req_meta.head):
                m.d.sync += [oport[req_vc].eq(self.req_to), ovc[req_vc].eq(self.grant_ovc)]
        with m.Else():
            m.d.sync += self.link.credit.eq(0)

        # --- next cycle's choice, for both outcomes of this cycle's grant --------------------
        def ports_ok(meta, packet_to, packet_ovc, v):
            """Per output port (one-hot, 0 if none): the flit (meta) on input VC v can move
            there, by this cycle's output state: a head needs a free output VC with two
            credits where it routes to, a body flit two credits on its packet's output VC at
            its packet's port. Two: whatever the switch sends on that VC this cycle, one is
            left next cycle, so the router need not check credits again. (Counting a credit
            coming back in this cycle as well recovers part of the saturation throughput of
            long packets but costs about 7 % of Fmax: docs/synthesis.md.)"""
            to = []
            for p in range(5):
                if p not in self._outs:
                    to.append(Const(0))
                    continue
                if cfg.in_order:
                    head_ok = self.free[p][v] & ~self.claimed[p][v] & self.credit_many[p][v]
                else:
                    head_ok = self.vc_avail[p]
                body_ok = self.credit_many[p].bit_select(packet_ovc, 1)
                to.append(Mux(meta.head, meta.to[p] & head_ok, packet_to[p] & body_ok))
            # (in in-order mode every flit keeps its VC: req_ovc is req_vc; in any-VC mode a
            # head gets one at the switch)
            return Cat(to), packet_ovc

        last = Signal(range(V), init=V - 1)         # round-robin: the last VC granted
        for after_grant in (False, True):
            to_of, head_of, holds_of, tail_of, vc_of = [], [], [], [], []
            for v in range(V):
                cand_valid, meta = cand_stay[v]
                packet_to, packet_ovc = oport[v], ovc[v]
                if after_grant:
                    # The request's VC moves on to its next flit: a body flit follows its
                    # packet, which now holds the granted port and output VC.
                    mine = req_vc == v
                    cand_valid = Mux(mine, cand_next[v][0], cand_valid)
                    meta = meta_layout(Mux(mine, cand_next[v][1], meta))
                    packet_to = Mux(mine, self.req_to, packet_to)
                    packet_ovc = Mux(mine & ~active[v], self.grant_ovc, packet_ovc)
                to, out_vc = ports_ok(meta, packet_to, packet_ovc, v)
                to_v = Signal(5, name=f"to{int(after_grant)}_{v}")
                m.d.comb += to_v.eq(Mux(cand_valid, to, 0))
                to_of.append(to_v)
                head_of.append(meta.head)
                holds_of.append(meta.head & ~meta.tail)
                tail_of.append(meta.tail)
                vc_of.append(out_vc)
            # Round robin (one-hot) from the VC after the last granted one.
            choose = Signal(V, name=f"choose{int(after_grant)}")
            with m.Switch(last):
                for l in range(V):
                    with m.Case(l):
                        for k in reversed(range(V)):
                            i = (l + 1 + k) % V
                            with m.If(to_of[i].any()):
                                m.d.comb += choose.eq(1 << i)
            # The two outcomes are kept apart (``keep``): synthesis then leaves the grant, the
            # latest signal of the cycle, to a last 2:1 multiplexer.
            tag = int(after_grant)
            next_to = Signal(5, name=f"next_to{tag}", attrs={"keep": 1})
            next_vc = Signal.like(req_vc, name=f"next_vc{tag}", attrs={"keep": 1})
            next_head = Signal(name=f"next_head{tag}", attrs={"keep": 1})
            next_ovc = Signal.like(req_vc, name=f"next_ovc{tag}", attrs={"keep": 1})
            next_holds = Signal(name=f"next_holds{tag}", attrs={"keep": 1})
            next_tail = Signal(name=f"next_tail{tag}", attrs={"keep": 1})
            m.d.comb += [
                next_tail.eq(one_hot_select(choose, tail_of)),
                next_holds.eq(one_hot_select(choose, holds_of)),
                next_to.eq(one_hot_select(choose, to_of)),
                next_vc.eq(one_hot_select(choose, [Const(v, req_vc.shape()) for v in range(V)])),
                next_head.eq(one_hot_select(choose, head_of)),
                next_ovc.eq(one_hot_select(choose, vc_of)),
            ]
            with m.If(self.grant == after_grant):
                m.d.sync += [self.req_to.eq(next_to), req_vc.eq(next_vc),
                             self.req_head.eq(next_head), self.req_holds.eq(next_holds),
                             self.req_tail.eq(next_tail)]
                if cfg.in_order:
                    for p in range(5):
                        for v in range(V):
                            at = next_to[p] & (next_vc == v)
                            m.d.sync += self.req_claims[p][v].eq(at & next_holds)
                if not cfg.in_order:
                    m.d.sync += self.req_ovc.eq(next_ovc)
        with m.If(self.grant):
            m.d.sync += last.eq(req_vc)
        return m


def one_hot_select(one_hot, values):
    """values[k] where bit k of one_hot is the one set (0 when none is): an AND-OR."""
    out = 0
    for k, value in enumerate(values):
        out = out | Mux(one_hot[k], value, 0)
    return out
