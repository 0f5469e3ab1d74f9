"""Configuration: small frozen dataclasses, validated on construction, loadable from TOML and
exported as JSON (the manifest that software reads).

Every block has its own config class; a config class names its TOML section in ``SECTION`` and
documents each field in the field's metadata (``help``, and the allowed range or choices), which is
also what the CLI turns into ``--flag`` options.
"""

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import ClassVar

from amaranth.hdl import Shape, signed, unsigned
import numpy as np


__all__ = [
    "ConfigError", "ConfigBase", "DTYPES", "FLOAT_FORMATS", "is_float_dtype", "dtype_shape",
    "dtype_numpy", "dtype_range",
    "ArrayConfig", "SbufConfig", "DmaConfig", "NocConfig", "CONFIG_CLASSES", "register_config",
    "load_toml", "default_config", "config_reference_markdown",
    "HostConfig", "TileConfig", "ChipConfig", "TILE_SECTIONS", "CHIP_SECTIONS",
]


class ConfigError(ValueError):
    """A configuration parameter is out of its allowed range; the message names it."""


#: Element types: name -> (bits, signed). Floating-point types have a sign bit (signed=True)
#: and their layout in :data:`FLOAT_FORMATS`.
DTYPES = {
    "int8": (8, True),
    "uint8": (8, False),
    "int16": (16, True),
    "uint16": (16, False),
    "bfloat16": (16, True),
    "float8_e4m3": (8, True),
    "float8_e5m2": (8, True),
}

#: Floating-point element types: name -> (exponent bits, mantissa bits). ``float8_e4m3`` is the
#: "fn" variant (no infinities, one NaN per sign), ``float8_e5m2`` and ``bfloat16`` are
#: IEEE-like (docs/floating_point.md).
FLOAT_FORMATS = {
    "bfloat16": (8, 7),
    "float8_e4m3": (4, 3),
    "float8_e5m2": (5, 2),
}


def is_float_dtype(name):
    return name in FLOAT_FORMATS


def dtype_shape(name):
    """The Amaranth shape of an element: signed/unsigned for integers, the raw bit pattern
    (unsigned) for floating point."""
    bits, is_signed = DTYPES[name]
    if is_float_dtype(name):
        return unsigned(bits)
    return signed(bits) if is_signed else unsigned(bits)


def dtype_numpy(name):
    """The NumPy dtype of an element (``ml_dtypes`` for bfloat16 and the fp8 types)."""
    if is_float_dtype(name):
        import ml_dtypes
        return np.dtype({"bfloat16": ml_dtypes.bfloat16, "float8_e4m3": ml_dtypes.float8_e4m3fn,
                         "float8_e5m2": ml_dtypes.float8_e5m2}[name])
    return np.dtype(name)


def dtype_range(name):
    """Smallest and largest value of an integer element type, as Python ints."""
    if is_float_dtype(name):
        raise ValueError(f"dtype_range: {name} is not an integer type")
    bits, is_signed = DTYPES[name]
    if is_signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def param(default, help, *, range=None, choices=None):
    """A config field: default value, one-line help, and either an inclusive ``range=(lo, hi)``
    (integers; ``hi=None`` means unbounded) or ``choices``."""
    return field(default=default, metadata={"help": help, "range": range, "choices": choices})


class _Serialisable:
    """dict / JSON out, and a changed copy (every config dataclass)."""

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), **kwargs)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


