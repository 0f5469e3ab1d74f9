"""The tensor engine: an R x C weight-stationary systolic array of multiply-accumulate PEs.

Dataflow (see docs/architecture.md, "Tensor engine"):

* ``weights`` carries the stationary operand W one row (C elements) per beat, rows k = 0..K-1,
  ``last`` on row K-1. Rows go into the *shadow* bank of the PEs' double-buffered weight registers
  while the *active* bank computes.
* ``moving`` carries the moving operand A one K-vector (R elements) per beat. ``start`` on a beat
  switches to the most recently loaded W (the beat waits until that load is complete); beats
  without ``start`` reuse the current W. Elements at rows >= K of the W in use are ignored.
* ``result`` gives one C-vector of ``acc_bits`` partial sums per moving beat, in order, with the
  beat's ``tag`` (PSUM destination row, accumulate/overwrite, last) passed through unchanged.

Moving elements enter row k, skewed by the pipeline registers above that row, travel right across
the columns; partial sums travel down the columns and leave at the bottom, where they are
de-skewed. Each PE picks its weight bank by a bit that travels with the moving element, so the
bank switch sweeps through the array in step with the data. Weight-row writes are delayed per
column group by the same amount as the moving data, which is what makes reloading the bank that
was just switched away from safe in the very next cycle (the argument is in the docs).

Backpressure: the whole datapath shares one clock enable, ``advance``, which is low only when the
2-entry output buffer is full and the last pipeline stage holds a result. The enable is itself a
register (computed a cycle ahead), so ``result.ready`` has no combinational path into the array.
"""

from amaranth.hdl import *
from amaranth.hdl import EnableInserter
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import ArrayConfig, dtype_range
from systolica.hdl.contracts import moving_layout, psum_tag_layout, result_layout, weight_row_layout
from systolica.hdl.fp import (add_to_fp32, align_and_add, multiply, normalise_and_round,
                              normalise_product, unpack_fp32)
from systolica.hdl.lib import Queue, StickyFlags
from systolica.hdl.multiplier import (Ecp5RegisteredMultiplier, fits_ecp5_dsp, is_ecp5,
                                      lut_multiply)


__all__ = ["psum_bits", "carried_shape", "ProcessingElement", "TensorEngine"]

#: fp32 -0.0: where every floating-point column sum starts (the additive identity).
FP32_NEGATIVE_ZERO = 0x80000000
#: Registers per partial-sum stage of a floating-point column: the fp32 adder is pipelined in
#: two (docs/floating_point.md, "Cost and speed"); integer columns have one.
PSUM_STAGES_FLOAT = 2


def carried_shape(config: ArrayConfig):
    """A moving element as it travels through the array: the element, and for floating point a
    ``live`` bit above it (0 for rows >= K, whose product must add nothing: ``0 * inf`` is NaN
    and ``+0`` would change the sign of a zero sum)."""
    if config.is_float:
        return unsigned(config.moving_shape.width + 1)
    return config.moving_shape


def psum_bits(config: ArrayConfig, n_rows):
    """Width of a partial sum over ``n_rows`` products: just enough to hold any such sum exactly,
    capped at ``acc_bits`` (where it wraps). Narrower early rows save flip-flops and carry chains
    without changing any result. Floating point: always 32 (fp32)."""
    if config.is_float:
        return 32
    (a_lo, a_hi), (w_lo, w_hi) = (dtype_range(config.moving_dtype),
                                  dtype_range(config.stationary_dtype))
    corners = [a * w for a in (a_lo, a_hi) for w in (w_lo, w_hi)]
    lo, hi = n_rows * min(corners), n_rows * max(corners)
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
        bits += 1
    return min(bits, config.acc_bits)


