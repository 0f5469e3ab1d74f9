# amaranth: UnusedElaboratable=no
"""hdl/axi_ram.py: the synthesizable AXI4 slave, driven by the real DMA, checked against the DMA
model, with pseudo-random stalls on every channel and random read latency."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from systolica.config import DmaConfig, SbufConfig, TileConfig
from systolica.hdl.axi import RESP_DECERR
from systolica.hdl.axi_ram import AxiRam
from systolica.hdl.dma import Dma
from systolica.model.dma import DmaSide, DmaTransfer, dma_copy_reference, random_transfer
from systolica.testbench.sbuf_model import SbufPortModel
from systolica.testbench.sim import run_simulation
from systolica.testbench.streams import StreamSource

WORD = 8
DEPTH = 512                     # DRAM words (4 KiB)


class DmaOverRam(wiring.Component):
    def __init__(self, ram_kwargs):
        self.dma = Dma(config=TileConfig(sbuf=SbufConfig(depth=64), dma=DmaConfig(queues=1)))
        self.ram = AxiRam(addr_width=32, data_width=64, id_width=4, depth=DEPTH, **ram_kwargs)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma, m.submodules.ram = self.dma, self.ram
        wiring.connect(m, self.dma.axi, self.ram.axi)
        return m


def run(transfers, dram, ram_kwargs, rng):
    words = [int.from_bytes(dram[i * WORD:(i + 1) * WORD].tobytes(), "little")
             for i in range(DEPTH)]
    top = DmaOverRam(dict(ram_kwargs, init=words))
    dma = top.dma
    sbuf = SbufPortModel(dma.sbuf, dma.config.sbuf, rng=rng, req_stall=0.2, resp_stall=0.2)
    errors = []

    async def bench(ctx):
        await StreamSource(dma.queues[0], stall=0.3, rng=rng).send(
            ctx, [t.as_dict() for t in transfers])
        while ctx.get(dma.done_count) < len(transfers):
            await ctx.tick()
        errors.append(ctx.get(dma.error_count))
        out = np.zeros_like(dram)
        for i in range(DEPTH):
            out[i * WORD:(i + 1) * WORD] = np.frombuffer(
                ctx.get(top.ram.mem.data[i]).to_bytes(WORD, "little"), np.uint8)
        errors.append(out)

    run_simulation(top, [bench], processes=sbuf.processes(), max_cycles=60_000)
    return errors[0], errors[1], sbuf.mem.reshape(-1)


@pytest.mark.parametrize("ram_kwargs", [
    dict(),
    dict(stall=0.3, jitter=7, read_latency=3, seed=5),
    dict(stall={"r": 0.5, "w": 0.5, "b": 0.6}, seed=9),
])
def test_random_copies(ram_kwargs):
    seed = 1234
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    dram = rng.integers(0, 256, DEPTH * WORD, dtype=np.uint8)
    sbuf_bytes = 8 * 64 * WORD
    transfers = []
    for i in range(6):
        src, dst = ("dram", "sbuf") if i % 2 == 0 else ("sbuf", "dram")
        region = {"dram": (0, DEPTH * WORD), "sbuf": (0, sbuf_bytes)}
        transfers.append(random_transfer(rng, src_space=src, dst_space=dst,
                                         src_region=region[src], dst_region=region[dst],
                                         max_count=6))
    transfers.append(DmaTransfer(DmaSide("dram", 100, (300, 1, 1), (1, 0, 0)),
                                 DmaSide("dram", 2500, (300, 1, 1), (1, 0, 0)), 1))
    want_dram, want_sbuf = dram.copy(), np.zeros(sbuf_bytes, np.uint8)
    for t in transfers:
        dma_copy_reference(t, want_dram, want_sbuf)
    error_count, got_dram, got_sbuf = run(transfers, dram, ram_kwargs, rng)
    assert error_count == 0
    assert np.array_equal(got_sbuf, want_sbuf)
    assert np.array_equal(got_dram, want_dram)


def test_out_of_range_is_decerr():
    """Bytes beyond the RAM answer DECERR: the DMA reports the read error and writes nothing."""
    rng = np.random.default_rng(3)
    dram = rng.integers(0, 256, DEPTH * WORD, dtype=np.uint8)
    bad = DmaTransfer(DmaSide("dram", DEPTH * WORD - 16, (64, 1, 1), (1, 0, 0)),
                      DmaSide("sbuf", 0, (64, 1, 1), (1, 0, 0)), 1)
    error_count, got_dram, got_sbuf = run([bad], dram, {}, rng)
    assert error_count == 1
    assert np.array_equal(got_dram, dram)
    assert RESP_DECERR == 3


def test_bad_parameters():
    with pytest.raises(ValueError, match="depth"):
        AxiRam(addr_width=32, data_width=64, id_width=1, depth=0)
    with pytest.raises(ValueError, match=r"stall\['r'\]"):
        AxiRam(addr_width=32, data_width=64, id_width=1, depth=4, stall={"r": 1.5})
    with pytest.raises(ValueError, match="jitter"):
        AxiRam(addr_width=32, data_width=64, id_width=1, depth=4, jitter=-1)
