"""The ``board`` backend: a compiled program on a systolica FPGA board through its UART host
bridge (:class:`systolica.board.Board`: a serial port, or the simulated line
:class:`systolica.board.SimulatedSerial` that runs the same host code against the board design
in Verilator). The program image goes to DRAM address 0 and the data to the compiled layout,
as on the RTL backends; only the output tensor is read back (the UART is the bottleneck).

Imported lazily by :mod:`.device` (the other backends need no pyserial).
"""

from .device import DeviceError, Execution
from .rtl import _check_states

__all__ = ["open_board", "run_board"]


def open_board(config, port, baudrate):
    """A checked :class:`~systolica.board.Board` for ``config`` on ``port`` (a device name, a
    serial-like object or a ``Board``): its bitstream's fingerprint must be ``config``'s."""
    from systolica.board import Board, BoardError
    if port is None:
        raise ValueError("Device backend='board' needs port= (a serial device such as "
                         "'/dev/ttyUSB0', a serial-like object or a systolica.board.Board)")
    if isinstance(port, Board):
        if port.config != config:
            raise ValueError("Device config differs from its Board's config (the config the "
                             "bitstream was built for)")
        board = port
    else:
        board = Board(port, config=config, baudrate=baudrate)
    try:
        board.check()
    except BoardError as error:
        raise DeviceError(f"the board does not answer as a {config.array.rows}x"
                          f"{config.array.cols} tile: {error}") from None
    return board


def run_board(device, compiled, data, timeline):
    board = device.board
    info = board.info()
    if compiled.dram_bytes > info.dram_bytes:
        raise DeviceError(f"the compiled program needs {compiled.dram_bytes} bytes of DRAM; the "
                          f"board has {info.dram_bytes} (build it with a larger --dram-kib)")
    out = compiled.output
    run = board.run(compiled.program, data=data, dram_bytes=info.dram_bytes,
                    read=[(out.addr, out.end - out.addr)],
                    timeout_seconds=device.timeout_seconds)
    _check_states(run.queues, "the board")
    busy = {name: q["busy_cycles"] for name, q in run.queues.items()}
    return Execution("board", compiled.unpack(run.dram), compiled, run.tile_cycles,
                     timeline.cycles, None, busy, measured=True,
                     extra={"seconds": run.seconds, "board_info": info})
