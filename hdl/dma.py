"""The DMA engine: moves tensors between DRAM (an AXI4 master port) and the SBUF (a word port,
``hdl/sbuf_port.py``), DRAM to DRAM and SBUF to SBUF, as described by 3-D strided descriptors
taken from descriptor queues. docs/dma.md is the user's reference; in short:

* ``queues[q]`` (``DmaConfig.queues`` streams of :func:`dma_descriptor_layout`) are buffered
  ``queue_depth`` deep; descriptors of one queue run in order, the engine takes the next one
  round-robin between the queues, one descriptor at a time.
* A descriptor is first checked (:data:`DMA_ERRORS`, 4 pipelined cycles); a bad one does no
  access at all. Then a
  *reader* (a :class:`~.dma_walker.DmaWalker` in burst mode issuing AR bursts, several in flight,
  or in word mode issuing SBUF reads) feeds a byte realigner (:class:`~.dma_realign.DmaRealigner`)
  and a *writer* (walker in word mode writing SBUF words with byte enables, or in burst mode
  issuing AW bursts whose W beats follow their AW handshake) drains it. The descriptor completes
  when the reader has had every response, the writer has had every write accepted and every
  AXI write response (B) counted.
* Completion increments the descriptor's semaphore counter (``sem_values``, also on an error, so a
  waiter never hangs; the consumer subtracts with ``sem_sub``) and pulses ``done`` with
  ``done_info`` (queue, semaphore, error code). Status: ``busy``, ``idle``, ``done_count``,
  ``error_count``, sticky ``error`` and ``last_error`` (cleared by ``clear_errors``).
* An AXI error response (SLVERR/DECERR) on a read *poisons* the rest of the descriptor: its
  remaining writes go out with all byte enables / strobes low, so nothing wrong is written.
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from systolica.config import ConfigError, DmaConfig, SbufConfig
from .axi import BURST_INCR, Axi4Signature
from .dma_realign import DmaRealigner
from .dma_walker import DmaWalker
from .contracts import SbufPortSignature


__all__ = [
    "DMA_OK", "DMA_ERR_ZERO_SIZE", "DMA_ERR_SIZE_MISMATCH", "DMA_ERR_SBUF_RANGE",
    "DMA_ERR_DRAM_RANGE", "DMA_ERR_SEMAPHORE", "DMA_ERR_READ", "DMA_ERR_WRITE", "DMA_ERRORS",
    "dma_side_layout", "dma_descriptor_layout", "dma_done_layout", "sem_sub_layout",
    "sbuf_address", "Dma",
]

DMA_OK = 0
DMA_ERR_ZERO_SIZE = 1        # elem_bytes == 0 or a count == 0
DMA_ERR_SIZE_MISMATCH = 2    # source and destination element counts differ
DMA_ERR_SBUF_RANGE = 3       # an SBUF side reaches below 0 or beyond the buffer
DMA_ERR_DRAM_RANGE = 4       # a DRAM side reaches below 0 or beyond 2**addr_width (wraps)
DMA_ERR_SEMAPHORE = 5        # semaphore id >= DmaConfig.semaphores
DMA_ERR_READ = 6             # an AXI read answered SLVERR/DECERR
DMA_ERR_WRITE = 7            # an AXI write answered SLVERR/DECERR

DMA_ERRORS = {
    DMA_OK: "ok",
    DMA_ERR_ZERO_SIZE: "zero_size",
    DMA_ERR_SIZE_MISMATCH: "size_mismatch",
    DMA_ERR_SBUF_RANGE: "sbuf_range",
    DMA_ERR_DRAM_RANGE: "dram_range",
    DMA_ERR_SEMAPHORE: "bad_semaphore",
    DMA_ERR_READ: "axi_read_error",
    DMA_ERR_WRITE: "axi_write_error",
}


def _bits_for(n):
    return max(1, (n - 1).bit_length())


def dma_side_layout(config: DmaConfig):
    """One side (source or destination) of a descriptor."""
    return data.StructLayout({
        "sbuf": 1,                                   # 0: DRAM byte address, 1: SBUF address
        "addr": unsigned(config.addr_width),
        "count": data.ArrayLayout(unsigned(config.count_bits), 3),
        "stride": data.ArrayLayout(signed(config.addr_width), 3),
    })


def dma_descriptor_layout(config: DmaConfig):
    return data.StructLayout({
        "src": dma_side_layout(config),
        "dst": dma_side_layout(config),
        "elem_bytes": unsigned(config.elem_bits),
        "semaphore": unsigned(_bits_for(config.semaphores)),
    })


def dma_done_layout(config: DmaConfig):
    return data.StructLayout({
        "queue": unsigned(_bits_for(config.queues)),
        "semaphore": unsigned(_bits_for(config.semaphores)),
        "error": unsigned(3),
    })


def sem_sub_layout(config: DmaConfig):
    return data.StructLayout({
        "id": unsigned(_bits_for(config.semaphores)),
        "amount": unsigned(config.semaphore_bits),
    })


def sbuf_address(sbuf_config: SbufConfig, partition, offset):
    """The descriptor address of byte ``offset`` of SBUF partition ``partition``: the SBUF is one
    linear byte space, partition after partition (``partition_bytes`` each)."""
    if not 0 <= partition < sbuf_config.partitions:
        raise ValueError(f"sbuf_address: partition must be in [0, {sbuf_config.partitions}); "
                         f"got {partition}")
    if not 0 <= offset < sbuf_config.partition_bytes:
        raise ValueError(f"sbuf_address: offset must be in [0, {sbuf_config.partition_bytes}); "
                         f"got {offset}")
    return partition * sbuf_config.partition_bytes + offset


class Dma(wiring.Component):
    """The DMA engine (see the module docstring and docs/dma.md)."""

    def __init__(self, config: DmaConfig = None, sbuf_config: SbufConfig = None):
        try:
            self._check(config, sbuf_config)
        except Exception:
            self._MustUse__silence = True       # a rejected component is not "unused"
            raise
        config = DmaConfig() if config is None else config
        sbuf_config = SbufConfig() if sbuf_config is None else sbuf_config
        self._config = config
        self._sbuf_config = sbuf_config
        super().__init__({
            "queues": In(stream.Signature(dma_descriptor_layout(config))).array(config.queues),
            "axi": Out(Axi4Signature(addr_width=config.addr_width, data_width=config.data_width,
                                     id_width=config.id_width)),
            "sbuf": Out(SbufPortSignature(sbuf_config)),
            "sem_values": Out(data.ArrayLayout(unsigned(config.semaphore_bits),
                                               config.semaphores)),
            "sem_sub": In(stream.Signature(sem_sub_layout(config))),
            "busy": Out(1),
            "idle": Out(1),
            "done": Out(1),
            "done_info": Out(dma_done_layout(config)),
            "done_count": Out(32),
            "error_count": Out(16),
            "error": Out(1),
            "last_error": Out(3),
            "clear_errors": In(1),
        })

    @staticmethod
    def _check(config, sbuf_config):
        config = DmaConfig() if config is None else config
        sbuf_config = SbufConfig() if sbuf_config is None else sbuf_config
        if not isinstance(config, DmaConfig):
            raise TypeError(f"Dma config must be a DmaConfig; got {config!r}")
        if not isinstance(sbuf_config, SbufConfig):
            raise TypeError(f"Dma sbuf_config must be an SbufConfig; got {sbuf_config!r}")
        if config.data_width != 8 * sbuf_config.word_bytes:
            raise ConfigError(f"DmaConfig.data_width must equal 8 * SbufConfig.word_bytes = "
                              f"{8 * sbuf_config.word_bytes}; got {config.data_width}")
        if sbuf_config.depth & (sbuf_config.depth - 1):
            raise ConfigError(f"the DMA needs SbufConfig.depth to be a power of two (linear "
                              f"SBUF addresses); got {sbuf_config.depth}")
        sbuf_bytes = sbuf_config.partitions * sbuf_config.partition_bytes
        if sbuf_bytes > (1 << config.addr_width):
            raise ConfigError(f"DmaConfig.addr_width must be >= {(sbuf_bytes - 1).bit_length()} "
                              f"to address the whole SBUF; got {config.addr_width}")

    @property
    def config(self):
        return self._config

    @property
    def sbuf_config(self):
        return self._sbuf_config

    def elaborate(self, platform):
        m = Module()
        cfg, scfg = self._config, self._sbuf_config
        W = cfg.data_bytes
        lw = (W - 1).bit_length()
        aw = cfg.addr_width
        Q = cfg.queues
        depth_bits = (scfg.depth - 1).bit_length()
        sbuf_bytes = scfg.partitions * scfg.partition_bytes
        desc_layout = dma_descriptor_layout(cfg)

        # --- descriptor queues and the round-robin pick ------------------------------------------
        fifos = []
        for q in range(Q):
            fifo = SyncFIFO(width=desc_layout.size, depth=cfg.queue_depth)
            m.submodules[f"queue{q}"] = fifo
            m.d.comb += [
                fifo.w_data.eq(self.queues[q].payload),
                fifo.w_en.eq(self.queues[q].valid),
                self.queues[q].ready.eq(fifo.w_rdy),
            ]
            fifos.append(fifo)

        desc = Signal(desc_layout)
        cur_queue = Signal(range(Q))
        last_queue = Signal(range(Q), init=Q - 1)
        pick = Signal(range(Q))
        pick_valid = Signal()
        with m.Switch(last_queue):
            for last in range(Q):
                with m.Case(last):
                    order = [(last + k) % Q for k in range(1, Q + 1)]
                    for j, q in enumerate(order):
                        with (m.If if j == 0 else m.Elif)(fifos[q].r_rdy):
                            m.d.comb += [pick.eq(q), pick_valid.eq(1)]

        # --- descriptor checks: a 3-stage pipeline from the descriptor register ----------------
        # Stage 1 registers the spans (count-1)*stride and count0*count1, stage 2 the lowest and
        # one-past-highest byte of each side and the element counts, stage 3 the verdict. The
        # descriptor register is stable from IDLE until the next pick, so the stages need no
        # valid bits: the FSM waits (CHECK, CHECK2, CHECK3) and uses the verdict in DECIDE.
        src, dst = desc.src, desc.dst
        elem = desc.elem_bytes
        wide = signed(aw + cfg.count_bits + 6)

        def side_checks(side, name):
            spans = []
            for d in range(3):
                span = Signal(signed(aw + cfg.count_bits + 2), name=f"{name}_span{d}")
                m.d.sync += span.eq((side.count[d] - 1) * side.stride[d])
                spans.append(span)
            c01 = Signal(2 * cfg.count_bits, name=f"{name}_c01")
            m.d.sync += c01.eq(side.count[0] * side.count[1])
            lo = Signal(wide, name=f"{name}_lo")
            end = Signal(wide, name=f"{name}_end")
            elements = Signal(3 * cfg.count_bits, name=f"{name}_elements")
            neg = sum(Mux(x < 0, x, 0) for x in spans)
            pos = sum(Mux(x > 0, x, 0) for x in spans)
            m.d.sync += [lo.eq(side.addr + neg), end.eq(side.addr + pos + elem),
                         elements.eq(c01 * side.count[2])]
            limit = Mux(side.sbuf, sbuf_bytes, 1 << aw)
            return (lo < 0) | (end > limit), elements

        src_bad, src_elements = side_checks(src, "src")
        dst_bad, dst_elements = side_checks(dst, "dst")
        zero = Signal()
        m.d.sync += zero.eq((elem == 0) | Cat(side.count[d] == 0
                                              for side in (src, dst) for d in range(3)).any())
        check_error = Signal(3)
        with m.If(zero):
            m.d.comb += check_error.eq(DMA_ERR_ZERO_SIZE)
        with m.Elif(src_elements != dst_elements):
            m.d.comb += check_error.eq(DMA_ERR_SIZE_MISMATCH)
        with m.Elif((src_bad & src.sbuf) | (dst_bad & dst.sbuf)):
            m.d.comb += check_error.eq(DMA_ERR_SBUF_RANGE)
        with m.Elif(src_bad | dst_bad):
            m.d.comb += check_error.eq(DMA_ERR_DRAM_RANGE)
        with m.Elif(desc.semaphore >= cfg.semaphores):
            m.d.comb += check_error.eq(DMA_ERR_SEMAPHORE)
        check_result = Signal(3)            # stage 3: the verdict, used in DECIDE
        m.d.sync += check_result.eq(check_error)

        # --- walkers and realigner ---------------------------------------------------------------
        walker_args = dict(addr_width=aw, count_bits=cfg.count_bits, elem_bits=cfg.elem_bits,
                           word_bytes=W, max_burst=cfg.max_burst)
        rw = m.submodules.read_walker = DmaWalker(**walker_args)
        ww = m.submodules.write_walker = DmaWalker(**walker_args)
        ra = m.submodules.realigner = DmaRealigner(W)
        start = Signal()
        for walker, side in ((rw, src), (ww, dst)):
            m.d.comb += [
                walker.start.eq(start),
                walker.word_mode.eq(side.sbuf),
                walker.elem.eq(elem),
                walker.base.eq(side.addr),
                walker.count.eq(side.count),
                walker.stride.eq(side.stride),
            ]
        src_sbuf, dst_sbuf = src.sbuf, dst.sbuf
        poison = Signal()       # an AXI read error in this descriptor: write nothing more
        read_error = Signal()
        write_error = Signal()

        def sbuf_word(addr):
            word = addr[lw:]
            return word[depth_bits:], word[:depth_bits]

        axi = self.axi
        rp, wp = rw.piece, ww.piece

        def issue_burst(channel, load, piece):
            """AR / AW output register: loaded with a walker's burst piece, held until ready."""
            with m.If(load):
                m.d.sync += [
                    channel.valid.eq(1),
                    channel.payload.addr.eq(piece.addr),
                    channel.payload.len.eq(piece.beats - 1),
                    channel.payload.size.eq(lw),
                    channel.payload.burst.eq(BURST_INCR),
                    channel.payload.id.eq(0),
                ]
            with m.Elif(channel.ready):
                m.d.sync += channel.valid.eq(0)

        def beat_splitter(name, info):
            """Cuts the bursts queued in ``info`` (``lo``, ``n``) into data beats (first beat from
            lane ``lo``, later beats from lane 0) and presents them from registers: returns
            (valid, lo, n, last, take); ``take`` (to drive) consumes the beat."""
            head = Signal(info_layout, name=f"{name}_head")
            off = Signal(14, name=f"{name}_off")        # bytes of the head burst already cut
            lo_now = Signal(max(1, lw), name=f"{name}_lo_now")
            left = Signal(14, name=f"{name}_left")
            room = Signal(range(W + 1), name=f"{name}_room")
            m.d.comb += [
                head.eq(info.r_data),
                lo_now.eq(Mux(off == 0, head.lo, 0)),
                left.eq(head.n - off),
                room.eq(W - lo_now),
            ]
            valid = Signal(name=f"{name}_valid")
            lo = Signal(max(1, lw), name=f"{name}_lo")
            n = Signal(range(W + 1), name=f"{name}_n")
            last = Signal(name=f"{name}_last")
            take = Signal(name=f"{name}_take")
            load = info.r_rdy & (~valid | take)
            ends = left <= room
            with m.If(load):
                m.d.sync += [valid.eq(1), lo.eq(lo_now), n.eq(Mux(ends, left, room)),
                             last.eq(ends), off.eq(Mux(ends, 0, off + room))]
            with m.Elif(take):
                m.d.sync += valid.eq(0)
            m.d.comb += info.r_en.eq(load & ends)
            return valid, lo, n, last, take
        info_layout = data.StructLayout({"lo": unsigned(max(1, lw)), "n": unsigned(14)})

        # --- reader, DRAM: AR bursts, several in flight ------------------------------------------
        rinfo = m.submodules.rinfo = SyncFIFO(width=info_layout.size,
                                              depth=cfg.outstanding_reads)
        reads_out = Signal(range(cfg.outstanding_reads + 1))
        ar_free = ~axi.ar.valid | axi.ar.ready
        ar_load = Signal()
        m.d.comb += ar_load.eq(~src_sbuf & rp.valid & ar_free & rinfo.w_rdy &
                               (reads_out < cfg.outstanding_reads))
        issue_burst(axi.ar, ar_load, rp.payload)
        rinfo_in = Signal(info_layout)
        m.d.comb += [
            rinfo_in.lo.eq(rp.payload.lo), rinfo_in.n.eq(rp.payload.n),
            rinfo.w_data.eq(rinfo_in), rinfo.w_en.eq(ar_load),
        ]

        r_valid, r_lo, r_n, r_last, r_take = beat_splitter("rbeat", rinfo)
        r_fire = axi.r.valid & axi.r.ready
        r_burst_end = r_fire & r_last
        m.d.comb += r_take.eq(r_fire)
        with m.If(ar_load & ~r_burst_end):
            m.d.sync += reads_out.eq(reads_out + 1)
        with m.Elif(~ar_load & r_burst_end):
            m.d.sync += reads_out.eq(reads_out - 1)

        # --- reader, SBUF: word reads with a response buffer (credits) ---------------------------
        sinfo = m.submodules.sinfo = SyncFIFO(width=info_layout.size, depth=cfg.sbuf_reads)
        sresp = m.submodules.sresp = SyncFIFO(width=8 * W, depth=cfg.sbuf_reads)
        sinfo_in = Signal(info_layout)
        shead = Signal(info_layout)
        m.d.comb += [
            sinfo_in.lo.eq(rp.payload.lo), sinfo_in.n.eq(rp.payload.n),
            sinfo.w_data.eq(sinfo_in), shead.eq(sinfo.r_data),
            sresp.w_data.eq(self.sbuf.response.payload.data.as_value()),
            sresp.w_en.eq(self.sbuf.response.valid),
            self.sbuf.response.ready.eq(sresp.w_rdy),
        ]

        # --- realigner input: R beats or SBUF read data -------------------------------------------
        with m.If(src_sbuf):
            m.d.comb += [
                ra.inp.valid.eq(sresp.r_rdy & sinfo.r_rdy),
                ra.inp.payload.data.eq(sresp.r_data),
                ra.inp.payload.lo.eq(shead.lo),
                ra.inp.payload.n.eq(shead.n),
                sresp.r_en.eq(ra.inp.ready & sinfo.r_rdy),
                sinfo.r_en.eq(ra.inp.ready & sresp.r_rdy),
            ]
        with m.Else():
            m.d.comb += [
                ra.inp.valid.eq(axi.r.valid & r_valid),
                ra.inp.payload.data.eq(axi.r.payload.data),
                ra.inp.payload.lo.eq(r_lo),
                ra.inp.payload.n.eq(r_n),
                axi.r.ready.eq(ra.inp.ready & r_valid),
            ]
        with m.If(r_fire & (axi.r.payload.resp != 0)):
            m.d.sync += [poison.eq(1), read_error.eq(1)]

        # --- writer, DRAM: AW bursts, then their W beats ------------------------------------------
        winfo = m.submodules.winfo = SyncFIFO(width=info_layout.size,
                                              depth=cfg.outstanding_writes)
        writes_out = Signal(range(cfg.outstanding_writes + 1))
        aw_info = Signal(info_layout)
        aw_free = ~axi.aw.valid | axi.aw.ready
        aw_load = Signal()
        m.d.comb += aw_load.eq(~dst_sbuf & wp.valid & aw_free &
                               (writes_out < cfg.outstanding_writes))
        issue_burst(axi.aw, aw_load, wp.payload)
        with m.If(aw_load):
            m.d.sync += [aw_info.lo.eq(wp.payload.lo), aw_info.n.eq(wp.payload.n)]
        m.d.comb += [winfo.w_data.eq(aw_info), winfo.w_en.eq(axi.aw.valid & axi.aw.ready)]
        b_fire = axi.b.valid & axi.b.ready
        m.d.comb += axi.b.ready.eq(1)
        with m.If(aw_load & ~b_fire):
            m.d.sync += writes_out.eq(writes_out + 1)
        with m.Elif(~aw_load & b_fire):
            m.d.sync += writes_out.eq(writes_out - 1)
        with m.If(b_fire & (axi.b.payload.resp != 0)):
            m.d.sync += write_error.eq(1)

        w_valid, w_lo, w_n, w_last, w_take = beat_splitter("wbeat", winfo)
        w_free = ~axi.w.valid | axi.w.ready

        # --- writer, SBUF, and the SBUF request register (reads and writes, round-robin) ---------
        req = self.sbuf.request
        req_free = ~req.valid | req.ready
        read_cand = src_sbuf & rp.valid & sinfo.w_rdy
        last_grant_read = Signal()
        sbuf_w_space = req_free & (~read_cand | last_grant_read)
        grant_w = Signal()
        grant_r = Signal()
        m.d.comb += [
            grant_w.eq(dst_sbuf & wp.valid & ra.out_avail & sbuf_w_space),
            grant_r.eq(read_cand & req_free & ~grant_w),
        ]

        # --- realigner output: to the SBUF request or to a W beat --------------------------------
        with m.If(dst_sbuf):
            m.d.comb += [
                ra.out_valid.eq(wp.valid),
                ra.out_lo.eq(wp.payload.lo),
                ra.out_n.eq(wp.payload.n),
                ra.out_space.eq(sbuf_w_space),
            ]
        with m.Else():
            m.d.comb += [
                ra.out_valid.eq(w_valid),
                ra.out_lo.eq(w_lo),
                ra.out_n.eq(w_n),
                ra.out_space.eq(w_free),
            ]
        strb = Mux(poison, 0, ra.out_strb)

        w_beat = ~dst_sbuf & ra.out_fire
        m.d.comb += w_take.eq(w_beat)
        with m.If(w_beat):
            m.d.sync += [
                axi.w.valid.eq(1),
                axi.w.payload.data.eq(ra.out_data),
                axi.w.payload.strb.eq(strb),
                axi.w.payload.last.eq(w_last),
            ]
        with m.Elif(axi.w.ready):
            m.d.sync += axi.w.valid.eq(0)

        # The SBUF walker pieces: the write side takes one per granted write, the read side one
        # per granted read; the DRAM walkers one per AR / AW.
        m.d.comb += [
            wp.ready.eq(Mux(dst_sbuf, grant_w, aw_load)),
            rp.ready.eq(Mux(src_sbuf, grant_r, ar_load)),
            sinfo.w_en.eq(grant_r),
        ]
        # A write carries the realigned data; a read carries no data and no byte enables.
        partition, word = sbuf_word(Mux(grant_w, wp.payload.addr, rp.payload.addr))
        with m.If(grant_w | grant_r):
            m.d.sync += [
                req.valid.eq(1),
                req.payload.write.eq(grant_w),
                req.payload.partition.eq(partition),
                req.payload.addr.eq(word),
                req.payload.data.as_value().eq(Mux(grant_w, ra.out_data, 0)),
                req.payload.byte_enable.eq(Mux(grant_w, strb, 0)),
                last_grant_read.eq(~grant_w),
            ]
        with m.Elif(req.ready):
            m.d.sync += req.valid.eq(0)

        # --- completion -------------------------------------------------------------------------
        reader_done = rw.done & (reads_out == 0) & ~sinfo.r_rdy
        writer_done = ww.done & (writes_out == 0) & ~winfo.r_rdy & ~w_valid & ~axi.w.valid & \
            ~(req.valid & req.payload.write)
        final_error = Signal(3)

        sems = [Signal(cfg.semaphore_bits, name=f"sem{i}") for i in range(cfg.semaphores)]
        m.d.comb += [self.sem_values[i].eq(sems[i]) for i in range(cfg.semaphores)]
        m.d.comb += self.sem_sub.ready.eq(1)
        finishing = Signal()
        for i, sem in enumerate(sems):
            inc = finishing & (desc.semaphore == i)
            dec = Mux(self.sem_sub.valid & (self.sem_sub.payload.id == i),
                      self.sem_sub.payload.amount, 0)
            m.d.sync += sem.eq(sem + inc - dec)

        m.d.comb += [
            self.done.eq(finishing),
            self.done_info.queue.eq(cur_queue),
            self.done_info.semaphore.eq(desc.semaphore),
        ]

        with m.FSM(name="dma"):
            with m.State("IDLE"):
                with m.If(pick_valid):
                    m.d.sync += [
                        desc.eq(Array(f.r_data for f in fifos)[pick]),
                        cur_queue.eq(pick),
                        last_queue.eq(pick),
                    ]
                    for q in range(Q):
                        m.d.comb += fifos[q].r_en.eq(pick == q)
                    m.next = "CHECK"
            with m.State("CHECK"):              # check stage 1 fills
                m.d.comb += self.busy.eq(1)
                m.next = "CHECK2"
            with m.State("CHECK2"):             # check stage 2 fills
                m.d.comb += self.busy.eq(1)
                m.next = "CHECK3"
            with m.State("CHECK3"):             # check stage 3 (the verdict) fills
                m.d.comb += self.busy.eq(1)
                m.next = "DECIDE"
            with m.State("DECIDE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [final_error.eq(check_result), poison.eq(0), read_error.eq(0),
                             write_error.eq(0)]
                with m.If(check_result == DMA_OK):
                    m.d.comb += start.eq(1)
                    m.next = "RUN"
                with m.Else():
                    m.next = "FINISH"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(reader_done & writer_done):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += [self.busy.eq(1), finishing.eq(1), ra.clear.eq(1)]
                error = Mux(final_error != DMA_OK, final_error,
                            Mux(read_error, DMA_ERR_READ,
                                Mux(write_error, DMA_ERR_WRITE, DMA_OK)))
                m.d.comb += self.done_info.error.eq(error)
                m.d.sync += self.done_count.eq(self.done_count + 1)
                with m.If(error != DMA_OK):
                    m.d.sync += [self.error_count.eq(self.error_count + 1),
                                 self.last_error.eq(error), self.error.eq(1)]
                m.next = "IDLE"

        with m.If(self.clear_errors & ~(finishing & (self.done_info.error != DMA_OK))):
            m.d.sync += self.error.eq(0)
        m.d.comb += self.idle.eq(~self.busy & ~Cat(f.r_rdy for f in fifos).any())
        return m
