"""Random race-free tile programs with a random semaphore structure, for checking that a
program's result does not depend on the interleaving (model under many schedules, model against
RTL).

The generator draws operations one at a time, each on a random queue (DMA copies between random
DRAM/SBUF regions, LOAD_STATIONARY / MULTIPLY_MOVING / MATMUL, ACT_PARAM / ACT, NOPs), every one valid
for the config. Before appending an operation it finds, for every other queue, the latest earlier
operation that touches a byte it touches (one of the two writing); if that one is not yet ordered
before it, it adds a semaphore edge: a signal on the other queue's latest instruction (or a NOP
carrying it) and a wait on the new operation (or a NOP before it). Each ordered pair of queues
has its own semaphore, so the k-th wait of a pair always matches its k-th signal, whatever the
schedule; an operation that would need a pair for which no semaphore is left (more than
``SEMAPHORES`` ordered pairs: five or more queues) is not taken. Extra edges with random counts
are added at random. Generating in one global order
means that order is a valid schedule: no deadlock.
"""

import numpy as np

from systolica import isa
from systolica.codes import ACT_MODE_BYTES, ActMode
from systolica.config import TileConfig
from systolica.model.dma import DmaSide, random_transfer, side_offsets


__all__ = ["random_program", "footprint"]


def _space_name(space):
    return "sbuf" if space == isa.Space.SBUF else "dram"


def _sbuf_bytes(config, partitions, first_elem, count, elem_bytes):
    pb = config.sbuf.partition_bytes
    return (np.arange(partitions)[:, None] * pb + first_elem * elem_bytes
            + np.arange(count * elem_bytes)[None, :]).ravel()


def footprint(config: TileConfig, insn, weights_k=None):
    """``[(space, byte/accumulator indices, write)]`` an instruction touches (``weights_k``:
    the K of the weights a MULTIPLY_MOVING uses)."""
    a = config.array
    op = insn.opcode
    if op == isa.Opcode.DMA_COPY:
        out = []
        for name, write in (("src", False), ("dst", True)):
            s = insn.side(name)
            side = DmaSide(_space_name(s.space), s.addr, tuple(s.counts), tuple(s.strides))
            out.append((side.space, side_offsets(side, insn.elem_bytes), write))
        return out
    if op == isa.Opcode.LOAD_STATIONARY:
        eb = np.dtype(a.stationary_dtype).itemsize
        return [("sbuf", _sbuf_bytes(config, insn.n, insn.offset, insn.k, eb), False)]
    if op == isa.Opcode.MULTIPLY_MOVING:
        eb = np.dtype(a.moving_dtype).itemsize
        out = []
        for r in range(insn.repeat):
            off, row = insn.offset + r * insn.offset_step, insn.psum_addr + r * insn.psum_step
            out.append(("sbuf", _sbuf_bytes(config, weights_k, off, insn.m, eb), False))
            out.append(("psum", ((row + np.arange(insn.m))[:, None] * a.cols
                                 + np.arange(a.cols)).ravel(), True))
        return out
    if op == isa.Opcode.MATMUL:
        out = []
        for w_off, k, a_off, acc in isa.matmul_tiles(insn, a.rows):
            out += footprint(config, isa.load_stationary(w_off, k, insn.n))
            out += footprint(config, isa.multiply_moving(
                a_off, insn.m, insn.psum_addr, repeat=insn.repeat, offset_step=insn.offset_step,
                psum_step=insn.psum_step), k)
        return out
    if op == isa.Opcode.ACT:
        eb = ACT_MODE_BYTES[ActMode(insn.mode)]
        out = []
        for r in range(insn.repeat):
            row, off = insn.psum_addr + r * insn.psum_step, insn.offset + r * insn.offset_step
            out.append(("psum", ((row + np.arange(insn.rows))[:, None] * a.cols
                                 + np.arange(insn.cols)).ravel(), False))
            out.append(("sbuf", _sbuf_bytes(config, insn.cols, off, insn.rows, eb), True))
        return out
    return []


def _conflict(fa, fb):
    for sa, ia, wa in fa:
        for sb, ib, wb in fb:
            if sa == sb and (wa or wb) and np.intersect1d(ia, ib, assume_unique=False).size:
                return True
    return False


