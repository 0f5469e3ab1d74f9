"""Scheduling: a list of :class:`Stage` (one planned GEMM layer each) into ONE
:class:`~systolica.isa.Program` with compiler-generated semaphores.

Queues: ``dma0`` loads (A chunks, W chunks), ``pe`` runs one MATMUL per (M block, N tile, k run:
the k tiles of a step, cut where a new piece of A arrives), ``act`` drains PSUM slots (with ACT_PARAM for requantising layers), ``dma1`` stores C buffers.

**Rings.** A buffers, W buffers, PSUM slots and C buffers are rings between one producer queue
and one consumer queue, each with a FULL and a FREE counting semaphore: the producer of use ``u``
waits FREE when ``u >= size`` (the buffer it reuses has been released) and signals FULL when the
buffer is filled; the consumer waits FULL before its first read and signals FREE after its last
read unless nobody will wait for it (``u + size >= uses``), so every semaphore ends at 0. The
queues are in order and signals apply in program order (docs/isa.md), so the k-th wait of a ring
always takes the k-th signal.

**Stage fences** (between layers, NOPs): ``pe`` waits until ``act`` has drained the previous
layer (its PSUM slots are free and its activations are in the SBUF), ``dma0`` until ``pe`` has
read the previous layer's buffers and ``dma1`` has stored them, ``act`` until ``dma1`` has read
its C buffers. Buffers of all layers share one scratch area; the activations kept in the SBUF
between layers live above it, ping-pong.
"""

from dataclasses import dataclass

import numpy as np

from systolica import isa
from systolica.codes import ACT_MODE_BYTES, ActMode
from systolica.config import TileConfig, dtype_numpy

from .plan import CompileError, DramMatrix, GemmPlan, _ceil

__all__ = ["ActSpec", "Stage", "emit", "with_sync", "DramSource", "SEMAPHORE_NAMES"]

SEMAPHORE_NAMES = ("a_full", "a_free", "w_full", "w_free", "p_full", "p_free", "c_full", "c_free",
                   "pe_done", "act_done", "stored_dma", "stored_act")
_SEM = {name: i for i, name in enumerate(SEMAPHORE_NAMES)}


@dataclass(frozen=True)
class ActSpec:
    """What the ACT unit does to a layer's accumulators: ``mode`` (INT32 passes them through),
    per-column ``scale`` / ``shift`` (length n) for the other modes, ``zero_point``, ``relu``."""
    mode: ActMode = ActMode.INT32
    scale: tuple = None
    shift: tuple = None
    zero_point: int = 0
    relu: bool = False


@dataclass(frozen=True)
class Stage:
    """One layer: its plan, where A comes from (a :class:`DramMatrix`, or ``None``: the SBUF
    activations at byte ``x_in`` of every partition, ``x_stride`` elements per k tile) and where C
    goes (a :class:`DramMatrix`, or ``None``: the SBUF at ``x_out``), W in DRAM, the ACT."""
    plan: GemmPlan
    w: DramMatrix
    a: DramMatrix = None
    c: DramMatrix = None
    x_in: int = None
    x_out: int = None
    act: ActSpec = ActSpec()


class _Ring:
    def __init__(self, name, size, uses):
        self.full, self.free = _SEM[f"{name}_full"], _SEM[f"{name}_free"]
        self.size, self.uses = size, uses

    def wait_free(self, u):
        return [(self.free, 1)] if u >= self.size else []

    def wait_full(self):
        return [(self.full, 1)]

    def signal_full(self):
        return [(self.full, 1)]

    def signal_free(self, u):
        return [(self.free, 1)] if u + self.size < self.uses else []


def _steps(plan):
    """(i, g, kc) in loop order, with whether the step loads a new A chunk."""
    out = []
    for i in range(plan.m_blocks):
        for g in range(plan.n_groups):
            for kc in range(plan.k_chunks):
                new_a = plan.k_chunks > 1 or g == 0
                out.append((i, g, kc, new_a))
    return out


def _check_count(what, value, config):
    limit = (1 << min(16, config.dma.count_bits)) - 1
    if value > limit:
        raise CompileError(f"{what} = {value} elements exceeds a DMA count field "
                           f"({limit}); use a smaller m_block or a wider dma.count_bits")


