"""The SBUF (state buffer): P partitions, each its own block RAM, with arbitrated ports.

Data layout (docs/memories.md): partition p is a byte array of ``depth * word_bytes`` bytes, stored
as ``depth`` words; byte i of word a is byte ``a * word_bytes + i``. Elements are little-endian and
aligned to their size, so an element never straddles two words. Element offsets in commands count
elements of the operand's type (element e of partition p sits at byte ``e * elem_bytes``).

* Moving operand A (M x K): A[m, k] at partition k, element offset ``offset + m``. A layer's output
  written by the ACT unit (C-vector of row m across partitions c at one offset) is therefore
  directly the next layer's moving operand.
* Stationary operand W (K x N): W[k, n] at partition k, element offset ``offset + n``.

Ports (all ``amaranth.lib.stream``):

* ``dma`` (``SbufPortSignature``, flipped): word read/write of one partition with byte enables.
* ``moving_cmd`` -> ``moving``: a command ``{offset, count, start, addr, accumulate}`` produces
  ``count`` beats of the tensor engine's ``moving`` stream (beat m = A[m, :], PSUM row
  ``addr + m``), one per cycle. The reader fetches whole words from every partition at once into
  a 2-word buffer and serves ``word_bytes / elem_bytes`` elements from each.
* ``weights_cmd`` -> ``weights``: ``{offset, rows, cols}`` produces the engine's ``weights`` rows
  k = 0..rows-1 (row k from partition k, columns >= cols zero, ``last`` on the final row).
* ``vector_write``: one word per partition at one word address, per-partition byte enables (what
  the ACT unit writes).

Each partition memory has one synchronous read port and one byte-enabled write port (so it maps to
ECP5 DP16KD/PDPW16KD and iCE40 SB_RAM40_4K). Arbitration, one grant per cycle on each side:

* Reads (moving, DMA read, weights): moving first, except that it yields to a waiting requester
  in the cycle after it was granted; DMA read and weights alternate (round robin) among themselves.
  The moving reader needs at most one read every ``word_bytes / elem_bytes`` >= 2 cycles to run at
  one beat per cycle, so it is never slowed by the others in steady state.
* Writes (vector write, DMA write): both are granted in the same cycle unless the DMA write's
  partition is also enabled by the vector write. On such a conflict the vector write wins, unless it
  won the previous conflict (so they alternate under sustained contention).

Reads and writes use separate ports: DMA writes never slow the moving reader. A read in the same
cycle as a write to the same word returns the new data (the read port is transparent). Nothing
orders one port's accesses against another's; the sequencer's semaphores do.

Errors (sticky bits of ``errors``, cleared by ``clear_errors``): ``dma`` (partition or address
out of range: no memory access, reads answered with zeros), ``moving`` / ``weights`` (a command reaching
beyond the partition, or an empty/oversized command: out-of-range elements read as zero; empty or
oversized commands produce no beats), ``vector`` (word address out of range: not written). Every
request is still accepted and answered, so nothing hangs.
"""

from amaranth.hdl import *
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from systolica.config import ArrayConfig, ConfigError, SbufConfig, DTYPES
from systolica.hdl.sbuf_port import SbufPortSignature
from systolica.hdl.tensor_engine import moving_layout, weight_row_layout


__all__ = [
    "elements_per_word", "moving_command_layout", "weights_command_layout",
    "vector_write_layout", "sbuf_errors_layout", "Sbuf",
]


def _bits_for(n):
    return max(1, (n - 1).bit_length())


def elements_per_word(sbuf: SbufConfig, dtype):
    return sbuf.word_bytes // (DTYPES[dtype][0] // 8)


def moving_command_layout(sbuf: SbufConfig, array: ArrayConfig):
    elems = sbuf.depth * elements_per_word(sbuf, array.moving_dtype)
    return data.StructLayout({
        "offset": unsigned(_bits_for(elems)),       # element offset of A[0, :] in every partition
        "count": unsigned(elems.bit_length()),      # M: beats to produce (0: error, no beats)
        "start": 1,                                 # switch the engine to its new W on beat 0
        "addr": unsigned(array.result_addr_bits),   # PSUM row of beat 0 (beat m: addr + m)
        "accumulate": 1,
    })


def weights_command_layout(sbuf: SbufConfig, array: ArrayConfig):
    elems = sbuf.depth * elements_per_word(sbuf, array.stationary_dtype)
    return data.StructLayout({
        "offset": unsigned(_bits_for(elems)),       # element offset of W[k, 0] in partition k
        "rows": unsigned(array.rows.bit_length()),  # K in [1, R]
        "cols": unsigned(array.cols.bit_length()),  # N in [1, C]
    })