class ConfigBase(_Serialisable):
    """Shared behaviour of the config dataclasses (validation, dict/JSON/TOML round trips)."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            where = f"{type(self).__name__}.{f.name}"
            if f.metadata.get("choices") is not None:
                if value not in f.metadata["choices"]:
                    raise ConfigError(
                        f"{where} must be one of {', '.join(map(str, f.metadata['choices']))}; "
                        f"got {value!r}")
            elif f.type in (bool, "bool"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{where} must be true or false; got {value!r}")
            elif f.metadata.get("range") is not None:
                lo, hi = f.metadata["range"]
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ConfigError(f"{where} must be an integer; got {value!r}")
                if value < lo or (hi is not None and value > hi):
                    bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
                    raise ConfigError(f"{where} must be in {bound}; got {value}")
        self.validate()

    def validate(self):
        """Cross-field checks; override in subclasses. Raise :class:`ConfigError`."""

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}")
        return cls(**values)

    @classmethod
    def describe(cls):
        """[(name, type, default, help, allowed)] for docs and the CLI."""
        rows = []
        for f in dataclasses.fields(cls):
            md = f.metadata
            if md.get("choices") is not None:
                allowed = ", ".join(map(str, md["choices"]))
            elif md.get("range") is not None:
                lo, hi = md["range"]
                allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            else:
                allowed = "true/false"
            rows.append((f.name, f.type if isinstance(f.type, str) else f.type.__name__,
                         f.default, md.get("help", ""), allowed))
        return rows


#: Config classes by TOML section name; every block's config registers itself here.
CONFIG_CLASSES = {}


def register_config(cls):
    if not cls.SECTION:
        raise TypeError(f"{cls.__name__} has no SECTION")
    CONFIG_CLASSES[cls.SECTION] = cls
    return cls


@register_config
@dataclass(frozen=True)
class ArrayConfig(ConfigBase):
    """The systolic tensor engine: an R x C weight-stationary array of MAC processing elements."""

    SECTION: ClassVar[str] = "array"

    rows: int = param(8, "R: PE rows = contraction dimension K (also the SBUF partitions)",
                      range=(1, 256))
    cols: int = param(8, "C: PE columns = output channels N", range=(1, 256))
    moving_dtype: str = param("int8", "element type of the moving operand A",
                              choices=tuple(DTYPES))
    stationary_dtype: str = param("int8", "element type of the stationary operand W",
                                  choices=tuple(DTYPES))
    acc_bits: int = param(32, "accumulator width (two's-complement wraparound); floating-point "
                              "types accumulate in fp32 and need 32", range=(16, 64))
    rows_per_stage: int = param(1, "PE rows whose partial-sum adders chain combinationally "
                                   "between pipeline registers", range=(1, 256))
    cols_per_stage: int = param(1, "PE columns the moving operand crosses combinationally "
                                   "between pipeline registers", range=(1, 256))
    multiplier_stages: int = param(2, "pipeline registers in each multiplier: 0 none, 1 after "
                                      "the product, 2 also before it (each: +1 cycle latency, "
                                      "higher Fmax)", range=(0, 2))
    max_dsps: int = param(0, "most PE multipliers written as a product that synthesis maps to a "
                             "DSP block (0: all); the others (the last columns) are built in LUT "
                             "logic, e.g. 156 for a 16x16 array on an ECP5-85F (156 MULT18X18D)",
                          range=(0, 65536))
    result_addr_bits: int = param(10, "width of the destination-row (PSUM address) field "
                                      "carried with each moving vector", range=(1, 32))

    def validate(self):
        floats = (is_float_dtype(self.moving_dtype), is_float_dtype(self.stationary_dtype))
        if floats[0] != floats[1]:
            raise ConfigError(
                f"ArrayConfig.stationary_dtype must be a floating-point type when moving_dtype is "
                f"one, and an integer type when it is not (moving_dtype={self.moving_dtype}); got "
                f"{self.stationary_dtype}")
        if floats[0] and self.acc_bits != 32:
            raise ConfigError(f"ArrayConfig.acc_bits must be 32 for floating-point types (fp32 "
                              f"accumulation); got {self.acc_bits}")
        product_bits = DTYPES[self.moving_dtype][0] + DTYPES[self.stationary_dtype][0]
        if self.acc_bits < product_bits:
            raise ConfigError(
                f"ArrayConfig.acc_bits must be >= {product_bits} (the product width of "
                f"{self.moving_dtype} x {self.stationary_dtype}); got {self.acc_bits}")
        if self.rows_per_stage > self.rows:
            raise ConfigError(f"ArrayConfig.rows_per_stage must be in [1, rows={self.rows}]; "
                              f"got {self.rows_per_stage}")
        if self.cols_per_stage > self.cols:
            raise ConfigError(f"ArrayConfig.cols_per_stage must be in [1, cols={self.cols}]; "
                              f"got {self.cols_per_stage}")

    @property
    def moving_shape(self) -> Shape:
        return dtype_shape(self.moving_dtype)

    @property
    def stationary_shape(self) -> Shape:
        return dtype_shape(self.stationary_dtype)

    @property
    def is_float(self):
        """Floating-point operands (fp32 accumulation) rather than integers."""
        return is_float_dtype(self.moving_dtype)

    @property
    def acc_dtype(self):
        """The accumulator's NumPy type name: ``float32`` or ``int<acc_bits>``-wrapping int."""
        return "float32" if self.is_float else f"int{self.acc_bits}"

    @property
    def acc_shape(self) -> Shape:
        """Accumulator bits: signed integers, or the fp32 bit pattern (unsigned)."""
        return unsigned(32) if self.is_float else signed(self.acc_bits)


