"""Front end: GEMMs and layer sequences into one :class:`CompiledProgram` (plans, program, DRAM
layout).

``Linear(w)`` is ``x @ w`` then the ACT unit: ``out_dtype="int32"`` keeps the accumulators
(wrapped to 32 bits); ``int8``/``uint8``/``int16`` requantise with per-channel ``scale`` and
``shift`` (round half to even), optional ``relu`` (before the zero point) and ``zero_point``,
saturating (docs/memories.md, "The rounding rule"; :func:`systolica.model.reference.requantize`).

On a floating-point tile (bf16 / fp8 operands, fp32 accumulation; docs/floating_point.md) the
operands are ``ml_dtypes`` arrays of the array's dtypes and ``out_dtype`` is ``float32`` (the
fp32 PSUM words unchanged; with ``scale``, ``shift`` or ``relu`` the ACT's FP32 mode, which
saturates), ``bfloat16``, ``float8_e4m3``, ``float8_e5m2`` (rounded once from
``x * scale * 2**-shift``, saturating) or ``int8``/``uint8``/``int16``. ``out_dtype=None`` (the
default) keeps the accumulators: int32 or float32.
A sequence may also be written ``Linear(w), Requantize(scale, shift), ReLU(), Linear(w2) ...``:
:func:`fuse` folds each Requantize and ReLU into the Linear before it.

DRAM layout (the compiler's "linker"): every matrix is stored transposed (column-major), so each
SBUF partition's data is one contiguous DRAM run; the runtime packs and unpacks with
:meth:`CompiledProgram.pack` / :meth:`CompiledProgram.unpack`.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from systolica import isa
from systolica.codes import ACT_MODE_BYTES, ACT_MODE_FLOAT, ACT_MODE_RANGE, ActMode
from systolica.config import TileConfig, dtype_numpy, dtype_range
from systolica.model.fp import float_dtype_name

from .plan import ALIGN, CompileError, DramMatrix, _align, _ceil, plan_gemm
from .schedule import ActSpec, Stage, emit

__all__ = ["Linear", "Requantize", "ReLU", "fuse", "CompiledProgram", "compile_gemm",
           "compile_layers", "reference", "OUT_DTYPES"]

#: Output dtypes of an integer tile and their ACT modes.
OUT_DTYPES = {"int32": ActMode.INT32, "int8": ActMode.INT8, "uint8": ActMode.UINT8,
              "int16": ActMode.INT16}
#: Output dtypes of a floating-point tile and their ACT modes (``float32`` without scale, shift
#: or ReLU: INT32, the raw PSUM words).
FLOAT_OUT_DTYPES = {"float32": ActMode.FP32, "bfloat16": ActMode.BF16,
                    "float8_e4m3": ActMode.FP8_E4M3, "float8_e5m2": ActMode.FP8_E5M2,
                    "int8": ActMode.INT8, "uint8": ActMode.UINT8, "int16": ActMode.INT16}


def _dtype_name(dtype, what, is_float=False):
    """The output dtype name of ``dtype`` (a name, a NumPy or ``ml_dtypes`` dtype); ``None``:
    the accumulators (int32, or float32 on a floating-point tile)."""
    allowed = FLOAT_OUT_DTYPES if is_float else OUT_DTYPES
    if dtype is None:
        return "float32" if is_float else "int32"
    name = dtype if isinstance(dtype, str) else float_dtype_name(dtype)
    if name is None:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise CompileError(f"{what} must be one of {', '.join(allowed)}; got "
                               f"{dtype!r}") from None
    if name not in allowed:
        kind = "a floating-point" if is_float else "an integer"
        hint = ("; float outputs need a floating-point tile (array.moving_dtype bfloat16 / "
                "float8_*)" if not is_float and name in FLOAT_OUT_DTYPES else
                "; a floating-point tile accumulates in float32" if name == "int32" else "")
        raise CompileError(f"{what} on {kind} tile must be one of {', '.join(allowed)}; got "
                           f"{name}{hint}")
    return name


def _per_channel(values, n, what, lo, hi):
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "O"):
        raise CompileError(f"{what} must be integers; got dtype {arr.dtype}")
    arr = np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr
    if arr.shape != (n,):
        raise CompileError(f"{what} must be a scalar or have {n} values (one per output "
                           f"channel); got shape {arr.shape}")
    vals = tuple(int(v) for v in arr)
    bad = [v for v in vals if not lo <= v <= hi]
    if bad:
        raise CompileError(f"{what} values must be in [{lo}, {hi}]; got {bad[0]}")
    return vals


@dataclass(frozen=True, eq=False)
class Linear:
    """``y = ACT(x @ weight)``: see the module docstring. ``weight`` is (k, n) integers."""
    weight: np.ndarray
    scale: object = None
    shift: object = None
    zero_point: int = 0
    relu: bool = False
    out_dtype: str = None

    @property
    def k(self):
        return np.shape(self.weight)[0]

    @property
    def n(self):
        return np.shape(self.weight)[1]


@dataclass(frozen=True)
class Requantize:
    """Requantise the previous Linear's accumulators (fused into it by :func:`fuse`)."""
    scale: object
    shift: object
    zero_point: int = 0
    out_dtype: str = "int8"


