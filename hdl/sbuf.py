"""The SBUF (state buffer): P partitions, each its own block RAM, with arbitrated ports.

Data layout (docs/memories.md): partition p is a byte array of ``depth * word_bytes`` bytes, stored
as ``depth`` words; byte i of word a is byte ``a * word_bytes + i``. Elements are little-endian and
aligned to their size, so an element never straddles two words. Element offsets in commands count
elements of the operand's type (element e of partition p sits at byte ``e * elem_bytes``).

* Moving operand A (M x K): A[m, k] at partition k, element offset ``offset + m``. A layer's output
  written by the ACT unit (C-vector of row m across partitions c at one offset) is therefore
  directly the next layer's moving operand.
* Stationary operand W (K x N): W[k, n] at partition n, element offset ``offset + k`` (N on
  partitions: the weight row k the engine takes in one beat is one element of every partition, so
  it streams like the moving operand, one row per cycle).

Ports (all ``amaranth.lib.stream``):

* ``dma`` (``SbufPortSignature``, flipped): word read/write of one partition with byte enables.
* ``moving_cmd`` -> ``moving``: a command ``{offset, count, start, addr, accumulate}`` produces
  ``count`` beats of the tensor engine's ``moving`` stream (beat m = A[m, :], PSUM row
  ``addr + m``), one per cycle.
* ``weights_cmd`` -> ``weights``: ``{offset, rows, cols}`` produces the engine's ``weights`` rows
  k = 0..rows-1 (row k = W[k, :], columns >= cols zero, ``last`` on the final row), one per cycle.

  Both are column readers: they read one word from every partition they use at once (same word
  address) into a 4-word buffer and serve ``word_bytes / elem_bytes`` consecutive elements of
  each, so each needs a read grant once per ``word_bytes / elem_bytes`` >= 2 beats.
* ``vector_write``: one word per partition at one word address, per-partition byte enables (what
  the ACT unit writes).

Each partition memory has one synchronous read port and one byte-enabled write port (so it maps to
ECP5 DP16KD/PDPW16KD and iCE40 SB_RAM40_4K). Arbitration, one grant per cycle on each side:

* Reads (moving, weights, DMA read): moving first, unless the weights reader or the DMA read has
  been waiting for 2 cycles; weights and DMA read alternate (round robin) among themselves. So a
  waiting requester is served within 3 cycles, and the moving reader loses at most one slot in
  three. A column reader needs one read per ``word_bytes / elem_bytes`` >= 2 beats and buffers four
  words (read latency 3: ``hdl/sbuf_ram.py``), so in steady state neither column reader is
  slowed by the others.
* Writes (vector write, DMA write): both are granted in the same cycle unless the DMA write's
  partition is also enabled by the vector write. On such a conflict the vector write wins, unless it
  won the previous conflict (so they alternate under sustained contention).

Reads and writes use separate ports: DMA writes never slow the moving reader. A read in the same
cycle as a write to the same word returns the new data (the written bytes are bypassed around the
block RAM, whose own collision behaviour is left undefined to synthesis). Nothing
orders one port's accesses against another's; the sequencer's semaphores do.

Errors (sticky bits of ``errors``, cleared by ``clear_errors``): ``dma`` (partition or address
out of range: no memory access, reads answered with zeros), ``moving`` / ``weights`` (a command
reaching beyond the partition: the elements past the end read as zero; or an empty or oversized
command: no beats), ``vector`` (word address out of range: not written). Every request is still
accepted and answered, so nothing hangs.
"""

import functools
import operator

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import TileConfig
from systolica.hdl.contracts import (SbufPortSignature, index_bits, moving_command_layout,
                                     moving_layout, sbuf_errors_layout,
                                     sbuf_response_layout, vector_write_layout,
                                     weight_row_layout, weights_command_layout)
from systolica.hdl.lib import Queue, RoundRobinArbiter, StickyFlags
from systolica.hdl.sbuf_ram import READ_LATENCY, partition_ram
from systolica.hdl.sbuf_reader import column_reader