@register_config
@dataclass(frozen=True)
class SbufConfig(ConfigBase):
    """The state buffer: ``partitions`` independent memories of ``depth`` words of
    ``word_bytes`` bytes. A word is also the width of the DMA port (the AXI data width)."""

    SECTION: ClassVar[str] = "sbuf"

    partitions: int = param(8, "P: partitions (one per tensor-engine row)", range=(1, 256))
    depth: int = param(2048, "words per partition", range=(2, 1 << 20))
    word_bytes: int = param(8, "bytes per word (= DMA/AXI data width / 8)", choices=(4, 8, 16, 32))

    @property
    def partition_bytes(self):
        return self.depth * self.word_bytes


__all__ += ["PsumConfig", "ActConfig"]


@register_config
@dataclass(frozen=True)
class PsumConfig(ConfigBase):
    """The accumulation buffer: ``banks`` memories of ``bank_rows`` rows, each row one C-vector
    of ``acc_bits`` accumulators (hdl/psum.py, docs/memories.md). A result tag's ``addr`` is
    ``bank * bank_rows + row``; ``banks * bank_rows`` must fit in ``array.result_addr_bits``."""

    SECTION: ClassVar[str] = "psum"

    banks: int = param(2, "banks (the ACT unit drains one while the engine fills another)",
                       range=(1, 64))
    bank_rows: int = param(128, "rows (C-vectors) per bank; a power of two", range=(2, 1 << 16))

    def validate(self):
        if self.bank_rows & (self.bank_rows - 1):
            raise ConfigError(f"PsumConfig.bank_rows must be a power of two; got {self.bank_rows}")

    @property
    def rows(self):
        return self.banks * self.bank_rows


@register_config
@dataclass(frozen=True)
class ActConfig(ConfigBase):
    """The ACT unit: per-column integer scale and rounding right shift, zero point, ReLU and
    saturation of PSUM rows, written to the SBUF (hdl/act.py, docs/memories.md)."""

    SECTION: ClassVar[str] = "act"

    scale_bits: int = param(16, "width of each per-column signed scale", range=(2, 32))
    max_shift: int = param(31, "largest per-column right shift (must be < acc_bits + "
                               "scale_bits)", range=(0, 95))
    queue_depth: int = param(4, "PSUM row reads in flight", range=(2, 64))


