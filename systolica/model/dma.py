"""NumPy golden model of the DMA (written from docs/dma.md, not from the RTL).

A descriptor is a :class:`DmaTransfer`: a source and a destination :class:`DmaSide` (``space``
``"dram"`` or ``"sbuf"``, byte ``addr``, three ``counts`` and signed byte ``strides``, dimension
0 innermost) and ``elem_bytes``. The source elements, read in iteration order (dimension 0
fastest), form one byte stream that is written to the destination elements in *their* iteration
order; a destination byte written twice keeps the later value. The SBUF is one linear byte space,
partition after partition.

Every value must fit its hardware field (:func:`descriptor_field_ranges` of the transfer's
``config``): a :class:`DmaTransfer` that does not is refused with a ``ValueError`` naming the
field and its range, so the model never judges a descriptor the hardware would see cut short.
Status codes are :class:`systolica.codes.DmaError`.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from systolica.codes import DmaError
from systolica.config import DmaConfig, SbufConfig


__all__ = ["DmaSide", "DmaTransfer", "descriptor_field_ranges", "sbuf_address", "side_offsets",
           "side_range", "check_fields", "dma_check_reference", "random_transfer",
           "dma_copy_reference"]


def _index_bits(n):
    return max(1, (n - 1).bit_length())


def descriptor_field_ranges(config: DmaConfig):
    """``{field: (lo, hi, bits)}``: the inclusive range of every descriptor field in hardware
    (``systolica.hdl.contracts.dma_descriptor_layout``; a test checks that the two agree)."""
    aw = config.addr_width
    return {
        "addr": (0, (1 << aw) - 1, aw),
        "count": (0, (1 << config.count_bits) - 1, config.count_bits),
        "stride": (-(1 << (aw - 1)), (1 << (aw - 1)) - 1, aw),
        "elem_bytes": (0, (1 << config.elem_bits) - 1, config.elem_bits),
        "semaphore": (0, (1 << _index_bits(config.semaphores)) - 1,
                      _index_bits(config.semaphores)),
    }


def _check_field(name, value, ranges, kind):
    lo, hi, bits = ranges[kind]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"DmaTransfer {name} must be an integer; got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"DmaTransfer {name} must be in [{lo}, {hi}] (its {bits}-bit hardware "
                         f"field); got {value}")


def sbuf_address(sbuf_config: SbufConfig, partition, offset):
    """The descriptor address of byte ``offset`` of SBUF partition ``partition``: the SBUF is one
    linear byte space, partition after partition (``partition_bytes`` each)."""
    if not 0 <= partition < sbuf_config.partitions:
        raise ValueError(f"sbuf_address: partition must be in [0, {sbuf_config.partitions}); "
                         f"got {partition}")
    if not 0 <= offset < sbuf_config.partition_bytes:
        raise ValueError(f"sbuf_address: offset must be in [0, {sbuf_config.partition_bytes}); "
                         f"got {offset}")
    return partition * sbuf_config.partition_bytes + offset


@dataclass(frozen=True)
class DmaSide:
    space: str                  # "dram" or "sbuf"
    addr: int
    counts: tuple = (1, 1, 1)
    strides: tuple = (0, 0, 0)

    def __post_init__(self):
        if self.space not in ("dram", "sbuf"):
            raise ValueError(f"DmaSide.space must be 'dram' or 'sbuf'; got {self.space!r}")
        if len(self.counts) != 3 or len(self.strides) != 3:
            raise ValueError("DmaSide: counts and strides must have 3 entries each")
        # What no config can hold; the field widths are checked by DmaTransfer.
        if not isinstance(self.addr, (int, np.integer)) or self.addr < 0:
            raise ValueError(f"DmaSide.addr must be an integer >= 0; got {self.addr!r}")
        for d, count in enumerate(self.counts):
            if not isinstance(count, (int, np.integer)) or count < 0:
                raise ValueError(f"DmaSide.counts[{d}] must be an integer >= 0; got {count!r}")

    def as_dict(self):
        return {"sbuf": int(self.space == "sbuf"), "addr": int(self.addr),
                "count": [int(c) for c in self.counts], "stride": [int(s) for s in self.strides]}

    @property
    def elements(self):
        return math.prod(int(c) for c in self.counts)


@dataclass(frozen=True)
class DmaTransfer:
    """A descriptor; ``config`` (the DMA's section config) gives the field widths it must fit."""
    src: DmaSide
    dst: DmaSide
    elem_bytes: int
    semaphore: int = 0
    config: DmaConfig = field(default_factory=DmaConfig, repr=False)

    def __post_init__(self):
        check_fields(self, self.config)

    def as_dict(self):
        return {"src": self.src.as_dict(), "dst": self.dst.as_dict(),
                "elem_bytes": int(self.elem_bytes), "semaphore": int(self.semaphore)}


def check_fields(t: DmaTransfer, config: DmaConfig):
    """Raise ``ValueError`` naming the first field of ``t`` that does not fit ``config``."""
    ranges = descriptor_field_ranges(config)
    for name, side in (("src", t.src), ("dst", t.dst)):
        _check_field(f"{name}.addr", side.addr, ranges, "addr")
        for d in range(3):
            _check_field(f"{name}.counts[{d}]", side.counts[d], ranges, "count")
            _check_field(f"{name}.strides[{d}]", side.strides[d], ranges, "stride")
    _check_field("elem_bytes", t.elem_bytes, ranges, "elem_bytes")
    _check_field("semaphore", t.semaphore, ranges, "semaphore")


def side_offsets(side: DmaSide, elem_bytes):
    """Byte addresses of every byte of ``side``, in transfer order."""
    c0, c1, c2 = side.counts
    s0, s1, s2 = side.strides
    i2, i1, i0 = np.meshgrid(np.arange(c2), np.arange(c1), np.arange(c0), indexing="ij")
    starts = side.addr + i2.ravel() * s2 + i1.ravel() * s1 + i0.ravel() * s0
    return (starts[:, None] + np.arange(elem_bytes)[None, :]).ravel()


def side_range(side: DmaSide, elem_bytes):
    """``(lo, end)``: the lowest byte address and one past the highest of a side."""
    spans = [(c - 1) * s for c, s in zip(side.counts, side.strides)]
    lo = side.addr + sum(min(0, x) for x in spans)
    end = side.addr + sum(max(0, x) for x in spans) + elem_bytes
    return lo, end


def dma_check_reference(t: DmaTransfer, *, addr_width, sbuf_bytes, semaphores):
    """The :class:`DmaError` the descriptor checks give (``DmaError.OK`` if it is good)."""
    if t.elem_bytes == 0 or 0 in t.src.counts or 0 in t.dst.counts:
        return DmaError.ZERO_SIZE
    if t.src.elements != t.dst.elements:
        return DmaError.SIZE_MISMATCH
    bad = {}
    for side in (t.src, t.dst):
        lo, end = side_range(side, t.elem_bytes)
        limit = sbuf_bytes if side.space == "sbuf" else 1 << addr_width
        bad[id(side)] = lo < 0 or end > limit
    if any(bad[id(s)] for s in (t.src, t.dst) if s.space == "sbuf"):
        return DmaError.SBUF_RANGE
    if any(bad.values()):
        return DmaError.DRAM_RANGE
    if t.semaphore >= semaphores:
        return DmaError.BAD_SEMAPHORE
    return DmaError.OK


def dma_copy_reference(t: DmaTransfer, dram, sbuf):
    """Apply the copy of a good descriptor to ``dram`` and ``sbuf`` (1-D uint8 arrays, modified in
    place; ``sbuf`` is the linear SBUF). Source and destination must not overlap."""
    spaces = {"dram": dram, "sbuf": sbuf}
    src = side_offsets(t.src, t.elem_bytes)
    dst = side_offsets(t.dst, t.elem_bytes)
    values = spaces[t.src.space][src]
    # Later writes win: keep the last occurrence of every destination byte.
    rev = dst[::-1]
    unique, first_in_rev = np.unique(rev, return_index=True)
    spaces[t.dst.space][unique] = values[len(dst) - 1 - first_in_rev]


def _random_side_shape(rng, counts, elem, allow_zero):
    """Strides for ``counts``: dense, padded, reversed (negative) or (if allowed) zero."""
    strides = []
    extent = elem
    for c in counts:
        kind = rng.choice(["dense", "padded", "negative", "zero"] if allow_zero
                          else ["dense", "padded", "negative"])
        step = extent if kind == "dense" else extent + int(rng.integers(1, 2 * elem + 3))
        if kind == "negative":
            step = -step
        if kind == "zero":
            step = 0
        if c == 1:
            step = int(rng.integers(-64, 65))      # never used: any value is fine
        strides.append(int(step))
        extent = max(extent, abs(step) * (c - 1) + extent) if c > 1 else extent
    return tuple(strides)


def random_transfer(rng, *, src_space, dst_space, src_region, dst_region, max_elem=9,
                    max_count=5, zero_strides=True, semaphore=0, tries=100,
                    config: DmaConfig = None):
    """A random good descriptor whose sides lie inside ``src_region`` / ``dst_region``
    (``(lo, hi)`` byte ranges): element sizes 1..max_elem, counts 1..max_count per dimension,
    dense / padded / negative / zero strides (zero on the destination too: the later write
    wins), and a destination shape that is the source's, a permutation of it, or flat."""
    for _ in range(tries):
        elem = int(rng.integers(1, max_elem + 1))
        counts = tuple(int(rng.integers(1, max_count + 1)) if rng.random() < 0.7 else 1
                       for _ in range(3))
        shape = rng.integers(3)
        if shape == 0:
            dcounts = counts
        elif shape == 1:
            dcounts = tuple(int(x) for x in rng.permutation(counts))
        else:
            dcounts = (int(np.prod(counts)), 1, 1)
        sides = []
        for space, region, cs in ((src_space, src_region, counts),
                                  (dst_space, dst_region, dcounts)):
            strides = _random_side_shape(rng, cs, elem, zero_strides)
            lo, end = side_range(DmaSide(space, 0, cs, strides), elem)
            room = (region[1] - region[0]) - (end - lo)
            if room < 0:
                break
            base = region[0] - lo + int(rng.integers(0, room + 1))
            sides.append(DmaSide(space, base, cs, strides))
        if len(sides) == 2:
            return DmaTransfer(sides[0], sides[1], elem, semaphore,
                               DmaConfig() if config is None else config)
    raise ValueError("random_transfer: regions too small for the requested shapes")
