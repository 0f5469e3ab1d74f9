"""The tile's instruction set: the one source of truth for the sequencer RTL, the NumPy model
(:mod:`systolica.model.tile`), the compiler and the docs (docs/isa.md is generated from here:
``python -m systolica.isa > docs/isa.md``).

* Every instruction is one 512-bit (64-byte) little-endian word, :data:`INSTRUCTION_LAYOUT`: a
  96-bit :data:`HEADER_LAYOUT` (opcode, two semaphore waits, two semaphore signals) and a 416-bit
  body whose layout depends on the opcode (:data:`BODY_LAYOUTS`). Field widths are fixed: they do
  not change with the hardware parameters; the hardware and the model check that a value fits the
  config and halt the engine with an :class:`~systolica.codes.IsaError` otherwise.
* A tile has one in-order queue per engine (:func:`tile_queues`): ``dma0`` .. ``dma{n-1}`` (one per
  DMA descriptor queue), ``pe`` (tensor engine) and ``act``.
* A :class:`Program` holds the queues' instruction lists and the fingerprint of the config it was
  built for; :meth:`Program.encode` / :func:`decode` give and read its binary image, and
  :func:`disassemble` / :func:`assemble` its text form.

This module imports no gateware and no model: the RTL, the model and the compiler import it.
"""

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from systolica.codes import ActMode


__all__ = [
    "ISA_VERSION", "WORD_BITS", "WORD_BYTES", "SEMAPHORES", "SEMAPHORE_BITS", "SEMAPHORE_MAX",
    "ACT_PARAM_ENTRIES", "ACT_PARAM_GROUP", "ZERO_POINT_BITS",
    "Opcode", "Engine", "Space", "OPCODE_ENGINES",
    "HEADER_LAYOUT", "DMA_SIDE_LAYOUT", "BODY_LAYOUTS", "INSTRUCTION_LAYOUT",
    "IsaEncodingError", "Instruction", "DmaEndpoint", "Queue", "tile_queues", "fingerprint",
    "Program", "decode", "decode_words", "decode_word", "decode_header", "encode_word", "assemble", "disassemble",
    "disassemble_instruction",
    "end", "nop", "check", "dma_copy", "dram", "sbuf", "remote_sbuf", "signal_remote",
    "load_stationary", "multiply_moving", "matmul", "matmul_tiles",
    "act", "act_param",
]

#: Bumped on any incompatible change of the encoding; part of the config fingerprint.
ISA_VERSION = 3          # 2: MATMUL; 3: 16 semaphores
WORD_BITS = 512
WORD_BYTES = WORD_BITS // 8
#: Counting semaphores per tile (ids 0..SEMAPHORES-1; the id field has room for 64). 16: the
#: compiler's schedules use 12 (one tile) and 16 (a mesh); each counter costs the sequencer about
#: 200 LUT4 on an ECP5 (a 16-bit adder, subtractor and a share of eight wait reads).
SEMAPHORES = 16
#: Width of a semaphore counter: a signal that would pass SEMAPHORE_MAX is an error.
SEMAPHORE_BITS = 16
SEMAPHORE_MAX = (1 << SEMAPHORE_BITS) - 1
#: ACT parameter-table entries; each holds a scale and a shift for every column of the array.
ACT_PARAM_ENTRIES = 8
#: Columns whose scale and shift one ACT_PARAM instruction carries.
ACT_PARAM_GROUP = 8
#: Width of the ACT zero point (covers every int8 / uint8 / int16 zero point).
ZERO_POINT_BITS = 17


class Opcode(enum.Enum, shape=8):
    """Instruction opcodes. 0 is not an opcode, so a zero-filled word halts with UNKNOWN_OPCODE.
    The high nibble names the engine: 0x0_ any engine, 0x1_ DMA, 0x2_ PE, 0x3_ ACT."""
    END = 0x01              #: end of this queue: the engine retires it and stops (state DONE)
    NOP = 0x02              #: no operation: only its waits and signals
    CHECK = 0x03            #: program check: config fingerprint and queue index must match
    DMA_COPY = 0x10         #: one 3-D strided copy DRAM/SBUF -> DRAM/SBUF, or (on a chip) -> a remote tile's SBUF
    SIGNAL_REMOTE = 0x11    #: after this queue's earlier copies, add count to semaphore sem of a remote tile
    LOAD_STATIONARY = 0x20  #: load W (K x N) from the SBUF into the engine's shadow weights
    MULTIPLY_MOVING = 0x21  #: stream A (M x K) through the engine into PSUM rows
    MATMUL = 0x22           #: a whole k loop: per k tile a LOAD_STATIONARY then a MULTIPLY_MOVING
    ACT = 0x30              #: PSUM rows -> requantise / activate -> SBUF
    ACT_PARAM = 0x31        #: write scale and shift of up to 8 columns of a parameter-table entry


