"""Hand-scheduled tile programs: a double-buffered GEMM ``C = A @ B`` from DRAM to DRAM, for the
model tests, the tile RTL tests and ``benchmarks/tile.py`` (the compiler, issue 11, generalises
this; it is deliberately simple).

Schedule (docs/isa.md has the semantics):

* ``dma0`` loads, in the order the engine uses them: per M block the A block (all of K, one k
  tile of R columns per R partitions), then per N tile the W column (all of K for C columns);
* ``pe``: per (M block, N tile) and per k tile a ``LOAD_STATIONARY`` and a ``MULTIPLY_MOVING``
  (M block rows, accumulating over k into one PSUM bank);
* ``act``: per (M block, N tile) an ``ACT`` of the bank into a C buffer (int32 pass-through, or
  requantised with per-column scale/shift, zero point and ReLU);
* ``dma1`` stores the C buffer to DRAM.

A blocks, W columns, PSUM banks and C buffers are double-buffered, each with a FULL and a FREE
semaphore per buffer, so loads, multiplies, the ACT drain and the stores overlap. Every FREE
signal that nobody will wait for is left out, so a complete run ends with every semaphore at 0.
"""

from dataclasses import dataclass

import numpy as np

from systolica import isa
from systolica.codes import ACT_MODE_BYTES, ACT_MODE_FLOAT, ActMode
from systolica.config import TileConfig, dtype_numpy


__all__ = ["GemmPlan", "gemm_program", "run_gemm"]

# semaphore ids: (kind, buffer) -> id
_SEMS = {name: i for i, name in enumerate(
    (f"{kind}_{state}{b}" for kind in ("a", "w", "p", "c") for state in ("full", "free")
     for b in (0, 1)))}


@dataclass(frozen=True)
class GemmPlan:
    """What :func:`gemm_program` chose: block sizes and SBUF byte offsets (per partition)."""
    m: int
    k: int
    n: int
    m_block: int          # rows of A per block (<= a PSUM bank)
    a_buffers: int        # 1 or 2 A blocks resident
    k_tiles: int
    n_tiles: int
    a_offsets: tuple      # byte offset of each A buffer in every partition
    w_offsets: tuple      # byte offset of each W column buffer
    c_offsets: tuple      # byte offset of each C buffer
    sbuf_bytes_used: int  # per partition
    instructions: int


