"""The shared DRAM of compiled whole-design simulations: one byte array (a NumPy array, read and
written in place by C++: nothing to load or read back) behind N AXI4 slave ports, one per master
of the design (a tile's ``axi``, a chip's ``axi_{x}_{y}``), each with its own latency, jitter
and stalls. The C++ model (``cxx/axi_dram.cpp``) serves every port exactly as
:class:`~systolica.hdl.axi_ram.AxiRam` would (the same LFSR stalls and jitter for the same
settings), so a design run on Verilator with this DRAM takes the same cycles as on the Amaranth
simulator with an ``AxiRam``; all ports share one memory.

    model = compiled.build(dut, extra_sources=[compiled.AXI_DRAM_SOURCE])
    with model.open() as sim:
        dram = SharedDram(sim, memory, [DramPort("axi", dut.axi.signature, stall=0.2, seed=3)])
        sim.run(max_cycles=..., wait_while="running")
        memory[...]          # the final contents, in place; dram.stats() per port
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from systolica.hdl.axi_ram import lfsr_settings

__all__ = ["AXI_DRAM_SOURCE", "DramPort", "SharedDram"]

#: The C++ model to pass to ``build(extra_sources=...)``.
AXI_DRAM_SOURCE = Path(__file__).parent.parent / "cxx" / "axi_dram.cpp"
_CHANNELS = ("ar", "r", "aw", "w", "b")


@dataclass(frozen=True)
class DramPort:
    """One AXI4 master of the design: ``prefix`` is its flat Verilog name (``"axi"``,
    ``"axi_0_1"``), ``signature`` its ``Axi4Signature`` (the master's view); the rest as
    :class:`~systolica.hdl.axi_ram.AxiRam`'s arguments."""
    prefix: str
    signature: object
    read_latency: int = 1
    stall: object = 0.0          # a probability, or {channel: probability}
    jitter: int = 0
    seed: int = 1

    def args(self):
        if not isinstance(self.read_latency, int) or not 1 <= self.read_latency <= 64:
            raise ValueError(f"DramPort read_latency must be in [1, 64]; "
                             f"got {self.read_latency!r}")
        lfsrs = lfsr_settings(stall=self.stall, jitter=self.jitter, seed=self.seed)
        sig = self.signature
        words = [self.prefix, sig.id_width, sig.addr_width, sig.data_width, self.read_latency]
        for ch in _CHANNELS:
            words += list(lfsrs[ch])
        words += list(lfsrs["latency"])
        return " ".join(str(w) for w in words)


@dataclass
class SharedDram:
    """The DRAM model instantiated on a :class:`~systolica.testbench.compiled.CompiledSim` (built
    with :data:`AXI_DRAM_SOURCE`): ``memory`` is a contiguous uint8 array, used in place (keep
    it alive and do not resize it while the simulation runs)."""
    sim: object
    memory: np.ndarray
    ports: list
    _stats: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        mem = self.memory
        if not (isinstance(mem, np.ndarray) and mem.dtype == np.uint8 and mem.ndim == 1
                and mem.flags.c_contiguous and mem.flags.writeable):
            raise ValueError("SharedDram memory must be a writeable, contiguous 1-D uint8 array")
        if not self.ports:
            raise ValueError("SharedDram needs at least one DramPort")
        for p in self.ports:
            if len(mem) % (p.signature.data_width // 8):
                raise ValueError(f"SharedDram: {len(mem)} bytes is not a whole number of "
                                 f"{p.signature.data_width}-bit words (port {p.prefix})")
        self._stats = np.zeros(4 * len(self.ports), dtype=np.int64)
        args = " ".join([str(mem.ctypes.data), str(len(mem)), str(self._stats.ctypes.data),
                         str(len(self.ports))] + [p.args() for p in self.ports])
        self.sim._keep += [mem, self._stats]
        self.sim.add_model("axi_dram", args)

    def stats(self):
        """``{prefix: {"read_bursts", "read_beats", "write_bursts", "write_beats",
        "bytes"}}`` so far (bytes = beats x bus bytes, both directions)."""
        out = {}
        for i, p in enumerate(self.ports):
            rb, rbeats, wb, wbeats = (int(v) for v in self._stats[4 * i:4 * i + 4])
            out[p.prefix] = {"read_bursts": rb, "read_beats": rbeats, "write_bursts": wb,
                             "write_beats": wbeats,
                             "bytes": (rbeats + wbeats) * p.signature.data_width // 8}
        return out