@register_config
@dataclass(frozen=True)
class NocConfig(ConfigBase):
    """The mesh network-on-chip: an X x Y mesh of 5-port wormhole routers with virtual channels
    and credit-based flow control (hdl/noc/, docs/noc.md)."""

    SECTION: ClassVar[str] = "noc"

    width: int = param(2, "X: routers per row (east-west)", range=(1, 16))
    height: int = param(2, "Y: routers per column (north-south)", range=(1, 16))
    vcs: int = param(2, "V: virtual channels per port", range=(2, 8))
    buffer_depth: int = param(8, "flits buffered per virtual channel at each input", range=(2, 64))
    payload_bits: int = param(96, "payload bits per flit (one stream word per flit; a chip needs "
                                  "ChipConfig.remote_flit_bits: one SBUF word write per flit)",
                              range=(1, 512))
    link_stages: int = param(0, "extra register stages on every router-to-router link "
                                "(in both directions; 0 = only the router's output register)",
                             range=(0, 4))
    routing: str = param("xy", "routing function; it is checked for deadlock freedom before "
                               "any hardware is generated", choices=("xy", "yx", "adaptive"))
    error_counter_bits: int = param(16, "width of each network interface's (saturating) counter "
                                        "of refused packets", range=(1, 32))
    in_order: bool = param(True, "packets of one (source, destination) pair keep one VC end "
                                 "to end, so they arrive in order; false: a head may take any "
                                 "free VC at each hop (more throughput, no ordering guarantee)")
    allocation: str = param("pipelined", "router allocation: 'pipelined' (each input picks its VC "
                                         "a cycle ahead, the outputs arbitrate the registered "
                                         "requests) or 'single_cycle' (both in one cycle); "
                                         "both take 2 cycles per hop",
                            choices=("pipelined", "single_cycle"))

    @property
    def nodes(self):
        return self.width * self.height


@register_config
@dataclass(frozen=True)
class DmaConfig(ConfigBase):
    """The DMA engine: an AXI4 master to DRAM, a word port to the SBUF, descriptor queues and
    completion semaphores (hdl/dma.py, docs/dma.md). ``data_width`` must equal the SBUF word
    (``8 * SbufConfig.word_bytes``)."""

    SECTION: ClassVar[str] = "dma"

    data_width: int = param(64, "AXI data width in bits (= 8 * sbuf.word_bytes)",
                            choices=(32, 64, 128, 256))
    addr_width: int = param(32, "AXI / descriptor byte-address width", range=(16, 48))
    id_width: int = param(4, "AXI ID width (the DMA uses ID 0 for every transaction)",
                          range=(1, 16))
    queues: int = param(2, "descriptor queues (round-robin between them)", range=(1, 8))
    queue_depth: int = param(4, "descriptors buffered per queue", range=(1, 64))
    outstanding_reads: int = param(8, "AXI read bursts in flight", range=(1, 64))
    outstanding_writes: int = param(8, "AXI write bursts whose response is awaited",
                                    range=(1, 64))
    max_burst: int = param(256, "longest AXI burst in beats (INCR, never across 4 KiB)",
                           range=(1, 256))
    sbuf_reads: int = param(4, "SBUF word reads in flight (response buffer depth)",
                            range=(1, 64))
    count_bits: int = param(16, "width of each descriptor dimension count", range=(2, 32))
    elem_bits: int = param(16, "width of the descriptor element-size field (bytes)",
                           range=(1, 24))
    semaphores: int = param(8, "completion semaphore counters", range=(1, 256))
    semaphore_bits: int = param(8, "width of each semaphore counter (wraps)", range=(1, 32))

    @property
    def data_bytes(self):
        return self.data_width // 8


@register_config
@dataclass(frozen=True)
class HostConfig(ConfigBase):
    """The chip's host control port: an AXI4-Lite slave through which the host loads programs,
    starts and resets tiles and reads status (the register map comes with the chip)."""

    SECTION: ClassVar[str] = "host"

    addr_width: int = param(16, "AXI4-Lite byte-address width of the host register space",
                            range=(12, 32))
    data_width: int = param(32, "AXI4-Lite data width in bits", choices=(32, 64))


#: The sections a tile is made of, and a chip (a mesh of identical tiles).
TILE_SECTIONS = ("array", "sbuf", "psum", "act", "dma")
CHIP_SECTIONS = ("noc", "host")