@dataclass(frozen=True)
class ReLU:
    """ReLU of the previous layer (fused into the Linear before it by :func:`fuse`)."""


def fuse(layers):
    """Fold every Requantize and ReLU into the Linear before it; returns a list of Linear."""
    out = []
    for index, layer in enumerate(layers):
        where = f"layers[{index}]"
        if isinstance(layer, Linear):
            out.append(layer)
            continue
        if not out:
            raise CompileError(f"{where}: {type(layer).__name__} must follow a Linear")
        last = out[-1]
        if isinstance(layer, Requantize):
            if not _keeps_accumulators(last) or last.relu:
                raise CompileError(f"{where}: Requantize after a Linear that already "
                                   f"requantises or has a ReLU; one ACT per Linear")
            out[-1] = replace(last, scale=layer.scale, shift=layer.shift,
                              zero_point=layer.zero_point, out_dtype=layer.out_dtype)
        elif isinstance(layer, ReLU):
            if _keeps_accumulators(last):
                raise CompileError(f"{where}: ReLU needs a requantised output (the ACT passes "
                                   f"int32 accumulators through); put a Requantize before it")
            if last.zero_point:
                raise CompileError(f"{where}: ReLU after a Requantize with zero point "
                                   f"{last.zero_point} cannot be fused (the ACT applies ReLU "
                                   f"before the zero point); use Linear(relu=True)")
            out[-1] = replace(last, relu=True)
        else:
            raise CompileError(f"{where} must be a Linear, Requantize or ReLU; got {layer!r}")
    if not out:
        raise CompileError("layers must contain at least one Linear")
    return out


def _keeps_accumulators(layer):
    """The Linear passes its accumulators through (no ACT conversion asked for yet)."""
    return (layer.out_dtype is None or isinstance(layer.out_dtype, str)
            and layer.out_dtype in ("int32", "float32")) and layer.scale is None \
        and layer.shift is None and not layer.relu


def check_float_operand(x, where, dtype_name):
    """Refuse ``x`` unless it is an array of the floating-point element type ``dtype_name``
    (``ml_dtypes``): no silent conversion of float32/float64 data."""
    want = dtype_numpy(dtype_name)
    if x.dtype != want:
        got = float_dtype_name(x.dtype) or x.dtype.name
        hint = (" (ml_dtypes.float8_e4m3 has infinities; the tile's float8_e4m3 is "
                "ml_dtypes.float8_e4m3fn)" if x.dtype.name == "float8_e4m3" else
                f" (convert with .astype(ml_dtypes.{want.name}))")
        raise CompileError(f"{where} must have dtype {dtype_name} (ml_dtypes.{want.name}, the "
                           f"tile's); got {got}{hint}")