class ProcessingElement(wiring.Component):
    """One MAC cell: ``psum_out = psum_in + a_in * weight``.

    Weights are double-buffered as a *shadow* register (written by ``w_we``) and the *active*
    weight, which takes the shadow's value when the bank bit travelling with the moving element
    changes (``bank_in`` differs from the previous element's): the switch to the next W sweeps
    through the array with the data, and the shadow may be rewritten from that cycle on.

    ``register_moving`` / ``register_psum`` put a pipeline register on the moving-operand output
    (to the right) / the partial-sum output (downwards); the engine sets them per PE from
    ``cols_per_stage`` / ``rows_per_stage``. ``multiplier_stages`` registers the product (1),
    and also the moving operand (2; the active weight is a register already). ``psum_in_bits`` /
    ``psum_out_bits`` (default ``acc_bits``) narrow the partial sums where they cannot overflow
    (see ``psum_bits``). ``lut_multiplier`` builds an integer product from LUT logic
    (``hdl/multiplier.py``) rather than a ``*`` that synthesis maps to a DSP.

    Elaborated for an ECP5 (``platform.family == "ecp5"``) with ``multiplier_stages = 2``, an
    integer PE puts its operand, active-weight and product registers into one MULT18X18D (they
    are the DSP's A, B and output registers); ``advance`` must then be the datapath's clock
    enable, since the DSP's registers are outside ``EnableInserter``'s reach.
    """

    def __init__(self, config: ArrayConfig, *, register_moving=True, register_psum=True,
                 psum_in_bits=None, psum_out_bits=None, lut_multiplier=False):
        self._config = config
        self._register_moving = register_moving
        self._register_psum = register_psum
        self._psum_out_bits = psum_out_bits or config.acc_bits
        self._lut_multiplier = lut_multiplier and not config.is_float
        psum_shape = unsigned if config.is_float else signed
        super().__init__({
            "a_in": In(carried_shape(config)),
            "bank_in": In(1),
            "a_out": Out(carried_shape(config)),
            "bank_out": Out(1),
            "psum_in": In(psum_shape(psum_in_bits or config.acc_bits)),
            "psum_out": Out(psum_shape(self._psum_out_bits)),
            "w_data": In(config.stationary_shape),
            "w_we": In(1),
            "advance": In(1, init=1),
        })

    def uses_dsp_registers(self, platform):
        cfg = self._config
        return (is_ecp5(platform) and cfg.multiplier_stages == 2 and not cfg.is_float
                and not self._lut_multiplier
                and fits_ecp5_dsp(cfg.moving_shape, cfg.stationary_shape))

    def elaborate(self, platform):
        m = Module()
        cfg = self._config

        # Pipeline registers carry no reset (data flushes through them), but the weights do:
        # rows >= K of a W never written are multiplied (by a zero moving element), and
        # 0 * X is X in a 4-state simulator; a reset register holds 0, never X, whatever the
        # simulator did before reset (e.g. Icarus -g2012 clocking unevaluated `always @*` logic).
        shadow = Signal(cfg.stationary_shape, name="shadow_weight")
        with m.If(self.w_we):
            m.d.sync += shadow.eq(self.w_data)
        bank_seen = Signal(name="bank_seen", reset_less=True)    # the previous element's bank
        switch = Signal()
        m.d.sync += bank_seen.eq(self.bank_in)
        m.d.comb += switch.eq(self.bank_in != bank_seen)

        if self.uses_dsp_registers(platform):
            dsp = m.submodules.multiplier = Ecp5RegisteredMultiplier(cfg.moving_shape,
                                                                     cfg.stationary_shape)
            m.d.comb += [dsp.a.eq(self.a_in), dsp.b.eq(shadow), dsp.a_enable.eq(self.advance),
                         dsp.b_enable.eq(self.advance & switch),
                         dsp.p_enable.eq(self.advance)]
            product = dsp.product
        else:
            active = Signal(cfg.stationary_shape, name="active_weight")
            with m.If(switch):
                m.d.sync += active.eq(shadow)
            a_operand = self.a_in
            if cfg.multiplier_stages >= 2:
                # The active weight register is the multiplier's other operand register.
                a_operand = self._stage(m, a_operand, True, "a_operand")
                w_operand = active
            else:
                w_operand = Mux(switch, shadow, active)
            if cfg.is_float:
                # Exact product: multiply | normalise (one register more than an integer PE when
                # the multiplier is pipelined), then the fp32 sum.
                bits = cfg.moving_shape.width
                raw = multiply(m, a_operand[:bits], cfg.moving_dtype, w_operand,
                               cfg.stationary_dtype, a_operand[bits])
                raw = self._stage(m, raw, cfg.multiplier_stages >= 1, "product")
                product = self._stage(m, normalise_product(m, raw), cfg.multiplier_stages >= 1,
                                      "normal_product")
            else:
                product = (lut_multiply(a_operand, w_operand) if self._lut_multiplier
                           else a_operand * w_operand)
                product = self._stage(m, product, cfg.multiplier_stages >= 1, "product")
        if cfg.is_float:
            psum_in = unpack_fp32(m, self.psum_in, "psum_in_unpacked")
            if self._register_psum:
                # Pipelined fp32 adder: align + add | normalise + round (PSUM_STAGES_FLOAT).
                aligned = self._stage(m, align_and_add(m, psum_in, product, "sum"), True,
                                      "aligned_sum")
                psum_next = normalise_and_round(m, aligned, "sum")
            else:
                psum_next = add_to_fp32(m, psum_in, product)
        else:
            # Truncation is exact below acc_bits (the sum fits) and the two's-complement
            # wraparound at acc_bits.
            psum_next = (self.psum_in + product)[:self._psum_out_bits].as_signed()
        m.d.comb += self.psum_out.eq(self._stage(m, psum_next, self._register_psum, "psum"))
        m.d.comb += [
            self.a_out.eq(self._stage(m, self.a_in, self._register_moving, "a")),
            self.bank_out.eq(self._stage(m, self.bank_in, self._register_moving, "bank")),
        ]
        return m

    @staticmethod
    def _stage(m, value, registered, name):
        """``value`` through a reset-less pipeline register, or unchanged."""
        if not registered:
            return value
        shape = value.shape() if isinstance(value, data.View) else Value.cast(value).shape()
        reg = Signal(shape, name=f"{name}_reg", reset_less=True)
        m.d.sync += reg.eq(value)
        return reg


