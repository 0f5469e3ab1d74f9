"""Ports, streams and payload packing of the compiled backend: which flat Verilog ports make up
each stream of a component, and how payloads (ints, lists, dicts) become rows of ``uint32`` words
for the C++ harness and back."""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data, stream, wiring


# --- ports and streams ---------------------------------------------------------------------------

def _flat_ports(component):
    from systolica.synth.verilog import component_ports
    return component_ports(component)


@dataclass(frozen=True)
class StreamPorts:
    """One ``amaranth.lib.stream`` interface of a component, by its flat Verilog port names.
    ``role`` is ``"source"`` (the test bench drives it: an ``In`` stream) or ``"sink"``."""
    name: str
    role: str
    payload: str
    valid: str
    ready: str      # None for an always-ready stream
    layout: object  # the payload shape


def stream_ports(component):
    """Every stream interface of ``component``'s signature (nested ones too), as
    :class:`StreamPorts`, keyed by its dotted path (``"moving"``, ``"axi.ar"``)."""
    found = {}

    def walk(signature, path, flipped):
        for name, member in signature.members.items():
            if not member.is_signature:
                continue
            sub_flipped = flipped ^ (member.flow == wiring.Out)
            sig = member.signature
            sub_path = path + (name,)
            base = sig.flip() if isinstance(sig, wiring.FlippedSignature) else sig
            if isinstance(base, stream.Signature):
                members = sig.members
                prefix = "__".join(sub_path)
                role = "sink" if sub_flipped else "source"
                if "valid" not in members:
                    raise NotImplementedError(
                        f"stream {'.'.join(sub_path)}: always-valid streams are not supported by "
                        f"the compiled harness")
                found[".".join(sub_path)] = StreamPorts(
                    name=".".join(sub_path), role=role, payload=f"{prefix}__payload",
                    valid=f"{prefix}__valid",
                    ready=f"{prefix}__ready" if "ready" in members else None,
                    layout=base.members["payload"].shape)
            else:
                walk(sig, sub_path, sub_flipped)

    walk(component.signature, (), False)
    return found


# --- payload packing -----------------------------------------------------------------------------