class _ActParams:
    """Which (stage, N tile) parameters each of the 8 ACT parameter entries holds; a new one
    replaces the least recently used entry, never the one the previous ACT uses (still running
    when ACT_PARAM executes)."""

    def __init__(self):
        self.held = {}      # entry -> key
        self.last_use = {e: -1 - e for e in range(isa.ACT_PARAM_ENTRIES)}
        self.clock = 0

    def entry(self, key, scale, shift, out):
        self.clock += 1
        for e, k in self.held.items():
            if k == key:
                self.last_use[e] = self.clock
                return e
        e = min(self.last_use, key=self.last_use.get)
        self.held[e] = key
        self.last_use[e] = self.clock
        for g in range(0, len(scale), isa.ACT_PARAM_GROUP):
            out.append(isa.act_param(e, g, scale[g:g + isa.ACT_PARAM_GROUP],
                                     shift[g:g + isa.ACT_PARAM_GROUP]))
        return e


def with_sync(insns, waits, signals):
    """``insns`` with ``waits`` on the first and ``signals`` on the last."""
    insns = list(insns)
    if waits:
        insns[0] = insns[0].replace(waits=waits)
    if signals:
        insns[-1] = insns[-1].replace(signals=signals)
    return insns


def _merged(pairs):
    """(semaphore, count) pairs with one pair per semaphore (counts added)."""
    out = {}
    for sem, count in pairs:
        out[sem] = out.get(sem, 0) + count
    return list(out.items())


def _synced(insn, waits, signals):
    """``insn`` with ``waits`` and ``signals``; those beyond the two an instruction has go on
    NOPs before it (waits) and after it (signals: a NOP retires in order, once ``insn`` has)."""
    waits = [w[i:i + 2] for w in [_merged(waits)] for i in range(0, len(w), 2)] or [[]]
    signals = [s[i:i + 2] for s in [_merged(signals)] for i in range(0, len(s), 2)] or [[]]
    return [isa.nop(waits=w) for w in waits[:-1]] + \
        [insn.replace(waits=waits[-1], signals=signals[0])] + \
        [isa.nop(signals=s) for s in signals[1:]]


class DramSource:
    """Where a ring's operands come from: the default source copies them from DRAM on
    ``queue`` (``dma0``), one use at a time: the first copy of a use waits FREE, the last copy
    of every piece signals FULL. The mesh compiler gives each tile a source of its own
    (operands forwarded over the NoC: :mod:`.mesh`)."""

    def __init__(self, queue="dma0"):
        self.queue = queue

    def load(self, kind, use, ring, pieces, queues):
        """Emit the loads of use ``use`` of ring ``kind`` (``"a"`` or ``"w"``): ``pieces`` is
        a list of DRAM -> SBUF copy lists; the PE waits FULL once per piece."""
        out = queues.setdefault(self.queue, [])
        for p, descs in enumerate(pieces):
            out += with_sync(descs, ring.wait_free(use) if p == 0 else [], ring.signal_full())

    def finish(self, queues):
        """Called once after the last stage (a source may have instructions left to emit)."""


