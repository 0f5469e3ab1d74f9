"""A GEMM split over a chip's mesh (docs/compiler.md, "The chip"): ``C = A @ B`` with output
blocks on a 2-D grid of tiles, each tile running the single-tile plan and schedule
(:mod:`.plan`, :mod:`.schedule`) of its block, with its operands shared over the NoC.

**Blocking.** The used grid is ``grid_x`` x ``grid_y`` tiles (at most the mesh): tile ``(x, y)``
computes ``C[y*mt:(y+1)*mt, x*nt:(x+1)*nt] = A_y @ B_x`` with ``A_y`` the ``mt`` x K row
block and ``B_x`` the K x ``nt`` column block. Every tile has the same block sizes (the matrices
are padded with zeros to ``grid_y*mt`` x K x ``grid_x*nt`` in DRAM), so every tile runs the same
plan and SBUF layout and a forwarded buffer lands where the receiver's plan expects it.

**Sharing** (tt-metal's multi-core reuse, with unicast rings instead of multicast): the tiles
of mesh row y form a ring for ``A_y``, the tiles of column x a ring for ``B_x``. One tile of each
ring (its *reader*) reads every use of the operand from DRAM and writes it straight into its
successor's SBUF (``DMA_COPY`` DRAM -> ``REMOTE_SBUF``); every other tile forwards what it
received from its own SBUF to its successor; the reader gets its copy last, from its
predecessor. So every tile injects each operand exactly once and its AXI master reads only what
it is the reader of; the readers of A (row y: column ``y mod grid_x``) and of B (column x: row
``(x + 1) mod grid_y``) are spread over the mesh.

**Semaphores** (per ring, double-buffered as the plan's ring of buffers): after every copy (or
piece of A: A is forwarded in pieces of K tiles so that the engines start early) the sender
signals "data ready" to its successor with ``SIGNAL_REMOTE`` on the same DMA queue (the
contract's ordering: the waiter sees the data): once for the successor's PE (the ring's FULL)
and once for its forwarder (``a_fwd`` / ``w_fwd``). A receiver signals "slot free" back to its
predecessor (``a_credit`` / ``w_credit``) once its PE has released the buffer (the ring's FREE)
and it has forwarded it (same queue, so in order); a sender waits for that credit before it
overwrites a successor's buffer that is in use. Rings of one tile load from DRAM as on a tile.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from systolica import isa
from systolica.codes import ACT_MODE_BYTES, ActMode
from systolica.config import ChipConfig

from .layers import (OUT_DTYPES, CompiledProgram, Linear, _act_spec, _check_weight,
                     _image_bytes)
from .plan import CompileError, DramMatrix, GemmPlan, _align, _ceil, plan_gemm
from .schedule import SEMAPHORE_NAMES, DramSource, Stage, emit, with_sync

__all__ = ["MeshPlan", "RingRole", "plan_mesh_gemm", "compile_mesh_gemm", "MeshCompiledProgram",
           "MESH_SEMAPHORES"]

#: The semaphores the mesh adds to the single-tile schedule's (per ring: the forwarder's
#: "data ready" and the "slot free" credit from the successor).
MESH_SEMAPHORES = {name: len(SEMAPHORE_NAMES) + i
                   for i, name in enumerate(("a_fwd", "a_credit", "w_fwd", "w_credit"))}

#: Target NoC flits per forwarded piece of A (small pieces start the engines early; each costs
#: a descriptor and two signals).
PIECE_FLITS = 512

#: The output dtype of each integer ACT mode (the mesh GEMM is integer-only).
_MODE_DTYPE = {mode: np.dtype(name) for name, mode in OUT_DTYPES.items()}


@dataclass(frozen=True)
class RingRole:
    """A tile's place in the ring of one operand: the ring's ``members`` in forwarding order
    (``members[0]`` is the reader), this tile's predecessor and successor, and the DMA
    ``queue`` its ring instructions run on."""
    members: tuple
    tile: tuple
    queue: str

    @property
    def position(self):
        return self.members.index(self.tile)

    @property
    def reader(self):
        return self.members[0]

    @property
    def is_reader(self):
        return self.tile == self.members[0]

    @property
    def successor(self):
        return self.members[(self.position + 1) % len(self.members)]

    @property
    def predecessor(self):
        return self.members[self.position - 1]


def _merge_contiguous(side, eb):
    """A copy side whose dimension 2 continues dimension 0 (one run per dimension-1 index) as
    a 2-D side: fewer, longer runs for the same bytes in the same places."""
    (c0, c1, c2), (s0, s1, s2) = side.counts, side.strides
    if c2 > 1 and s0 == eb and s2 == c0 * eb:
        return type(side)(side.space, side.addr, (c0 * c2, c1, 1), (eb, s1, 0))
    return side


class _RingSource(DramSource):
    """The operand source of one tile of a mesh GEMM (see the module docstring)."""

    def __init__(self, roles, load_queue):
        super().__init__(load_queue)
        self.roles = roles                   # "a" / "w" -> RingRole, or None (ring of one)
        self.pending = {"a": {}, "w": {}}    # use -> the credit to send once it is free

    def load(self, kind, use, ring, pieces, queues):
        role = self.roles[kind]
        if role is None or len(role.members) == 1:
            queue = self.queue if role is None else role.queue
            out = queues.setdefault(queue, [])
            for p, descs in enumerate(pieces):
                out += with_sync(descs, ring.wait_free(use) if p == 0 else [], ring.signal_full())
            return
        out = queues.setdefault(role.queue, [])
        fwd, credit = MESH_SEMAPHORES[f"{kind}_fwd"], MESH_SEMAPHORES[f"{kind}_credit"]
        # A credit goes back once this tile no longer needs use - size; it must be sent before
        # this tile waits for the predecessor's next write into that buffer (use).
        done = use - ring.size
        if done in self.pending[kind]:
            out.append(self.pending[kind].pop(done))
        succ = role.successor
        for p, descs in enumerate(pieces):
            waits = [(credit, 1)] if p == 0 and use >= ring.size else []
            copies = []
            for d in descs:
                dst = d.side("dst")
                if role.is_reader:
                    src = d.side("src")
                else:
                    src = _merge_contiguous(isa.DmaEndpoint(isa.Space.SBUF, dst.addr, dst.counts,
                                                            dst.strides), d.elem_bytes)
                    dst = src
                copies.append(isa.dma_copy(src, isa.remote_sbuf(dst.addr, dst.counts,
                                                                dst.strides),
                                           d.elem_bytes, dst_tile=succ))
            if not role.is_reader:
                waits = [(fwd, 1)] + waits
            out += with_sync(copies, waits, [])
            out.append(isa.signal_remote(succ, ring.full, 1))
            if succ != role.reader:
                out.append(isa.signal_remote(succ, fwd, 1))
        if use + ring.size < ring.uses:
            self.pending[kind][use] = isa.signal_remote(role.predecessor, credit, 1,
                                                        waits=[(ring.free, 1)])

    def finish(self, queues):
        for kind, pending in self.pending.items():
            if pending:
                raise AssertionError(f"mesh schedule: credits of {kind} uses {sorted(pending)} "
                                     f"were never sent")


@dataclass(frozen=True)
class MeshPlan:
    """How a GEMM is split over the mesh (see the module docstring): the mesh, the used grid,
    every tile's block (``mt`` x K x ``nt``) and its single-tile :class:`~.plan.GemmPlan`
    (``tile_plan``), the A and B rings (``a_rings[y]``, ``b_rings[x]``: tiles in forwarding
    order, reader first), the DMA queues of the rings, the predicted traffic: DRAM bytes of
    data (``dram_bytes``) against the minimum (every input read once and the output written
    once, unpadded: ``min_dram_bytes``), forwarded bytes and NoC flits."""
    m: int
    k: int
    n: int
    mesh: tuple
    grid: tuple                    # (grid_x, grid_y) tiles used
    mt: int
    nt: int
    tile_plan: GemmPlan
    a_rings: tuple
    b_rings: tuple
    a_queue: str
    w_queue: str
    dram_bytes: int
    min_dram_bytes: int
    forwarded_bytes: int
    noc_flits: int                 # counted from the programs by compile_mesh_gemm
    notes: tuple = field(default=())

    @property
    def tiles_used(self):
        return self.grid[0] * self.grid[1]

    def block(self, tile):
        """``(rows, cols)``: the slices of C that tile ``(x, y)`` computes (None if idle)."""
        x, y = tile
        if x >= self.grid[0] or y >= self.grid[1]:
            return None
        return (slice(y * self.mt, min(self.m, (y + 1) * self.mt)),
                slice(x * self.nt, min(self.n, (x + 1) * self.nt)))

    def readers(self):
        """``{tile: ["A row y", "B column x", ...]}``: what each tile reads from DRAM."""
        out = {}
        for y, ring in enumerate(self.a_rings):
            out.setdefault(ring[0], []).append(f"A rows {y * self.mt}..")
        for x, ring in enumerate(self.b_rings):
            out.setdefault(ring[0], []).append(f"B cols {x * self.nt}..")
        return out

    def to_dict(self):
        return {
            "m": self.m, "k": self.k, "n": self.n, "mesh": list(self.mesh),
            "grid": list(self.grid), "tiles_used": self.tiles_used, "mt": self.mt,
            "nt": self.nt, "a_rings": [[list(t) for t in r] for r in self.a_rings],
            "b_rings": [[list(t) for t in r] for r in self.b_rings],
            "a_queue": self.a_queue, "w_queue": self.w_queue,
            "dram_bytes": self.dram_bytes, "min_dram_bytes": self.min_dram_bytes,
            "forwarded_bytes": self.forwarded_bytes, "noc_flits": self.noc_flits,
            "notes": list(self.notes), "tile_plan": self.tile_plan.to_dict(),
        }

    def __str__(self):
        gx, gy = self.grid
        ratio = self.dram_bytes / self.min_dram_bytes if self.min_dram_bytes else 1.0
        lines = [
            f"GEMM {self.m} x {self.k} x {self.n} over a {self.mesh[0]}x{self.mesh[1]} mesh: "
            f"{gx}x{gy} tiles used, each computes a {self.mt} x {self.nt} block of C "
            f"(A row block {self.mt} x {self.k}, B column block {self.k} x {self.nt})",
            f"  A rings (rows, reader first; on {self.a_queue}): "
            + "; ".join(" -> ".join(f"({x},{y})" for x, y in r) for r in self.a_rings),
            f"  B rings (columns, reader first; on {self.w_queue}): "
            + "; ".join(" -> ".join(f"({x},{y})" for x, y in r) for r in self.b_rings),
            f"  forwarded over the NoC: {self.forwarded_bytes} bytes, {self.noc_flits} flits",
            f"  DRAM data traffic: {self.dram_bytes} bytes predicted, minimum "
            f"{self.min_dram_bytes} ({ratio:.2f}x)",
            "  every tile's plan:",
        ]
        lines += ["    " + line for line in str(self.tile_plan).splitlines()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _grid(m, n, mesh, cols):
    """Used grid and equal block sizes: N blocks in whole array-width tiles (one partial block
    when N is narrower than the array), M blocks as even as the mesh height allows."""
    width, height = mesh
    nt = min(n, cols * _ceil(_ceil(n, cols), width))
    mt = _ceil(m, height)
    return _ceil(n, nt), _ceil(m, mt), mt, nt


def _tile_plan(tile_config, mt, k, nt, out_mode, options):
    """The block's plan: M blocks of a whole PSUM bank (W is forwarded once per M block), all
    of K in one chunk (A is then forwarded once and reused by every N group) and W streamed
    (small uses keep the rings pipelined), where that fits; A in pieces."""
    if options:
        plan = plan_gemm(tile_config, mt, k, nt, out_mode=out_mode, **options)
    else:
        k_tiles = _ceil(k, tile_config.array.rows)
        whole = {"m_block": min(mt, tile_config.psum.bank_rows), "k_chunk": k_tiles,
                 "w_resident": False}
        plan = None
        for forced in (whole, {"k_chunk": k_tiles, "w_resident": False}, {"w_resident": False},
                       {}):
            try:
                plan = plan_gemm(tile_config, mt, k, nt, out_mode=out_mode, **forced)
                break
            except CompileError:
                continue
        if plan is None:
            plan = plan_gemm(tile_config, mt, k, nt, out_mode=out_mode)
    words_per_k_tile = _ceil(plan.m_block * np.dtype(plan.moving_dtype).itemsize,
                             tile_config.sbuf.word_bytes) * plan.rows
    per_piece = max(1, PIECE_FLITS // words_per_k_tile)
    return replace(plan, a_pieces=max(1, _ceil(plan.k_chunk, per_piece)))


def _rings(gx, gy):
    a_rings = []
    for y in range(gy):
        r = y % gx
        a_rings.append(tuple(((r + i) % gx, y) for i in range(gx)))
    b_rings = []
    for x in range(gx):
        r = (x + 1) % gy if gx > 1 else 0
        b_rings.append(tuple((x, (r + i) % gy) for i in range(gy)))
    return tuple(a_rings), tuple(b_rings)


def plan_mesh_gemm(chip: ChipConfig, m, k, n, *, out_mode=ActMode.INT32, **plan_options):
    """The :class:`MeshPlan` of ``C (m x n) = A (m x k) @ B (k x n)`` on ``chip``.
    ``plan_options`` (``m_block``, ``k_chunk``, ``n_group``, ``w_resident``) force the tile
    plan."""
    if not isinstance(chip, ChipConfig):
        raise TypeError(f"plan_mesh_gemm config must be a ChipConfig; got {chip!r}")
    for name, value in (("m", m), ("k", k), ("n", n)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise CompileError(f"{name} must be a positive integer; got {value!r}")
    m, k, n = int(m), int(k), int(n)
    tile = chip.tile
    if tile.array.is_float:
        raise CompileError(f"the GEMM over the mesh supports integer tiles only; this chip's "
                           f"tiles are {tile.array.moving_dtype} x {tile.array.stationary_dtype} "
                           f"(run floating point on one tile: Device(chip.tile))")
    if tile.dma.queues < 2:
        raise CompileError(f"the compiler needs dma.queues >= 2; got {tile.dma.queues}")
    out_mode = ActMode(out_mode)
    mesh = (chip.noc.width, chip.noc.height)
    gx, gy, mt, nt = _grid(m, n, mesh, tile.array.cols)
    plan = _tile_plan(tile, mt, k, nt, out_mode, plan_options)
    a_rings, b_rings = _rings(gx, gy)
    a_queue = "dma0"
    w_queue = "dma2" if tile.dma.queues >= 3 else "dma0"
    ea = np.dtype(tile.array.moving_dtype).itemsize
    ew = np.dtype(tile.array.stationary_dtype).itemsize
    ec = ACT_MODE_BYTES[out_mode]
    a_reloads = plan.n_groups if plan.k_chunks > 1 else 1
    w_reloads = 1 if plan.w_resident else plan.m_blocks
    a_block, b_block = mt * k * ea * a_reloads, k * nt * ew * w_reloads
    dram = gy * a_block + gx * b_block + gx * gy * mt * nt * ec
    forwarded = gy * (gx - 1) * a_block + gx * (gy - 1) * b_block if gx * gy > 1 else 0
    notes = []
    if gx * gy < mesh[0] * mesh[1]:
        notes.append(f"{mesh[0] * mesh[1] - gx * gy} tiles idle (the GEMM has too few blocks)")
    if gy * mt != m or gx * nt != n:
        notes.append(f"C padded to {gy * mt} x {gx * nt} (equal blocks on every tile)")
    if w_queue == "dma0" and gx * gy > 1:
        notes.append("A and B rings share dma0 (dma.queues = 2): give the tiles 3 DMA queues "
                     "so the two rings do not wait for each other")
    notes.append("K is not split over tiles: every tile accumulates all of K in its PSUM (a "
                 "split would add a reduction over the NoC; the rings already keep DRAM "
                 "traffic at the minimum)")
    return MeshPlan(m, k, n, mesh, (gx, gy), mt, nt, plan, a_rings, b_rings, a_queue, w_queue,
                    dram, m * k * ea + k * n * ew + m * n * ec, forwarded, 0, tuple(notes))


@dataclass(eq=False)
class MeshCompiledProgram:
    """A GEMM compiled for a chip: ``programs[(x, y)]`` (one :class:`~systolica.isa.Program`
    per tile, idle tiles included), the ``plan``, the DRAM layout (``a_blocks[y]``,
    ``b_blocks[x]``, ``c_blocks[(x, y)]``, :class:`~.plan.DramMatrix` each; the tiles'
    program images at ``program_bases[(x, y)]``, data from ``data_base``) and the DRAM bytes it
    needs (``dram_bytes``)."""
    config: ChipConfig
    plan: MeshPlan
    programs: dict
    a_blocks: list
    b_blocks: list
    c_blocks: dict
    program_bases: dict
    data_base: int
    dram_bytes: int
    output_dtype: np.dtype
    weights: np.ndarray = None
    _timeline: object = None

    @property
    def instructions(self):
        return sum(p.instructions for p in self.programs.values())

    @property
    def macs(self):
        return self.plan.m * self.plan.k * self.plan.n

    @property
    def program_bytes(self):
        return sum(len(p.encode()) for p in self.programs.values())

    @property
    def dram_traffic(self):
        """Predicted DRAM bytes: the data the plan moves plus every tile's program image."""
        return self.plan.dram_bytes + self.program_bytes

    @property
    def min_dram_bytes(self):
        return self.plan.min_dram_bytes

    def predict(self, costs=None):
        """The chip performance model's :class:`~.perf.ChipTimeline` (cached)."""
        from .chip_perf import predict_chip
        from .perf import DEFAULT_COSTS
        if self._timeline is None or costs is not None:
            timeline = predict_chip(self.programs, self.config, costs or DEFAULT_COSTS)
            if costs is not None:
                return timeline
            self._timeline = timeline
        return self._timeline

    def data(self, a, b=None):
        """``{addr: bytes}``: ``a`` (and ``b``, default the compiled weights) split into the
        tiles' padded blocks."""
        b = self.weights if b is None else b
        plan = self.plan
        a = np.asarray(a).astype(np.int64)
        b = np.asarray(b).astype(np.int64)
        out = {}
        for y, mat in enumerate(self.a_blocks):
            block = np.zeros((plan.mt, plan.k), dtype=np.int64)
            rows = a[y * plan.mt:(y + 1) * plan.mt]
            block[:rows.shape[0]] = rows
            out[mat.addr] = CompiledProgram.pack(mat, block)
        for x, mat in enumerate(self.b_blocks):
            block = np.zeros((plan.k, plan.nt), dtype=np.int64)
            cols = b[:, x * plan.nt:(x + 1) * plan.nt]
            block[:, :cols.shape[1]] = cols
            out[mat.addr] = CompiledProgram.pack(mat, block)
        return out

    def unpack(self, dram):
        """C read from a DRAM byte array (the tiles' blocks, padding dropped)."""
        plan = self.plan
        c = np.zeros((plan.m, plan.n), dtype=self.output_dtype)
        for tile, mat in self.c_blocks.items():
            rows, cols = plan.block(tile)
            raw = np.asarray(dram[mat.addr:mat.end], dtype=np.uint8).view(self.output_dtype)
            block = raw.reshape(mat.cols, mat.rows).T
            c[rows, cols] = block[:rows.stop - rows.start, :cols.stop - cols.start]
        return c

    def summary(self):
        ratio = self.dram_traffic / self.min_dram_bytes if self.min_dram_bytes else 1.0
        return str(self.plan) + (f"\nprograms: {self.instructions} instructions on "
                                 f"{len(self.programs)} tiles, {self.program_bytes} bytes; DRAM "
                                 f"traffic with them {self.dram_traffic} bytes ({ratio:.2f}x "
                                 f"the minimum)")


