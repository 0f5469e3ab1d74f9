"""The analytical performance model (as SCALE-Sim's, but over the ISA program): a closed-form
estimate of a plan (:func:`estimate_plan`, used to choose block sizes) and :func:`predict`, which
times a :class:`~systolica.isa.Program` instruction by instruction with the cycle costs of
:class:`Costs`: one discrete-event simulation of the tile in time order
(:class:`~.perf_timer._TileTimer`: every queue in order, the fetch unit's bursts, the DMA engine
one descriptor at a time, the AXI read channel fetch and DMA share, the SBUF ports the DMA, the
engine's readers and the ACT share, the tensor engine streaming behind the moving reader's
back-pressure, the ACT unit). The result is a :class:`Timeline`: predicted cycles and, per queue,
the busy intervals (the same shape of data the runtime's profiler draws from an RTL run).

The costs are the RTL's behaviour read off cycle-level traces of compiled GEMMs on the Amaranth
tile (every instruction's retire cycle, every AR/R handshake, the fetch FIFO levels, the engines'
command handshakes); tests/test_perf_model.py checks the prediction against RTL runs, and
benchmarks/gemm.py and benchmarks/perf_model.py report the error of large GEMMs on Verilator
(docs/compiler.md, "Measured").
"""

from dataclasses import dataclass, field

from systolica import isa
from systolica.config import TileConfig, dtype_numpy

from .perf_timer import DEFAULT_COSTS, Costs, Interval, _ceil, _TileTimer

__all__ = ["Costs", "DEFAULT_COSTS", "Interval", "Timeline", "predict", "estimate_plan",
           "PredictionError"]


class PredictionError(RuntimeError):
    """The program cannot be timed: it deadlocks (no queue can start and some have not ended)."""


@dataclass
class Timeline:
    """What :func:`predict` (or an RTL run) found: ``cycles`` in all and every queue's
    intervals."""
    cycles: int
    intervals: dict = field(default_factory=dict)   # queue -> [Interval]
    source: str = "perf model"

    def busy(self, queue):
        """Cycles the queue's engine was busy (union of its intervals)."""
        total, last = 0, 0
        for iv in sorted(self.intervals.get(queue, ()), key=lambda iv: iv.start):
            lo = max(iv.start, last)
            if iv.end > lo:
                total += iv.end - lo
                last = iv.end
        return total

    def waiting(self, queue):
        return sum(max(0, iv.start - iv.wait_from) for iv in self.intervals.get(queue, ()))

    def utilization(self):
        """``{queue: busy / cycles}``."""
        return {q: (self.busy(q) / self.cycles if self.cycles else 0.0) for q in self.intervals}


def predict(program: isa.Program, config: TileConfig, costs: Costs = DEFAULT_COSTS):
    """The :class:`Timeline` of ``program`` on ``config`` (see the module docstring)."""
    if not isinstance(config, TileConfig):
        raise TypeError(f"predict config must be a TileConfig; got {config!r}")
    if not isinstance(program, isa.Program):
        raise TypeError(f"predict program must be an isa.Program; got {program!r}")
    timer = _TileTimer(program, config, costs)
    _run(timer)
    return Timeline(timer.end_time, timer.intervals)


def _run(timer):
    """Time ``timer``'s program to its end (PredictionError if it deadlocks)."""
    while True:
        best = timer.best()
        if best is None:
            break
        timer.execute(*best)
    stuck = timer.stuck()
    if stuck:
        raise PredictionError("program deadlocks in the performance model: "
                              + ", ".join(f"{q} at pc {timer.pc[q]}" for q in stuck))


def _program_counts(plan):
    """``(A loads, A descriptors, W descriptors, MATMULs, instructions)`` of the plan's program (schedule.py): one MATMUL
    per (M block, N tile, K chunk) and one more per extra piece of A; an ACT and a store per
    (M block, N tile); the A and W descriptors."""
    tiles = plan.m_blocks * plan.n_tiles
    k_chunks, n_groups = plan.k_chunks, plan.n_groups
    a_loads = plan.m_blocks * k_chunks * (n_groups if k_chunks > 1 else 1) \
        if plan.a_source == "dram" else 0
    a_desc = a_loads * (2 if plan.k % plan.rows and k_chunks * plan.k_chunk > plan.k_tiles - 1
                        else 1)
    w_desc = (1 if plan.w_resident else plan.m_blocks * n_groups * k_chunks) * \
        (2 if plan.n % plan.cols else 1)
    matmuls = tiles * k_chunks + a_loads * (plan.a_pieces - 1)
    return a_loads, a_desc, w_desc, matmuls, matmuls + 2 * tiles + a_desc + w_desc