def _check_weight(config, layer, index, k_expected):
    w = layer.weight
    where = f"layers[{index}].weight"
    if not isinstance(w, np.ndarray):
        raise CompileError(f"{where} must be a NumPy array; got {type(w).__name__}")
    if w.ndim != 2 or 0 in w.shape:
        raise CompileError(f"{where} must be a non-empty 2-D (k, n) array; got shape {w.shape}")
    if k_expected is not None and w.shape[0] != k_expected:
        raise CompileError(f"{where} has {w.shape[0]} rows; the layer's input has "
                           f"{k_expected} columns")
    if config.array.is_float:
        check_float_operand(w, where, config.array.stationary_dtype)
        return
    if w.dtype.kind not in "iu":
        raise CompileError(f"{where} must have an integer dtype; got {w.dtype}")
    lo, hi = dtype_range(config.array.stationary_dtype)
    if w.size and (w.min() < lo or w.max() > hi):
        raise CompileError(f"{where} values must be in [{lo}, {hi}] (array.stationary_dtype "
                           f"{config.array.stationary_dtype}); got {w.min()}..{w.max()}")


def _act_spec(config, layer, index):
    is_float = config.array.is_float
    out = _dtype_name(layer.out_dtype, f"layers[{index}].out_dtype", is_float)
    mode = (FLOAT_OUT_DTYPES if is_float else OUT_DTYPES)[out]
    if mode == ActMode.FP32 and _keeps_accumulators(layer) and not layer.zero_point:
        mode = ActMode.INT32                   # the fp32 PSUM words, unchanged
    if mode == ActMode.INT32:
        if layer.relu or layer.zero_point or layer.scale is not None or layer.shift is not None:
            raise CompileError(f"layers[{index}]: out_dtype int32 passes the accumulators "
                               f"through; scale, shift, zero_point and relu need int8, uint8 or "
                               f"int16")
        return ActSpec(mode)
    if mode in ACT_MODE_FLOAT and layer.zero_point:
        raise CompileError(f"layers[{index}].zero_point must be 0 for out_dtype {out} (float "
                           f"outputs have no zero point); got {layer.zero_point}")
    n = layer.n
    sb = config.act.scale_bits
    scale = _per_channel(1 if layer.scale is None else layer.scale, n,
                         f"layers[{index}].scale", -(1 << (sb - 1)), (1 << (sb - 1)) - 1)
    shift = _per_channel(0 if layer.shift is None else layer.shift, n,
                         f"layers[{index}].shift", 0, config.act.max_shift)
    zp = layer.zero_point
    if not isinstance(zp, (int, np.integer)) or isinstance(zp, bool):
        raise CompileError(f"layers[{index}].zero_point must be an integer; got {zp!r}")
    lo, hi = ACT_MODE_RANGE.get(mode, (0, 0))
    if not lo <= zp <= hi:
        raise CompileError(f"layers[{index}].zero_point must be in [{lo}, {hi}] for {out}; "
                           f"got {zp}")
    return ActSpec(mode, scale, shift, int(zp), bool(layer.relu))


