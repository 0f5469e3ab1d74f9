"""The board's design, clock-domain agnostic (``sync``): a tile, its DRAM in block RAM
(``AxiRam``), the UART and the host bridge. ``BoardTop`` puts it on a board (clock, PLL, reset,
pins); the tests simulate it as it is, with the host on the UART pins.

    uart_rx -> UartRx -> HostBridge -> lite -> Tile.host
    uart_tx <- UartTx <-/     `-> axi -\\
                         Tile.axi ------ AxiArbiter -> AxiRam (dram_bytes)
"""

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.config import HostConfig, TileConfig
from ..axi_ram import AxiRam
from ..tile import Tile
from .bridge import HostBridge
from .interconnect import AxiArbiter
from .uart import UartRx, UartTx, check_divisor


__all__ = ["BoardSystem", "uart_divisor"]


def uart_divisor(clock_hz, baud):
    """Clock cycles per UART bit; refuses a baud rate the clock cannot make within 2 %."""
    if not baud or baud <= 0:
        raise ValueError(f"baud must be positive; got {baud!r}")
    divisor = round(clock_hz / baud)
    check_divisor(divisor)
    if abs(clock_hz / divisor - baud) > 0.02 * baud:
        raise ValueError(f"baud {baud} is not within 2 % of {clock_hz:.0f} Hz / {divisor}")
    return divisor


class BoardSystem(wiring.Component):
    """``uart_rx`` / ``uart_tx``: the host's serial line (idle high); ``status``: {some request
    refused, some byte skipped} (for LEDs)."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    status: Out(2)

    def __init__(self, *, config: TileConfig, dram_bytes, clock_hz, baud,
                 timeout_cycles=None, ram_kwargs=None):
        if not isinstance(config, TileConfig):
            raise TypeError(f"BoardSystem config must be a TileConfig; got {config!r}")
        word = config.dma.data_width // 8
        if not isinstance(dram_bytes, int) or dram_bytes < word or dram_bytes % word:
            raise ValueError(f"BoardSystem dram_bytes must be a positive multiple of the "
                             f"{word}-byte DRAM word; got {dram_bytes!r}")
        if dram_bytes > 1 << config.dma.addr_width:
            raise ValueError(f"BoardSystem dram_bytes {dram_bytes} exceeds the "
                             f"{config.dma.addr_width}-bit DMA address space")
        self._config = config
        self._dram_bytes = dram_bytes
        self._clock_hz = clock_hz
        self._divisor = uart_divisor(clock_hz, baud)
        # default timeout: 64 bit times of silence inside a frame
        self._timeout = timeout_cycles if timeout_cycles is not None else 64 * self._divisor
        self._ram_kwargs = dict(ram_kwargs or {})
        super().__init__()

    @property
    def config(self):
        return self._config

    @property
    def dram_bytes(self):
        return self._dram_bytes

    @property
    def divisor(self):
        return self._divisor

    @property
    def timeout_cycles(self):
        return self._timeout

    def elaborate(self, platform):
        m = Module()
        dma, host = self._config.dma, HostConfig()
        word = dma.data_width // 8
        tile = m.submodules.tile = Tile(config=self._config)
        bridge = m.submodules.bridge = HostBridge(
            addr_width=dma.addr_width, data_width=dma.data_width, id_width=dma.id_width,
            lite_addr_width=host.addr_width, lite_data_width=host.data_width,
            dram_bytes=self._dram_bytes, clock_hz=self._clock_hz,
            timeout_cycles=self._timeout)
        arbiter = m.submodules.arbiter = AxiArbiter(
            addr_width=dma.addr_width, data_width=dma.data_width, id_width=dma.id_width)
        ram = m.submodules.dram = AxiRam(
            addr_width=dma.addr_width, data_width=dma.data_width, id_width=dma.id_width + 1,
            depth=self._dram_bytes // word, **self._ram_kwargs)
        rx = m.submodules.uart_rx = UartRx(divisor=self._divisor)
        tx = m.submodules.uart_tx = UartTx(divisor=self._divisor)

        wiring.connect(m, tile.axi, arbiter.m0)
        wiring.connect(m, bridge.axi, arbiter.m1)
        wiring.connect(m, arbiter.slave, ram.axi)
        wiring.connect(m, bridge.lite, tile.host)
        wiring.connect(m, rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, tx.i)
        m.d.comb += [rx.pin.eq(self.uart_rx), self.uart_tx.eq(tx.pin),
                     self.status.eq(Cat(bridge.refused != 0, bridge.skipped != 0))]
        return m
