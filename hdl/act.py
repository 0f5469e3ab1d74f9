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

Pipeline: PSUM read requests (up to ``queue_depth`` in flight), then nine register stages, all
enabled by one ``advance`` = output empty or accepted: one row per cycle. Stages 1-3 are the
product (operands, 17-bit partial products, their sum: ``hdl/multiplier.py``; on an ECP5 the first
two are the DSPs' own registers), 4 and 5 the rounding shift (by the shift's multiple of 8, then
by the rest: two 4:1 / 8:1 multiplexer levels instead of one 32:1, so the shifter spreads and
routes), 6 the rounding, 7 ReLU and the zero point, 8 saturation, 9 the placement in the SBUF
word (the output register): each one adder, shifter or comparison deep.

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
from systolica.hdl.multiplier import PIPELINED_MULTIPLY_LATENCY, pipelined_multiply


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

        # --- datapath: nine stages under one enable -------------------------------------------
        # 1-3 product (operands, partial products in DSPs, their sum); 4-5 rounding shift
        # (coarse, fine); 6 round; 7 ReLU and zero point; 8 saturation; 9 placement in the SBUF
        # word (output register).
        # Each stage is one adder, shifter or comparison deep.
        out_valid = Signal()
        advance = Signal()
        m.d.comb += [
            advance.eq(~out_valid | self.sbuf.ready),
            self.psum.response.ready.eq(advance),
            # A response always has its placement queued (it was pushed with the request).
            meta_fifo.o.ready.eq(advance & self.psum.response.valid),
        ]

        valid_regs = []         # every stage's valid bit (busy)

        def stage(value, name, n=1, reset=False):
            """``value`` through ``n`` pipeline registers enabled by ``advance`` (valid bits:
            ``reset``, and counted in ``busy``)."""
            for i in range(n):
                shape = value.shape() if isinstance(value, data.View) else \
                    Value.cast(value).shape()
                reg = Signal(shape, name=f"{name}_{i}" if n > 1 else name, reset_less=not reset)
                with m.If(advance):
                    m.d.sync += reg.eq(value)
                if reset:
                    valid_regs.append(reg)
                value = reg
            return value

        prod_shape = signed(arr.acc_bits + cfg.scale_bits)
        bad_shift = Signal()
        m.d.comb += bad_shift.eq(Cat(self.shift[c] > cfg.max_shift for c in range(C)).any())
        m.d.comb += err_set.shift.eq(advance & self.psum.response.valid & bad_shift)
        resp = self.psum.response.payload
        mul_stages = PIPELINED_MULTIPLY_LATENCY
        s1_valid = stage(self.psum.response.valid, "s1_valid", mul_stages, reset=True)
        s1_meta = stage(meta_fifo.o.payload, "s1_meta", mul_stages)
        s1_prod, s1_raw, s1_shift, s1_mask, s1_float = [], [], [], [], []
        W = prod_shape.width
        for c in range(C):
            shift = Mux(self.shift[c] > cfg.max_shift, cfg.max_shift, self.shift[c])
            s1_raw.append(stage(resp.data[c], f"s1_raw{c}", mul_stages))
            s1_shift.append(stage(shift, f"s1_shift{c}", mul_stages))
            if not arr.is_float:
                # The sticky bits' mask (the bits below the guard bit), from the shift before
                # the product is ready: stage 4 only ANDs it.
                sh_m1 = (shift - 1)[:len(shift)]
                s1_mask.append(stage(((Const(1, 1) << sh_m1) - 1)[:W], f"s1_mask{c}",
                                     mul_stages))
            if arr.is_float:
                # (sign, sig, exp, nan, inf) of the scaled value, computed in the first stage.
                parts = scale_fp32(m, resp.data[c], self.scale[c], shift, f"scaled{c}")
                s1_float.append([stage(p, f"s1_f{c}_{n}", mul_stages) for p, n in
                                 zip(parts, ("sign", "sig", "exp", "nan", "inf"))])
            else:
                s1_prod.append(pipelined_multiply(m, resp.data[c], self.scale[c], advance,
                                                  platform, f"prod{c}"))

        # Stages 4-5: the rounding shift (q, guard and sticky bits); find the SBUF word and lane.
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
        s4_valid = stage(s1_valid & in_range, "s4_valid", 2, reset=True)
        s4_meta = stage(s1_meta, "s4_meta", 2)
        s4_word = stage((byte_offset >> wb_log2)[:len(self.sbuf.payload.addr)], "s4_word", 2)
        s4_lane = stage(byte_offset[:wb_log2] if wb_log2 else Const(0, 1), "s4_lane", 2)
        s4_size_mask = stage(Mux(size_log2 == 0, 0b1, Mux(size_log2 == 1, 0b11, 0b1111)),
                             "s4_size_mask", 2)

        # The rounded value is kept in NARROW bits: beyond +-2**(NARROW-1) every saturating mode
        # saturates whatever the zero point (|zero_point| <= 2**16, outputs within +-2**16), so
        # clamping there changes no result and keeps the later adder and comparators short.
        NARROW = min(ZERO_POINT_BITS + 2, W)
        s5_rounded = [Signal(signed(NARROW + 1), name=f"s5_rounded{c}") for c in range(C)]
        s5_raw = [stage(s1_raw[c], f"s5_raw{c}", 3) for c in range(C)]
        s5_float = [Signal(32, name=f"s5_float{c}") for c in range(C)]
        for c in range(C):
            if arr.is_float:
                integer, floats = round_scaled(m, *s1_float[c], s1_meta.relu, NARROW - 1,
                                               f"round{c}")
                picked = Signal(32, name=f"float_out{c}")
                with m.Switch(s1_meta.mode):
                    for act_mode, value in floats.items():
                        with m.Case(act_mode):
                            m.d.comb += picked.eq(value)
                m.d.comb += [s5_rounded[c].eq(stage(integer, f"s4_integer{c}", 3)),
                             s5_float[c].eq(stage(picked, f"s4_float{c}", 3))]
                continue
            p, sh = s1_prod[c], s1_shift[c]
            # (p << 1) >> sh: q = p >> sh above, the guard bit p[sh - 1] at bit 0 (0 if sh = 0)
            doubled = Signal(signed(W + 1), name=f"doubled{c}")
            m.d.comb += doubled.eq(p << 1)
            coarse = stage(doubled >> Cat(Const(0, 3), sh[3:]), f"s4_coarse{c}")
            fine_shift = stage(sh[:3], f"s4_fine_shift{c}")
            sticky = stage((p.as_unsigned() & s1_mask[c]) != 0, f"s4_sticky{c}", 2)
            shifted = stage(sh != 0, f"s4_shifted{c}", 2)
            fine = stage(coarse >> fine_shift, f"s4_fine{c}")
            q = fine[1:].as_signed()
            guard = fine[0]
            # Stage 6: clamp to NARROW bits, round half to even.
            q_narrow = Signal(signed(NARROW), name=f"q_narrow{c}")
            if NARROW < W:
                top = q[NARROW - 1:]
                m.d.comb += q_narrow.eq(Mux(top.all() | ~top.any(), q[:NARROW].as_signed(),
                                            Mux(q[-1], -(1 << (NARROW - 1)),
                                                (1 << (NARROW - 1)) - 1)))
            else:
                m.d.comb += q_narrow.eq(q)
            with m.If(advance):
                m.d.sync += s5_rounded[c].eq(q_narrow + (shifted & guard & (sticky | q[0])))
        s5_valid = stage(s4_valid, "s5_valid", reset=True)
        s5_meta = stage(s4_meta, "s5_meta")
        s5_word, s5_lane, s5_size_mask = (stage(s4_word, "s5_word"), stage(s4_lane, "s5_lane"),
                                          stage(s4_size_mask, "s5_size_mask"))

        # Stage 7: ReLU and the zero point. Stage 8: saturation to the mode's range.
        s7_sat = []
        s6_meta = stage(s5_meta, "s6_meta")
        for c in range(min(C, P)):
            rounded = s5_rounded[c]
            v = Signal(signed(NARROW + 1), name=f"v{c}")
            m.d.comb += v.eq(Mux(s5_meta.relu & (rounded < 0), 0, rounded))
            y = stage(v + s5_meta.zero_point, f"s6_y{c}")
            raw = stage(s5_raw[c], f"s6_raw{c}")
            fp_out = stage(s5_float[c], f"s6_float{c}") if arr.is_float else None
            sat = Signal(signed(33), name=f"sat{c}")
            with m.Switch(s6_meta.mode):
                for act_mode, (lo, hi) in ACT_MODE_RANGE.items():
                    with m.Case(act_mode):
                        m.d.comb += sat.eq(Mux(y < lo, lo, Mux(y > hi, hi, y)))
                if arr.is_float:
                    with m.Case(*ACT_MODE_FLOAT):
                        m.d.comb += sat.eq(fp_out)
                with m.Default():
                    m.d.comb += sat.eq(raw)
            s7_sat.append(stage(sat[:32], f"s7_value{c}"))
        s6_valid = stage(s5_valid, "s6_valid", reset=True)
        s6_word, s6_lane, s6_size_mask = (stage(s5_word, "s6_word"), stage(s5_lane, "s6_lane"),
                                          stage(s5_size_mask, "s6_size_mask"))
        s7_valid = stage(s6_valid, "s7_valid", reset=True)
        s7_cols = stage(s6_meta.cols, "s7_cols")
        s7_word, s7_lane, s7_size_mask = (stage(s6_word, "s7_word"), stage(s6_lane, "s7_lane"),
                                          stage(s6_size_mask, "s7_size_mask"))

        # Stage 9 (the output register): place each value in its partition's word.
        out = self.sbuf.payload
        with m.If(advance):
            m.d.sync += [out_valid.eq(s7_valid), out.addr.eq(s7_word)]
        for c in range(P):
            if c >= C:
                with m.If(advance):
                    m.d.sync += out.byte_enable[c].eq(0)
                continue
            with m.If(advance):
                m.d.sync += [
                    out.data[c].eq((s7_sat[c] << (s7_lane * 8))[:8 * WB]),
                    out.byte_enable[c].eq(Mux(c < s7_cols, s7_size_mask << s7_lane, 0)),
                ]
        m.d.comb += self.sbuf.valid.eq(out_valid)
        m.d.comb += self.busy.eq(active | meta_fifo.o.valid | Cat(*valid_regs).any() | out_valid)
        return m
