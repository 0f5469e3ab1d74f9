"""FPGA board builds: the board design (tile + block-RAM DRAM + UART host bridge) and its top
for amaranth-boards platforms. docs/fpga.md describes the whole."""

from .bridge import HostBridge
from .interconnect import AxiArbiter
from .system import BoardSystem, uart_divisor
from .uart import UartRx, UartTx

__all__ = ["HostBridge", "AxiArbiter", "BoardSystem", "uart_divisor", "UartRx", "UartTx"]
