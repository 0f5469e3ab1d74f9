"""The host side of the UART bridge: :class:`Board`, over pyserial or anything with pyserial's
``write`` / ``read`` (a :class:`~systolica.board.simulated.SimulatedSerial`, say).

It offers the host operations of the simulated tile driver (``systolica.testbench.tile``):
register reads and writes by name (the tile's register map), DRAM reads and writes (split into
bursts of at most ``MAX_DATA`` bytes that never cross 4 KiB; unaligned ends are read, merged and
written back), and :meth:`Board.run`, which loads a program and its data, starts the tile, waits
for ``STATUS.done`` and returns the status registers, like ``run_tile``.
"""

import struct
import time
from dataclasses import dataclass, field

import numpy as np

from systolica.config import TileConfig
from .protocol import (
    BOUNDARY_BYTES, CRC_BYTES, HEADER_BYTES, MAX_DATA, REPLY_SYNC, Command, Status, crc16,
    encode_request, pack_arguments, unpack_info)
from .simulated import SIMULATED_PORT, simulated_board_line


__all__ = ["Board", "BoardError", "BoardRun", "PROGRAM_BASE"]

#: Where :meth:`Board.run` puts the program image (as ``run_tile`` does).
PROGRAM_BASE = 0


class BoardError(RuntimeError):
    """A request was refused (``status`` is its :class:`Status`) or no valid reply came
    (``status`` is None)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


@dataclass
class BoardRun:
    tile_cycles: int             # CYCLES register: start to done
    status: dict
    queues: dict                 # name -> {state, semaphore, pc, retired, busy_cycles, error, dma}
    semaphores: list
    seconds: float
    dram: np.ndarray = None      # uint8 DRAM image with the ranges asked for by ``read``
    extra: dict = field(default_factory=dict)


class Board:
    """A systolica board on a serial port.

    ``port``: a device name (``"/dev/ttyUSB0"``, opened with pyserial at ``baudrate``), an
    open serial-like object, or ``"sim"``: the board design of ``config`` in Verilator
    (:func:`~systolica.board.simulated.simulated_board_line`, 64 KiB of DRAM). ``config``: the
    TileConfig the bitstream was built for (register map, fingerprint check in :meth:`check`);
    None: the board's ``FINGERPRINT`` register picks it among the default config and the
    board profiles (:func:`~systolica.board.build.known_board_configs`), and a bitstream of
    any other config is refused (pass its config, e.g. from the ``.toml`` its build wrote);
    for ``"sim"``, None is the default config. ``retries``: resend a request refused for a
    line error (BAD_CRC, TIMEOUT, or a corrupt reply) this many times; requests are
    idempotent.
    """

    def __init__(self, port, *, config=None, baudrate=115200, timeout=2.0, retries=2):
        identify = config is None and port != SIMULATED_PORT
        if config is None:
            config = TileConfig()
        if not isinstance(config, TileConfig):
            raise TypeError(f"Board config must be a TileConfig; got {config!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"Board retries must be a non-negative integer; got {retries!r}")
        from systolica.registers import tile_register_map
        self.config = config
        self.map = tile_register_map(config)
        self.retries = retries
        self._owned = isinstance(port, str)
        if port == SIMULATED_PORT:              # the board design in Verilator (no hardware)
            self.line = simulated_board_line(config)
        elif self._owned:
            try:
                import serial
            except ImportError:
                raise ImportError("Board needs pyserial: pip install 'systolica[board]'") from None
            self.line = serial.Serial(port, baudrate=baudrate, timeout=timeout)
        else:
            self.line = port
        self._info = None
        self.device = None              # the runtime Device of matmul(..., device=board)
        if identify:
            self._identify()

    def _identify(self):
        """Take the config whose fingerprint the board reports (ID and FINGERPRINT have the
        same offsets in every tile's register map)."""
        from systolica.board.build import known_board_configs
        from systolica.isa import fingerprint
        from systolica.registers import tile_register_map
        got = self.read_register("FINGERPRINT")
        known = known_board_configs()
        for config in known.values():
            if fingerprint(config) == got:
                self.config, self.map = config, tile_register_map(config)
                return
        self.close()
        raise BoardError(f"board fingerprint {got:#010x} is none of the known configs "
                         f"({', '.join(known)}): pass config= (the .toml "
                         f"its build wrote: TileConfig.from_sections(load_toml(PATH)))")

    def close(self):
        if self._owned:
            self.line.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- frames --------------------------------------------------------------------------------

    def _read_exact(self, n):
        data = self.line.read(n)
        if len(data) != n:
            raise BoardError(f"board reply timed out ({len(data)} of {n} bytes)")
        return data

    def _reply(self):
        for _ in range(HEADER_BYTES + MAX_DATA + 64):          # skip noise before the sync
            sync = self.line.read(1)
            if not sync:
                raise BoardError("no reply from the board (timed out)")
            if sync[0] == REPLY_SYNC:
                break
        else:
            raise BoardError("no reply sync byte from the board")
        head = self._read_exact(HEADER_BYTES - 1)
        code, length = struct.unpack("<BH", head)
        if length > MAX_DATA + 64:
            raise BoardError(f"board reply with an impossible length {length}")
        rest = self._read_exact(length + CRC_BYTES)
        if crc16(head + rest) != 0:
            raise BoardError("board reply failed its CRC")
        try:
            status = Status(code)
        except ValueError:
            raise BoardError(f"board reply with unknown status {code}") from None
        return status, rest[:length]

    def request(self, command, payload=b""):
        """Send one request; return the reply payload, or raise :class:`BoardError`."""
        command = Command(command)
        frame = encode_request(command, payload)
        for attempt in range(self.retries + 1):
            self.line.write(frame)
            try:
                status, data = self._reply()
            except BoardError:
                if attempt == self.retries:
                    raise
                self.line.reset_input_buffer()
                continue
            if status is Status.OK:
                return data
            if status in (Status.BAD_CRC, Status.TIMEOUT) and attempt < self.retries:
                continue
            raise BoardError(f"board refused {command.name}: {status.name}", status)

    # --- host operations (the same as testbench/tile.py's) -------------------------------------

    def info(self):
        """The bridge's INFO: version, word_bytes, max_data, dram_bytes, clock_hz, refused,
        skipped."""
        info = unpack_info(self.request(Command.INFO))
        self._info = info
        return info

    def check(self):
        """Refuse a board built for another config (fingerprint) or another word size."""
        from systolica.isa import fingerprint
        info = self.info()
        if info.word_bytes != self.config.dma.data_width // 8:
            raise BoardError(f"board DRAM word is {info.word_bytes} bytes; the config says "
                             f"{self.config.dma.data_width // 8}")
        magic, got = self.read_register("ID"), self.read_register("FINGERPRINT")
        want = fingerprint(self.config)
        if got != want:
            raise BoardError(f"board was built for another config: fingerprint {got:#010x}, "
                             f"expected {want:#010x} (magic {magic:#x})")
        return info

    def _offset(self, reg):
        return reg if isinstance(reg, int) else self.map[reg].offset

    def read_register(self, reg):
        """One 32-bit register, by name (``"STATUS"``) or byte offset."""
        data = self.request(Command.REG_READ, pack_arguments(Command.REG_READ,
                                                             addr=self._offset(reg)))
        return struct.unpack("<I", data)[0]

    def write_register(self, reg, value=None, **fields):
        """``write_register("CONTROL", start=1)`` or ``write_register(0x08, 1)``."""
        if value is None:
            if isinstance(reg, int):
                raise ValueError("write_register by offset needs a value")
            value = self.map[reg].encode(**fields)
        self.request(Command.REG_WRITE, pack_arguments(Command.REG_WRITE,
                                                       addr=self._offset(reg), data=value))

    def fields(self, name):
        return self.map[name].decode(self.read_register(name))

    @property
    def word_bytes(self):
        return self.config.dma.data_width // 8

    def _chunks(self, start, end):
        """Word-aligned (addr, nbytes) bursts covering [start, end)."""
        w = self.word_bytes
        addr = start - start % w
        end = -(-end // w) * w
        while addr < end:
            n = min(end - addr, MAX_DATA - MAX_DATA % w,
                    BOUNDARY_BYTES - addr % BOUNDARY_BYTES)
            yield addr, n
            addr += n

    def _read_aligned(self, addr, nbytes):
        return self.request(Command.MEM_READ, pack_arguments(Command.MEM_READ, addr=addr,
                                                             nbytes=nbytes))

    def read_dram(self, addr, nbytes):
        """``nbytes`` of DRAM from byte ``addr`` (any alignment)."""
        addr, nbytes = self._check_range(addr, nbytes)
        out = b"".join(self._read_aligned(a, n) for a, n in self._chunks(addr, addr + nbytes))
        skip = addr % self.word_bytes
        return out[skip:skip + nbytes]

    def write_dram(self, addr, data):
        """Write ``data`` (bytes or an array) to DRAM from byte ``addr`` (any alignment; the
        words at unaligned ends are read first and merged)."""
        data = np.ascontiguousarray(data).tobytes() if isinstance(data, np.ndarray) \
            else bytes(data)
        addr, nbytes = self._check_range(addr, len(data))
        for a, n in self._chunks(addr, addr + nbytes):
            lo, hi = max(a, addr), min(a + n, addr + nbytes)
            piece = data[lo - addr:hi - addr]
            if lo != a or hi != a + n:
                old = bytearray(self._read_aligned(a, n))
                old[lo - a:hi - a] = piece
                piece = bytes(old)
            self.request(Command.MEM_WRITE, pack_arguments(Command.MEM_WRITE, addr=a) + piece)

    def _check_range(self, addr, nbytes):
        if not isinstance(addr, (int, np.integer)) or addr < 0:
            raise ValueError(f"DRAM addr must be a non-negative integer; got {addr!r}")
        if not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
            raise ValueError(f"DRAM nbytes must be a non-negative integer; got {nbytes!r}")
        size = self._info.dram_bytes if self._info is not None else None
        if size is not None and addr + nbytes > size:
            raise ValueError(f"DRAM access {addr:#x}..{addr + nbytes:#x} lies outside the "
                             f"board's {size}-byte DRAM")
        return int(addr), int(nbytes)

    def run(self, program, *, data=None, read=(), dram_bytes=None, lengths=None,
            poll_seconds=0.0, timeout_seconds=60.0, max_polls=None):
        """Load ``program`` (a :class:`systolica.isa.Program`) at PROGRAM_BASE and ``data``
        (``{addr: bytes}``), program the queue registers, start the tile and poll ``STATUS``
        until done (``timeout_seconds``, or ``max_polls``; then abort). Returns a
        :class:`BoardRun` with the status registers (as ``run_tile``'s ``TileRun``); ``read``
        (``[(addr, nbytes), ...]``, or ``"all"``) fills ``run.dram``, a ``dram_bytes``
        (default: the board's DRAM) image, with those ranges read back after the run."""
        from systolica.isa import tile_queues
        started = time.monotonic()
        image = program.encode()
        for addr, values in (data or {}).items():
            if addr < PROGRAM_BASE + len(image):
                raise ValueError(f"Board.run: data at {addr:#x} overlaps the "
                                 f"{len(image)}-byte program image at {PROGRAM_BASE:#x}")
        self.write_dram(PROGRAM_BASE, image)
        for addr, values in (data or {}).items():
            self.write_dram(addr, values)
        offsets = program.queue_offsets()
        names = [q.name for q in tile_queues(self.config)]
        for name in names:
            off, n = offsets.get(name, (0, 0))
            if lengths and name in lengths:
                n = lengths[name]
            self.write_register(f"{name.upper()}_BASE", addr=PROGRAM_BASE + off)
            self.write_register(f"{name.upper()}_LENGTH", instructions=n)
        self.write_register("CONTROL", start=1)
        polls = 0
        while True:
            status = self.fields("STATUS")
            if status["done"]:
                break
            polls += 1
            if (time.monotonic() - started > timeout_seconds
                    or (max_polls is not None and polls >= max_polls)):
                self.write_register("CONTROL", abort=1)
                raise BoardError(f"tile did not finish within {timeout_seconds} s / "
                                 f"{polls} polls; aborted")
            if poll_seconds:
                time.sleep(poll_seconds)
        queues = {}
        for name in names:
            p = name.upper()
            info = dict(self.fields(f"{p}_STATE"))
            info["pc"] = self.read_register(f"{p}_PC")
            info["retired"] = self.read_register(f"{p}_RETIRED")
            info["busy_cycles"] = self.read_register(f"{p}_BUSY_CYCLES")
            err = self.fields(f"{p}_ERROR")
            info["error"], info["dma"] = err["code"], err["dma"]
            queues[name] = info
        semaphores = [self.read_register(r.name) for r in self.map if r.name.startswith("SEM")]
        tile_cycles = self.read_register("CYCLES")
        dram = None
        if read:
            size = dram_bytes or (self._info or self.info()).dram_bytes
            dram = np.zeros(size, dtype=np.uint8)
            for addr, nbytes in ([(0, size)] if read == "all" else read):
                dram[addr:addr + nbytes] = np.frombuffer(self.read_dram(addr, nbytes), np.uint8)
        return BoardRun(tile_cycles=tile_cycles, status=status, queues=queues,
                        semaphores=semaphores, seconds=time.monotonic() - started, dram=dram)
