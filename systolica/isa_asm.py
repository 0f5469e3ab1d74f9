"""Text assembly, disassembly and the generated reference of the ISA (part of :mod:`systolica.isa`,
which re-exports everything here; split off to keep each file short).

Text form: ``.fingerprint 0x...``, then per queue ``.queue NAME`` and one instruction per line,
``mnemonic field=value ... wait=sem:count signal=sem:count``; ``#`` starts a comment.
"""

import pathlib

from amaranth.lib import data, enum

from systolica.codes import ActMode
from systolica.config import TileConfig
from systolica import isa as _isa
from systolica.isa import (BODY_LAYOUTS, HEADER_LAYOUT, Engine, Instruction,
                           IsaEncodingError, Opcode, Program, Space, disassemble_instruction,
                           fingerprint, _BODY_FIELDS, _default, _queue_engine)


__all__ = ["assemble", "disassemble", "isa_markdown", "update_doc"]


def disassemble(program):
    """The text form of a program: ``.fingerprint``, then per queue ``.queue NAME`` and one
    instruction per line (``assemble`` reads it back)."""
    lines = [f".fingerprint 0x{program.fingerprint:08x}"]
    for name, insns in program.queues.items():
        lines.append(f".queue {name}")
        lines += [f"    {disassemble_instruction(i)}" for i in insns]
    return "\n".join(lines) + "\n"


def _parse_int(text, where):
    try:
        return int(text, 0)
    except ValueError:
        raise IsaEncodingError(f"{where}: {text!r} is not an integer") from None


def _parse_instruction(line, where):
    mnemonic, *args = line.split()
    try:
        opcode = Opcode[mnemonic.upper()]
    except KeyError:
        raise IsaEncodingError(f"{where}: unknown mnemonic {mnemonic!r}") from None
    table = {f.name: f for f in _BODY_FIELDS[opcode]}
    fields, waits, signals = {}, [], []
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep:
            raise IsaEncodingError(f"{where}: expected field=value; got {arg!r}")
        if key in ("wait", "signal"):
            sem, sep, count = text.partition(":")
            if not sep:
                raise IsaEncodingError(f"{where}: {key} needs semaphore:count; got {text!r}")
            (waits if key == "wait" else signals).append(
                (_parse_int(sem, where), _parse_int(count, where)))
            continue
        f = table.get(key)
        if f is None:
            raise IsaEncodingError(f"{where}: {opcode.name} has no field {key!r}; fields: "
                                   f"{', '.join(table) or 'none'}")
        if f.enum is not None:
            try:
                fields[key] = f.enum[text.upper()]
            except KeyError:
                fields[key] = _parse_int(text, where)
        elif f.count > 1:
            values = tuple(_parse_int(x, where) for x in text.split(","))
            fields[key] = values + tuple(_default(f))[len(values):]   # short lists: defaults
        else:
            fields[key] = _parse_int(text, where)
    try:
        return Instruction(opcode, waits=waits, signals=signals, **fields)
    except IsaEncodingError as e:
        raise IsaEncodingError(f"{where}: {e}") from None


def assemble(text, config: TileConfig = None):
    """A :class:`Program` from its text form. ``#`` starts a comment; omitted fields take their
    defaults (counts 1, strides 0, repeat 1, elem_bytes 1, others 0). Without a
    ``.fingerprint`` line the ``config``'s fingerprint is used."""
    fp = fingerprint(config) if config is not None else None
    queues, current = {}, None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        where = f"line {number}"
        if not line:
            continue
        if line.startswith(".fingerprint"):
            fp = _parse_int(line.split()[1], where)
        elif line.startswith(".queue"):
            parts = line.split()
            if len(parts) != 2:
                raise IsaEncodingError(f"{where}: expected '.queue NAME'")
            current = parts[1]
            _queue_engine(current)
            if current in queues:
                raise IsaEncodingError(f"{where}: queue {current} given twice")
            queues[current] = []
        else:
            if current is None:
                raise IsaEncodingError(f"{where}: instruction before any '.queue NAME'")
            queues[current].append(_parse_instruction(line, where))
    if fp is None:
        raise IsaEncodingError("no '.fingerprint' line and no config given")
    return Program(queues, fp)


# --- generated documentation --------------------------------------------------------------------

def _layout_rows(layout, base=0, prefix=""):
    rows = []
    for name, field in layout:
        shape = field.shape
        flat = f"{prefix}{name}"
        if isinstance(shape, data.StructLayout):
            rows += _layout_rows(shape, base + field.offset, flat + ".")
            continue
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            if isinstance(elem, data.StructLayout):
                for i in range(shape.length):
                    rows += _layout_rows(elem, base + field.offset + i * elem.size,
                                         f"{flat}[{i}].")
                continue
            s = elem.as_shape() if hasattr(elem, "as_shape") else elem
            kind = f"{shape.length} x {'s' if s.signed else 'u'}{s.width}"
            size = shape.size
        elif isinstance(shape, type) and issubclass(shape, enum.Enum):
            kind, size = f"`{shape.__name__}`", shape.as_shape().width
        else:
            kind, size = f"{'s' if shape.signed else 'u'}{shape.width}", shape.width
        lo = base + field.offset
        rows.append(f"| `{flat}` | {lo}..{lo + size - 1} | {kind} |")
    return rows


def isa_markdown():
    """The generated part of docs/isa.md: constants, opcodes, codes and every layout."""
    from systolica.codes import codes_markdown, IsaError, EngineState
    lines = [
        "## Constants", "",
        "| name | value |", "|---|---|",
        *[f"| `{n}` | {getattr(_isa, n)} |" for n in (
            "ISA_VERSION", "WORD_BITS", "WORD_BYTES", "SEMAPHORES", "SEMAPHORE_BITS",
            "ACT_PARAM_ENTRIES", "ACT_PARAM_GROUP", "ZERO_POINT_BITS")],
        "",
        "## Codes", "",
        codes_markdown((Opcode, Engine, Space, IsaError, EngineState, ActMode)),
        "## Layouts", "",
        "Bit offsets within the 512-bit word (bit 0 = bit 0 of byte 0; the word is stored "
        "little-endian). `uN` / `sN`: unsigned / signed N bits.", "",
        "### Header (every instruction)", "",
        "| field | bits | type |", "|---|---|---|", *_layout_rows(HEADER_LAYOUT), "",
    ]
    for opcode, layout in BODY_LAYOUTS.items():
        lines += [f"### `{opcode.name}` body ({layout.size} bits)", "",
                  "| field | bits | type |", "|---|---|---|",
                  *_layout_rows(layout, HEADER_LAYOUT.size), ""]
    lines += ["`END` and `NOP` have no body.", ""]
    return "\n".join(lines)




BEGIN_MARK = "<!-- generated from systolica/isa.py by `python -m systolica.isa_asm docs/isa.md`; do not edit below -->"


def update_doc(text):
    """``text`` (docs/isa.md) with everything after the generated-part marker regenerated."""
    head = text.split(BEGIN_MARK, 1)[0] if BEGIN_MARK in text else text.rstrip("\n") + "\n\n"
    return head + BEGIN_MARK + "\n\n" + isa_markdown()


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 2:
        sys.exit("usage: python -m systolica.isa_asm docs/isa.md  (regenerates its generated part)")
    path = pathlib.Path(sys.argv[1])
    path.write_text(update_doc(path.read_text() if path.exists() else "# ISA\n"))