def _align(x, a=4):
    return -(-x // a) * a


def _choose_blocks(config, m, k_tiles, elem_a, elem_w, elem_c, m_block):
    s, p, rows = config.sbuf, config.psum, config.array.rows
    w_bytes = _align(k_tiles * rows * elem_w)
    cap = min(m, p.bank_rows, m_block or m)
    for a_buffers in ((2, 1) if cap < m else (1,)):
        fixed = 2 * w_bytes + 4 * a_buffers + 8
        per_row = a_buffers * k_tiles * elem_a + 2 * elem_c
        mb = min(cap, (s.partition_bytes - fixed) // per_row)
        if mb >= 1:
            return mb, a_buffers, w_bytes
    raise ValueError(f"gemm_program: K = {k_tiles} tiles of {rows} does not fit the SBUF's "
                     f"{s.partition_bytes} bytes per partition with double-buffered W; split K "
                     f"(the compiler does)")


def gemm_program(config: TileConfig, m, k, n, *, a_addr, b_addr, c_addr, out=ActMode.INT32,
                 scale=None, shift=None, zero_point=0, relu=False, m_block=None,
                 transposed=False, c_transposed=False):
    """``(Program, GemmPlan)`` for ``C = A @ B`` with A (m × k) at ``a_addr``, B (k × n) at
    ``b_addr`` and C (m × n, elements of ``out``) written to ``c_addr``, all row-major in DRAM
    (``transposed=True``: A is stored as A^T (k × m) and B as B^T (n × k), so every partition's
    data is one contiguous DRAM run; ``c_transposed=True``: C is written as C^T (n × m), so every
    partition's rows of a store are one contiguous run). ``out`` other than INT32 requantises
    with per-column
    ``scale`` / ``shift`` (length n), ``zero_point`` and ``relu``."""
    if not isinstance(config, TileConfig):
        raise TypeError(f"gemm_program config must be a TileConfig; got {config!r}")
    for name, value in (("m", m), ("k", k), ("n", n)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"gemm_program: {name} must be a positive integer; got {value!r}")
    if config.dma.queues < 2:
        raise ValueError("gemm_program needs dma.queues >= 2 (loads and stores on their own "
                         f"queues); got {config.dma.queues}")
    out = ActMode(out)
    if out != ActMode.INT32:
        scale, shift = list(scale), list(shift)
        if len(scale) != n or len(shift) != n:
            raise ValueError(f"gemm_program: scale and shift need n = {n} values each")
    a_cfg, s_cfg = config.array, config.sbuf
    rows, cols, pb = a_cfg.rows, a_cfg.cols, s_cfg.partition_bytes
    ea = dtype_numpy(a_cfg.moving_dtype).itemsize
    ew = dtype_numpy(a_cfg.stationary_dtype).itemsize
    ec = ACT_MODE_BYTES[out]
    k_tiles, n_tiles = -(-k // rows), -(-n // cols)
    mb, a_buffers, w_bytes = _choose_blocks(config, m, k_tiles, ea, ew, ec, m_block)
    m_blocks = -(-m // mb)
    w_offsets = (0, w_bytes)
    a_bytes = _align(k_tiles * mb * ea)
    a_offsets = tuple(2 * w_bytes + i * a_bytes for i in range(a_buffers))
    c_base = 2 * w_bytes + a_buffers * a_bytes
    c_bytes = _align(mb * ec)
    c_offsets = (c_base, c_base + c_bytes)
    used = c_base + 2 * c_bytes
    assert used <= pb
    banks = min(2, config.psum.banks)
    bank_rows = config.psum.bank_rows
    sem = _SEMS
    tiles = [(i, j) for i in range(m_blocks) for j in range(n_tiles)]
    total = len(tiles)

    def sync(waits=(), signals=()):
        return {"waits": [(sem[w], 1) for w in waits if w],
                "signals": [(sem[s], 1) for s in signals if s]}

    loads, pe, act_q, stores = [], [], [], []
    preload = out != ActMode.INT32 and n_tiles <= isa.ACT_PARAM_ENTRIES

    def params(entry, j):
        n0, nt = j * cols, min(cols, n - j * cols)
        return [isa.act_param(entry, g, scale[n0 + g:n0 + min(g + 8, nt)],
                              shift[n0 + g:n0 + min(g + 8, nt)]) for g in range(0, nt, 8)]

    if preload:
        for j in range(n_tiles):
            act_q += params(j, j)
    for i in range(m_blocks):
        m0, mbi = i * mb, min(mb, m - i * mb)
        b = i % a_buffers
        # --- A block: full k tiles in one descriptor, the partial one in another
        descs = []
        full, tail = k // rows, k % rows
        for t0, tcount, kt in ((0, full, rows), (full, 1 if tail else 0, tail)):
            if not tcount:
                continue
            dst = isa.sbuf(a_offsets[b] + t0 * mb * ea, (mbi, kt, tcount), (ea, pb, mb * ea))
            if transposed:
                src = isa.dram(a_addr + (t0 * rows * m + m0) * ea, (mbi, kt, tcount),
                               (ea, m * ea, rows * m * ea))
            else:
                src = isa.dram(a_addr + (m0 * k + t0 * rows) * ea, (mbi, kt, tcount),
                               (k * ea, ea, rows * ea))
            descs.append((src, dst))
        for d, (src, dst) in enumerate(descs):
            first, last = d == 0, d == len(descs) - 1
            loads.append(isa.dma_copy(src, dst, ea, **sync(
                waits=[f"a_free{b}" if first and i >= a_buffers else None],
                signals=[f"a_full{b}" if last else None])))
        for j in range(n_tiles):
            g = i * n_tiles + j
            n0, nt = j * cols, min(cols, n - j * cols)
            wb, bank, cb = g % 2, g % banks, g % 2
            # --- W column j: W[kk, n0 + c] in partition c at element w_offsets[wb]/ew + kk
            dst = isa.sbuf(w_offsets[wb], (k, nt), (ew, pb))
            src = (isa.dram(b_addr + n0 * k * ew, (k, nt), (ew, k * ew)) if transposed
                   else isa.dram(b_addr + n0 * ew, (k, nt), (n * ew, ew)))
            loads.append(isa.dma_copy(src, dst, ew, **sync(
                waits=[f"w_free{wb}" if g >= 2 else None], signals=[f"w_full{wb}"])))
            # --- PE: LOAD + MULTIPLY per k tile, accumulating into one bank
            for t in range(k_tiles):
                kt = min(rows, k - t * rows)
                first, last = t == 0, t == k_tiles - 1
                pe.append(isa.load_stationary(w_offsets[wb] // ew + t * rows, kt, nt, **sync(
                    waits=[f"w_full{wb}" if first else None],
                    signals=[f"w_free{wb}" if last and g + 2 < total else None])))
                pe.append(isa.multiply_moving(
                    a_offsets[b] // ea + t * mb, mbi, bank * bank_rows, accumulate=not first,
                    **sync(waits=[f"a_full{b}" if first and j == 0 else None,
                                  f"p_free{bank}" if first and g >= banks else None],
                           signals=[f"p_full{bank}" if last else None,
                                    f"a_free{b}" if last and j == n_tiles - 1
                                    and i + a_buffers < m_blocks else None])))
            # --- ACT: the bank into C buffer cb
            entry = 0
            if out != ActMode.INT32:
                entry = j if preload else g % 2
                if not preload:
                    act_q += params(entry, j)
            act_q.append(isa.act(bank * bank_rows, mbi, c_offsets[cb] // ec, nt, mode=out,
                                 relu=relu, zero_point=zero_point, param=entry, **sync(
                                     waits=[f"p_full{bank}", f"c_free{cb}" if g >= 2 else None],
                                     signals=[f"p_free{bank}" if g + banks < total else None,
                                              f"c_full{cb}"])))
            # --- store C buffer cb: partition c, element i -> C[m0 + i, n0 + c]
            c_dst = (isa.dram(c_addr + (n0 * m + m0) * ec, (mbi, nt), (ec, m * ec)) if c_transposed
                     else isa.dram(c_addr + (m0 * n + n0) * ec, (mbi, nt), (n * ec, ec)))
            stores.append(isa.dma_copy(
                isa.sbuf(c_offsets[cb], (mbi, nt), (ec, pb)), c_dst, ec,
                **sync(waits=[f"c_full{cb}"],
                       signals=[f"c_free{cb}" if g + 2 < total else None])))
    program = isa.Program.build(config, {"dma0": loads, "dma1": stores, "pe": pe,
                                         "act": act_q})
    plan = GemmPlan(m, k, n, mb, a_buffers, k_tiles, n_tiles, a_offsets, w_offsets, c_offsets,
                    used, program.instructions)
    return program, plan


_OUT_DTYPES = {ActMode.INT8: np.int8, ActMode.UINT8: np.uint8, ActMode.INT16: np.int16,
               ActMode.INT32: np.int32, ActMode.FP32: np.float32,
               **{mode: dtype_numpy(name) for mode, name in ACT_MODE_FLOAT.items()
                  if name != "float32"}}


def run_gemm(model, a, b, *, out=ActMode.INT32, scale=None, shift=None, zero_point=0,
             relu=False, m_block=None, transposed=False, c_transposed=False, seed=None, base=0):
    """Place ``a`` and ``b`` in ``model``'s DRAM from byte ``base``, run :func:`gemm_program`
    on it and return ``(C, RunResult, Program, GemmPlan)``."""
    config = model.config
    a, b = np.asarray(a), np.asarray(b)
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise ValueError(f"run_gemm: shapes {a.shape} and {b.shape} do not multiply")
    a_stored = a.T if transposed else a
    b_stored = b.T if transposed else b
    a_addr = base
    b_addr = _align(a_addr + a.nbytes, 64)
    c_addr = _align(b_addr + b.nbytes, 64)
    model.write_dram(a_addr, np.ascontiguousarray(
        a_stored, dtype=dtype_numpy(config.array.moving_dtype)))
    model.write_dram(b_addr, np.ascontiguousarray(
        b_stored, dtype=dtype_numpy(config.array.stationary_dtype)))
    program, plan = gemm_program(config, m, k, n, a_addr=a_addr, b_addr=b_addr, c_addr=c_addr,
                                 out=out, scale=scale, shift=shift, zero_point=zero_point,
                                 relu=relu, m_block=m_block, transposed=transposed,
                                 c_transposed=c_transposed)
    result = model.run(program.encode(), seed=seed)
    dtype = _OUT_DTYPES[ActMode(out)]
    c = (model.read_dram(c_addr, (n, m), dtype).T if c_transposed
         else model.read_dram(c_addr, (m, n), dtype))
    return c, result, program, plan