def emit(config: TileConfig, stages, *, source=None, build_for=None):
    """The :class:`~systolica.isa.Program` of ``stages`` (see the module docstring).
    ``source``: where A and W come from (default :class:`DramSource`); ``build_for``: the
    config the program is built for (a :class:`~systolica.config.ChipConfig` for a chip's
    tile; default ``config``)."""
    if not isinstance(config, TileConfig):
        raise TypeError(f"emit config must be a TileConfig; got {config!r}")
    if config.dma.queues < 2:
        raise CompileError(f"the compiler needs dma.queues >= 2 (loads and stores on their own "
                           f"queues); got {config.dma.queues}")
    a_cfg = config.array
    R, C = a_cfg.rows, a_cfg.cols
    pb = config.sbuf.partition_bytes
    bank_rows = config.psum.bank_rows
    ea = dtype_numpy(a_cfg.moving_dtype).itemsize
    ew = dtype_numpy(a_cfg.stationary_dtype).itemsize
    loads, pe, act, stores = [], [], [], []
    queues = {"dma0": loads, "dma1": stores, "pe": pe, "act": act}
    source = DramSource() if source is None else source
    params = _ActParams()
    s = _SEM
    for si, st in enumerate(stages):
        plan = st.plan
        mode = ActMode(st.act.mode)
        ec = ACT_MODE_BYTES[mode]
        m, k, n = plan.m, plan.k, plan.n
        mb, kc_tiles, ng = plan.m_block, plan.k_chunk, plan.n_group
        steps = _steps(plan)
        a_uses = sum(1 for step in steps if step[3]) if st.a is not None else 0
        w_uses = 1 if plan.w_resident else len(steps)
        tiles = plan.m_blocks * plan.n_tiles
        a_buf, w_buf, c_buf = plan.buffer("a"), plan.buffer("w"), plan.buffer("c")
        a_ring = _Ring("a", a_buf.count, a_uses) if st.a is not None else None
        w_ring = _Ring("w", w_buf.count, w_uses)
        p_ring = _Ring("p", plan.psum_slots, tiles)
        c_ring = _Ring("c", c_buf.count, tiles) if st.c is not None else None
        if si:
            prev = stages[si - 1]
            loads.append(isa.nop(waits=[(s["pe_done"], 1)] + (
                [(s["stored_dma"], 1)] if prev.c is not None else [])))
            pe.append(isa.nop(waits=[(s["act_done"], 1)]))
            if prev.c is not None:
                act.append(isa.nop(waits=[(s["stored_act"], 1)]))
        def psum_row(u):
            slot = u % plan.psum_slots
            return (slot % config.psum.banks) * bank_rows + (slot // config.psum.banks) * mb

        # --- W: resident (one load for the layer) or one chunk per step
        def w_descriptors(k0, krows, j0, count_tiles, dst_base, tile_stride_elems):
            """Descriptors for W[k0:k0+krows, tiles j0..] into partitions c at element
            dst_base/ew + jl * tile_stride + kk."""
            out = []
            sr, sc = st.w.strides()
            full = [j for j in range(j0, j0 + count_tiles) if min(C, n - j * C) == C]
            tail = [j for j in range(j0, j0 + count_tiles) if min(C, n - j * C) < C]
            for group, nt in ((full, C), (tail, n - tail[0] * C if tail else 0)):
                if not group:
                    continue
                jl0 = group[0] - j0
                _check_count("W rows per chunk", krows, config)
                src = isa.dram(st.w.at(k0, group[0] * C), (krows, nt, len(group)),
                               (sr, sc, C * sc))
                dst = isa.sbuf(dst_base + jl0 * tile_stride_elems * ew, (krows, nt, len(group)),
                               (ew, pb, tile_stride_elems * ew))
                out.append(isa.dma_copy(src, dst, ew))
            return out

        if plan.w_resident:
            w_stride = k        # loaded one N tile at a time, each just before its first use
        else:
            w_stride = min(kc_tiles * R, k)
        u_a = u_w = 0
        for (i, g, kc, new_a) in steps:
            m0, mbi = i * mb, min(mb, m - i * mb)
            t0, t1 = kc * kc_tiles, min(plan.k_tiles, (kc + 1) * kc_tiles)
            k0, krows = t0 * R, min(k, t1 * R) - t0 * R
            j0, j1 = g * ng, min(plan.n_tiles, (g + 1) * ng)
            load_a = st.a is not None and new_a
            piece_starts = ()
            if load_a:
                _check_count("M block rows", mbi, config)
                sr, sc = st.a.strides()
                base = a_buf.slot(u_a)
                pieces = []
                per_piece = _ceil(t1 - t0, max(1, min(plan.a_pieces, t1 - t0)))
                for p0 in range(t0, t1, per_piece):
                    p1 = min(t1, p0 + per_piece)
                    prows = min(k, p1 * R) - p0 * R
                    descs = []
                    full, tail = (prows // R), prows % R
                    for tl0, count, kt in ((0, full, R), (full, 1 if tail else 0, tail)):
                        if not count:
                            continue
                        t_first = p0 - t0 + tl0
                        src = isa.dram(st.a.at(m0, k0 + t_first * R), (mbi, kt, count),
                                       (sr, sc, R * sc))
                        dst = isa.sbuf(base + t_first * mb * ea, (mbi, kt, count),
                                       (ea, pb, mb * ea))
                        descs.append(isa.dma_copy(src, dst, ea))
                    pieces.append(descs)
                piece_starts = range(t0 + per_piece, t1, per_piece)
                source.load("a", u_a, a_ring, pieces, queues)
            load_w = not plan.w_resident
            if load_w:
                source.load("w", u_w, w_ring,
                            [w_descriptors(k0, krows, j0, j1 - j0, w_buf.slot(u_w), w_stride)],
                            queues)
            # resident W: one piece per N tile, each signalling on its own, so the engine starts
            # on the first tile instead of waiting for all of W (the fill)
            first_use = plan.w_resident and i == 0 and kc == 0
            if first_use:
                source.load("w", 0, w_ring,
                            [w_descriptors(0, k, j, 1, w_buf.offset + j * w_stride * ew, w_stride)
                             for j in range(j0, j1)], queues)
            # --- PE
            first_w_wait = w_ring.wait_full() if load_w else []
            first_a_wait = a_ring.wait_full() if load_a else []
            if st.a is not None:
                a_base = a_buf.slot(u_a) // ea

                def a_offset(t):
                    return a_base + (t - t0) * mb
            else:
                def a_offset(t):
                    return st.x_in // ea + t * m + m0
            w_base = (w_buf.offset if plan.w_resident else w_buf.slot(u_w)) // ew
            releases_a = st.a is not None and (plan.k_chunks > 1 or g == plan.n_groups - 1)
            releases_w = (not plan.w_resident) or (i == plan.m_blocks - 1 and
                                                   g == plan.n_groups - 1 and
                                                   kc == plan.k_chunks - 1)
            for j in range(j0, j1):
                nt = min(C, n - j * C)
                u = i * plan.n_tiles + j          # PSUM ring use: tiles in first-use order
                # one MATMUL per run of k tiles; the first N tile of a step starts a new one
                # where the next piece of A arrives (its wait comes before that tile's load)
                cuts = [t for t in piece_starts if j == j0]
                for s0, s1 in zip([t0] + cuts, cuts + [t1]):
                    first, last = (j == j0 and s0 == t0), (j == j1 - 1 and s1 == t1)
                    woff = w_base + (j - (0 if plan.w_resident else j0)) * w_stride + \
                        (s0 * R if plan.w_resident else (s0 - t0) * R)
                    tile_first = kc == 0 and s0 == t0
                    tile_last = kc == plan.k_chunks - 1 and s1 == t1
                    waits = []
                    if first_use and s0 == t0:
                        waits += w_ring.wait_full()
                    if first:
                        waits += first_w_wait + first_a_wait
                    if tile_first:
                        waits += p_ring.wait_free(u)
                    if s0 != t0:                      # the next piece of A has arrived
                        waits += a_ring.wait_full()
                    sigs = list(p_ring.signal_full()) if tile_last else []
                    if last and releases_a:
                        sigs += a_ring.signal_free(u_a)
                    if last and releases_w:
                        sigs += w_ring.signal_free(u_w if not plan.w_resident else 0)
                    pe += _synced(isa.matmul(
                        a_offset(s0), mbi, psum_row(u), w_offset=woff, tiles=s1 - s0,
                        k_last=min(R, k - (s1 - 1) * R), n=nt, a_step=a_offset(s0 + 1) -
                        a_offset(s0), w_step=R, accumulate=not tile_first), waits, sigs)
            if st.a is not None and releases_a:
                u_a += 1
            if not plan.w_resident:
                u_w += 1
            # --- ACT and stores for the tiles this step finished
            if kc == plan.k_chunks - 1:
                for j in range(j0, j1):
                    nt = min(C, n - j * C)
                    u = i * plan.n_tiles + j
                    entry = 0
                    if mode != ActMode.INT32:
                        entry = params.entry((si, j), st.act.scale[j * C:j * C + nt],
                                             st.act.shift[j * C:j * C + nt], act)
                    if st.c is not None:
                        offset = c_buf.slot(u) // ec
                        waits = p_ring.wait_full() + c_ring.wait_free(u)
                        signals = p_ring.signal_free(u) + c_ring.signal_full()
                    else:
                        offset = st.x_out // ec + j * m + m0
                        waits = p_ring.wait_full()
                        signals = p_ring.signal_free(u)
                    act.append(isa.act(psum_row(u), mbi, offset, nt, mode=mode,
                                       relu=st.act.relu, zero_point=st.act.zero_point,
                                       param=entry, waits=waits, signals=signals))
                    if st.c is not None:
                        sr, sc = st.c.strides()
                        stores.append(isa.dma_copy(
                            isa.sbuf(c_buf.slot(u), (mbi, nt), (ec, pb)),
                            isa.dram(st.c.at(m0, j * C), (mbi, nt), (sr, sc)), ec,
                            waits=c_ring.wait_full(), signals=c_ring.signal_free(u)))
        if si < len(stages) - 1:
            pe.append(isa.nop(signals=[(s["pe_done"], 1)]))
            act.append(isa.nop(signals=[(s["act_done"], 1)]))
            if st.c is not None:
                stores.append(isa.nop(signals=[(s["stored_dma"], 1), (s["stored_act"], 1)]))
    source.finish(queues)
    return isa.Program.build(config if build_for is None else build_for, queues)
