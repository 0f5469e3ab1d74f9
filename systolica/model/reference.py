"""NumPy golden models. Each block's model lives here, written from the spec, not from the RTL."""

import numpy as np

from systolica.codes import ACT_MODE_RANGE, ActMode


__all__ = ["wrap_signed", "matmul_reference"]


def wrap_signed(values, bits):
    """Two's-complement wraparound of integer ``values`` to ``bits`` bits (as int64)."""
    values = np.asarray(values, dtype=np.int64)
    if bits >= 64:
        return values
    mask = (1 << bits) - 1
    values = values & mask
    return np.where(values >= (1 << (bits - 1)), values - (1 << bits), values)


def matmul_reference(a, w, acc_bits=32):
    """``a @ w`` with exact integer products and an accumulator of ``acc_bits`` bits that wraps
    (two's complement), like the tensor engine and like NumPy int32 for ``acc_bits=32``.

    Exact in int64 for every supported type: a 16x16-bit product is < 2**32 and at most 256 of them
    are summed, so the int64 sum cannot overflow before the wrap.
    """
    a = np.asarray(a)
    w = np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"matmul_reference: shapes {a.shape} and {w.shape} do not multiply")
    product = a.astype(np.int64) @ w.astype(np.int64)
    return wrap_signed(product, acc_bits)


# --- on-chip memories: SBUF, PSUM, ACT (docs/memories.md) ---------------------------------------

__all__ += ["round_half_even_shift", "requantize", "psum_reference", "psum_replay", "SbufModel"]


def round_half_even_shift(values, shift):
    """``values / 2**shift`` rounded to the nearest integer, ties to even (exact, Python ints).
    ``shift`` is a scalar or broadcasts against ``values``; shift 0 returns ``values``."""
    values = np.asarray(values, dtype=object)
    shift = np.broadcast_to(np.asarray(shift, dtype=object), values.shape)
    out = np.empty(values.shape, dtype=object)
    for idx in np.ndindex(values.shape):
        x, s = int(values[idx]), int(shift[idx])
        if s == 0:
            out[idx] = x
            continue
        q, r = x >> s, x & ((1 << s) - 1)          # floor quotient, remainder in [0, 2**s)
        half = 1 << (s - 1)
        if r > half or (r == half and q & 1):
            q += 1
        out[idx] = q
    return out


def requantize(acc, scale, shift, *, zero_point=0, relu=False, mode=ActMode.INT8):
    """The ACT unit's arithmetic on accumulators ``acc`` (..., N) with per-column ``scale`` and
    ``shift`` (N,): ``y = saturate(max?(round_half_even(acc * scale / 2**shift), 0) + zero_point)``
    (ReLU before the zero point), saturated to the range of ``mode`` (an :class:`ActMode`).
    ``ActMode.INT32`` is the pass-through: ``acc`` wrapped to 32 bits. Returns int64 (the element
    type of the result in the SBUF is ``mode.name.lower()``).

    Exact either way: vectorised int64 when every product fits in 62 bits, else Python ints
    (:func:`round_half_even_shift`)."""
    if not isinstance(mode, ActMode):
        raise TypeError(f"requantize: mode must be an ActMode; got {mode!r}")
    acc = np.asarray(acc, dtype=np.int64)
    if mode == ActMode.INT32:
        return wrap_signed(acc, 32)
    scale = np.asarray(scale, dtype=np.int64)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), acc.shape)
    biggest = int(np.abs(acc).max(initial=0)) * int(np.abs(scale).max(initial=0))
    fits = biggest < (1 << 62)        # then v + zero_point fits int64 too
    if fits:
        v = _round_half_even_shift_int64(acc * scale, shift)
    else:
        v = round_half_even_shift(acc.astype(object) * scale.astype(object), shift)
    if relu:
        v = np.where(v < 0, 0, v)
    lo, hi = ACT_MODE_RANGE[mode]
    y = v + int(zero_point)
    return np.clip(y if fits else y.astype(object), lo, hi).astype(np.int64)


def _round_half_even_shift_int64(product, shift):
    """:func:`round_half_even_shift` for int64 ``product`` (exact while no value overflows)."""
    q = product >> shift
    rem = product - (q << shift)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    up = (shift > 0) & ((rem > half) | ((rem == half) & (q & 1 == 1)))
    return q + up


