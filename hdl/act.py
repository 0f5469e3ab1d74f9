"""The ACT unit: requantisation / activation of PSUM rows into the SBUF.

A command ``{psum_addr, rows, offset, cols, mode, relu, zero_point}`` processes PSUM rows
``psum_addr + i`` (i < rows), one per cycle. For each column c < cols of a row (x = the ``acc_bits``
accumulator) it computes, exactly (docs/memories.md, systolica/model/reference.py ``requantize``):

    p = x * scale[c]                                   (exact, acc_bits + scale_bits bits)
    v = round_half_even(p / 2**shift[c])               (shift 0: v = p)
    v = max(v, 0) if relu                              (ReLU before the zero point)
    y = saturate(v + zero_point, mode)

where ``round_half_even`` rounds to the nearest integer and a tie to the even one. Modes
(:class:`systolica.codes.ActMode`): ``INT8``, ``UINT8``, ``INT16`` (saturating), ``INT32``
pass-through (y = x wrapped to 32 bits: no scale, shift, ReLU or zero point; for storing raw
accumulators).

Floating-point engines (fp32 PSUM, docs/floating_point.md): ``v = x * scale[c] * 2**-shift[c]``
exactly, then the integer modes round it to an integer (ties to even; NaN -> 0) and go on as
above, ``INT32`` passes the fp32 bit pattern, and the float modes (``BF16``, ``FP8_E4M3``,
``FP8_E5M2``, ``FP32``) round it once to the output type (nearest even, saturating to +-max
finite, canonical NaN, ReLU to +0; no zero point). Integer engines build no float logic; a float
mode there stores the raw accumulator (the sequencer and the tile model refuse it).

Row i's C-vector goes to the SBUF (``sbuf``, the SBUF's ``vector_write``) at element offset
``offset + i`` of every partition c < cols (elements of the mode's size, little-endian), so the
output of a layer is directly the moving operand of the next. ``scale`` and ``shift`` are
per-column ports held by the sequencer (keep them stable while ``busy``).

Pipeline: PSUM read requests (up to ``queue_depth`` in flight), then three register stages
(product; rounding shift; ReLU/zero point/saturation/placement, the output register), all enabled
by one ``advance`` = output empty or accepted: one row per cycle.

Errors (sticky bits of ``errors``, cleared by ``clear_errors``): ``shift`` (a shift > max_shift was
used: it is clamped to max_shift), ``addr`` (a row's SBUF word is beyond the partition: that row is
not written). PSUM address errors are reported by PSUM (the row reads as zeros).
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import ACT_MODE_BYTES, ACT_MODE_FLOAT, ACT_MODE_RANGE, ActMode
from systolica.config import TileConfig
from systolica.hdl.contracts import (ZERO_POINT_BITS, PsumReadSignature, act_command_layout,
                                     act_errors_layout, vector_write_layout)
from systolica.hdl.fp import round_scaled, scale_fp32
from systolica.hdl.lib import Queue, StickyFlags


__all__ = ["Act"]


class Act(wiring.Component):
    """The ACT unit (see the module docstring)."""

    def __init__(self, *, config: TileConfig):
        if not isinstance(config, TileConfig):
            raise TypeError(f"Act config must be a TileConfig; got {config!r}")
        self._config = config
        act, array = config.act, config.array
        super().__init__({
            "cmd": In(stream.Signature(act_command_layout(config))),
            "psum": Out(PsumReadSignature(array)),
            "sbuf": Out(stream.Signature(vector_write_layout(config.sbuf))),
            "scale": In(data.ArrayLayout(signed(act.scale_bits), array.cols)),
            "shift": In(data.ArrayLayout(unsigned(max(1, act.max_shift.bit_length())),
                                         array.cols)),
            "busy": Out(1),
            "errors": Out(act_errors_layout()),
            "clear_errors": In(1),
        })

    @property
    def config(self):
        """The :class:`TileConfig` (ACT reads its ``act``, ``array`` and ``sbuf`` sections)."""
        return self._config

    def elaborate(self, platform):
        tile = self._config
        cfg, arr, sb = tile.act, tile.array, tile.sbuf
        C, P, WB = arr.cols, sb.partitions, sb.word_bytes
        m = Module()

        errors = m.submodules.errors = StickyFlags(act_errors_layout())
        err_set = errors.set
        m.d.comb += [errors.clear.eq(self.clear_errors), self.errors.eq(errors.flags)]

        # --- issuer: one PSUM read per row, its SBUF placement queued alongside -----------------
        cmd_layout = act_command_layout(tile)
        meta_layout = data.StructLayout({
            "offset": cmd_layout["offset"].shape,
            "cols": cmd_layout["cols"].shape,
            "mode": ActMode, "relu": 1,
            "zero_point": signed(ZERO_POINT_BITS),
        })
        meta_fifo = m.submodules.meta = Queue(shape=meta_layout, depth=cfg.queue_depth)
        active = Signal()
        cur = Signal(meta_layout)
        psum_addr = Signal(arr.result_addr_bits)
        remaining = Signal(cmd_layout["rows"].shape)
        req_fire = Signal()
        m.d.comb += [
            self.psum.request.valid.eq(active & meta_fifo.i.ready),
            self.psum.request.payload.addr.eq(psum_addr),
            req_fire.eq(self.psum.request.valid & self.psum.request.ready),
            meta_fifo.i.valid.eq(req_fire),
            meta_fifo.i.payload.eq(cur),
        ]
        with m.If(req_fire):
            m.d.sync += [psum_addr.eq(psum_addr + 1), cur.offset.eq(cur.offset + 1),
                         remaining.eq(remaining - 1)]
            with m.If(remaining == 1):
                m.d.sync += active.eq(0)
        cmd = self.cmd.payload
        m.d.comb += self.cmd.ready.eq(~active | (req_fire & (remaining == 1)))
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                active.eq(cmd.rows != 0),
                psum_addr.eq(cmd.psum_addr),
                remaining.eq(cmd.rows),
                cur.offset.eq(cmd.offset), cur.cols.eq(cmd.cols), cur.mode.eq(cmd.mode),
                cur.relu.eq(cmd.relu), cur.zero_point.eq(cmd.zero_point),
            ]

        # --- datapath: three stages under one enable -------------------------------------------
        s2_valid, out_valid = Signal(), Signal()
        advance = Signal()
        m.d.comb += [
            advance.eq(~out_valid | self.sbuf.ready),
            self.psum.response.ready.eq(advance),
            # A response always has its placement queued (it was pushed with the request).
            meta_fifo.o.ready.eq(advance & self.psum.response.valid),
        ]
        prod_shape = signed(arr.acc_bits + cfg.scale_bits)
        shift_shape = self.shift.shape().elem_shape
        s1_valid = Signal()
        s1_meta = Signal(meta_layout)
        s1_prod = [Signal(prod_shape, name=f"s1_prod{c}") for c in range(C)]
        s1_raw = [Signal(arr.acc_shape, name=f"s1_raw{c}") for c in range(C)]
        s1_shift = [Signal(shift_shape, name=f"s1_shift{c}") for c in range(C)]
        bad_shift = Signal()
        m.d.comb += bad_shift.eq(Cat(self.shift[c] > cfg.max_shift for c in range(C)).any())
        m.d.comb += err_set.shift.eq(advance & self.psum.response.valid & bad_shift)
        resp = self.psum.response.payload
        s1_float = []                     # per column: (sign, sig, exp, nan, inf)
        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.psum.response.valid), s1_meta.eq(meta_fifo.o.payload)]
            for c in range(C):
                shift = Mux(self.shift[c] > cfg.max_shift, cfg.max_shift, self.shift[c])
                m.d.sync += [s1_raw[c].eq(resp.data[c]), s1_shift[c].eq(shift)]
                if arr.is_float:
                    parts = scale_fp32(m, resp.data[c], self.scale[c], shift, f"scaled{c}")
                    regs = [Signal.like(Value.cast(p), name=f"s1_f{c}_{n}") for p, n in
                            zip(parts, ("sign", "sig", "exp", "nan", "inf"))]
                    m.d.sync += [r.eq(p) for r, p in zip(regs, parts)]
                    s1_float.append(regs)
                else:
                    m.d.sync += s1_prod[c].eq(resp.data[c] * self.scale[c])

        # Stage 2: round (and find the SBUF word and lane).
        mode = s1_meta.mode
        size_log2 = Signal(2)
        with m.Switch(mode):
            for act_mode, nbytes in ACT_MODE_BYTES.items():
                with m.Case(act_mode):
                    m.d.comb += size_log2.eq(nbytes.bit_length() - 1)
        byte_offset = Signal(cmd_layout["offset"].shape.width + 2)
        m.d.comb += byte_offset.eq(s1_meta.offset << size_log2)
        wb_log2 = (WB - 1).bit_length()
        in_range = Signal()
        m.d.comb += in_range.eq((byte_offset >> wb_log2) < sb.depth)
        m.d.comb += err_set.addr.eq(advance & s1_valid & ~in_range)

        W = prod_shape.width
        s2_meta = Signal(meta_layout)
        s2_word = Signal(len(self.sbuf.payload.addr))
        s2_lane = Signal(max(1, wb_log2))
        s2_size_mask = Signal(4)
        # The rounded value is kept in NARROW bits: beyond +-2**(NARROW-1) every saturating mode
        # saturates whatever the zero point (|zero_point| <= 2**16, outputs within +-2**16), so
        # clamping there changes no result and keeps stage 3's adder and comparators short.
        NARROW = min(ZERO_POINT_BITS + 2, W)
        s2_rounded = [Signal(signed(NARROW + 1), name=f"s2_rounded{c}") for c in range(C)]
        s2_raw = [Signal(arr.acc_shape, name=f"s2_raw{c}") for c in range(C)]
        s2_float = [Signal(32, name=f"s2_float{c}") for c in range(C)]
        with m.If(advance):
            m.d.sync += [
                s2_valid.eq(s1_valid & in_range), s2_meta.eq(s1_meta),
                s2_word.eq(byte_offset >> wb_log2), s2_lane.eq(byte_offset[:wb_log2]),
                s2_size_mask.eq(Mux(size_log2 == 0, 0b1, Mux(size_log2 == 1, 0b11, 0b1111))),
            ]
        for c in range(C):
            if arr.is_float:
                integer, floats = round_scaled(m, *s1_float[c], s1_meta.relu, NARROW - 1,
                                               f"round{c}")
                picked = Signal(32, name=f"float_out{c}")
                with m.Switch(s1_meta.mode):
                    for act_mode, value in floats.items():
                        with m.Case(act_mode):
                            m.d.comb += picked.eq(value)
                with m.If(advance):
                    m.d.sync += [s2_rounded[c].eq(integer), s2_raw[c].eq(s1_raw[c]),
                                 s2_float[c].eq(picked)]
                continue
            p, sh = s1_prod[c], s1_shift[c]
            sh_m1 = (sh - 1)[:len(sh)]
            q = Signal(prod_shape, name=f"q{c}")
            guard = Signal(name=f"guard{c}")
            low_mask = Signal(W, name=f"low_mask{c}")
            sticky = Signal(name=f"sticky{c}")
            m.d.comb += [
                q.eq(p >> sh),
                guard.eq((p >> sh_m1)[0]),
                low_mask.eq((Const(1, 1) << sh_m1) - 1),
                sticky.eq((p.as_unsigned() & low_mask) != 0),
            ]
            q_narrow = Signal(signed(NARROW), name=f"q_narrow{c}")
            if NARROW < W:
                top = q[NARROW - 1:]
                m.d.comb += q_narrow.eq(Mux(top.all() | ~top.any(), q[:NARROW].as_signed(),
                                            Mux(q[-1], -(1 << (NARROW - 1)),
                                                (1 << (NARROW - 1)) - 1)))
            else:
                m.d.comb += q_narrow.eq(q)
            with m.If(advance):
                m.d.sync += [
                    s2_rounded[c].eq(q_narrow + ((sh != 0) & guard & (sticky | q[0]))),
                    s2_raw[c].eq(s1_raw[c]),
                ]

        # Stage 3 (the output register): ReLU, zero point, saturate, place in the word.
        out = self.sbuf.payload
        with m.If(advance):
            m.d.sync += [out_valid.eq(s2_valid), out.addr.eq(s2_word)]
        for c in range(P):
            if c >= C:
                with m.If(advance):
                    m.d.sync += out.byte_enable[c].eq(0)
                continue
            rounded = s2_rounded[c]
            v = Signal(signed(NARROW + 1), name=f"v{c}")
            y = Signal(signed(NARROW + 2), name=f"y{c}")
            sat = Signal(signed(33), name=f"sat{c}")
            m.d.comb += [
                v.eq(Mux(s2_meta.relu & (rounded < 0), 0, rounded)),
                y.eq(v + s2_meta.zero_point),
            ]
            with m.Switch(s2_meta.mode):
                for act_mode, (lo, hi) in ACT_MODE_RANGE.items():
                    with m.Case(act_mode):
                        m.d.comb += sat.eq(Mux(y < lo, lo, Mux(y > hi, hi, y)))
                if arr.is_float:
                    with m.Case(*ACT_MODE_FLOAT):
                        m.d.comb += sat.eq(s2_float[c])
                with m.Default():
                    m.d.comb += sat.eq(s2_raw[c])
            value = sat[:32]
            with m.If(advance):
                m.d.sync += [
                    out.data[c].eq((value << (s2_lane * 8))[:8 * WB]),
                    out.byte_enable[c].eq(Mux(c < s2_meta.cols, s2_size_mask << s2_lane, 0)),
                ]
        m.d.comb += self.sbuf.valid.eq(out_valid)
        m.d.comb += self.busy.eq(active | meta_fifo.o.valid | s1_valid | s2_valid | out_valid)
        return m