class Engine(enum.Enum, shape=2):
    """The engine kind that executes a queue."""
    DMA = 0   #: the DMA engine (one queue per DMA descriptor queue)
    PE = 1    #: the tensor engine
    ACT = 2   #: the ACT unit


class Space(enum.Enum, shape=2):
    """The memory a DMA side addresses (value 3 is reserved and halts with BAD_DMA_SPACE)."""
    DRAM = 0         #: DRAM byte address (the tile's AXI4 master)
    SBUF = 1         #: linear SBUF byte address: partition * partition_bytes + byte offset
    REMOTE_SBUF = 2  #: chip only: SBUF of tile (dst_tile_x, dst_tile_y), linear address as SBUF; destination only


#: The engine each opcode runs on (None: any engine).
OPCODE_ENGINES = {
    Opcode.END: None, Opcode.NOP: None, Opcode.CHECK: None,
    Opcode.DMA_COPY: Engine.DMA, Opcode.SIGNAL_REMOTE: Engine.DMA,
    Opcode.LOAD_STATIONARY: Engine.PE, Opcode.MULTIPLY_MOVING: Engine.PE, Opcode.MATMUL: Engine.PE,
    Opcode.ACT: Engine.ACT, Opcode.ACT_PARAM: Engine.ACT,
}

# --- layouts ------------------------------------------------------------------------------------

_SEM_LAYOUT = data.StructLayout({"sem": unsigned(6), "count": unsigned(SEMAPHORE_BITS)})

#: Bits 0..95 of every instruction. A wait with count 0 and a signal with count 0 do nothing.
HEADER_LAYOUT = data.StructLayout({
    "opcode": Opcode,
    "wait": data.ArrayLayout(_SEM_LAYOUT, 2),
    "signal": data.ArrayLayout(_SEM_LAYOUT, 2),
})

#: One side of a DMA copy (dimension 0 innermost; strides in bytes, signed).
DMA_SIDE_LAYOUT = data.StructLayout({
    "space": Space,
    "addr": unsigned(48),
    "count": data.ArrayLayout(unsigned(16), 3),
    "stride": data.ArrayLayout(signed(32), 3),
})

#: One MULTIPLY_MOVING; MATMUL starts with the same fields (the sequencer reads them alike).
_MULTIPLY_FIELDS = {
    "offset": unsigned(32),        # element offset of A[0, k] in partition k
    "m": unsigned(32),             # M rows per repeat, within one PSUM bank
    "psum_addr": unsigned(32),     # PSUM row of A[0, :] @ W: bank * bank_rows + row
    "repeat": unsigned(16),        # >= 1: repeat r uses offset + r*offset_step, psum_addr + r*psum_step
    "offset_step": unsigned(32),
    "psum_step": unsigned(32),
    "accumulate": unsigned(1),     # 1: add into PSUM, 0: overwrite
}