class _Builder:
    def __init__(self, config, rng, queues):
        self.config, self.rng = config, rng
        self.names = [q.name for q in queues]
        self.engines = {q.name: q.engine for q in queues}
        self.insns = {n: [] for n in self.names}
        # hb[q][r]: how many of r's instructions q is ordered after (own queue: all of them)
        self.hb = {q: {r: 0 for r in self.names} for q in self.names}
        self.ops = []            # (queue, position, footprint)
        self.pairs = {}
        self.free_sem = 0

    def _has_sem(self, r, q):
        return (r, q) in self.pairs or self.free_sem < isa.SEMAPHORES

    def _pair_sem(self, r, q):
        if (r, q) not in self.pairs:
            self.pairs[(r, q)] = self.free_sem
            self.free_sem += 1
        return self.pairs[(r, q)]

    def _append(self, q, insn):
        self.insns[q].append(insn)
        self.hb[q][q] = len(self.insns[q])

    def _add_signal(self, r, sem, count):
        insns = self.insns[r]
        last = insns[-1] if insns else None
        used = [p for p in (last.signals if last else ()) if p[1]]
        if last is not None and len(used) < 2 and self.rng.random() < 0.7:
            insns[-1] = last.replace(signals=used + [(sem, count)])
        else:
            self._append(r, isa.nop(signals=[(sem, count)]))
        return dict(self.hb[r])

    def edge(self, r, q, pending_waits):
        """Order everything of r so far before q's next instruction."""
        if not self.insns[r]:
            return
        count = int(self.rng.integers(1, 4))
        sem = self._pair_sem(r, q)
        known = self._add_signal(r, sem, count)
        pending_waits.append((sem, count))
        for name, value in known.items():
            self.hb[q][name] = max(self.hb[q][name], value)

    def add(self, q, insn, fp):
        """Append ``insn`` to ``q`` with the waits it needs; False (nothing changed) when a
        needed ordered pair has no semaphore left."""
        needed = {}
        for r in self.names:
            if r != q:
                latest = max((pos for (oq, pos, ofp) in self.ops
                              if oq == r and _conflict(ofp, fp)), default=None)
                needed[r] = latest is not None and self.hb[q][r] <= latest
        free = isa.SEMAPHORES - self.free_sem
        if sum(need and (r, q) not in self.pairs for r, need in needed.items()) > free:
            return False
        waits = []
        for r in [r for r, need in needed.items() if need]:
            self.edge(r, q, waits)
        for r in [r for r, need in needed.items() if not need]:    # extra edges, where a pair has one
            if self.insns[r] and self.rng.random() < 0.08 and self._has_sem(r, q):
                self.edge(r, q, waits)
        if self.rng.random() < 0.5 and len(waits) <= 2:
            insn_waits, nop_waits = waits, []
        else:
            insn_waits, nop_waits = [], waits
        for i in range(0, len(nop_waits), 2):
            self._append(q, isa.nop(waits=nop_waits[i:i + 2]))
        insn = insn.replace(waits=insn_waits)
        self.ops.append((q, len(self.insns[q]), fp))
        self._append(q, insn)
        return True