@dataclass(eq=False)
class CompiledProgram:
    """A compiled program and everything needed to run it: ``program``, the ``plans`` (one per
    layer), the DRAM layout (``inputs``: ``{"x": DramMatrix, "w0": ..., ...}``, ``output``), the
    DRAM bytes it needs (``dram_bytes``; the program image goes at 0, data from ``data_base``)."""
    config: TileConfig
    program: isa.Program
    plans: list
    stages: list
    inputs: dict
    output: DramMatrix
    output_dtype: np.dtype
    dram_bytes: int
    data_base: int
    weights: dict = field(default_factory=dict)    # name -> array packed at compile time
    _timeline: object = None

    @property
    def instructions(self):
        return self.program.instructions

    @property
    def macs(self):
        return sum(p.macs for p in self.plans)

    @property
    def program_bytes(self):
        """Bytes of the program image (every byte is fetched once)."""
        return len(self.program.encode())

    @property
    def dram_traffic(self):
        """Predicted DRAM bytes: data moved by the plans plus the program image fetched."""
        return sum(p.dram_bytes for p in self.plans) + self.program_bytes

    @property
    def min_dram_bytes(self):
        return sum(p.min_dram_bytes for p in self.plans)

    def predict(self, costs=None):
        """The performance model's :class:`~.perf.Timeline` of the program (cached)."""
        from .perf import DEFAULT_COSTS, predict
        if self._timeline is None or costs is not None:
            timeline = predict(self.program, self.config, costs or DEFAULT_COSTS)
            if costs is not None:
                return timeline
            self._timeline = timeline
        return self._timeline

    @staticmethod
    def pack(matrix: DramMatrix, array):
        """The bytes of ``array`` in ``matrix``'s DRAM layout (floating-point arrays: their bit
        patterns)."""
        stored = np.asarray(array)
        if stored.dtype.kind in "iub":
            stored = stored.astype(np.int64)
        elif stored.dtype.itemsize != matrix.elem_bytes:
            raise ValueError(f"pack: {stored.dtype} elements in a matrix of {matrix.elem_bytes}"
                             f"-byte elements")
        else:
            stored = stored.view(f"u{matrix.elem_bytes}")
        stored = stored.T if matrix.transposed else stored
        dtype = {1: np.int8, 2: np.int16, 4: np.int32}[matrix.elem_bytes]
        return np.ascontiguousarray(stored.astype(dtype)).tobytes()   # two's complement bits

    def data(self, x, element_dtype):
        """``{addr: bytes}``: the input ``x`` and the weights, in their DRAM layout."""
        out = {self.inputs["x"].addr: self.pack(self.inputs["x"], x.astype(element_dtype))}
        for name, w in self.weights.items():
            out[self.inputs[name].addr] = self.pack(self.inputs[name], w)
        return out

    def unpack(self, dram):
        """The output matrix read from a DRAM byte array."""
        o = self.output
        raw = np.asarray(dram[o.addr:o.end], dtype=np.uint8).view(self.output_dtype)
        return (raw.reshape(o.cols, o.rows).T if o.transposed else raw.reshape(o.rows, o.cols)
                ).copy()

    def summary(self):
        return "\n".join([str(p) for p in self.plans] + [
            f"program: {self.instructions} instructions, {self.program_bytes} bytes; DRAM "
            f"traffic with it {self.dram_traffic} bytes ({self.dram_traffic / self.min_dram_bytes:.2f}x "
            f"the minimum)" if self.min_dram_bytes else ""])


def _image_bytes(instructions, queues):
    head = 20 + 20 * queues
    return _align(head, isa.WORD_BYTES) + instructions * isa.WORD_BYTES


def _layout(config, linears, m, plans, resident, data_base):
    """DRAM matrices: x, weights, intermediates that go through DRAM, the output."""
    a_cfg = config.array
    ea = dtype_numpy(a_cfg.moving_dtype).itemsize
    ew = dtype_numpy(a_cfg.stationary_dtype).itemsize
    at = data_base
    mats = {}

    def alloc(name, rows, cols, eb):
        nonlocal at
        mats[name] = DramMatrix(at, rows, cols, eb)
        at = _align(at + rows * cols * eb, 64)

    alloc("x", m, linears[0].k, ea)
    for i, layer in enumerate(linears):
        alloc(f"w{i}", layer.k, layer.n, ew)
    for i, layer in enumerate(linears[:-1]):
        if not resident[i]:
            alloc(f"t{i}", m, layer.n, ea)
    last = linears[-1]
    alloc("y", m, last.n, ACT_MODE_BYTES[_act_spec(config, last, len(linears) - 1).mode])
    return mats, at