#: The body (bits 96..511) of each opcode that has one; END and NOP have none.
BODY_LAYOUTS = {
    Opcode.CHECK: data.StructLayout({
        "fingerprint": unsigned(32),   # fingerprint(config) the program was built for
        "version": unsigned(16),       # ISA_VERSION (informative; the fingerprint includes it)
        "queue": unsigned(8),          # index of this queue in tile_queues(config)
    }),
    Opcode.DMA_COPY: data.StructLayout({
        "src": DMA_SIDE_LAYOUT,
        "dst": DMA_SIDE_LAYOUT,
        "elem_bytes": unsigned(16),
        "dst_tile_x": unsigned(6),     # REMOTE_SBUF destination tile (ignored for other spaces)
        "dst_tile_y": unsigned(6),
    }),
    Opcode.SIGNAL_REMOTE: data.StructLayout({
        "tile_x": unsigned(6),         # destination tile, inside the mesh
        "tile_y": unsigned(6),
        "sem": unsigned(6),            # semaphore id there, < SEMAPHORES
        "count": unsigned(SEMAPHORE_BITS),   # added to it (0: the flit is still sent; adds 0)
    }),
    Opcode.LOAD_STATIONARY: data.StructLayout({
        "offset": unsigned(32),        # element offset of W[0, n] in partition n
        "k": unsigned(16),             # K rows, 1..R
        "n": unsigned(16),             # N columns (partitions), 1..C
    }),
    Opcode.MULTIPLY_MOVING: data.StructLayout(_MULTIPLY_FIELDS),
    # MULTIPLY_MOVING's fields at the same bits (tile t's multiply), then the loop's
    Opcode.MATMUL: data.StructLayout({
        **_MULTIPLY_FIELDS,            # offset: A of k tile 0; accumulate: k tile 0's (others add)
        "a_step": unsigned(32),        # elements from k tile t's A to k tile t+1's
        "w_offset": unsigned(32),      # element offset of k tile 0's W[0, n] in partition n
        "w_step": unsigned(32),        # elements from k tile t's W to k tile t+1's
        "tiles": unsigned(16),         # k tiles, >= 1: K = (tiles - 1) * R + k_last
        "k_last": unsigned(16),        # K rows of the last k tile, 1..R (the others have R)
        "n": unsigned(16),             # N columns (partitions), 1..C
    }),
    Opcode.ACT: data.StructLayout({
        "psum_addr": unsigned(32),     # first PSUM row
        "rows": unsigned(32),          # rows per repeat
        "offset": unsigned(32),        # element offset (of the mode's size) of row 0 in partition c
        "cols": unsigned(16),          # channels 0..cols-1, 1..C
        "mode": unsigned(2),           # ActMode bits 0-1 (bit 2: mode_high; one field in the API)
        "relu": unsigned(1),
        "zero_point": signed(ZERO_POINT_BITS),
        "param": unsigned(8),          # parameter-table entry with the scales and shifts
        "repeat": unsigned(16),        # >= 1: repeat r uses psum_addr + r*psum_step, offset + r*offset_step
        "psum_step": unsigned(32),
        "offset_step": unsigned(32),
        "mode_high": unsigned(1),      # ActMode bit 2 (the floating-point modes); was reserved
    }),
    Opcode.ACT_PARAM: data.StructLayout({
        "entry": unsigned(8),          # parameter-table entry, < ACT_PARAM_ENTRIES
        "first_col": unsigned(16),     # columns first_col .. first_col + count - 1
        "count": unsigned(8),          # 1..ACT_PARAM_GROUP
        "scale": data.ArrayLayout(signed(32), ACT_PARAM_GROUP),   # must fit act.scale_bits
        "shift": data.ArrayLayout(unsigned(8), ACT_PARAM_GROUP),  # must be <= act.max_shift
    }),
}

_BODY_BITS = WORD_BITS - HEADER_LAYOUT.size
assert all(BODY_LAYOUTS[Opcode.MATMUL][name].offset == field.offset
           for name, field in BODY_LAYOUTS[Opcode.MULTIPLY_MOVING])
assert all(layout.size <= _BODY_BITS for layout in BODY_LAYOUTS.values())

#: The whole 512-bit instruction word: ``header`` then ``body`` (a union over the opcodes'
#: bodies, selected by ``header.opcode``), then zero padding.
INSTRUCTION_LAYOUT = data.StructLayout({
    "header": HEADER_LAYOUT,
    "body": data.UnionLayout({opcode.name.lower(): layout
                              for opcode, layout in BODY_LAYOUTS.items()}),
    "reserved": unsigned(_BODY_BITS - max(layout.size for layout in BODY_LAYOUTS.values())),
})
assert INSTRUCTION_LAYOUT.size == WORD_BITS


# --- flat field tables (fast Python packing) ----------------------------------------------------

@dataclass(frozen=True)
class _Field:
    name: str         # flat name: nested structs joined with "_" (src_addr)
    offset: int       # bit offset within the word
    width: int        # bits per element
    signed: bool
    count: int        # 1: a scalar; n: a tuple of n elements
    enum: type        # an Enum class, or None
    high_offset: int = None   # bits above `width` live in one bit at this offset (ACT mode)


