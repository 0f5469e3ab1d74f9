"""Running systolica on an FPGA board: the UART bridge protocol (:mod:`.protocol`), the host
client :class:`Board` (pyserial), the simulated serial line (:class:`SimulatedSerial`) that runs
the same host code against the board design in Verilator, and the bitstream build
(:mod:`.build`, ``systolica build --board``). docs/fpga.md describes the whole."""

from .host import PROGRAM_BASE, Board, BoardError, BoardRun
from .protocol import BoardInfo, Command, Status
from .simulated import SIMULATED_PORT, SimulatedSerial, simulated_board_line

__all__ = ["Board", "BoardError", "BoardRun", "BoardInfo", "Command", "Status",
           "SimulatedSerial", "PROGRAM_BASE", "SIMULATED_PORT", "simulated_board_line"]