class TensorEngine(wiring.Component):
    """Weight-stationary R x C systolic tensor engine (see the module docstring).

    Ports: ``moving`` and ``weights`` in, ``result`` out (streams); ``busy``; sticky
    ``weights_overflow`` (a W had more than R rows: the extra rows were dropped), cleared by
    pulsing ``clear_errors``.
    """

    def __init__(self, *, config: ArrayConfig):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"TensorEngine config must be an ArrayConfig; got {config!r}")
        self._config = config
        super().__init__({
            "moving": In(stream.Signature(moving_layout(config))),
            "weights": In(stream.Signature(weight_row_layout(config))),
            "result": Out(stream.Signature(result_layout(config))),
            "busy": Out(1),
            "weights_overflow": Out(1),
            "clear_errors": In(1),
        })

    @property
    def config(self):
        return self._config

    # Pipeline geometry --------------------------------------------------------------------------

    def row_skew(self, k):
        """Pipeline registers between the input register and PE row k (partial-sum registers
        above row k)."""
        return (k // self._config.rows_per_stage) * self.psum_stages

    @property
    def psum_stages(self):
        """Registers in each registered row's partial-sum path (2: the pipelined fp32 adder)."""
        return PSUM_STAGES_FLOAT if self._config.is_float else 1

    def weight_delay(self, k):
        """Extra delay of weight-row writes into PE row k: the row skew beyond one register per
        stage (pipelined float adders), so that writes and reads of a bank keep the timing
        that makes a reload right after a switch safe."""
        return self.row_skew(k) - k // self._config.rows_per_stage

    def col_delay(self, c):
        """Pipeline registers between PE column 0 and column c on the moving-operand path."""
        return c // self._config.cols_per_stage

    def uses_dsp(self, k, c):
        """PE(k, c) multiplies with ``*`` (a DSP where the part has one): the first ``max_dsps``
        PEs in column order, all of them when ``max_dsps`` is 0; the rest use LUT logic."""
        limit = self._config.max_dsps
        return limit == 0 or c * self._config.rows + k < limit

    def psum_bits(self, n_rows):
        """See :func:`psum_bits`."""
        return psum_bits(self._config, n_rows)

    @property
    def latency(self):
        """Cycles from a moving beat's acceptance to its result entering the output buffer
        (with no stalls); the result can be taken by the consumer one cycle later."""
        cfg = self._config
        product_stages = cfg.multiplier_stages + (cfg.is_float and cfg.multiplier_stages >= 1)
        return (2 + self.row_skew(cfg.rows - 1) + self.col_delay(cfg.cols - 1)
                + product_stages + self.psum_stages - 1)

    # ---------------------------------------------------------------------------------------------

    def elaborate(self, platform):
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        m = Module()

        # The datapath: every register in it is enabled by `advance`.
        dp = Module()
        advance = Signal(init=1)
        m.submodules.datapath = EnableInserter(advance)(dp)

        # --- output buffer (2 entries) and the global enable ---------------------------------
        out_buffer = m.submodules.out_buffer = Queue(shape=result_layout(cfg), depth=2)
        out_valid = Signal()
        out_payload = out_buffer.i.payload
        m.d.comb += [
            out_buffer.i.valid.eq(out_valid),
        ]
        wiring.connect(m, out_buffer.o, wiring.flipped(self.result))

        # --- weight-bank bookkeeping ----------------------------------------------------------
        active = Signal()            # bank used by moving beats without `start`
        pending = Signal()           # bank ~active holds a complete load not yet switched to
        k_rows = Array(Signal(range(R + 1), name=f"k_rows{b}") for b in range(2))
        load_row = Signal(range(R + 1))

        moving_fire = Signal()
        switching = Signal()
        load_fire = Signal()
        m.d.comb += [
            self.moving.ready.eq(advance & (~self.moving.payload.start | pending)),
            moving_fire.eq(self.moving.valid & self.moving.ready),
            switching.eq(moving_fire & self.moving.payload.start),
            # The bank just switched away from may be reloaded in the same cycle.
            self.weights.ready.eq(advance & (~pending | switching)),
            load_fire.eq(self.weights.valid & self.weights.ready),
        ]
        load_bank = Mux(switching, active, ~active)
        # Only read when the beat is accepted; not gating it with the handshake keeps the
        # output-buffer -> advance -> ready path out of the input mask logic.
        use_bank = Mux(self.moving.payload.start, ~active, active)

        with m.If(switching):
            m.d.sync += active.eq(~active)
        m.d.sync += pending.eq((pending & ~switching) | (load_fire & self.weights.payload.last))
        with m.If(load_fire):
            with m.If(self.weights.payload.last):
                m.d.sync += [
                    load_row.eq(0),
                    k_rows[load_bank].eq(Mux(load_row == R, R, load_row + 1)),
                ]
            with m.Elif(load_row != R):
                m.d.sync += load_row.eq(load_row + 1)
        # A W with more than R rows: the extra rows are dropped and flagged.
        overflow = m.submodules.errors = StickyFlags(1)
        m.d.comb += [
            overflow.set.eq(load_fire & (load_row == R)),
            overflow.clear.eq(self.clear_errors),
            self.weights_overflow.eq(overflow.flags),
        ]

        # --- weight-row write pipeline, delayed per column group like the moving data ----------
        n_groups = self.col_delay(C - 1) + 1 + self.weight_delay(R - 1)
        wl_valid = [Signal(name=f"wl_valid{g}") for g in range(n_groups)]
        wl_row = [Signal(range(R), name=f"wl_row{g}", reset_less=True) for g in range(n_groups)]
        wl_data = [Signal(data.ArrayLayout(cfg.stationary_shape, C), name=f"wl_data{g}",
                          reset_less=True) for g in range(n_groups)]
        dp.d.sync += [
            wl_valid[0].eq(load_fire & (load_row != R)),
            wl_row[0].eq(load_row),
            wl_data[0].eq(self.weights.payload.data),
        ]
        for g in range(1, n_groups):
            dp.d.sync += [wl_valid[g].eq(wl_valid[g - 1]),
                          wl_row[g].eq(wl_row[g - 1]), wl_data[g].eq(wl_data[g - 1])]

        # --- input register: mask rows >= K, tag the bank --------------------------------------
        in_valid = Signal()
        in_bank = Signal(reset_less=True)
        in_data = Signal(data.ArrayLayout(carried_shape(cfg), R), reset_less=True)
        in_tag = Signal(psum_tag_layout(cfg.result_addr_bits), reset_less=True)
        k_limit = k_rows[use_bank]
        dp.d.sync += in_valid.eq(moving_fire)
        with dp.If(moving_fire):
            dp.d.sync += [in_bank.eq(use_bank), in_tag.eq(self.moving.payload.tag)]
            for k in range(R):
                if cfg.is_float:
                    dp.d.sync += in_data[k].eq(Cat(self.moving.payload.data[k], k < k_limit))
                else:
                    dp.d.sync += in_data[k].eq(Mux(k < k_limit, self.moving.payload.data[k], 0))

        # --- input skew: row k delayed by row_skew(k) registers --------------------------------
        def delay_line(domain, value, n, name, reset_less=True):
            """``value`` and its ``n`` delayed copies."""
            taps = [value]
            for i in range(n):
                taps.append(Signal.like(value, name=f"{name}_d{i}", reset_less=reset_less))
                domain += taps[-1].eq(taps[-2])
            return taps

        def delay(domain, value, n, name):
            return delay_line(domain, value, n, name)[-1]

        row_a = [delay(dp.d.sync, in_data[k], self.row_skew(k), f"skew_a{k}") for k in range(R)]
        row_bank = [delay(dp.d.sync, in_bank, self.row_skew(k), f"skew_bank{k}")
                    for k in range(R)]

        # --- the PE grid ----------------------------------------------------------------------
        psum_bottom = []
        for c in range(C):
            psum = Const(FP32_NEGATIVE_ZERO, 32) if cfg.is_float else Const(0, signed(1))
            for k in range(R):
                pe = ProcessingElement(
                    cfg,
                    register_moving=(c % cfg.cols_per_stage == cfg.cols_per_stage - 1),
                    register_psum=(k % cfg.rows_per_stage == cfg.rows_per_stage - 1
                                   or k == R - 1),
                    psum_in_bits=self.psum_bits(k) if k or cfg.is_float else 1,
                    psum_out_bits=self.psum_bits(k + 1),
                    lut_multiplier=not self.uses_dsp(k, c))
                dp.submodules[f"pe_{k}_{c}"] = pe
                if c == 0:
                    a_src, bank_src = row_a[k], row_bank[k]
                else:
                    left = dp.submodules[f"pe_{k}_{c - 1}"]
                    a_src, bank_src = left.a_out, left.bank_out
                g = self.col_delay(c) + self.weight_delay(k)
                dp.d.comb += [
                    pe.a_in.eq(a_src),
                    pe.bank_in.eq(bank_src),
                    pe.psum_in.eq(psum),
                    pe.w_data.eq(wl_data[g][c]),
                    pe.advance.eq(advance),
                    pe.w_we.eq(wl_valid[g] & (wl_row[g] == k)),
                ]
                psum = pe.psum_out
            psum_bottom.append(psum)

        # --- de-skew and the metadata delay line ----------------------------------------------
        last_col_delay = self.col_delay(C - 1)
        for c in range(C):
            dp.d.comb += out_payload.data[c].eq(
                delay(dp.d.sync, psum_bottom[c], last_col_delay - self.col_delay(c), f"deskew{c}"))
        meta_delay = self.latency - 1
        valid_taps = delay_line(dp.d.sync, in_valid, meta_delay, "valid", reset_less=False)
        # `advance` = the output buffer can take the last stage's result (not full, or nothing
        # to give), kept in a register: the next cycle's level and last-stage valid are computed
        # here, so the enable of every datapath register and DSP comes straight from a
        # flip-flop, not from the buffer's level through logic.
        push = out_buffer.i.valid & out_buffer.i.ready
        pop = out_buffer.o.valid & out_buffer.o.ready
        next_level = out_buffer.level + push - pop
        next_out_valid = Mux(advance, valid_taps[-2], valid_taps[-1])
        m.d.sync += advance.eq(~(next_out_valid & (next_level == out_buffer.depth)))
        dp.d.comb += [
            out_valid.eq(valid_taps[-1]),
            out_payload.tag.eq(delay(dp.d.sync, in_tag, meta_delay, "tag")),
        ]

        # --- status ----------------------------------------------------------------------------
        m.d.comb += self.busy.eq(Cat(*valid_taps, *wl_valid).any() | out_buffer.o.valid
                                 | (load_row != 0))
        return m