def _flatten(layout, base, prefix=""):
    fields = []
    for name, field in layout:
        flat = f"{prefix}{name}"
        shape = field.shape
        offset = base + field.offset
        if isinstance(shape, data.StructLayout):
            fields += _flatten(shape, offset, flat + "_")
        elif isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            s = elem if not isinstance(elem, type) else elem.as_shape()
            fields.append(_Field(flat, offset, s.width, s.signed, shape.length, None))
        elif isinstance(shape, type) and issubclass(shape, enum.Enum):
            fields.append(_Field(flat, offset, shape.as_shape().width, False, 1, shape))
        else:
            fields.append(_Field(flat, offset, shape.width, shape.signed, 1, None))
    return fields


_BODY_FIELDS = {op: _flatten(layout, HEADER_LAYOUT.size) for op, layout in BODY_LAYOUTS.items()}


def _split_field(opcode, name, high_name, enum_cls):
    """One API field stored as a low part and one high bit elsewhere (a field widened into
    reserved bits, so that the old encodings keep their meaning)."""
    table = _BODY_FIELDS[opcode]
    low = next(f for f in table if f.name == name)
    high = next(f for f in table if f.name == high_name)
    table[table.index(low)] = _Field(name, low.offset, low.width, False, 1, enum_cls,
                                     high.offset)
    table.remove(high)


_split_field(Opcode.ACT, "mode", "mode_high", ActMode)
_BODY_FIELDS.update({op: [] for op in Opcode if op not in BODY_LAYOUTS})
_OPCODE_OFFSET = 0
_SEM_FIELD_BITS = _SEM_LAYOUT.size
_WAIT_OFFSET = HEADER_LAYOUT["wait"].offset
_SIGNAL_OFFSET = HEADER_LAYOUT["signal"].offset

#: Defaults of omitted fields in the assembler and the helper functions.
_DEFAULTS = {"src_count": (1, 1, 1), "dst_count": (1, 1, 1), "src_stride": (0, 0, 0),
             "dst_stride": (0, 0, 0), "repeat": 1, "elem_bytes": 1,
             "scale": (0,) * ACT_PARAM_GROUP, "shift": (0,) * ACT_PARAM_GROUP,
             "version": ISA_VERSION, "mode": ActMode.INT8, "src_space": Space.DRAM,
             "dst_space": Space.DRAM}


def _default(field):
    if field.name in _DEFAULTS:
        return _DEFAULTS[field.name]
    if field.enum is not None:
        return field.enum(0)
    return (0,) * field.count if field.count > 1 else 0


class IsaEncodingError(ValueError):
    """An instruction, program image or assembly text cannot be encoded or decoded; the message
    names the field (or line)."""


def _check_range(where, value, width, is_signed):
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise IsaEncodingError(f"{where} must be an integer in [{lo}, {hi}]; got {value!r}")


# --- instructions -------------------------------------------------------------------------------

def _sems(where, pairs):
    pairs = tuple(tuple(p) for p in pairs)
    if len(pairs) > 2:
        raise IsaEncodingError(f"{where}: at most 2 (semaphore, count) pairs; got {len(pairs)}")
    for sem, count in pairs:
        _check_range(f"{where} semaphore", sem, 6, False)
        _check_range(f"{where} count", count, SEMAPHORE_BITS, False)
    pairs = tuple(p for p in pairs if p[1] != 0)
    return pairs + ((0, 0),) * (2 - len(pairs))


