"""Host-side driver for the DMA in simulation: feeds descriptor queues (with random stalls),
connects the AXI DRAM model and an SBUF (the Python port model, or a real SBUF through
``processes``), records every completion and returns the final memories and status."""

from dataclasses import dataclass, field

import numpy as np

from systolica.codes import DmaError
from systolica.config import DmaConfig
from systolica.model.dma import DmaTransfer, check_fields
from .dram import AxiDram
from .sbuf_model import SbufPortModel
from .sim import run_simulation
from .streams import StreamSource


__all__ = ["DmaRun", "pack_descriptor", "run_dma"]


def pack_descriptor(t: DmaTransfer, config: DmaConfig):
    """``t`` as the payload of ``dma_descriptor_layout(config)``; a value that does not fit its
    field raises ``ValueError`` naming it (the hardware would silently cut it)."""
    if not isinstance(t, DmaTransfer):
        raise TypeError(f"pack_descriptor: expected a DmaTransfer; got {t!r}")
    check_fields(t, config)
    return t.as_dict()


@dataclass
class DmaRun:
    done: list                  # per completion: {"queue", "semaphore", "error", "cycle"}
    cycles: int
    dram: AxiDram
    sbuf: SbufPortModel
    status: dict
    sem_values: list
    extra: dict = field(default_factory=dict)


def run_dma(dut, queues, *, dram_size=1 << 16, dram_mem=None, sbuf_mem=None, read_latency=8,
            write_latency=2, axi_stall=0.0, sbuf_stall=0.0, queue_stall=0.0, max_reads=16,
            max_writes=16, errors=(), rng=None, max_cycles=100_000, sbuf=True, top=None):
    """Run the descriptors ``queues[q]`` (lists of :class:`systolica.model.dma.DmaTransfer`) on ``dut``
    (a :class:`systolica.hdl.dma.Dma`) until all have completed; each is packed with
    :func:`pack_descriptor` first. ``errors`` are
    ``(lo, hi, resp, reads, writes)`` ranges for :meth:`AxiDram.add_error`. ``sbuf=False`` leaves
    the SBUF port unconnected (the DMA's port connected to a real SBUF inside ``top``, the design
    simulated instead of ``dut``)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    if len(queues) > len(dut.queues):
        raise ValueError(f"run_dma: {len(queues)} queues given; the DMA has {len(dut.queues)}")
    dram = AxiDram(dut.axi, size=None if dram_mem is not None else dram_size, mem=dram_mem,
                   read_latency=read_latency, write_latency=write_latency, stall=axi_stall,
                   max_reads=max_reads, max_writes=max_writes, rng=rng)
    for lo, hi, resp, reads, writes in errors:
        dram.add_error(lo, hi, resp=resp, reads=reads, writes=writes)
    packed = [[pack_descriptor(t, dut.config.dma) for t in q] for q in queues]
    model = SbufPortModel(dut.sbuf, dut.config.sbuf, mem=sbuf_mem, req_stall=sbuf_stall,
                          resp_stall=sbuf_stall, rng=rng) if sbuf else None
    total = sum(len(q) for q in queues)
    done = []
    status = {}
    sem_values = []

    async def monitor(ctx):
        cycle = 0
        info = dut.done_info
        async for _, _, fired, queue, sem, error in ctx.tick().sample(
                dut.done, info.queue, info.semaphore, info.error):
            if fired:
                done.append({"queue": queue, "semaphore": sem, "error": DmaError(error),
                             "cycle": cycle})
            cycle += 1

    def feeder(q, descriptors):
        source = StreamSource(dut.queues[q], stall=queue_stall,
                              rng=np.random.default_rng(rng.integers(1 << 32)))

        async def testbench(ctx):
            await source.send(ctx, descriptors)
        return testbench

    async def waiter(ctx):
        while ctx.get(dut.done_count) < total:
            await ctx.tick()
        await ctx.tick()
        for name in ("busy", "idle", "done_count", "error_count", "error"):
            status[name] = ctx.get(getattr(dut, name))
        status["last_error"] = DmaError(ctx.get(dut.last_error))
        sem_values.extend(ctx.get(dut.sem_values[i]) for i in range(len(dut.sem_values)))

    processes = [monitor] + dram.processes() + (model.processes() if model else [])
    testbenches = [feeder(q, d) for q, d in enumerate(packed) if d] + [waiter]
    cycles = run_simulation(dut if top is None else top, testbenches, processes=processes, max_cycles=max_cycles)
    return DmaRun(done=done, cycles=cycles, dram=dram, sbuf=model, status=status,
                  sem_values=sem_values)
