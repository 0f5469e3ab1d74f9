"""Tiling of one GEMM layer ``C = A @ W`` onto a tile: the :class:`GemmPlan` (block sizes, loop
order, SBUF buffers, PSUM slots, predicted DRAM traffic and cycles) and :func:`plan_gemm`, which
searches the block sizes that fit the config's SBUF and PSUM and picks the fastest by the
closed-form estimate of :mod:`.perf` (as Gemmini's ``tiled_matmul_auto`` picks tiling factors
within the scratchpad, but with the reason printed).

Loop order (outer to inner), the same for every plan::

    for each M block i (m_block rows <= one PSUM bank):
      for each N group g (n_group tiles of C columns, one PSUM slot each):
        for each K chunk kc (k_chunk tiles of R rows):
          DMA: A(i, kc) into an A buffer (skipped when the chunk is already there)
               W(kc, g) into a W buffer (once per layer when W is resident)
          PE:  for each N tile of g: one MATMUL for the k tiles of kc (LOAD_STATIONARY +
               MULTIPLY_MOVING per k tile)
               (accumulating over all of K in the tile's PSUM slot)
        ACT: each slot of g -> a C buffer (or straight into the next layer's activations);
        DMA: each C buffer -> DRAM

A buffers, W buffers, PSUM slots and C buffers are rings (two buffers where they fit), so the
next loads run while the engine computes and the ACT drains while the engine fills other slots.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from systolica.codes import ACT_MODE_BYTES, ActMode
from systolica.config import TileConfig, dtype_numpy

__all__ = ["CompileError", "DramMatrix", "Buffer", "GemmPlan", "plan_gemm", "ALIGN"]

#: Every SBUF buffer starts at a multiple of this many bytes (and of the SBUF word).
ALIGN = 8


class CompileError(ValueError):
    """The compiler cannot build the requested program; the message names the parameter."""


def _ceil(a, b):
    return -(-a // b)


def _align(x, a):
    return _ceil(x, a) * a


@dataclass(frozen=True)
class DramMatrix:
    """A matrix of ``rows`` × ``cols`` elements of ``elem_bytes`` at DRAM byte ``addr``:
    ``transposed=True`` stores it as its transpose, row-major (column ``c`` is one contiguous run:
    what the SBUF's one-partition-per-channel layout wants), else row-major."""
    addr: int
    rows: int
    cols: int
    elem_bytes: int
    transposed: bool = True

    @property
    def nbytes(self):
        return self.rows * self.cols * self.elem_bytes

    @property
    def end(self):
        return self.addr + self.nbytes

    def strides(self):
        """Byte strides of (row, column)."""
        e = self.elem_bytes
        return (e, self.rows * e) if self.transposed else (self.cols * e, e)

    def at(self, row, col):
        sr, sc = self.strides()
        return self.addr + row * sr + col * sc


@dataclass(frozen=True)
class Buffer:
    """An SBUF region in every partition: ``count`` buffers of ``bytes`` from byte ``offset``."""
    name: str
    offset: int
    bytes: int
    count: int

    @property
    def end(self):
        return self.offset + self.bytes * self.count

    def slot(self, use):
        return self.offset + (use % self.count) * self.bytes


@dataclass(frozen=True)
class GemmPlan:
    """How one layer ``C (m × n) = A (m × k) @ W (k × n)`` is tiled (see the module docstring).
    Sizes in rows/columns/tiles; ``buffers`` in bytes per SBUF partition."""
    m: int
    k: int
    n: int
    rows: int                   # R: k rows per tile
    cols: int                   # C: n columns per tile
    moving_dtype: str
    out_mode: ActMode
    m_block: int
    k_chunk: int                # k tiles per K chunk
    n_group: int                # n tiles per N group (PSUM slots in use at once)
    a_source: str               # "dram" or "sbuf" (the previous layer's activations)
    c_dest: str                 # "dram" or "sbuf" (kept for the next layer)
    w_resident: bool            # all of W loaded once
    psum_slots: int
    buffers: tuple = ()         # Buffer, per partition
    sbuf_bytes: int = 0         # per partition in the config
    dram_bytes: int = 0         # predicted DRAM traffic (data, no program)
    min_dram_bytes: int = 0     # every input read once, the output written once
    predicted_cycles: int = 0   # closed-form estimate (perf.estimate_plan)
    bound: str = ""             # the resource that bounds the estimate
    candidates: int = 0         # plans that fit and were compared
    notes: tuple = field(default=())
    a_pieces: int = 1           # each A load in pieces of K tiles, each signalled on its own

    @property
    def m_blocks(self):
        return _ceil(self.m, self.m_block)

    @property
    def k_tiles(self):
        return _ceil(self.k, self.rows)

    @property
    def k_chunks(self):
        return _ceil(self.k_tiles, self.k_chunk)

    @property
    def n_tiles(self):
        return _ceil(self.n, self.cols)

    @property
    def n_groups(self):
        return _ceil(self.n_tiles, self.n_group)

    @property
    def loop_order(self):
        return (f"M block ({self.m_blocks} x {self.m_block} rows) > N group ({self.n_groups} x "
                f"{self.n_group} tiles of {self.cols}) > K chunk ({self.k_chunks} x "
                f"{self.k_chunk} tiles of {self.rows}) > N tile > k tile")

    @property
    def macs(self):
        return self.m * self.k * self.n

    @property
    def sbuf_bytes_used(self):
        return max((b.end for b in self.buffers), default=0)

    def buffer(self, name):
        for b in self.buffers:
            if b.name == name:
                return b
        return None

    def to_dict(self):
        return {
            "m": self.m, "k": self.k, "n": self.n, "rows": self.rows, "cols": self.cols,
            "moving_dtype": self.moving_dtype, "out": self.out_mode.name.lower(),
            "m_block": self.m_block, "m_blocks": self.m_blocks, "k_chunk": self.k_chunk,
            "k_chunks": self.k_chunks, "k_tiles": self.k_tiles, "n_group": self.n_group,
            "n_groups": self.n_groups, "n_tiles": self.n_tiles, "loop_order": self.loop_order,
            "a_source": self.a_source, "c_dest": self.c_dest, "w_resident": self.w_resident,
            "psum_slots": self.psum_slots,
            "buffers": {b.name: {"offset": b.offset, "bytes": b.bytes, "count": b.count}
                        for b in self.buffers},
            "sbuf_bytes_used": self.sbuf_bytes_used, "sbuf_bytes": self.sbuf_bytes,
            "dram_bytes": self.dram_bytes, "min_dram_bytes": self.min_dram_bytes,
            "predicted_cycles": self.predicted_cycles, "bound": self.bound,
            "candidates": self.candidates, "notes": list(self.notes), "a_pieces": self.a_pieces,
        }

    def __str__(self):
        lines = [
            f"GEMM {self.m} x {self.k} x {self.n} ({self.moving_dtype} -> "
            f"{self.out_mode.name.lower()}) on a {self.rows}x{self.cols} array",
            f"  loop order:   {self.loop_order}",
            f"  A from {self.a_source}, C to {self.c_dest}, W "
            f"{'resident (loaded once)' if self.w_resident else 'streamed per M block'}, "
            f"{self.psum_slots} PSUM slots of {self.m_block} rows",
            f"  SBUF per partition: {self.sbuf_bytes_used} of {self.sbuf_bytes} bytes",
        ]
        for b in self.buffers:
            lines.append(f"    {b.name:<8} {b.count} x {b.bytes:>6} B at {b.offset}")
        ratio = self.dram_bytes / self.min_dram_bytes if self.min_dram_bytes else 1.0
        lines.append(f"  DRAM traffic: {self.dram_bytes} bytes predicted, minimum "
                     f"{self.min_dram_bytes} ({ratio:.2f}x)")
        lines.append(f"  estimate:     {self.predicted_cycles} cycles, bound by {self.bound} "
                     f"(best of {self.candidates} plans that fit)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _m_block_candidates(m, bank_rows):
    out = set()
    cap = min(m, bank_rows)
    mb = cap
    while mb >= 1:
        out.add(_ceil(m, _ceil(m, mb)))   # balanced blocks of at most mb rows
        mb //= 2
    return sorted(out, reverse=True)


def _chunk_candidates(tiles, limit=16):
    out = sorted({_ceil(tiles, c) for c in range(1, tiles + 1)}, reverse=True)
    return out[:limit] + ([1] if 1 not in out[:limit] else [])


def plan_gemm(config: TileConfig, m, k, n, *, out_mode=ActMode.INT32, a_source="dram",
              c_dest="dram", reserved=0, m_block=None, k_chunk=None, n_group=None,
              w_resident=None, alternatives=1):
    """Of the :class:`GemmPlan` s that fit ``config`` with ``reserved`` bytes per partition kept
    for resident activations (at the top of every partition) and whose estimate
    (:func:`systolica.compiler.perf.estimate_plan`) is within 1 % of the fastest, the one with
    the least DRAM traffic counting its program image. ``m_block``, ``k_chunk``, ``n_group``,
    ``w_resident`` force a choice. ``alternatives`` > 1 returns up to that many of those plans,
    least traffic first (the compiler times their programs instruction by instruction)."""
    from .perf import estimate_plan, program_bytes_estimate
    if not isinstance(config, TileConfig):
        raise TypeError(f"plan_gemm config must be a TileConfig; got {config!r}")
    for name, value in (("m", m), ("k", k), ("n", n)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise CompileError(f"{name} must be a positive integer; got {value!r}")
    m, k, n = int(m), int(k), int(n)
    out_mode = ActMode(out_mode)
    a_cfg, p_cfg = config.array, config.psum
    R, C = a_cfg.rows, a_cfg.cols
    ea = dtype_numpy(a_cfg.moving_dtype).itemsize
    ew = dtype_numpy(a_cfg.stationary_dtype).itemsize
    ec = ACT_MODE_BYTES[out_mode]
    align = max(ALIGN, config.sbuf.word_bytes)
    budget = config.sbuf.partition_bytes - reserved
    k_tiles, n_tiles = _ceil(k, R), _ceil(n, C)
    min_bytes = ((m * k * ea if a_source == "dram" else 0) + k * n * ew
                 + (m * n * ec if c_dest == "dram" else 0))
    best, fits = None, 0
    ranked = []
    mbs = [m_block] if m_block else _m_block_candidates(m, p_cfg.bank_rows)
    for mb in mbs:
        if mb > p_cfg.bank_rows:
            raise CompileError(f"m_block must be <= psum.bank_rows = {p_cfg.bank_rows}; got {mb}")
        slots_max = p_cfg.banks * (p_cfg.bank_rows // mb)
        m_blocks = _ceil(m, mb)
        for kc in ([k_chunk] if k_chunk else _chunk_candidates(k_tiles)):
            kc = min(kc, k_tiles)
            k_chunks = _ceil(k_tiles, kc)
            groups = [n_group] if n_group else range(1, min(n_tiles, max(1, slots_max // 2)) + 1)
            for ng in groups:
                if ng > slots_max:
                    continue
                slots = min(slots_max, 2 * ng, _ceil(n_tiles, ng) * ng * m_blocks)
                a_loads = 0 if a_source != "dram" else (
                    m_blocks * k_chunks * (_ceil(n_tiles, ng) if k_chunks > 1 else 1))
                a_bytes = _align(kc * mb * ea, align) if a_source == "dram" else 0
                c_bytes = _align(mb * ec, align) if c_dest == "dram" else 0
                c_count = 2 if m_blocks * n_tiles > 1 else 1
                for resident in ([w_resident] if w_resident is not None else (True, False)):
                    if resident:
                        w_bytes, w_count = _align(n_tiles * k * ew, align), 1
                    else:
                        w_bytes = _align(ng * min(kc * R, k) * ew, align)
                        w_count = 2 if m_blocks * _ceil(n_tiles, ng) * k_chunks > 1 else 1
                    for a_count in ((2, 1) if a_loads > 1 else (1,)):
                        used = a_count * a_bytes + w_count * w_bytes + c_count * c_bytes
                        if a_source == "dram" and a_bytes == 0:
                            continue
                        if used > budget:
                            continue
                        fits += 1
                        buffers = []
                        at = 0
                        for name, size, count in (("w", w_bytes, w_count), ("a", a_bytes, a_count),
                                                  ("c", c_bytes, c_count)):
                            if size:
                                buffers.append(Buffer(name, at, size, count))
                                at += size * count
                        plan = GemmPlan(
                            m, k, n, R, C, a_cfg.moving_dtype, out_mode, mb, kc, ng, a_source,
                            c_dest, resident, slots, tuple(buffers),
                            config.sbuf.partition_bytes, 0, min_bytes)
                        cycles, bound, dram_bytes = estimate_plan(config, plan)
                        key = (cycles, dram_bytes, -mb)
                        ranked.append((key, plan, cycles, bound, dram_bytes))
                        if best is None or key < best[0]:
                            best = (key, plan, cycles, bound, dram_bytes)
                        break   # fewer A buffers only when two do not fit
    if best is None:
        need = f"K chunk of one {R}-row tile and one row of M"
        raise CompileError(
            f"GEMM {m}x{k}x{n} does not fit the SBUF: {budget} bytes per partition available "
            f"(sbuf.depth x sbuf.word_bytes = {config.sbuf.partition_bytes}, {reserved} kept for "
            f"activations) is too small even for a {need}; raise sbuf.depth")
    # within 1 % of the fastest, the least DRAM traffic with the program image wins: since
    # MATMUL, small M blocks cost the engine almost nothing but fetch and ACT/store work
    near = sorted((r for r in ranked if r[2] <= best[2] * 1.01),
                  key=lambda r: (r[4] + program_bytes_estimate(r[1]), r[0]))
    if alternatives > 1:
        return [_finish(r, fits, m, p_cfg) for r in near[:alternatives]]
    best = near[0]
    return _finish(best, fits, m, p_cfg)


def _finish(ranked, fits, m, p_cfg):
    """The plan of one ``ranked`` entry with its estimate, candidate count and notes."""
    _, plan, cycles, bound, dram_bytes = ranked
    notes = []
    if plan.k_chunks > 1:
        notes.append(f"K split into {plan.k_chunks} chunks (all of K does not fit the SBUF with "
                     f"{plan.m_block}-row M blocks); A is reloaded once per N group")
    if plan.m_block < min(m, p_cfg.bank_rows):
        notes.append(f"M block {plan.m_block} < {min(m, p_cfg.bank_rows)} rows: fewer rows per "
                     f"MATMUL, more instruction fetch")
    return replace(plan, dram_bytes=dram_bytes, predicted_cycles=cycles, bound=bound,
                   candidates=fits, notes=tuple(notes))