def random_program(config: TileConfig, rng, *, operations=30, dram_bytes=4096):
    """A random race-free, deadlock-free :class:`~systolica.isa.Program` for ``config`` whose DMA
    copies stay in DRAM bytes ``[0, dram_bytes)``. ``rng``: a ``numpy.random.Generator``."""
    queues = isa.tile_queues(config)
    b = _Builder(config, rng, queues)
    a, s, p = config.array, config.sbuf, config.psum
    sbuf_bytes = s.partitions * s.partition_bytes
    ea = np.dtype(a.moving_dtype).itemsize
    ew = np.dtype(a.stationary_dtype).itemsize
    weights_k = None
    pe_started = load_pending = False
    for _ in range(operations):
        q = queues[int(rng.integers(len(queues)))]
        name = q.name
        if q.engine == isa.Engine.DMA:
            kinds = [("dram", "sbuf"), ("sbuf", "dram"), ("sbuf", "sbuf"), ("dram", "dram")]
            src_space, dst_space = kinds[int(rng.integers(len(kinds)))]
            region = {"dram": (0, dram_bytes), "sbuf": (0, sbuf_bytes)}
            if src_space == dst_space:       # keep source and destination apart
                lo, hi = region[src_space]
                mid = lo + (hi - lo) // 2
                src_region, dst_region = ((lo, mid), (mid, hi)) if rng.random() < 0.5 \
                    else ((mid, hi), (lo, mid))
            else:
                src_region, dst_region = region[src_space], region[dst_space]
            t = random_transfer(rng, src_space=src_space, dst_space=dst_space,
                                src_region=src_region, dst_region=dst_region, max_elem=4,
                                max_count=6)
            side = {"dram": isa.dram, "sbuf": isa.sbuf}
            insn = isa.dma_copy(side[src_space](t.src.addr, t.src.counts, t.src.strides),
                                side[dst_space](t.dst.addr, t.dst.counts, t.dst.strides),
                                t.elem_bytes)
        elif q.engine == isa.Engine.PE:
            # a LOAD_STATIONARY never follows one that no MULTIPLY_MOVING used (LOAD_PENDING)
            if not pe_started or (not load_pending and rng.random() < 0.4):
                k, n = int(rng.integers(1, a.rows + 1)), int(rng.integers(1, a.cols + 1))
                elems = s.partition_bytes // ew
                insn = isa.load_stationary(int(rng.integers(0, elems - k + 1)), k, n)
                if b.add(name, insn, footprint(config, insn)):
                    weights_k, pe_started, load_pending = k, True, True
                continue
            if not load_pending and rng.random() < 0.5:      # a MATMUL: its own k loop
                tiles, k_last = int(rng.integers(1, 4)), int(rng.integers(1, a.rows + 1))
                n, m = int(rng.integers(1, a.cols + 1)), int(rng.integers(1, 17))
                repeat = int(rng.integers(1, 3))
                w_step, a_step, step = (int(x) for x in rng.integers(0, 24, 3))
                w_room = s.partition_bytes // ew - (tiles - 1) * w_step - a.rows
                a_room = s.partition_bytes // ea - (tiles - 1) * a_step - (repeat - 1) * step - m
                if min(w_room, a_room) >= 0:
                    row = int(rng.integers(p.banks)) * p.bank_rows + \
                        int(rng.integers(0, p.bank_rows - m + 1))
                    insn = isa.matmul(int(rng.integers(0, a_room + 1)), m, row,
                                      w_offset=int(rng.integers(0, w_room + 1)), tiles=tiles,
                                      k_last=k_last, n=n, a_step=a_step, w_step=w_step,
                                      accumulate=bool(rng.random() < 0.5), repeat=repeat,
                                      offset_step=step)
                    if b.add(name, insn, footprint(config, insn)):
                        weights_k = k_last      # the last k tile's weights stay loaded
                    continue
            repeat = int(rng.integers(1, 3))
            m = int(rng.integers(1, min(p.bank_rows, 24) + 1))
            elems = s.partition_bytes // ea
            step = int(rng.integers(0, 32))
            offset = int(rng.integers(0, elems - m - (repeat - 1) * step + 1))
            bank = int(rng.integers(p.banks))
            row = bank * p.bank_rows + int(rng.integers(0, p.bank_rows - m + 1))
            insn = isa.multiply_moving(offset, m, row, accumulate=bool(rng.random() < 0.5),
                                       repeat=repeat, offset_step=step, psum_step=0)
            if b.add(name, insn, footprint(config, insn, weights_k)):
                load_pending = False
            continue
        elif q.engine == isa.Engine.ACT:
            if rng.random() < 0.25:
                count = int(rng.integers(1, min(isa.ACT_PARAM_GROUP, a.cols) + 1))
                first = int(rng.integers(0, a.cols - count + 1))
                lim = 1 << (config.act.scale_bits - 1)
                insn = isa.act_param(int(rng.integers(isa.ACT_PARAM_ENTRIES)), first,
                                     [int(x) for x in rng.integers(-lim, lim, count)],
                                     [int(x) for x in rng.integers(0, config.act.max_shift + 1,
                                                                   count)])
            else:
                mode = ActMode(int(rng.integers(4)))
                rows = int(rng.integers(1, min(p.bank_rows, 16) + 1))
                cols = int(rng.integers(1, a.cols + 1))
                elems = s.partition_bytes // ACT_MODE_BYTES[mode]
                row = int(rng.integers(p.banks)) * p.bank_rows + \
                    int(rng.integers(0, p.bank_rows - rows + 1))
                insn = isa.act(row, rows, int(rng.integers(0, elems - rows + 1)), cols,
                               mode=mode, relu=bool(rng.random() < 0.5),
                               zero_point=int(rng.integers(-300, 300)),
                               param=int(rng.integers(isa.ACT_PARAM_ENTRIES)))
        b.add(name, insn, footprint(config, insn))
    return isa.Program.build(config, b.insns)