__all__ = ["check_sbuf_init", "Sbuf"]


def check_sbuf_init(sbuf, init, name="Sbuf init"):
    """``init`` (initial words per partition, or None) fits ``sbuf`` (an SbufConfig)."""
    if init is not None and len(init) != sbuf.partitions:
        raise ValueError(f"{name} must have one list per partition ({sbuf.partitions}); "
                         f"got {len(init)}")


def _delayed(m, value, cycles, name):
    """``value`` registered ``cycles`` times (the last register is named ``name``)."""
    for i in range(cycles):
        reg = Signal.like(value, name=name if i == cycles - 1 else f"{name}_d{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class Sbuf(wiring.Component):
    """The state buffer (see the module docstring). ``init`` optionally gives the initial words of
    each partition (a list of P lists of ints), for tests and ROM-like use."""

    def __init__(self, *, config: TileConfig, init=None):
        if not isinstance(config, TileConfig):
            raise TypeError(f"Sbuf config must be a TileConfig; got {config!r}")
        sbuf, array = config.sbuf, config.array
        check_sbuf_init(sbuf, init)
        self._config = config
        self._init = init
        super().__init__({
            "dma": In(SbufPortSignature(sbuf)),
            "moving_cmd": In(stream.Signature(moving_command_layout(sbuf, array))),
            "moving": Out(stream.Signature(moving_layout(array))),
            "weights_cmd": In(stream.Signature(weights_command_layout(sbuf, array))),
            "weights": Out(stream.Signature(weight_row_layout(array))),
            "vector_write": In(stream.Signature(vector_write_layout(sbuf))),
            "errors": Out(sbuf_errors_layout()),
            "clear_errors": In(1),
        })

    @property
    def config(self):
        """The :class:`TileConfig` (the SBUF reads its ``sbuf`` and ``array`` sections)."""
        return self._config

    def elaborate(self, platform):
        cfg, arr = self._config.sbuf, self._config.array
        P, D, WB = cfg.partitions, cfg.depth, cfg.word_bytes
        addr_bits = index_bits(D)
        m = Module()

        # --- memories ---------------------------------------------------------------------------
        # (inputs registered, the word READ_LATENCY cycles after the read: hdl/sbuf_ram.py;
        # `_collision_bypass` below makes a read of a word being written return the new bytes,
        # from addresses compared early)
        rams = [partition_ram(m, f"partition{p}", platform, depth=D, word_bytes=WB,
                              init=self._init[p] if self._init is not None else [])
                for p in range(P)]
        rports = [ram.read for ram in rams]
        # Every partition's read word after the collision bypass (a read granted in cycle t is
        # in `read_data` in cycle t + READ_LATENCY).
        read_data = [Signal(8 * WB, name=f"read_data{p}") for p in range(P)]

        errors = m.submodules.errors = StickyFlags(sbuf_errors_layout())
        err_set = errors.set
        m.d.comb += [errors.clear.eq(self.clear_errors), self.errors.eq(errors.flags)]

        # --- requests of the three readers (filled in below) ------------------------------------
        mv_req, mv_addr = Signal(), Signal(addr_bits)
        st_req, st_addr = Signal(), Signal(addr_bits)
        dr_req = Signal()
        mv_grant, st_grant, dr_grant = Signal(), Signal(), Signal()

        # --- read arbiter -----------------------------------------------------------------------
        # Moving first (fixed priority, by design: it is the one reader that needs a word almost
        # every cycle), unless the weights reader or the DMA has waited 2 cycles ("urgent");
        # weights and DMA round robin between themselves (DMA first).
        # A requester that was refused keeps requesting (a column reader's state only moves on
        # a grant, the DMA request is held until accepted), so "waited 2 cycles" alone says it
        # is urgent: the moving grant does not wait for the others' requests.
        st_wait, dr_wait = Signal(range(3)), Signal(range(3))
        st_urgent, dr_urgent = Signal(), Signal()
        m.d.comb += [
            st_urgent.eq(st_wait == 2),
            dr_urgent.eq(dr_wait == 2),
            mv_grant.eq(mv_req & ~st_urgent & ~dr_urgent),
        ]
        other_reads = m.submodules.read_arbiter = RoundRobinArbiter(2)
        m.d.comb += [
            other_reads.requests.eq(Cat(dr_req, st_req) & Mux(mv_grant, 0, 0b11)),
            other_reads.advance.eq(1),
            dr_grant.eq(other_reads.grant[0]),
            st_grant.eq(other_reads.grant[1]),
        ]
        for wait, want, got in ((st_wait, st_req, st_grant), (dr_wait, dr_req, dr_grant)):
            with m.If(want & ~got):
                m.d.sync += wait.eq(Mux(wait == 2, 2, wait + 1))
            with m.Else():
                m.d.sync += wait.eq(0)

        req = self.dma.request.payload
        for p in range(P):
            with m.If(mv_grant):
                m.d.comb += [rports[p].addr.eq(mv_addr), rports[p].en.eq(1)]
            with m.Elif(st_grant):
                m.d.comb += [rports[p].addr.eq(st_addr), rports[p].en.eq(1)]
            with m.Else():
                m.d.comb += [rports[p].addr.eq(req.addr),
                             rports[p].en.eq(dr_grant & (req.partition == p))]

        # --- DMA port ---------------------------------------------------------------------------
        dma_in_range = Signal()
        m.d.comb += dma_in_range.eq((req.partition < P) & (req.addr < D))
        # Read data: block RAM -> register -> `read_data` (every partition's word, with the
        # collision bypass) -> partition mux -> response FIFO, READ_LATENCY cycles after the
        # request was taken (as before the block RAM's inputs and output were registered, when
        # its word went through a register and the partition mux through another).
        # One read per cycle: the FIFO covers the READ_LATENCY + 1 cycles from request to it.
        resp_depth = READ_LATENCY + 2
        resp_fifo = m.submodules.dma_response = Queue(shape=sbuf_response_layout(cfg),
                                                      depth=resp_depth)
        resp_credit = Signal()
        # Reads accepted and not yet taken from the FIFO (its level plus the three stages), as
        # a counter: the credit is then one comparison of a register.
        resp_pending = Signal(range(resp_depth + 1))
        m.d.comb += [
            resp_credit.eq(resp_pending < resp_depth),
            dr_req.eq(self.dma.request.valid & ~req.write & dma_in_range & resp_credit),
        ]
        dw_req, dw_grant = Signal(), Signal()
        m.d.comb += dw_req.eq(self.dma.request.valid & req.write & dma_in_range)
        with m.If(req.write):
            m.d.comb += self.dma.request.ready.eq(~dma_in_range | dw_grant)
        with m.Else():
            m.d.comb += self.dma.request.ready.eq(resp_credit & (~dma_in_range | dr_grant))
        dma_read_fire = self.dma.request.valid & self.dma.request.ready & ~req.write
        resp_taken = resp_fifo.o.valid & resp_fifo.o.ready
        m.d.sync += resp_pending.eq(resp_pending + dma_read_fire - resp_taken)
        # The DMA read until its word is in `read_data`: valid, and its partition one-hot (none
        # when out of range: the response is zero), so the response is an AND-OR of the words.
        dr_captured = _delayed(m, dma_read_fire, READ_LATENCY, "dr_captured")
        dr_select = _delayed(m, Cat((req.partition == p) & dma_in_range for p in range(P)),
                             READ_LATENCY, "dr_select")
        m.d.comb += [
            err_set.dma.eq(self.dma.request.valid & self.dma.request.ready & ~dma_in_range),
            # Never refused: `resp_credit` reserved the space when the read was accepted.
            resp_fifo.i.valid.eq(dr_captured),
            resp_fifo.i.payload.eq(functools.reduce(
                operator.or_, (read_data[p] & dr_select[p].replicate(8 * WB) for p in range(P)))),
        ]
        wiring.connect(m, resp_fifo.o, wiring.flipped(self.dma.response))

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
        # On a conflict (the DMA write's partition is also enabled by the vector write) the two
        # take turns, vector write first.
        conflict = Signal()
        writes = m.submodules.write_arbiter = RoundRobinArbiter(2)
        m.d.comb += [
            conflict.eq(vw_req & dw_req & vw_parts.bit_select(req.partition, 1)),
            writes.requests.eq(Mux(conflict, 0b11, 0)),
            writes.advance.eq(1),
            vw_grant.eq(vw_req & (~conflict | writes.grant[0])),
            dw_grant.eq(dw_req & (~conflict | writes.grant[1])),
            self.vector_write.ready.eq(~vw_in_range | vw_grant),
            err_set.vector.eq(self.vector_write.valid & ~vw_in_range),
        ]
        for p in range(P):
            wreq = rams[p].write
            with m.If(vw_grant & vw_parts[p]):
                m.d.comb += [wreq.addr.eq(vw.addr), wreq.data.eq(vw.data[p]),
                             wreq.en.eq(vw.byte_enable[p])]
            with m.Elif(dw_grant & (req.partition == p)):
                m.d.comb += [wreq.addr.eq(req.addr), wreq.data.eq(req.data),
                             wreq.en.eq(req.byte_enable)]

        self._collision_bypass(
            m, rams, read_data,
            reads={"moving": (mv_grant, mv_addr), "weights": (st_grant, st_addr),
                   "dma": (dr_grant, req.addr)},
            vector_sel=vw_parts & vw_grant.replicate(P), vector_addr=vw.addr)
        self._moving_reader(m, read_data, mv_req, mv_addr, mv_grant, err_set)
        self._weights_reader(m, read_data, st_req, st_addr, st_grant, err_set)
        return m

    def _collision_bypass(self, m, rams, read_data, *, reads, vector_sel, vector_addr):
        """``read_data[p]``: partition p's read word, with the bytes written in the cycle of the
        read's grant (same word) taken from the write (a transparent read port).
        The address match is selected from comparisons of every reader's address with every
        writer's, computed beside the arbitration instead of after it. A DMA read never meets a
        DMA write (one request at a time), so the DMA read only compares with the vector
        write. ``rams[p].written`` is what the block RAM writes (the grant's cycle + 1)."""
        req = self.dma.request.payload
        matches = {}
        for name, (_, addr) in reads.items():
            matches[name] = {"vector": Signal(name=f"{name}_hits_vector"),
                             "dma": Signal(name=f"{name}_hits_dma")}
            m.d.comb += [matches[name]["vector"].eq(addr == vector_addr),
                         matches[name]["dma"].eq(addr == req.addr)]
        # Registered apart (each reader's grant, its address match, the written bytes) and
        # combined after the flip-flops, beside the block RAM's slow clock-to-output.
        # Delayed to meet the word (READ_LATENCY cycles after the grant; the write reaches the
        # block RAM's inputs one cycle after its grant), and combined into the bytes to take
        # from the write one cycle before the word, so the bypass is one LUT after the flip-flops.
        granted = {name: _delayed(m, grant, READ_LATENCY - 1, f"{name}_read_granted")
                   for name, (grant, _) in reads.items()}
        for p, ram in enumerate(rams):
            wp = ram.written
            by_vector = vector_sel[p]
            hits = {
                "moving": Mux(by_vector, matches["moving"]["vector"], matches["moving"]["dma"]),
                "weights": Mux(by_vector, matches["weights"]["vector"],
                               matches["weights"]["dma"]),
                "dma": (req.partition == p) & matches["dma"]["vector"],
            }
            hits = {name: _delayed(m, hit, READ_LATENCY - 1, f"{name}_hit{p}")
                    for name, hit in hits.items()}
            hit = Signal(name=f"collision{p}")      # the word read was the word written
            m.d.comb += hit.eq(Cat(granted[name] & hits[name] for name in reads).any())
            written_bytes = _delayed(m, wp.en, READ_LATENCY - 2, f"written_bytes{p}")
            bypassed = Signal(len(wp.en), name=f"bypassed_bytes{p}")
            m.d.sync += bypassed.eq(written_bytes & hit.replicate(len(wp.en)))
            written = _delayed(m, wp.data, READ_LATENCY - 1, f"written{p}")
            m.d.comb += read_data[p].eq(Cat(
                Mux(bypassed[b], written.word_select(b, 8), ram.word.word_select(b, 8))
                for b in range(len(wp.en))))

    # ---------------------------------------------------------------------------------------------

    def _moving_reader(self, m, read_data, req, addr, grant, err_set):
        """Moving operand: A[m, k] = element ``offset + m`` of partition k."""
        cfg, arr = self._config.sbuf, self._config.array
        layout = moving_command_layout(cfg, arr)
        cmd, out = self.moving_cmd.payload, self.moving.payload
        rd = column_reader(
            m, "mv", read_data[:arr.rows], config=cfg, elem_bits=arr.moving_shape.width,
            offset_shape=layout["offset"].shape, count_shape=layout["count"].shape,
            index_width=arr.result_addr_bits,
            user_layout=data.StructLayout({"start": 1, "accumulate": 1}),
            req=req, addr=addr, grant=grant, err=err_set.moving)
        m.d.comb += [
            rd.cmd_valid.eq(self.moving_cmd.valid), self.moving_cmd.ready.eq(rd.cmd_ready),
            rd.cmd_offset.eq(cmd.offset), rd.cmd_count.eq(cmd.count), rd.cmd_index.eq(cmd.addr),
            rd.cmd_user.start.eq(cmd.start), rd.cmd_user.accumulate.eq(cmd.accumulate),
            self.moving.valid.eq(rd.valid), rd.ready.eq(self.moving.ready),
            out.start.eq(rd.first & rd.user.start),
            out.tag.addr.eq(rd.index), out.tag.accumulate.eq(rd.user.accumulate),
            out.tag.last.eq(rd.last),
        ]
        m.d.comb += [out.data[k].eq(rd.elems[k]) for k in range(arr.rows)]

    def _weights_reader(self, m, read_data, req, addr, grant, err_set):
        """Stationary operand, N on partitions: W[k, n] = element ``offset + k`` of partition n;
        row k of the ``weights`` stream is element ``offset + k`` of partitions 0..C-1."""
        cfg, arr = self._config.sbuf, self._config.array
        R, C = arr.rows, arr.cols
        layout = weights_command_layout(cfg, arr)
        cmd, out = self.weights_cmd.payload, self.weights.payload
        rd = column_reader(
            m, "st", read_data[:C], config=cfg, elem_bits=arr.stationary_shape.width,
            offset_shape=layout["offset"].shape, count_shape=layout["rows"].shape,
            index_width=1, user_layout=data.StructLayout({"cols": layout["cols"].shape}),
            req=req, addr=addr, grant=grant, err=err_set.weights)
        bad = Signal()
        m.d.comb += [
            bad.eq((cmd.rows == 0) | (cmd.rows > R) | (cmd.cols == 0) | (cmd.cols > C)),
            rd.cmd_valid.eq(self.weights_cmd.valid), self.weights_cmd.ready.eq(rd.cmd_ready),
            rd.cmd_offset.eq(cmd.offset), rd.cmd_count.eq(Mux(bad, 0, cmd.rows)),
            rd.cmd_user.cols.eq(cmd.cols),
            self.weights.valid.eq(rd.valid), rd.ready.eq(self.weights.ready),
            out.last.eq(rd.last),
        ]
        m.d.comb += [out.data[c].eq(Mux(c < rd.user.cols, rd.elems[c], 0)) for c in range(C)]