class Instruction:
    """One instruction: ``opcode``, its body fields (flat names, see :data:`BODY_LAYOUTS`; nested
    structs joined with ``_``: ``src_addr``; arrays as tuples) and up to two ``waits`` and
    ``signals``, each ``(semaphore, count)``. Pairs with count 0 are dropped (they do nothing), so
    equal behaviour means equal objects. Field values are checked against the field widths only;
    whether they fit the config is for the hardware and the model to check."""

    __slots__ = ("opcode", "fields", "waits", "signals")

    def __init__(self, opcode, *, waits=(), signals=(), **fields):
        try:
            opcode = Opcode(opcode)
        except ValueError:
            raise IsaEncodingError(f"unknown opcode {opcode!r}") from None
        table = _BODY_FIELDS[opcode]
        known = {f.name for f in table}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise IsaEncodingError(f"{opcode.name} has no field(s) {', '.join(unknown)}; "
                                   f"fields: {', '.join(sorted(known)) or 'none'}")
        values = {}
        for f in table:
            value = fields.get(f.name, _default(f))
            where = f"{opcode.name}.{f.name}"
            if f.enum is not None:
                try:
                    value = f.enum(value)
                except ValueError:
                    _check_range(where, value, f.width + (f.high_offset is not None), False)   # reserved code: kept as an int
            elif f.count > 1:
                value = tuple(value)
                if len(value) != f.count:
                    raise IsaEncodingError(f"{where} needs {f.count} values; got {len(value)}")
                for i, v in enumerate(value):
                    _check_range(f"{where}[{i}]", v, f.width, f.signed)
            else:
                _check_range(where, value, f.width, f.signed)
            values[f.name] = value
        object.__setattr__(self, "opcode", opcode)
        object.__setattr__(self, "fields", values)
        object.__setattr__(self, "waits", _sems(f"{opcode.name} wait", waits))
        object.__setattr__(self, "signals", _sems(f"{opcode.name} signal", signals))

    def __setattr__(self, name, value):
        raise AttributeError("Instruction is immutable; use replace()")

    def __getattr__(self, name):
        try:
            return object.__getattribute__(self, "fields")[name]
        except KeyError:
            raise AttributeError(f"{self.opcode.name} has no field {name!r}") from None

    def replace(self, **changes):
        kwargs = {"waits": self.waits, "signals": self.signals, **self.fields, **changes}
        return Instruction(self.opcode, **kwargs)

    @property
    def engine(self):
        return OPCODE_ENGINES[self.opcode]

    def side(self, name):
        """A DMA_COPY's ``"src"`` or ``"dst"`` side as a :class:`DmaEndpoint`."""
        f = self.fields
        return DmaEndpoint(f[f"{name}_space"], f[f"{name}_addr"], f[f"{name}_count"],
                           f[f"{name}_stride"])

    def _key(self):
        return (self.opcode, tuple(sorted(self.fields.items(), key=lambda kv: kv[0])),
                self.waits, self.signals)

    def __eq__(self, other):
        return isinstance(other, Instruction) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"Instruction<{disassemble_instruction(self)}>"

    def encode(self):
        return encode_word(self)


def encode_word(insn):
    """The 64-byte little-endian word of an instruction."""
    word = int(insn.opcode.value) << _OPCODE_OFFSET
    for base, pairs in ((_WAIT_OFFSET, insn.waits), (_SIGNAL_OFFSET, insn.signals)):
        for i, (sem, count) in enumerate(pairs):
            word |= (sem | count << 6) << (base + i * _SEM_FIELD_BITS)
    for f in _BODY_FIELDS[insn.opcode]:
        value = insn.fields[f.name]
        values = value if f.count > 1 else (value,)
        mask = (1 << f.width) - 1
        for i, v in enumerate(values):
            v = int(v.value if isinstance(v, enum.Enum) else v)
            word |= (v & mask) << (f.offset + i * f.width)
            if f.high_offset is not None:
                word |= (v >> f.width & 1) << f.high_offset
    return word.to_bytes(WORD_BYTES, "little")


def _field_value(word, f, i=0):
    raw = word >> (f.offset + i * f.width) & ((1 << f.width) - 1)
    if f.high_offset is not None:
        raw |= (word >> f.high_offset & 1) << f.width
    if f.signed and raw >> (f.width - 1):
        raw -= 1 << f.width
    return raw


def decode_header(raw):
    """``(opcode value, waits, signals)`` of a 64-byte word, for any opcode byte (the sequencer
    reads the header before it knows whether the opcode exists)."""
    word = int.from_bytes(raw, "little")
    sems = []
    for base in (_WAIT_OFFSET, _SIGNAL_OFFSET):
        pairs = []
        for i in range(2):
            v = word >> (base + i * _SEM_FIELD_BITS) & ((1 << _SEM_FIELD_BITS) - 1)
            pairs.append((v & 0x3f, v >> 6))
        sems.append(tuple(pairs))
    return word & 0xff, sems[0], sems[1]