def program_bytes_estimate(plan):
    """Bytes of the plan's program image, roughly (its instructions; the header left out)."""
    return _program_counts(plan)[-1] * isa.WORD_BYTES


def estimate_plan(config: TileConfig, plan, costs: Costs = DEFAULT_COSTS):
    """Closed-form ``(cycles, bound, dram_bytes)`` of a :class:`~.plan.GemmPlan`: the busiest
    resource (tensor engine; the DMA engine, which runs one descriptor at a time and shares the
    AXI read channel with instruction fetch; the ACT unit) plus the fill before the first
    multiply and the drain after the last."""
    from systolica.codes import ACT_MODE_BYTES
    R, C = plan.rows, plan.cols
    a = config.array
    ea = dtype_numpy(a.moving_dtype).itemsize
    ew = dtype_numpy(a.stationary_dtype).itemsize
    ec = ACT_MODE_BYTES[plan.out_mode]
    bw = costs.bus_bytes(config)
    pace = costs.sbuf_read_rate(config)
    m, k, n = plan.m, plan.k, plan.n
    mb, m_blocks = plan.m_block, plan.m_blocks
    k_tiles, k_chunks, n_tiles, n_groups = plan.k_tiles, plan.k_chunks, plan.n_tiles, plan.n_groups
    tiles = m_blocks * n_tiles
    pairs = tiles * k_tiles
    a_loads, a_desc, w_desc, matmuls, instructions = _program_counts(plan)
    # the engine streams multiplies back to back: a MATMUL issues a k tile's load and multiply
    # in 2 cycles; its checks (the bit-serial multiply, one repeat) hide behind the previous
    # MATMUL's last multiply unless the M block is shorter
    checks = costs.issue + max(plan.k_chunk - 1, 0).bit_length() + 3
    pe = m * k_tiles * n_tiles + pairs * max(costs.pe_gap, 2 - mb) + \
        matmuls * max(costs.pe_gap, checks - mb)
    setup = costs.dma_setup + costs.dram_latency
    reads = 0           # DMA cycles reading DRAM (A, W)
    dram = 0
    if plan.a_source == "dram":
        a_bytes = m * k * ea * (n_groups if k_chunks > 1 else 1)
        a_runs = a_loads * plan.k_chunk * R
        reads += a_desc * setup + a_runs * (costs.dma_run + _ceil(mb * ea, bw))
        dram += a_bytes
    w_bytes = k * n * ew * (1 if plan.w_resident else m_blocks)
    w_runs = (n_tiles * C) if plan.w_resident else m_blocks * n_tiles * C * k_chunks
    reads += w_desc * setup + w_runs * costs.dma_run + max(_ceil(w_bytes, bw), w_runs)
    dram += w_bytes
    writes = 0
    if plan.c_dest == "dram":
        writes = tiles * costs.dma_setup + tiles * C * costs.dma_write_run + \
            int(tiles * C * _ceil(mb * ec, bw) / pace)
        dram += m * n * ec
    act = tiles * (costs.act_setup + mb + costs.issue)
    fetch = instructions * _ceil(isa.WORD_BYTES, bw)
    # fetch beats that land while the DMA reads stretch those reads (one AXI read channel)
    span = max(pe, reads + writes, act, fetch)
    dma = reads + writes + int(fetch * min(1.0, reads / span))
    bounds = {"tensor engine": pe, "DMA": dma, "ACT": act, "instruction fetch": fetch + reads}
    bound = max(bounds, key=bounds.get)
    first_a = (costs.dma_setup + plan.k_chunk * R * (costs.dma_run + _ceil(mb * ea, bw))
               if plan.a_source == "dram" else 0)
    first_w = costs.dma_setup + C * (costs.dma_run + _ceil(
        (k if plan.w_resident else min(k, plan.k_chunk * R)) * ew * plan.n_group, bw))
    fill = first_a + first_w + 10 * costs.issue
    drain = (costs.pe_latency(config) + costs.psum_settle + costs.act_setup + mb
             + (costs.dma_setup + C * (costs.dma_write_run + int(_ceil(mb * ec, bw) / pace))
                if plan.c_dest == "dram" else 0))
    # A read channel loaded beyond half the engine's time starves the 4-deep fetch FIFOs
    # (fetch bursts wait behind DMA bursts): a margin that steers the search away from
    # fetch-heavy plans (small M blocks with W streamed) that the RTL has not confirmed.
    margin = max(0, fetch + reads - pe // 2) // 4
    return int(bounds[bound] + fill + drain + margin), bound, int(dram)
