"""A simulated serial line: the board design (``systolica.hdl.board.BoardSystem``) compiled with
Verilator, its UART pins driven bit by bit by a C++ model (``cxx/uart_line.cpp``), behind the
pyserial calls :class:`~systolica.board.Board` uses (``write``, ``read``, ``reset_input_buffer``,
``close``). So the host code that drives a real board over ``/dev/ttyUSB0`` drives the simulated
one unchanged::

    with SimulatedSerial(BoardSystem(config=cfg, dram_bytes=1 << 14, clock_hz=10**6,
                                     baud=125_000)) as line:
        board = Board(line, config=cfg)
        board.write_dram(0x1000, b"...")

The simulation advances only inside :meth:`read` (the host always waits for a reply): it runs
until the wanted bytes have arrived or ``timeout`` bit times have passed, then returns what it
has, as pyserial does after its timeout. ``gap`` (probability per host byte) and ``max_gap`` (bit
times) put random idle time between the host's bytes.
"""

from pathlib import Path

import numpy as np


__all__ = ["SIMULATED_PORT", "SimulatedSerial", "UART_LINE_SOURCE", "simulated_board_line"]

#: The ``--port`` name (``systolica gemm --backend board --port sim``) of a simulated board.
SIMULATED_PORT = "sim"

UART_LINE_SOURCE = Path(__file__).parent / "cxx" / "uart_line.cpp"

# control block fields (see cxx/uart_line.cpp)
_TX_ADDR, _TX_LEN, _TX_POS, _RX_ADDR, _RX_CAP, _RX_LEN, _RX_WANTED = range(7)
_DIVISOR, _GAP, _MAX_GAP, _SEED, _FRAMING = range(7, 12)


class SimulatedSerial:
    def __init__(self, system, *, timeout=20_000, gap=0.0, max_gap=8, seed=1,
                 buffer_bytes=1 << 20, memo_key=None):
        from systolica.testbench.backends import compiled_model
        if not 0.0 <= gap <= 1.0:
            raise ValueError(f"SimulatedSerial gap must be a probability in [0, 1]; got {gap!r}")
        self.system = system
        self.divisor = system.divisor
        self.timeout = int(timeout)              # in bit times, per read
        self.model = compiled_model(system, memo_key=memo_key,
                                    extra_sources=[str(UART_LINE_SOURCE)])
        self._tx = np.zeros(buffer_bytes, dtype=np.uint8)
        self._rx = np.zeros(buffer_bytes, dtype=np.uint8)
        self._ctrl = np.zeros(12, dtype=np.int64)
        self._ctrl[[_TX_ADDR, _RX_ADDR]] = [self._tx.ctypes.data, self._rx.ctypes.data]
        self._ctrl[_RX_CAP] = buffer_bytes
        self._ctrl[[_DIVISOR, _GAP, _MAX_GAP, _SEED]] = [self.divisor, round(gap * 1000),
                                                         max_gap, seed]
        self._read_pos = 0
        self._max_gap = max_gap
        self.sim = self.model.open()
        self.sim.add_model("uart_line", str(self._ctrl.ctypes.data))

    @property
    def cycle(self):
        return self.sim.cycle

    @property
    def framing_errors(self):
        """Bytes from the board whose stop bit was low (should stay 0)."""
        return int(self._ctrl[_FRAMING])

    def write(self, data):
        data = np.frombuffer(bytes(data), dtype=np.uint8)
        ctrl = self._ctrl
        if ctrl[_TX_POS] == ctrl[_TX_LEN]:
            ctrl[_TX_POS] = ctrl[_TX_LEN] = 0
        start = int(ctrl[_TX_LEN])
        if start + len(data) > len(self._tx):
            raise BufferError("SimulatedSerial: transmit buffer full (read the replies)")
        self._tx[start:start + len(data)] = data
        ctrl[_TX_LEN] = start + len(data)
        return len(data)

    def read(self, size=1):
        from systolica.testbench.sim import SimulationTimeout
        ctrl = self._ctrl
        ctrl[_RX_WANTED] = self._read_pos + size
        pending = int(ctrl[_TX_LEN] - ctrl[_TX_POS])
        budget = (self.timeout + 12 * size + (12 + self._max_gap) * pending) * self.divisor
        try:
            self.sim.run(max_cycles=self.sim.cycle + budget)
        except SimulationTimeout:
            pass                                    # pyserial returns what came in time
        end = min(int(ctrl[_RX_LEN]), self._read_pos + size)
        out = self._rx[self._read_pos:end].tobytes()
        self._read_pos = end
        if self._read_pos == ctrl[_RX_LEN]:
            self._read_pos = 0
            ctrl[_RX_LEN] = 0
        return out

    def reset_input_buffer(self):
        self._read_pos = 0
        self._ctrl[_RX_LEN] = 0

    def idle(self, bit_times):
        """Send what was written, then let the line be quiet for ``bit_times`` (the board's
        timeouts run meanwhile); replies that come in are kept for :meth:`read`."""
        from systolica.testbench.sim import SimulationTimeout
        ctrl = self._ctrl
        ctrl[_RX_WANTED] = 0
        pending = int(ctrl[_TX_LEN] - ctrl[_TX_POS])
        limit = (12 + self._max_gap) * pending * self.divisor
        self.sim.run(max_cycles=self.sim.cycle + limit + self.divisor)
        ctrl[_RX_WANTED] = 1 << 62
        try:
            self.sim.run(max_cycles=self.sim.cycle + bit_times * self.divisor)
        except SimulationTimeout:
            pass

    def close(self):
        if self.sim is not None:
            self.sim.close()
            self.sim = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def simulated_board_line(config, *, dram_bytes=1 << 16, clock_hz=1_000_000, baud=125_000,
                         ram_kwargs=None, **line_kwargs):
    """A :class:`SimulatedSerial` on the board design of ``config`` (a ``TileConfig``) with
    ``dram_bytes`` of DRAM (``ram_kwargs``: ``AxiRam`` stalls, as in the tests); the UART runs
    at 8 clocks per bit by default. The Verilator build is cached per design."""
    from systolica.hdl.board import BoardSystem
    ram_kwargs = dict(ram_kwargs or {})
    system = BoardSystem(config=config, dram_bytes=dram_bytes, clock_hz=clock_hz, baud=baud,
                         ram_kwargs=ram_kwargs)
    key = ("BoardSystem", config, dram_bytes, clock_hz, baud, tuple(sorted(ram_kwargs.items())))
    return SimulatedSerial(system, memo_key=key, **line_kwargs)