def psum_reference(beats, rows, cols, acc_bits=32, memory=None):
    """PSUM after ``beats`` (dicts ``{"data": [...], "tag": {"addr", "accumulate"}}``, in
    acceptance order): overwrite or wrapping add into row ``addr``. Beats addressed at ``rows`` or
    beyond are dropped. Returns ``(memory (rows x cols int64), number of dropped beats)``."""
    mem = np.zeros((rows, cols), dtype=np.int64) if memory is None else memory.copy()
    return psum_replay(beats, mem, lambda data: np.asarray(data, dtype=np.int64),
                       lambda old, new: wrap_signed(old + new, acc_bits))


def psum_replay(beats, mem, convert, add):
    """Apply ``beats`` to ``mem`` in place: row ``addr`` = ``convert(data)``, or ``add(row,
    convert(data))`` for accumulating beats; beats at ``len(mem)`` or beyond are dropped.
    Returns ``(mem, number of dropped beats)``."""
    dropped = 0
    for beat in beats:
        addr = beat["tag"]["addr"]
        if addr >= len(mem):
            dropped += 1
            continue
        data = convert(beat["data"])
        mem[addr] = add(mem[addr], data) if beat["tag"]["accumulate"] else data
    return mem, dropped


class SbufModel:
    """The SBUF as P byte arrays, with the accesses of its ports (docs/memories.md)."""

    def __init__(self, partitions, depth, word_bytes):
        self.partitions, self.depth, self.word_bytes = partitions, depth, word_bytes
        self.bytes = np.zeros((partitions, depth * word_bytes), dtype=np.uint8)

    def words(self, partition):
        """Partition ``partition`` as a list of word ints (little-endian)."""
        wb = self.word_bytes
        return [int.from_bytes(self.bytes[partition, a * wb:(a + 1) * wb].tobytes(), "little")
                for a in range(self.depth)]

    def write_word(self, partition, addr, data, byte_enable):
        """A word write (``data`` a list of bytes); out of range: ignored, returns False."""
        if partition >= self.partitions or addr >= self.depth:
            return False
        for i in range(self.word_bytes):
            if byte_enable >> i & 1:
                self.bytes[partition, addr * self.word_bytes + i] = data[i]
        return True

    def read_word(self, partition, addr):
        if partition >= self.partitions or addr >= self.depth:
            return [0] * self.word_bytes
        base = addr * self.word_bytes
        return [int(b) for b in self.bytes[partition, base:base + self.word_bytes]]

    def element(self, partition, index, dtype):
        """Element ``index`` (of ``dtype``'s size) of a partition; beyond the end reads 0."""
        size = np.dtype(dtype).itemsize
        if (index + 1) * size > self.depth * self.word_bytes:
            return 0
        raw = self.bytes[partition, index * size:(index + 1) * size].tobytes()
        return int(np.frombuffer(raw, dtype=dtype)[0])

    def store(self, partition, index, values, dtype):
        """Write consecutive elements of ``dtype`` starting at element ``index``."""
        raw = np.asarray(values).astype(dtype).tobytes()
        start = index * np.dtype(dtype).itemsize
        self.bytes[partition, start:start + len(raw)] = np.frombuffer(raw, dtype=np.uint8)

    def moving(self, offset, count, rows, dtype):
        """The moving operand: ``count`` x ``rows``, element [m, k] = partition k, offset + m."""
        return np.array([[self.element(k, offset + i, dtype) for k in range(rows)]
                         for i in range(count)], dtype=np.int64)

    def stationary(self, offset, rows, cols, dtype):
        """The stationary operand: ``rows`` x ``cols``, element [k, n] = partition n, offset + k
        (N on partitions)."""
        return np.array([[self.element(n, offset + k, dtype) for n in range(cols)]
                         for k in range(rows)], dtype=np.int64)

    def vector_write(self, addr, data, byte_enable):
        """The ACT port: word ``addr`` of every partition p, bytes enabled by byte_enable[p]."""
        if addr >= self.depth:
            return False
        for p in range(self.partitions):
            self.write_word(p, addr, data[p], byte_enable[p])
        return True