def compile_layers(config: TileConfig, layers, m, *, keep_in_sbuf=True, **plan_options):
    """Compile ``layers`` (Linear / Requantize / ReLU) applied to an (m × k) input into one
    :class:`CompiledProgram`. Activations between layers stay in the SBUF when the array is
    square (a layer's N tiles are the next one's K tiles) and they fit, else go through DRAM.
    ``plan_options`` (``m_block``, ``k_chunk``, ``n_group``, ``w_resident``) force the plan of
    every layer."""
    if not isinstance(config, TileConfig):
        raise TypeError(f"compile_layers config must be a TileConfig; got {config!r}")
    if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
        raise CompileError(f"m must be a positive integer; got {m!r}")
    m = int(m)
    linears = fuse(list(layers))
    k_prev = None
    specs = []
    for i, layer in enumerate(linears):
        _check_weight(config, layer, i, k_prev)
        specs.append(_act_spec(config, layer, i))
        k_prev = layer.n
    moving = config.array.moving_dtype
    outs = [_dtype_name(layer.out_dtype, f"layers[{i}].out_dtype", config.array.is_float)
            for i, layer in enumerate(linears)]
    for i, out in enumerate(outs[:-1]):
        if out != moving:
            raise CompileError(f"layers[{i}].out_dtype must be {moving} (array.moving_dtype: "
                               f"the next layer's input); got {out}")
    R, C = config.array.rows, config.array.cols
    ea = dtype_numpy(moving).itemsize
    align = max(ALIGN, config.sbuf.word_bytes)
    chain = keep_in_sbuf and R == C and len(linears) > 1
    plans = None
    resident = [False] * (len(linears) - 1)
    if chain:
        sizes = [0, 0]
        for i, layer in enumerate(linears[:-1]):
            sizes[i % 2] = max(sizes[i % 2], _align(_ceil(layer.n, C) * m * ea, align))
        reserved = sizes[0] + sizes[1]
        if reserved < config.sbuf.partition_bytes:
            try:
                plans = _plan_all(config, linears, specs, m, reserved, [True] * len(resident),
                                  plan_options)
                resident = [True] * len(resident)
            except CompileError:
                plans = None
    if plans is None:
        reserved = 0
        plans = _plan_all(config, linears, specs, m, 0, resident, plan_options)
    pb = config.sbuf.partition_bytes
    x_regions = (pb - sizes[0], pb - sizes[0] - sizes[1]) if any(resident) else (None, None)
    out_dtype = dtype_numpy(outs[-1])

    def build(data_base, plans=plans):
        mats, end = _layout(config, linears, m, plans, resident, data_base)
        stages = []
        for i, (layer, plan, spec) in enumerate(zip(linears, plans, specs)):
            a = mats["x"] if i == 0 else (None if resident[i - 1] else mats[f"t{i - 1}"])
            last = i == len(linears) - 1
            c = mats["y"] if last else (None if resident[i] else mats[f"t{i}"])
            stages.append(Stage(plan, mats[f"w{i}"], a=a, c=c,
                                x_in=None if a is not None else x_regions[(i - 1) % 2],
                                x_out=None if c is not None else x_regions[i % 2], act=spec))
        return mats, end, stages, emit(config, stages)

    if len(linears) == 1 and not plan_options:
        plans = _fastest(config, linears[0], specs[0], m, build)
    _, _, _, probe = build(0, plans)
    base = _align(_image_bytes(probe.instructions, len(probe.queues)), 4096)
    mats, end, stages, program = build(base, plans)
    if end > 1 << config.dma.addr_width:
        raise CompileError(f"the program's data needs {end} bytes of DRAM; dma.addr_width = "
                           f"{config.dma.addr_width} addresses {1 << config.dma.addr_width}")
    inputs = {name: mat for name, mat in mats.items() if name != "y"}
    weights = {f"w{i}": np.asarray(layer.weight) for i, layer in enumerate(linears)}
    return CompiledProgram(config, program, plans, stages, inputs, mats["y"], out_dtype, end,
                           base, weights)


#: Plans whose closed-form estimate is within 5 % of the best are timed instruction by
#: instruction (perf.predict), at most this many.
_TIMED_ALTERNATIVES = 3


def _fastest(config, layer, spec, m, build):
    """``[plan]``: of the close candidates of :func:`plan_gemm`, the one whose program the
    performance model times fastest (the closed form misses how fetch and DMA share the read
    channel and the fetch FIFOs' lookahead). Candidates with more than twice the fewest
    instruction pairs are not timed, and a program within 1 % of the fastest with fewer
    instructions wins: fetch-heavy programs leave the least margin on the read channel."""
    from .perf import predict
    candidates = plan_gemm(config, m, layer.k, layer.n, out_mode=spec.mode,
                           alternatives=_TIMED_ALTERNATIVES)
    fewest = min(_pairs(p) for p in candidates)
    candidates = [p for p in candidates if _pairs(p) <= 2 * fewest]
    if len(candidates) == 1:
        return candidates
    timed = []
    for plan in candidates:
        _, _, _, program = build(0, [plan])
        timed.append((predict(program, config).cycles, program.instructions, plan))
    best = min(t[0] for t in timed)
    return [min((t for t in timed if t[0] <= best * 1.01), key=lambda t: (t[1], t[0]))[2]]