class PayloadCodec:
    """Packs stream payloads (ints, lists, dicts -- what ``ctx.set`` takes) into rows of
    little-endian ``uint32`` words for the harness, and unpacks them into what
    ``streams.to_python`` returns. Vectorised over beats for struct/array layouts of integer
    fields of up to 64 bits; other shapes go through Amaranth's ``Layout.const`` per beat."""

    def __init__(self, shape):
        self.shape = shape
        self.width = Shape.cast(shape).width
        self.words = max(1, (self.width + 31) // 32)
        self.leaves = []        # (path, offset, width, signed, count or None)
        self.fast = self._collect(shape, (), 0)

    def _collect(self, shape, path, offset):
        if isinstance(shape, data.StructLayout):
            return all(self._collect(field.shape, path + (name,), offset + field.offset)
                       for name, field in shape)
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            if isinstance(elem, ShapeCastable) and not isinstance(elem, data.Layout):
                return False
            if isinstance(elem, data.Layout):
                width = elem.size
                return all(self._collect(elem, path + (i,), offset + i * width)
                           for i in range(shape.length))
            elem = Shape.cast(elem)
            if elem.width > 64:
                return False
            self.leaves.append((path, offset, elem.width, elem.signed, shape.length))
            return True
        if isinstance(shape, ShapeCastable):
            return False
        s = Shape.cast(shape)
        if s.width > 64:
            return False
        self.leaves.append((path, offset, s.width, s.signed, None))
        return True

    @property
    def fields(self):
        """The leaf fields as ``{path: (offset, width, signed, count)}``; ``count`` is the length
        of an array of integers (one column of ``count`` values per beat) or ``None``."""
        if not self.fast:
            raise TypeError(f"payload shape {self.shape!r} has no column form")
        return {path: (offset, width, signed, count)
                for path, offset, width, signed, count in self.leaves}

    @staticmethod
    def _path(key):
        if isinstance(key, str):
            return tuple(int(k) if k.isdigit() else k for k in key.split("."))
        return tuple(key)

    def columns(self, payloads):
        """``{path: array}`` of a list of payloads (dicts/lists/ints)."""
        cache = {(): payloads}

        def column(path):
            if path not in cache:
                parent = column(path[:-1])
                key = path[-1]
                cache[path] = [p[key] for p in parent]
            return cache[path]

        return {path: column(path) for path, *_ in self.leaves}

    def pack_one(self, payload):
        """The bits of one payload as an int (``ctx.set`` on the compiled backend)."""
        if isinstance(payload, data.Const):
            return payload.as_bits()
        if not self.fast:
            return self._const_bits(payload)
        bits = 0
        for path, offset, width, _signed, count in self.leaves:
            value = payload
            for key in path:
                value = value[key]
            mask = (1 << width) - 1
            if count is None:
                bits |= (int(value) & mask) << offset
            else:
                for k in range(count):
                    bits |= (int(value[k]) & mask) << (offset + k * width)
        return bits

    def pack(self, payloads):
        """Rows of ``words`` little-endian uint32 words, one per payload."""
        payloads = list(payloads)
        if not self.fast:
            n = len(payloads)
            words64 = (self.words + 1) // 2 + 1
            buf = np.zeros((n, words64), dtype=np.uint64)
            for i, p in enumerate(payloads):
                value = self._const_bits(p)
                for j in range(words64):
                    buf[i, j] = (value >> (64 * j)) & ((1 << 64) - 1)
            return np.ascontiguousarray(buf.view(np.uint32)[:, :self.words])
        return self.pack_columns(self.columns(payloads), n=len(payloads))

    def pack_columns(self, columns, n=None):
        """Rows for payloads given field by field: ``columns`` maps each leaf field's path
        (a tuple such as ``("tag", "addr")`` or a dotted string ``"tag.addr"``) to an array of
        ``n`` values (``n x count`` for an array of integers). Values are wrapped to the field
        width (two's complement for negative ones)."""
        fields = self.fields
        columns = {self._path(k): v for k, v in columns.items()}
        unknown = set(columns) - set(fields)
        if unknown:
            raise KeyError(f"no payload field(s) {sorted(unknown)}; fields: {sorted(fields)}")
        missing = set(fields) - set(columns)
        if missing:
            raise KeyError(f"payload field(s) {sorted(missing)} not given")
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0
        words64 = (self.words + 1) // 2 + 1
        buf = np.zeros((n, words64), dtype=np.uint64)
        for path, (offset, width, _signed, count) in fields.items():
            arr = self._to_uint64(columns[path], width)
            if count is None:
                if arr.shape != (n,):
                    raise ValueError(f"field {path}: expected {n} values, got shape {arr.shape}")
                self._place(buf, arr, offset, width)
            else:
                if arr.size != n * count:
                    raise ValueError(f"field {path}: expected {n} x {count} values, got "
                                     f"{arr.size}")
                arr = arr.reshape(n, count)
                for k in range(count):
                    self._place(buf, arr[:, k], offset + k * width, width)
        return np.ascontiguousarray(buf.view(np.uint32)[:, :self.words])

    def _const_bits(self, payload):
        shape = self.shape
        if isinstance(shape, ShapeCastable):
            from amaranth.hdl import Const
            return Const.cast(shape.const(payload)).value & ((1 << self.width) - 1)
        return int(payload) & ((1 << self.width) - 1)

    @staticmethod
    def _to_uint64(values, width):
        mask = (1 << width) - 1
        try:
            arr = np.asarray(values)
            if arr.dtype == object or arr.dtype.kind not in "iub":
                arr = np.asarray(values, dtype=np.int64)
            arr = arr.astype(np.int64, copy=False).view(np.uint64) if arr.dtype.kind != "u" \
                else arr.astype(np.uint64, copy=False)
        except OverflowError:
            arr = np.asarray([int(v) & mask for v in np.ravel(np.asarray(values, dtype=object))],
                             dtype=np.uint64)
        arr = arr.reshape(-1)
        if width < 64:
            arr = arr & np.uint64(mask)
        return arr

    @staticmethod
    def _place(buf, values, offset, width):
        w, s = divmod(offset, 64)
        buf[:, w] |= values << np.uint64(s)
        if s and s + width > 64:
            buf[:, w + 1] |= values >> np.uint64(64 - s)

    @staticmethod
    def _extract(buf, offset, width, signed):
        w, s = divmod(offset, 64)
        values = buf[:, w] >> np.uint64(s)
        if s and s + width > 64:
            values = values | (buf[:, w + 1] << np.uint64(64 - s))
        if width < 64:
            values = values & np.uint64((1 << width) - 1)
        values = values.astype(np.int64) if width < 64 or signed else values
        if signed and width < 64:
            values = np.where(values >= (1 << (width - 1)), values - (1 << width), values)
        return values

    def _buffer(self, rows):
        rows = np.asarray(rows, dtype=np.uint32)
        words64 = (self.words + 1) // 2 + 1
        padded = np.zeros((rows.shape[0], 2 * words64), dtype=np.uint32)
        padded[:, :self.words] = rows
        return padded.view(np.uint64)

    def unpack_columns(self, rows):
        """``{"tag.addr": array, ...}`` (int64; ``n x count`` for arrays of integers) of
        packed ``rows``, keyed by dotted field paths."""
        buf = self._buffer(rows)
        columns = {}
        for path, (offset, width, signed, count) in self.fields.items():
            key = ".".join(map(str, path))
            if count is None:
                columns[key] = self._extract(buf, offset, width, signed)
            else:
                columns[key] = np.stack([self._extract(buf, offset + k * width, width, signed)
                                          for k in range(count)], axis=1)
        return columns

    def unpack(self, rows):
        """Payloads (what ``streams.to_python`` gives) of ``rows`` (an ``(n, words)`` uint32
        array)."""
        buf = self._buffer(rows)
        n = buf.shape[0]
        if not self.fast:
            out = []
            for i in range(n):
                value = 0
                for j in range(buf.shape[1]):
                    value |= int(buf[i, j]) << (64 * j)
                out.append(self._from_bits(value))
            return out
        columns = {self._path(key): col.tolist()
                   for key, col in self.unpack_columns(rows).items()}
        return self._assemble(self.shape, (), columns, n)

    def _assemble(self, shape, path, columns, n):
        if path in columns:
            return columns[path]
        if isinstance(shape, data.StructLayout):
            names = [name for name, _ in shape]
            parts = [self._assemble(shape[name].shape, path + (name,), columns, n)
                     for name in names]
            return [dict(zip(names, values)) for values in zip(*parts)]
        if isinstance(shape, data.ArrayLayout):
            parts = [self._assemble(shape.elem_shape, path + (i,), columns, n)
                     for i in range(shape.length)]
            return [list(values) for values in zip(*parts)]
        raise AssertionError(f"no column for {path}")

    def _from_bits(self, value):
        from .streams import to_python
        shape = self.shape
        if isinstance(shape, data.Layout):
            return to_python(shape.from_bits(value))
        s = Shape.cast(shape)
        if s.signed and value >= 1 << (s.width - 1):
            value -= 1 << s.width
        return value