class CompositeConfig(_Serialisable):
    """A config made of section configs (``TileConfig``, ``ChipConfig``). Each section validates
    itself on construction; ``validate()`` holds the rules that span sections, so a composite
    that exists can always be built."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = f.metadata["cls"]
            if not isinstance(value, expected):
                raise ConfigError(f"{type(self).__name__}.{f.name} must be a "
                                  f"{expected.__name__}; got {value!r}")
        self.validate()

    def validate(self):
        """Rules across sections; override. Raise :class:`ConfigError`."""

    @classmethod
    def from_dict(cls, values):
        """From ``{field: dict or section config}``; absent fields take their defaults."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} section(s) {', '.join(unknown)}; "
                              f"known: {', '.join(names)}")
        kwargs = {}
        for name, value in values.items():
            section_cls = names[name].metadata["cls"]
            if isinstance(value, dict):
                value = section_cls.from_dict(value)
            kwargs[name] = value
        return cls(**kwargs)


def _index_bits(n):
    """Bits of an index in 0..n-1 (at least 1); the same rule as hdl.contracts.index_bits."""
    return max(1, (n - 1).bit_length())


def _section(cls):
    return field(default_factory=cls, metadata={"cls": cls})


@dataclass(frozen=True)
class TileConfig(CompositeConfig):
    """One tile: tensor engine, SBUF, PSUM, ACT and DMA. Every rule that spans these sections is
    checked here, before any hardware is built."""

    array: ArrayConfig = _section(ArrayConfig)
    sbuf: SbufConfig = _section(SbufConfig)
    psum: PsumConfig = _section(PsumConfig)
    act: ActConfig = _section(ActConfig)
    dma: DmaConfig = _section(DmaConfig)

    @classmethod
    def from_sections(cls, configs):
        """From ``{section: config}`` as :func:`load_toml` returns (other sections ignored)."""
        return cls(**{name: configs[name] for name in TILE_SECTIONS if name in configs})

    def validate(self):
        array, sbuf, psum, act, dma = self.array, self.sbuf, self.psum, self.act, self.dma
        if sbuf.partitions < array.rows:
            raise ConfigError(f"sbuf.partitions must be >= array.rows={array.rows} (one "
                              f"partition per tensor-engine row); got {sbuf.partitions}")
        if sbuf.partitions < array.cols:
            raise ConfigError(f"sbuf.partitions must be >= array.cols={array.cols} (W and the "
                              f"ACT output have one column per partition); got {sbuf.partitions}")
        if sbuf.depth & (sbuf.depth - 1):
            raise ConfigError(f"sbuf.depth must be a power of two (the DMA addresses the SBUF "
                              f"linearly); got {sbuf.depth}")
        if psum.rows > (1 << array.result_addr_bits):
            raise ConfigError(
                f"psum.bank_rows: banks * bank_rows = {psum.rows} rows are not representable "
                f"in array.result_addr_bits={array.result_addr_bits} bits "
                f"(at most {1 << array.result_addr_bits} rows)")
        limit = array.acc_bits + act.scale_bits - 1
        if act.max_shift > limit:
            raise ConfigError(f"act.max_shift must be in [0, array.acc_bits + act.scale_bits - 1"
                              f" = {limit}]; got {act.max_shift}")
        if dma.data_width != 8 * sbuf.word_bytes:
            raise ConfigError(f"dma.data_width must equal 8 * sbuf.word_bytes = "
                              f"{8 * sbuf.word_bytes}; got {dma.data_width}")
        sbuf_bytes = sbuf.partitions * sbuf.partition_bytes
        if sbuf_bytes > (1 << dma.addr_width):
            raise ConfigError(f"dma.addr_width must be >= {(sbuf_bytes - 1).bit_length()} to "
                              f"address the whole SBUF; got {dma.addr_width}")


