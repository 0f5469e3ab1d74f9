"""NumPy golden model of the DMA (written from docs/dma.md, not from the RTL).

A descriptor is a :class:`DmaTransfer`: a source and a destination :class:`DmaSide` (``space``
``"dram"`` or ``"sbuf"``, byte ``addr``, three ``counts`` and signed byte ``strides``, dimension
0 innermost) and ``elem_bytes``. The source elements, read in iteration order (dimension 0
fastest), form one byte stream that is written to the destination elements in *their* iteration
order; a destination byte written twice keeps the later value. The SBUF is one linear byte space,
partition after partition.
"""

from dataclasses import dataclass

import numpy as np


__all__ = ["DmaSide", "DmaTransfer", "side_offsets", "side_range", "dma_check_reference",
           "dma_copy_reference", "DMA_ERROR_NAMES"]

# Error codes (docs/dma.md); the same numbers as systolica.hdl.dma.DMA_ERR_*.
OK, ZERO_SIZE, SIZE_MISMATCH, SBUF_RANGE, DRAM_RANGE, BAD_SEMAPHORE, READ_ERROR, WRITE_ERROR = \
    range(8)
DMA_ERROR_NAMES = ["ok", "zero_size", "size_mismatch", "sbuf_range", "dram_range",
                   "bad_semaphore", "axi_read_error", "axi_write_error"]


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

    def as_dict(self):
        return {"sbuf": int(self.space == "sbuf"), "addr": self.addr,
                "count": list(self.counts), "stride": list(self.strides)}

    @property
    def elements(self):
        return int(np.prod(self.counts))


@dataclass(frozen=True)
class DmaTransfer:
    src: DmaSide
    dst: DmaSide
    elem_bytes: int
    semaphore: int = 0

    def as_dict(self):
        return {"src": self.src.as_dict(), "dst": self.dst.as_dict(),
                "elem_bytes": self.elem_bytes, "semaphore": self.semaphore}


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
    """The error code the descriptor checks give (0 if the descriptor is good)."""
    if t.elem_bytes == 0 or 0 in t.src.counts or 0 in t.dst.counts:
        return ZERO_SIZE
    if t.src.elements != t.dst.elements:
        return SIZE_MISMATCH
    bad = {}
    for side in (t.src, t.dst):
        lo, end = side_range(side, t.elem_bytes)
        limit = sbuf_bytes if side.space == "sbuf" else 1 << addr_width
        bad[id(side)] = lo < 0 or end > limit
    if any(bad[id(s)] for s in (t.src, t.dst) if s.space == "sbuf"):
        return SBUF_RANGE
    if any(bad.values()):
        return DRAM_RANGE
    if t.semaphore >= semaphores:
        return BAD_SEMAPHORE
    return OK


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