def decode_word(raw):
    """An :class:`Instruction` from a 64-byte word. Raises :class:`IsaEncodingError` for an
    unknown opcode (the hardware and the model halt with UNKNOWN_OPCODE instead). Bits not in the
    opcode's layout are ignored."""
    if len(raw) != WORD_BYTES:
        raise IsaEncodingError(f"an instruction word is {WORD_BYTES} bytes; got {len(raw)}")
    word = int.from_bytes(raw, "little")
    code = word & 0xff
    try:
        opcode = Opcode(code)
    except ValueError:
        raise IsaEncodingError(f"unknown opcode 0x{code:02x}") from None
    _, waits, signals = decode_header(raw)
    fields = {}
    for f in _BODY_FIELDS[opcode]:
        if f.count > 1:
            fields[f.name] = tuple(_field_value(word, f, i) for i in range(f.count))
        else:
            fields[f.name] = _field_value(word, f)
    return Instruction(opcode, waits=waits, signals=signals, **fields)


# --- helpers to build instructions ---------------------------------------------------------------

@dataclass(frozen=True)
class DmaEndpoint:
    """One side of a DMA_COPY: ``space``, byte ``addr``, ``counts`` (elements per dimension,
    dimension 0 innermost) and signed byte ``strides``."""
    space: Space
    addr: int
    counts: tuple = (1, 1, 1)
    strides: tuple = (0, 0, 0)

    def fields(self, prefix):
        return {f"{prefix}_space": self.space, f"{prefix}_addr": self.addr,
                f"{prefix}_count": tuple(self.counts), f"{prefix}_stride": tuple(self.strides)}


def _pad3(values, fill):
    values = tuple(values)
    return values + (fill,) * (3 - len(values))


def dram(addr, counts=(1,), strides=(0,)):
    """A DRAM side: byte ``addr``, up to 3 ``counts`` / ``strides`` (missing ones: 1 / 0)."""
    return DmaEndpoint(Space.DRAM, addr, _pad3(counts, 1), _pad3(strides, 0))


def sbuf(addr, counts=(1,), strides=(0,)):
    """An SBUF side: linear byte ``addr`` (partition * partition_bytes + offset)."""
    return DmaEndpoint(Space.SBUF, addr, _pad3(counts, 1), _pad3(strides, 0))


def end(**sync):
    return Instruction(Opcode.END, **sync)


def nop(**sync):
    return Instruction(Opcode.NOP, **sync)


def check(fingerprint, queue, **sync):
    return Instruction(Opcode.CHECK, fingerprint=fingerprint, queue=queue, **sync)


def dma_copy(src, dst, elem_bytes=1, *, dst_tile=(0, 0), **sync):
    """DMA_COPY from ``src`` to ``dst`` (:class:`DmaEndpoint`, e.g. :func:`dram`, :func:`sbuf`)."""
    return Instruction(Opcode.DMA_COPY, elem_bytes=elem_bytes, dst_tile_x=dst_tile[0],
                       dst_tile_y=dst_tile[1], **src.fields("src"), **dst.fields("dst"), **sync)


def remote_sbuf(addr, counts=(1,), strides=(0,)):
    """A remote SBUF destination side (chip only; the tile is dma_copy's ``dst_tile``): linear
    byte ``addr`` in that tile's SBUF, as :func:`sbuf`."""
    return DmaEndpoint(Space.REMOTE_SBUF, addr, _pad3(counts, 1), _pad3(strides, 0))


def signal_remote(tile, sem, count=1, **sync):
    """SIGNAL_REMOTE: once every earlier instruction of this DMA queue has completed, send tile
    ``tile = (x, y)`` a signal that adds ``count`` to its semaphore ``sem`` after every earlier
    remote write from this tile to that tile is in its SBUF (docs/chip.md)."""
    return Instruction(Opcode.SIGNAL_REMOTE, tile_x=tile[0], tile_y=tile[1], sem=sem,
                       count=count, **sync)


def load_stationary(offset, k, n, **sync):
    return Instruction(Opcode.LOAD_STATIONARY, offset=offset, k=k, n=n, **sync)