@dataclass(frozen=True)
class ChipConfig(CompositeConfig):
    """A chip: an X x Y mesh (``noc``) of identical tiles and a host control port."""

    tile: TileConfig = _section(TileConfig)
    noc: NocConfig = _section(NocConfig)
    host: HostConfig = _section(HostConfig)

    @classmethod
    def from_sections(cls, configs):
        """From ``{section: config}`` as :func:`load_toml` returns."""
        return cls(tile=TileConfig.from_sections(configs),
                   **{name: configs[name] for name in CHIP_SECTIONS if name in configs})

    @property
    def tiles(self):
        return self.noc.nodes

    @property
    def remote_flit_bits(self):
        """Payload bits of one remote flit (``systolica.hdl.contracts.remote_flit_layout``): a
        1-bit kind, then the larger of a WRITE (partition, word address, byte enables, data) and
        a SIGNAL (6-bit semaphore id, 16-bit count)."""
        sbuf = self.tile.sbuf
        write = (_index_bits(sbuf.partitions) + _index_bits(sbuf.depth) + sbuf.word_bytes
                 + 8 * sbuf.word_bytes)
        return 1 + max(write, 6 + 16)

    def validate(self):
        noc = self.noc
        if noc.payload_bits < self.remote_flit_bits:
            raise ConfigError(f"noc.payload_bits must be >= {self.remote_flit_bits} for this tile "
                              f"(one remote SBUF word write per flit); got {noc.payload_bits}")
        if not noc.in_order or noc.routing == "adaptive":
            raise ConfigError(f"a chip needs noc.in_order = true and deterministic routing (xy or "
                              f"yx): a remote semaphore signal must follow its data on one path; "
                              f"got in_order={noc.in_order}, routing={noc.routing!r}")
        # the host port: window 0 (chip registers) and one window per tile (docs/chip.md)
        from systolica.chip_registers import window_bytes
        from systolica.registers import tile_register_map
        host = self.host
        if host.data_width != 32:
            raise ConfigError(f"host.data_width must be 32 for a chip (the tile and chip "
                              f"registers are 32-bit); got {host.data_width}")
        window = window_bytes(tile_register_map(self.tile))
        needed = ((1 + self.tiles) * window - 1).bit_length()
        if host.addr_width < needed:
            raise ConfigError(f"host.addr_width must be >= {needed} for a {noc.width}x"
                              f"{noc.height} chip ({1 + self.tiles} host windows of {window} "
                              f"bytes: the chip registers and one per tile); got "
                              f"{host.addr_width}")


def config_reference_markdown():
    """docs/config.md: every config section and parameter, generated from the classes."""
    lines = ["# Config reference", "",
             "Generated by `systolica config --reference` from `systolica/config.py`; a test "
             "checks that this file matches the code. Defaults ship in `systolica/default.toml`.",
             ""]
    for section, cls in sorted(CONFIG_CLASSES.items()):
        doc = " ".join((cls.__doc__ or "").split())
        lines += [f"## `[{section}]` — `{cls.__name__}`", "", doc, "",
                  "| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for name, type_name, default, help_text, allowed in cls.describe():
            default_text = str(default).lower() if isinstance(default, bool) else default
            lines.append(f"| `{name}` | {type_name} | `{default_text}` | {allowed} | {help_text} |")
        lines.append("")
    return "\n".join(lines)


def load_toml(path_or_text, *, text=False):
    """Read a TOML file (or text) into ``{section: config}``; unknown sections are an error.
    Sections that are absent get their defaults."""
    where = "config text" if text else f"config file {str(path_or_text)!r}"
    try:
        if text:
            data = tomllib.loads(path_or_text)
        else:
            if not str(path_or_text):
                raise ConfigError("config file path is empty")
            with open(path_or_text, "rb") as f:
                data = tomllib.load(f)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: TOML syntax error: {error}") from None
    except OSError as error:
        raise ConfigError(f"{where}: {error.strerror or error}") from None
    unknown = sorted(set(data) - set(CONFIG_CLASSES))
    if unknown:
        raise ConfigError(f"unknown config section(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(CONFIG_CLASSES))}")
    configs = {name: cls() for name, cls in CONFIG_CLASSES.items()}
    for name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config section [{name}] must be a table")
        configs[name] = CONFIG_CLASSES[name].from_dict(values)
    return configs


def default_config():
    """The configuration shipped with the package (``systolica/default.toml``)."""
    return load_toml(resources.files("systolica").joinpath("default.toml").read_text(), text=True)
