"""A synthesizable AXI4 slave over ``amaranth.lib.memory``: DRAM for whole-design simulation
(Verilator runs tile + DRAM as one model) and block-RAM DRAM on an FPGA.

* ``depth`` words of ``data_width`` bits; byte address ``a`` is byte ``a % W`` of word ``a // W``.
* INCR bursts (any length ≤ 256); one read burst and one write burst are served at a time, two
  more of each are queued. Reads return one beat per cycle after ``read_latency`` cycles; W beats
  are written with their strobes; B follows the last W beat.
* A beat beyond ``depth`` words answers DECERR (reads carry 0, writes are dropped).
* ``stall`` (probability 0..1, or a dict per channel ``ar r aw w b``) and ``jitter`` (extra read
  latency 0..2**k-1 for ``jitter`` < 2**k) come from 16-bit LFSRs seeded by ``seed``: pseudo-random
  but deterministic and synthesizable, for tests of backpressure on every channel.
* ``backdoor`` (optional): a word port for test benches (write ``addr``/``data``/``we``; read data
  appears on ``rdata`` the cycle after ``addr``), so a host loads and reads DRAM without AXI.
"""

from amaranth.hdl import *
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .axi import RESP_DECERR, RESP_OKAY, Axi4Signature
from .lib import Queue


__all__ = ["AxiRam", "Lfsr", "lfsr_settings"]

_CHANNELS = ("ar", "r", "aw", "w", "b")


class Lfsr(wiring.Component):
    """A 16-bit Fibonacci LFSR (taps 16, 14, 13, 11), advancing every cycle."""

    @staticmethod
    def initial(seed):
        """The register's value in cycle 0 for ``seed`` (never 0, which would lock it)."""
        return seed & 0xFFFF or 0xACE1

    def __init__(self, seed):
        seed = self.initial(seed)
        self._seed = seed
        super().__init__({"value": Out(16, init=seed)})

    def elaborate(self, platform):
        m = Module()
        v = self.value
        feedback = v[15] ^ v[13] ^ v[12] ^ v[10]
        m.d.sync += v.eq(Cat(feedback, v[:15]))
        return m


def lfsr_settings(*, stall=0.0, jitter=0, seed=1):
    """How an :class:`AxiRam` draws its stalls and jitter (the C++ DRAM model of the compiled
    backend draws the same ones): ``{channel: (LFSR value in cycle 0, threshold)}`` -- the channel
    stalls in a cycle iff the LFSR's low 8 bits are below the threshold (0: never) -- and
    ``"latency": (LFSR value in cycle 0, bits)``: the extra read latency is LFSR bits
    ``4 .. 4 + bits - 1``."""
    stalls = stall if isinstance(stall, dict) else {ch: stall for ch in _CHANNELS}
    unknown = set(stalls) - set(_CHANNELS)
    if unknown:
        raise ValueError(f"AxiRam stall: unknown channel(s) {sorted(unknown)}")
    for ch, p in stalls.items():
        if not 0.0 <= p < 1.0:
            raise ValueError(f"AxiRam stall[{ch!r}] must be in [0, 1); got {p!r}")
    if not isinstance(jitter, int) or not 0 <= jitter <= 255:
        raise ValueError(f"AxiRam jitter must be in [0, 255]; got {jitter!r}")
    out = {ch: (Lfsr.initial(seed * 7919 + i * 104729), int(round(stalls.get(ch, 0.0) * 256)))
           for i, ch in enumerate(_CHANNELS)}
    out["latency"] = (Lfsr.initial(seed * 31 + 12345), jitter.bit_length())
    return out