def multiply_moving(offset, m, psum_addr, *, accumulate=False, repeat=1, offset_step=0,
                    psum_step=0, **sync):
    return Instruction(Opcode.MULTIPLY_MOVING, offset=offset, m=m, psum_addr=psum_addr,
                       accumulate=int(accumulate), repeat=repeat, offset_step=offset_step,
                       psum_step=psum_step, **sync)


def matmul(offset, m, psum_addr, *, w_offset, tiles, k_last, n, a_step=0, w_step=0,
           accumulate=False, repeat=1, offset_step=0, psum_step=0, **sync):
    """MATMUL: for k tile t in 0..tiles-1, LOAD_STATIONARY(w_offset + t*w_step, k_t, n) then
    MULTIPLY_MOVING(offset + t*a_step, m, psum_addr, repeat, offset_step, psum_step,
    accumulate=accumulate or t > 0), with k_t = R but k_last for the last tile (docs/isa.md).
    Its waits apply before the first load, its signals when the last multiply retires."""
    return Instruction(Opcode.MATMUL, offset=offset, m=m, psum_addr=psum_addr,
                       accumulate=int(accumulate), repeat=repeat, offset_step=offset_step,
                       psum_step=psum_step, a_step=a_step, w_offset=w_offset, w_step=w_step,
                       tiles=tiles, k_last=k_last, n=n, **sync)


def matmul_tiles(insn, rows):
    """``[(w_offset, k, a_offset, accumulate)]`` of each k tile of MATMUL ``insn`` on an array
    with ``rows`` rows: the LOAD_STATIONARY / MULTIPLY_MOVING pairs it stands for."""
    return [(insn.w_offset + t * insn.w_step, insn.k_last if t == insn.tiles - 1 else rows,
             insn.offset + t * insn.a_step, bool(insn.accumulate) or t > 0)
            for t in range(insn.tiles)]


def act(psum_addr, rows, offset, cols, *, mode=ActMode.INT8, relu=False, zero_point=0, param=0,
        repeat=1, psum_step=0, offset_step=0, **sync):
    return Instruction(Opcode.ACT, psum_addr=psum_addr, rows=rows, offset=offset, cols=cols,
                       mode=mode, relu=int(relu), zero_point=zero_point, param=param,
                       repeat=repeat, psum_step=psum_step, offset_step=offset_step, **sync)


def act_param(entry, first_col, scale, shift, **sync):
    """ACT_PARAM: columns ``first_col ..`` of entry ``entry`` get ``scale`` / ``shift`` (lists of
    equal length, at most ACT_PARAM_GROUP)."""
    scale, shift = list(scale), list(shift)
    if len(scale) != len(shift) or not 1 <= len(scale) <= ACT_PARAM_GROUP:
        raise IsaEncodingError(f"act_param: scale and shift need 1..{ACT_PARAM_GROUP} values "
                               f"each; got {len(scale)} and {len(shift)}")
    pad = ACT_PARAM_GROUP - len(scale)
    return Instruction(Opcode.ACT_PARAM, entry=entry, first_col=first_col, count=len(scale),
                       scale=tuple(scale) + (0,) * pad, shift=tuple(shift) + (0,) * pad, **sync)


# --- disassembly of one instruction (repr) -------------------------------------------------

def _format_value(v):
    if isinstance(v, enum.Enum):
        return v.name.lower()
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def disassemble_instruction(insn):
    """One line: ``mnemonic field=value ... wait=sem:count signal=sem:count``, every field."""
    parts = [insn.opcode.name.lower()]
    for f in _BODY_FIELDS[insn.opcode]:
        value = insn.fields[f.name]
        if f.name == "fingerprint":
            parts.append(f"{f.name}=0x{value:08x}")
        else:
            parts.append(f"{f.name}={_format_value(value)}")
    for key, pairs in (("wait", insn.waits), ("signal", insn.signals)):
        parts += [f"{key}={sem}:{count}" for sem, count in pairs if count]
    return " ".join(parts)



# Queues, fingerprint and the program image live in isa_program, the text assembler, the
# disassembler and the generated docs in isa_asm; this module re-exports them (one API).
from systolica.isa_program import (Program, Queue, decode, decode_words, fingerprint,  # noqa: E402,F401
                                   tile_queues, _queue_engine)
from systolica.isa_asm import assemble, disassemble, isa_markdown, update_doc  # noqa: E402

__all__ += ["isa_markdown", "update_doc"]