def _pairs(plan):
    return plan.m_blocks * plan.n_tiles * plan.k_tiles


def _plan_all(config, linears, specs, m, reserved, resident, options):
    plans = []
    for i, (layer, spec) in enumerate(zip(linears, specs)):
        a_source = "sbuf" if i and resident[i - 1] else "dram"
        c_dest = "sbuf" if i < len(linears) - 1 and resident[i] else "dram"
        try:
            plans.append(plan_gemm(config, m, layer.k, layer.n, out_mode=spec.mode,
                                   a_source=a_source, c_dest=c_dest, reserved=reserved,
                                   **options))
        except CompileError as e:
            raise CompileError(f"layers[{i}]: {e}") from None
    return plans


def compile_gemm(config: TileConfig, m, k, n, *, w=None, out_dtype=None, scale=None,
                 shift=None, zero_point=0, relu=False, **plan_options):
    """Compile ``C = A (m × k) @ W (k × n)``; ``w`` (the weights) may be given now or packed by
    the runtime later (a zero placeholder is used for the layout)."""
    for name, value in (("m", m), ("k", k), ("n", n)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise CompileError(f"{name} must be a positive integer; got {value!r}")
    if w is None:
        w = np.zeros((int(k), int(n)), dtype=dtype_numpy(config.array.stationary_dtype)
                     if config.array.is_float else np.int64)
    layer = Linear(w, scale=scale, shift=shift, zero_point=zero_point, relu=relu,
                   out_dtype=out_dtype)
    return compile_layers(config, [layer], m, **plan_options)


def reference(layers, x, config: TileConfig = None):
    """The NumPy result of ``layers`` on ``x``: what every backend must return bit-exactly.
    Floating point (``ml_dtypes`` operands) needs ``config``: its rows fix the accumulation
    order (:func:`systolica.model.fp.gemm_fp`)."""
    from systolica.model.reference import requantize, wrap_signed
    linears = fuse(list(layers))
    x = np.asarray(x)
    if float_dtype_name(x.dtype) is not None:
        return _reference_fp(linears, x, config)
    acc_bits = config.array.acc_bits if config is not None else 32
    y = x.astype(np.int64)
    for layer in linears:
        acc = wrap_signed(y @ np.asarray(layer.weight).astype(np.int64), acc_bits)
        mode = OUT_DTYPES[_dtype_name(layer.out_dtype, "out_dtype")]
        if mode == ActMode.INT32:
            y = wrap_signed(acc, 32)
        else:
            scale, shift = _scale_shift(layer)
            y = requantize(acc, scale, shift, zero_point=int(layer.zero_point),
                           relu=bool(layer.relu), mode=mode)
    return y.astype(dtype_numpy(_dtype_name(linears[-1].out_dtype, "out_dtype")))


def _scale_shift(layer):
    n = layer.n
    return (np.broadcast_to(np.asarray(1 if layer.scale is None else layer.scale), (n,)),
            np.broadcast_to(np.asarray(0 if layer.shift is None else layer.shift), (n,)))


def _reference_fp(linears, x, config):
    from systolica.model.fp import act_convert_fp, gemm_fp
    if config is None or not config.array.is_float:
        raise CompileError("reference of a floating-point GEMM needs the floating-point "
                           "TileConfig: its array rows fix the accumulation order")
    y = x
    for i, layer in enumerate(linears):
        acc = gemm_fp(y, np.asarray(layer.weight), config.array.rows)
        mode = _act_spec(config, layer, i).mode
        if mode == ActMode.INT32:
            y = acc
        else:
            scale, shift = _scale_shift(layer)
            y = act_convert_fp(acc, scale, shift, mode=mode, relu=bool(layer.relu),
                               zero_point=int(layer.zero_point))
    return y