def compile_mesh_gemm(chip: ChipConfig, m, k, n, *, w=None, out_dtype="int32", scale=None,
                      shift=None, zero_point=0, relu=False, **plan_options):
    """Compile ``C = A (m x k) @ W (k x n)`` (int32, or requantised through ACT as
    :func:`~.layers.compile_gemm`) into one program per tile of ``chip``."""
    if not isinstance(chip, ChipConfig):
        raise TypeError(f"compile_mesh_gemm config must be a ChipConfig; got {chip!r}")
    for name, value in (("m", m), ("k", k), ("n", n)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise CompileError(f"{name} must be a positive integer; got {value!r}")
    tile = chip.tile
    if w is None:
        w = np.zeros((int(k), int(n)), dtype=np.int64)
    layer = Linear(w, scale=scale, shift=shift, zero_point=zero_point, relu=relu,
                   out_dtype=out_dtype)
    _check_weight(tile, layer, 0, int(k))
    spec = _act_spec(tile, layer, 0)
    plan = plan_mesh_gemm(chip, m, k, n, out_mode=spec.mode, **plan_options)
    tp = plan.tile_plan
    gx, gy = plan.grid
    ea = np.dtype(tile.array.moving_dtype).itemsize
    ew = np.dtype(tile.array.stationary_dtype).itemsize
    ec = ACT_MODE_BYTES[spec.mode]
    coords = [(x, y) for y in range(chip.noc.height) for x in range(chip.noc.width)]

    def layout(bases_end):
        at = bases_end
        mats = {}

        def alloc(key, rows, cols, eb):
            nonlocal at
            mats[key] = DramMatrix(at, rows, cols, eb)
            at = _align(at + rows * cols * eb, 64)

        for y in range(gy):
            alloc(("a", y), plan.mt, plan.k, ea)
        for x in range(gx):
            alloc(("b", x), plan.k, plan.nt, ew)
        for y in range(gy):
            for x in range(gx):
                alloc(("c", (x, y)), plan.mt, plan.nt, ec)
        return mats, at

    def act_for(x):
        if spec.mode == ActMode.INT32:
            return spec
        cols = slice(x * plan.nt, (x + 1) * plan.nt)
        pad = plan.nt - len(spec.scale[cols])
        return replace(spec, scale=tuple(spec.scale[cols]) + (1,) * pad,
                       shift=tuple(spec.shift[cols]) + (0,) * pad)

    def build(bases_end):
        mats, end = layout(bases_end)
        programs = {}
        for xy in coords:
            x, y = xy
            if x >= gx or y >= gy:
                programs[xy] = isa.Program.build(chip, {})
                continue
            roles = {"a": RingRole(plan.a_rings[y], xy, plan.a_queue),
                     "w": RingRole(plan.b_rings[x], xy, plan.w_queue)}
            stage = Stage(tp, mats[("b", x)], a=mats[("a", y)], c=mats[("c", xy)],
                          act=act_for(x))
            programs[xy] = emit(tile, [stage], source=_RingSource(roles, plan.a_queue),
                                build_for=chip)
        return mats, end, programs

    _, _, probe = build(0)
    bases, at = {}, 0
    for xy in coords:
        bases[xy] = at
        at = _align(at + _image_bytes(probe[xy].instructions, len(probe[xy].queues)), 4096)
    mats, end, programs = build(at)
    from .chip_perf import remote_flits
    flits = sum(remote_flits(insn, chip) for p in programs.values()
                for insns in p.queues.values() for insn in insns)
    plan = replace(plan, noc_flits=flits)
    if end > 1 << tile.dma.addr_width:
        raise CompileError(f"the program's data needs {end} bytes of DRAM; dma.addr_width = "
                           f"{tile.dma.addr_width} addresses {1 << tile.dma.addr_width}")
    return MeshCompiledProgram(
        chip, plan, programs, [mats[("a", y)] for y in range(gy)],
        [mats[("b", x)] for x in range(gx)],
        {(x, y): mats[("c", (x, y))] for y in range(gy) for x in range(gx)}, bases, at, end,
        _MODE_DTYPE[spec.mode], np.asarray(w))