def vector_write_layout(sbuf: SbufConfig):
    return data.StructLayout({
        "addr": unsigned(_bits_for(sbuf.depth)),
        "data": data.ArrayLayout(data.ArrayLayout(unsigned(8), sbuf.word_bytes), sbuf.partitions),
        "byte_enable": data.ArrayLayout(unsigned(sbuf.word_bytes), sbuf.partitions),
    })


def sbuf_errors_layout():
    return data.StructLayout({"dma": 1, "moving": 1, "weights": 1, "vector": 1})


def check_sbuf_configs(sbuf, array):
    if not isinstance(sbuf, SbufConfig):
        raise TypeError(f"SBUF config must be an SbufConfig; got {sbuf!r}")
    if not isinstance(array, ArrayConfig):
        raise TypeError(f"SBUF array config must be an ArrayConfig; got {array!r}")
    if sbuf.partitions < array.rows:
        raise ConfigError(f"SbufConfig.partitions must be >= array.rows={array.rows} (one "
                          f"partition per tensor-engine row); got {sbuf.partitions}")


class Sbuf(wiring.Component):
    """The state buffer (see the module docstring). ``init`` optionally gives the initial words of
    each partition (a list of P lists of ints), for tests and ROM-like use."""

    def __init__(self, config: SbufConfig = None, array: ArrayConfig = None, *, init=None):
        config = SbufConfig() if config is None else config
        array = ArrayConfig() if array is None else array
        try:
            check_sbuf_configs(config, array)
            if init is not None and len(init) != config.partitions:
                raise ValueError(f"Sbuf init must have one list per partition "
                                 f"({config.partitions}); got {len(init)}")
        except (ConfigError, TypeError, ValueError):
            self._MustUse__silence = True     # a rejected component is not an unused one
            raise
        self._config = config
        self._array = array
        self._init = init
        super().__init__({
            "dma": In(SbufPortSignature(config)),
            "moving_cmd": In(stream.Signature(moving_command_layout(config, array))),
            "moving": Out(stream.Signature(moving_layout(array))),
            "weights_cmd": In(stream.Signature(weights_command_layout(config, array))),
            "weights": Out(stream.Signature(weight_row_layout(array))),
            "vector_write": In(stream.Signature(vector_write_layout(config))),
            "errors": Out(sbuf_errors_layout()),
            "clear_errors": In(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def array(self):
        return self._array

    def elaborate(self, platform):
        cfg, arr = self._config, self._array
        P, D, WB = cfg.partitions, cfg.depth, cfg.word_bytes
        R, C = arr.rows, arr.cols
        addr_bits = _bits_for(D)
        m = Module()

        # --- memories ---------------------------------------------------------------------------
        rports, wports = [], []
        for p in range(P):
            init = self._init[p] if self._init is not None else []
            mem = memory.Memory(shape=unsigned(8 * WB), depth=D, init=init)
            m.submodules[f"partition{p}"] = mem
            wports.append(mem.write_port(granularity=8))
            # Transparent: yosys then needs a smaller collision bypass around the block RAM.
            rports.append(mem.read_port(transparent_for=(wports[-1],)))
        rdata = Array(rp.data for rp in rports)
        # DMA reads and weights reads each read one partition, never both in the same cycle: one
        # partition multiplexer serves both, selected by the partition read in the cycle before.
        single_part = Signal(range(P))
        single_data = Signal(8 * WB)
        m.d.comb += single_data.eq(rdata[single_part])

        err_set = Signal(sbuf_errors_layout())
        with m.If(self.clear_errors):
            m.d.sync += self.errors.eq(0)
        with m.Else():
            m.d.sync += self.errors.eq(self.errors.as_value() | err_set.as_value())

        # --- requests of the three readers (filled in below) ------------------------------------
        mv_req, mv_addr = Signal(), Signal(addr_bits)
        st_req, st_addr, st_part = Signal(), Signal(addr_bits), Signal(range(P))
        dr_req = Signal()
        mv_grant, st_grant, dr_grant = Signal(), Signal(), Signal()

        # --- read arbiter -----------------------------------------------------------------------
        mv_granted_last = Signal()
        rr_weights_first = Signal()
        m.d.comb += [
            mv_grant.eq(mv_req & ~(mv_granted_last & (st_req | dr_req))),
            dr_grant.eq(~mv_grant & dr_req & ~(st_req & rr_weights_first)),
            st_grant.eq(~mv_grant & ~dr_grant & st_req),
        ]
        m.d.sync += mv_granted_last.eq(mv_grant)
        with m.If(dr_grant):
            m.d.sync += rr_weights_first.eq(1)
        with m.Elif(st_grant):
            m.d.sync += rr_weights_first.eq(0)

        req = self.dma.request.payload
        for p in range(P):
            with m.If(mv_grant):
                m.d.comb += [rports[p].addr.eq(mv_addr), rports[p].en.eq(1)]
            with m.Elif(dr_grant):
                m.d.comb += [rports[p].addr.eq(req.addr), rports[p].en.eq(req.partition == p)]
            with m.Else():
                m.d.comb += [rports[p].addr.eq(st_addr), rports[p].en.eq(st_grant & (st_part == p))]

        # --- DMA port ---------------------------------------------------------------------------
        dma_in_range = Signal()
        m.d.comb += dma_in_range.eq((req.partition < P) & (req.addr < D))
        resp_depth = 3
        resp_fifo = m.submodules.dma_response = SyncFIFO(width=8 * WB, depth=resp_depth)
        dr_inflight = Signal()
        dr_zero = Signal()
        resp_credit = Signal()
        m.d.comb += [
            resp_credit.eq(resp_fifo.level + dr_inflight < resp_depth),
            dr_req.eq(self.dma.request.valid & ~req.write & dma_in_range & resp_credit),
        ]
        dw_req, dw_grant = Signal(), Signal()
        m.d.comb += dw_req.eq(self.dma.request.valid & req.write & dma_in_range)
        with m.If(req.write):
            m.d.comb += self.dma.request.ready.eq(~dma_in_range | dw_grant)
        with m.Else():
            m.d.comb += self.dma.request.ready.eq(resp_credit & (~dma_in_range | dr_grant))
        dma_read_fire = self.dma.request.valid & self.dma.request.ready & ~req.write
        m.d.sync += [
            dr_inflight.eq(dma_read_fire),
            dr_zero.eq(~dma_in_range),
            single_part.eq(Mux(dr_grant, req.partition, st_part)),
        ]
        m.d.comb += [
            err_set.dma.eq(self.dma.request.valid & self.dma.request.ready & ~dma_in_range),
            resp_fifo.w_en.eq(dr_inflight),
            resp_fifo.w_data.eq(Mux(dr_zero, 0, single_data)),
            self.dma.response.valid.eq(resp_fifo.r_rdy),
            self.dma.response.payload.eq(resp_fifo.r_data),
            resp_fifo.r_en.eq(self.dma.response.ready),
        ]

        # --- write arbiter: vector write vs DMA write -------------------------------------------
        vw = self.vector_write.payload
        vw_req, vw_grant = Signal(), Signal()
        vw_in_range = Signal()
        vw_parts = Signal(P)
        m.d.comb += [
            vw_in_range.eq(vw.addr < D),
            vw_req.eq(self.vector_write.valid & vw_in_range),
            vw_parts.eq(Cat(vw.byte_enable[p] != 0 for p in range(P))),
        ]
        conflict = Signal()
        vw_won_last = Signal()
        m.d.comb += [
            conflict.eq(vw_req & dw_req & vw_parts.bit_select(req.partition, 1)),
            vw_grant.eq(vw_req & ~(conflict & vw_won_last)),
            dw_grant.eq(dw_req & ~(conflict & ~vw_won_last)),
            self.vector_write.ready.eq(~vw_in_range | vw_grant),
            err_set.vector.eq(self.vector_write.valid & ~vw_in_range),
        ]
        with m.If(conflict):
            m.d.sync += vw_won_last.eq(~vw_won_last)
        for p in range(P):
            with m.If(vw_grant & vw_parts[p]):
                m.d.comb += [wports[p].addr.eq(vw.addr), wports[p].data.eq(vw.data[p]),
                             wports[p].en.eq(vw.byte_enable[p])]
            with m.Elif(dw_grant & (req.partition == p)):
                m.d.comb += [wports[p].addr.eq(req.addr), wports[p].data.eq(req.data),
                             wports[p].en.eq(req.byte_enable)]

        self._moving_reader(m, rports, mv_req, mv_addr, mv_grant, err_set)
        self._weights_reader(m, single_data, st_req, st_addr, st_part, st_grant, err_set)
        return m

    # ---------------------------------------------------------------------------------------------

    def _moving_reader(self, m, rports, mv_req, mv_addr, mv_grant, err_set):
        cfg, arr = self._config, self._array
        D, R = cfg.depth, arr.rows
        E = elements_per_word(cfg, arr.moving_dtype)
        lane_bits = (E - 1).bit_length()
        elem_bits = arr.moving_shape.width
        cmd = self.moving_cmd.payload
        cmd_layout = moving_command_layout(cfg, arr)

        # Fetch side: walks the words of the current command.
        busy = Signal()
        word = Signal(cmd_layout["offset"].shape.width + 1)     # word address, may run past D
        lane = Signal(range(E))
        remaining = Signal(cmd_layout["count"].shape)
        psum_addr = Signal(arr.result_addr_bits)
        first, start, accumulate = Signal(), Signal(), Signal()

        # A 2-entry circular buffer of words (one per partition) with their metadata.
        meta_layout = data.StructLayout({
            "lane": unsigned(max(1, lane_bits)),        # next element to serve
            "lane_last": unsigned(max(1, lane_bits)),   # last element of the command in the word
            "addr": unsigned(arr.result_addr_bits),
            "start": 1, "last": 1, "accumulate": 1,
            "zero": 1,                                  # past the partition: serve zeros
        })
        words = [[Signal(8 * cfg.word_bytes, name=f"mv_word{i}_{k}") for k in range(R)]
                 for i in range(2)]
        metas = [Signal(meta_layout, name=f"mv_meta{i}") for i in range(2)]
        rd_ptr, wr_ptr = Signal(), Signal()
        occ = Signal(range(3))
        inflight = Signal()
        inflight_meta = Signal(meta_layout)

        # Serve side: the head entry's `lane` advances as beats are taken.
        head = Signal(meta_layout)
        m.d.comb += head.eq(Mux(rd_ptr, metas[1], metas[0]))
        out = self.moving.payload
        m.d.comb += self.moving.valid.eq(occ != 0)
        for k in range(R):
            elem = Mux(rd_ptr, words[1][k].word_select(head.lane, elem_bits),
                       words[0][k].word_select(head.lane, elem_bits))
            m.d.comb += out.data[k].eq(Mux(head.zero, 0, elem))
        m.d.comb += [
            out.start.eq(head.start),
            out.tag.addr.eq(head.addr),
            out.tag.accumulate.eq(head.accumulate),
            out.tag.last.eq(head.last & (head.lane == head.lane_last)),
        ]
        take = self.moving.valid & self.moving.ready
        pop = Signal()
        m.d.comb += pop.eq(take & (head.lane == head.lane_last))

        # Fetching: at most 2 words buffered or in flight, counting a word leaving this cycle.
        in_range = word < D
        credit = Signal()
        issue = Signal()
        m.d.comb += [
            credit.eq(occ + inflight - pop < 2),
            mv_req.eq(busy & credit & in_range),
            mv_addr.eq(word),
            issue.eq(busy & credit & (~in_range | mv_grant)),
        ]
        n_here = Signal(range(E + 1))        # elements of this command in this word
        is_last = Signal()
        m.d.comb += [
            is_last.eq(remaining <= E - lane),
            n_here.eq(Mux(is_last, remaining, E - lane)),
        ]
        m.d.sync += inflight.eq(issue)
        with m.If(issue):
            m.d.sync += [
                inflight_meta.zero.eq(~in_range),
                inflight_meta.lane.eq(lane),
                inflight_meta.lane_last.eq(lane + n_here - 1),
                inflight_meta.addr.eq(psum_addr),
                inflight_meta.start.eq(first & start),
                inflight_meta.last.eq(is_last),
                inflight_meta.accumulate.eq(accumulate),
                word.eq(word + 1), lane.eq(0), first.eq(0),
                remaining.eq(remaining - n_here),
                psum_addr.eq(psum_addr + n_here),
            ]
            with m.If(is_last):
                m.d.sync += busy.eq(0)
        m.d.comb += err_set.moving.eq(issue & ~in_range)

        m.d.comb += self.moving_cmd.ready.eq(~busy | (issue & is_last))
        with m.If(self.moving_cmd.valid & self.moving_cmd.ready):
            m.d.sync += [
                busy.eq(cmd.count != 0),
                word.eq(cmd.offset >> lane_bits),
                lane.eq(cmd.offset[:lane_bits] if lane_bits else 0),
                remaining.eq(cmd.count),
                psum_addr.eq(cmd.addr),
                first.eq(1), start.eq(cmd.start), accumulate.eq(cmd.accumulate),
            ]
            with m.If(cmd.count == 0):
                m.d.comb += err_set.moving.eq(1)

        # Buffer update. A push never hits the entry being served: the buffer is either empty
        # (nothing served) or the push goes to the other entry (at most 2 words buffered or in
        # flight).
        with m.If(inflight):
            for i in range(2):
                with m.If(wr_ptr == i):
                    m.d.sync += metas[i].eq(inflight_meta)
                    m.d.sync += [words[i][k].eq(rports[k].data) for k in range(R)]
            m.d.sync += wr_ptr.eq(~wr_ptr)
        with m.If(pop):
            m.d.sync += rd_ptr.eq(~rd_ptr)
        with m.Elif(take):
            for i in range(2):
                with m.If(rd_ptr == i):
                    m.d.sync += [metas[i].lane.eq(head.lane + 1), metas[i].addr.eq(head.addr + 1),
                                 metas[i].start.eq(0)]
        m.d.sync += occ.eq(occ + inflight - pop)

    def _weights_reader(self, m, part_data, st_req, st_addr, st_part, st_grant, err_set):
        cfg, arr = self._config, self._array
        D, R, C = cfg.depth, arr.rows, arr.cols
        E = elements_per_word(cfg, arr.stationary_dtype)
        lane_bits = (E - 1).bit_length()
        elem_bits = arr.stationary_shape.width
        cmd = self.weights_cmd.payload
        cmd_layout = weights_command_layout(cfg, arr)

        busy = Signal()
        base = Signal(cmd_layout["offset"].shape.width + 1)   # first word of every row
        skew = Signal(range(E))                               # lane of W[k, 0]
        rows = Signal(range(R + 1))
        cols = Signal(range(C + 1))
        k = Signal(range(R + 1))
        n_words = Signal(range((C + E - 1) // E + 2))         # words per row
        issued = Signal.like(n_words)
        row_out = self.weights.payload
        out_valid = Signal()
        m.d.comb += [self.weights.valid.eq(out_valid)]

        word = base + issued
        in_range = word < D
        fetching = busy & ~out_valid & (issued != n_words)
        issue = Signal()
        m.d.comb += [
            st_req.eq(fetching & in_range),
            st_addr.eq(word),
            st_part.eq(k),
            issue.eq(fetching & (~in_range | st_grant)),
            err_set.weights.eq(issue & ~in_range),
        ]
        got, got_zero = Signal(), Signal()
        got_rel = Signal.like(issued)
        m.d.sync += [got.eq(issue), got_zero.eq(~in_range), got_rel.eq(issued)]
        with m.If(issue):
            m.d.sync += issued.eq(issued + 1)

        # Fill: element n comes from relative word (skew + n) // E, lane (skew + n) % E.
        word_in = Signal(8 * cfg.word_bytes)
        m.d.comb += word_in.eq(Mux(got_zero, 0, part_data))
        with m.If(got):
            for n in range(C):
                pos = skew + n
                with m.If((n < cols) & ((pos >> lane_bits) == got_rel)):
                    m.d.sync += row_out.data[n].eq(
                        word_in.word_select(pos[:lane_bits] if lane_bits else 0, elem_bits))
            with m.If(got_rel == n_words - 1):
                m.d.sync += out_valid.eq(1)
        m.d.comb += row_out.last.eq(k == rows - 1)

        with m.If(self.weights.valid & self.weights.ready):
            m.d.sync += [out_valid.eq(0), issued.eq(0), k.eq(k + 1)]
            for n in range(C):
                m.d.sync += row_out.data[n].eq(0)
            with m.If(k == rows - 1):
                m.d.sync += busy.eq(0)

        m.d.comb += self.weights_cmd.ready.eq(~busy)
        with m.If(self.weights_cmd.valid & ~busy):
            bad = (cmd.rows == 0) | (cmd.rows > R) | (cmd.cols == 0) | (cmd.cols > C)
            m.d.sync += [
                busy.eq(~bad),
                base.eq(cmd.offset >> lane_bits),
                skew.eq(cmd.offset[:lane_bits] if lane_bits else 0),
                rows.eq(cmd.rows), cols.eq(cmd.cols), k.eq(0), issued.eq(0),
                n_words.eq(((cmd.offset[:lane_bits] if lane_bits else 0) + cmd.cols + E - 1)
                           >> lane_bits),
            ]
            for n in range(C):
                m.d.sync += row_out.data[n].eq(0)
            with m.If(bad):
                m.d.comb += err_set.weights.eq(1)