class AxiRam(wiring.Component):
    def __init__(self, *, addr_width, data_width, id_width, depth, init=(), read_latency=1,
                 stall=0.0, jitter=0, seed=1, backdoor=False):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"AxiRam depth must be a positive integer; got {depth!r}")
        if not isinstance(read_latency, int) or not 1 <= read_latency <= 64:
            raise ValueError(f"AxiRam read_latency must be in [1, 64]; got {read_latency!r}")
        self._lfsrs = lfsr_settings(stall=stall, jitter=jitter, seed=seed)
        self._depth = depth
        self._init = list(init)
        self._latency = read_latency
        self._sig = Axi4Signature(addr_width=addr_width, data_width=data_width,
                                  id_width=id_width)
        members = {"axi": In(self._sig)}
        if backdoor:
            members["backdoor"] = In(data.StructLayout({
                "addr": unsigned(max(1, (depth - 1).bit_length())), "data": unsigned(data_width),
                "we": 1}))
            members["backdoor_rdata"] = Out(data_width)
        self._backdoor = backdoor
        super().__init__(members)
        #: The storage (test benches may read ``mem.data[i]`` in the Amaranth simulator).
        self.mem = memory.Memory(shape=unsigned(data_width), depth=depth, init=self._init)

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        axi, sig = self.axi, self._sig
        W = sig.data_bytes
        low = (W - 1).bit_length()
        mem = m.submodules.mem = self.mem
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)

        stall = {}
        for ch in _CHANNELS:
            initial, threshold = self._lfsrs[ch]
            if threshold:
                lfsr = m.submodules[f"lfsr_{ch}"] = Lfsr(initial)
                stall[ch] = lfsr.value[:8] < threshold
            else:
                stall[ch] = C(0)
        initial, jitter_bits = self._lfsrs["latency"]
        if jitter_bits:
            lfsr = m.submodules.lfsr_latency = Lfsr(initial)
            jitter = lfsr.value[4:4 + jitter_bits]
        else:
            jitter = C(0, 1)

        burst_layout = data.StructLayout({"id": unsigned(max(1, sig.id_width)),
                                          "addr": unsigned(sig.addr_width), "len": 8})

        def queue(name, channel):
            q = m.submodules[name] = Queue(shape=burst_layout, depth=2)
            m.d.comb += [q.i.valid.eq(channel.valid & ~stall[name[:2]]),
                         channel.ready.eq(q.i.ready & ~stall[name[:2]]),
                         q.i.payload.addr.eq(channel.payload.addr),
                         q.i.payload.len.eq(channel.payload.len)]
            if sig.id_width:
                m.d.comb += q.i.payload.id.eq(channel.payload.id)
            return q.o

        def in_range(word):
            return word < self._depth

        # --- reads ---------------------------------------------------------------------------------
        arq = queue("ar_queue", axi.ar)
        r_active = Signal()
        r_word = Signal(sig.addr_width - low)
        r_left = Signal(9)
        r_id = Signal(max(1, sig.id_width))
        r_wait = Signal(range(64 + 256 + 1))
        m.d.comb += arq.ready.eq(~r_active)
        with m.If(arq.valid & ~r_active):
            m.d.sync += [r_active.eq(1), r_word.eq(arq.payload.addr[low:]),
                         r_left.eq(arq.payload.len + 1), r_id.eq(arq.payload.id),
                         r_wait.eq(self._latency - 1 + jitter)]
        with m.Elif(r_active & (r_wait != 0)):
            m.d.sync += r_wait.eq(r_wait - 1)
        issue = r_active & (r_wait == 0) & (~axi.r.valid | axi.r.ready) & ~stall["r"]
        r_bad = Signal()
        m.d.comb += [rd.addr.eq(r_word), rd.en.eq(issue)]
        with m.If(issue):
            m.d.sync += [axi.r.valid.eq(1), axi.r.payload.last.eq(r_left == 1),
                         r_bad.eq(~in_range(r_word)), r_word.eq(r_word + 1),
                         r_left.eq(r_left - 1)]
            if sig.id_width:
                m.d.sync += axi.r.payload.id.eq(r_id)
            with m.If(r_left == 1):
                m.d.sync += r_active.eq(0)
        with m.Elif(axi.r.ready):
            m.d.sync += axi.r.valid.eq(0)
        m.d.comb += [axi.r.payload.data.eq(Mux(r_bad, 0, rd.data)),
                     axi.r.payload.resp.eq(Mux(r_bad, RESP_DECERR, RESP_OKAY))]

        # --- writes --------------------------------------------------------------------------------
        awq = queue("aw_queue", axi.aw)
        w_active = Signal()
        w_word = Signal(sig.addr_width - low)
        w_id = Signal(max(1, sig.id_width))
        w_bad = Signal()
        b_pending = Signal()
        m.d.comb += awq.ready.eq(~w_active & ~b_pending)
        with m.If(awq.valid & awq.ready):
            m.d.sync += [w_active.eq(1), w_word.eq(awq.payload.addr[low:]), w_bad.eq(0),
                         w_id.eq(awq.payload.id)]
        w_fire = axi.w.valid & axi.w.ready
        m.d.comb += axi.w.ready.eq(w_active & ~stall["w"])
        good = in_range(w_word)
        if self._backdoor:
            bd = self.backdoor
            m.d.comb += [wr.addr.eq(Mux(bd.we, bd.addr, w_word)),
                         wr.data.eq(Mux(bd.we, bd.data, axi.w.payload.data)),
                         wr.en.eq(Mux(bd.we, (1 << W) - 1,
                                      Mux(w_fire & good, axi.w.payload.strb, 0)))]
            bd_rd = mem.read_port()
            m.d.comb += [bd_rd.addr.eq(bd.addr), self.backdoor_rdata.eq(bd_rd.data)]
        else:
            m.d.comb += [wr.addr.eq(w_word), wr.data.eq(axi.w.payload.data),
                         wr.en.eq(Mux(w_fire & good, axi.w.payload.strb, 0))]
        with m.If(w_fire):
            m.d.sync += [w_word.eq(w_word + 1), w_bad.eq(w_bad | ~good)]
            with m.If(axi.w.payload.last):
                m.d.sync += [w_active.eq(0), b_pending.eq(1)]
        with m.If(b_pending & ~axi.b.valid & ~stall["b"]):
            m.d.sync += [axi.b.valid.eq(1), axi.b.payload.resp.eq(Mux(w_bad, RESP_DECERR,
                                                                      RESP_OKAY))]
            if sig.id_width:
                m.d.sync += axi.b.payload.id.eq(w_id)
        with m.If(axi.b.valid & axi.b.ready):
            m.d.sync += [axi.b.valid.eq(0), b_pending.eq(0)]
        return m
