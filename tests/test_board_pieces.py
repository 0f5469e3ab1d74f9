# amaranth: UnusedElaboratable=no
"""Pieces of the board design in the Amaranth simulator: the protocol's CRC (host and gateware
from one definition), the UART pair under random stalls, the bridge alone on an AxiRam (refused
frames write nothing), the AXI arbiter under two masters, the PLL search and the CLI's refusals.
Whole-path tests (tile, Verilator) are in test_board.py."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from systolica.board.protocol import (
    Command, Status, crc16, crc16_update, encode_reply, encode_request, pack_arguments,
    unpack_info)
from systolica.cli import main
from systolica.hdl.axi_ram import AxiRam
from systolica.hdl.board import AxiArbiter, BoardSystem, HostBridge, UartRx, UartTx, uart_divisor
from systolica.hdl.board.top import ecp5_pll_params
from systolica.config import TileConfig
from systolica.testbench.sim import run_simulation


def test_crc_is_ccitt_false_and_the_gateware_computes_the_same():
    assert crc16(b"123456789") == 0x29B1                    # the catalogue check value
    frame = encode_reply(Status.OK, b"\x01\x02\x03")
    assert crc16(frame[1:]) == 0                             # residue of a good frame
    rng = np.random.default_rng(2)
    crc_in, byte, crc_out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += crc_out.eq(crc16_update(crc_in, byte))
    m.d.sync += Signal(name="clocked").eq(1)                 # a sync domain for the watchdog
    cases = [(int(c), int(b)) for c, b in zip(rng.integers(0, 1 << 16, 200),
                                              rng.integers(0, 256, 200))]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc_in, c)
            ctx.set(byte, b)
            assert ctx.get(crc_out) == crc16(bytes([b]), c)
            await ctx.tick()
    run_simulation(m, [bench], max_cycles=1000)


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_uart_loopback_with_stalls(stall):
    seed = 7
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    m = Module()
    tx = m.submodules.tx = UartTx(divisor=5)
    rx = m.submodules.rx = UartRx(divisor=5)
    m.d.comb += rx.pin.eq(tx.pin)
    data = rng.integers(0, 256, 40).tolist()
    got = []

    async def send(ctx):
        for value in data:
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(tx.i.valid, 1)
            ctx.set(tx.i.payload, value)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)

    async def receive(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            assert not ctx.get(rx.framing_error) and not ctx.get(rx.overrun)
            await ctx.tick()

    run_simulation(m, [send, receive], max_cycles=40 * 60 * 5)
    assert got == data


def test_uart_rx_drops_a_byte_with_a_bad_stop_bit():
    m = Module()
    rx = m.submodules.rx = UartRx(divisor=4)
    seen = {"errors": 0, "bytes": []}

    async def bench(ctx):
        ctx.set(rx.o.ready, 1)
        for value, stop in ((0x3C, 0), (0xA7, 1)):
            for bit in [0] + [(value >> i) & 1 for i in range(8)] + [stop, 1, 1]:
                ctx.set(rx.pin, bit)
                for _ in range(4):
                    await ctx.tick()
                    seen["errors"] += ctx.get(rx.framing_error)
                    if ctx.get(rx.o.valid):
                        seen["bytes"].append(ctx.get(rx.o.payload))
        for _ in range(8):
            await ctx.tick()
    run_simulation(m, [bench], max_cycles=400)
    assert seen["errors"] == 1 and seen["bytes"] == [0xA7]


def _bridge(**kwargs):
    return HostBridge(addr_width=32, data_width=64, id_width=2, dram_bytes=4096,
                      clock_hz=10**6, timeout_cycles=40, **kwargs)


async def exchange(ctx, bridge, frame, rng=None, stall=0.0):
    """Send ``frame`` on the bridge's rx stream (random gaps), return its reply's bytes."""
    ctx.set(bridge.tx.ready, 1)
    for b in frame:
        while rng is not None and rng.random() < stall:
            await ctx.tick()
        ctx.set(bridge.rx.valid, 1)
        ctx.set(bridge.rx.payload, b)
        await ctx.tick().until(bridge.rx.ready)
        ctx.set(bridge.rx.valid, 0)
    out = []
    while len(out) < 6 or len(out) < 6 + int.from_bytes(bytes(out[2:4]), "little"):
        if ctx.get(bridge.tx.valid):
            out.append(ctx.get(bridge.tx.payload))
        await ctx.tick()
    return bytes(out)


def mem_write(addr, data):
    return encode_request(Command.MEM_WRITE,
                          pack_arguments(Command.MEM_WRITE, addr=addr) + bytes(data))


def mem_read(addr, nbytes):
    return encode_request(Command.MEM_READ,
                          pack_arguments(Command.MEM_READ, addr=addr, nbytes=nbytes))


def test_bridge_alone_refuses_bad_frames_and_writes_good_ones():
    m = Module()
    bridge = m.submodules.bridge = _bridge()
    ram = m.submodules.ram = AxiRam(addr_width=32, data_width=64, id_width=2, depth=512,
                                    stall=0.3, seed=3)
    wiring.connect(m, bridge.axi, ram.axi)
    good = bytes(range(16))
    bad = bytearray(mem_write(0x100, b"\xFF" * 16))
    bad[-3] ^= 1
    frames = [bytes(bad), mem_write(0x108, good), mem_read(0x100, 24), mem_write(0x100, b"")[:9],
              encode_request(Command.INFO)]
    replies = []

    async def bench(ctx):
        for frame in frames:
            replies.append(await exchange(ctx, bridge, frame))

    run_simulation(m, [bench], max_cycles=5000)
    assert replies[0] == encode_reply(Status.BAD_CRC)
    assert replies[1] == encode_reply(Status.OK)
    assert replies[2] == encode_reply(Status.OK, bytes(8) + good)       # nothing at 0x100
    assert replies[3] == encode_reply(Status.TIMEOUT)
    info = unpack_info(replies[4][4:-2])
    assert (info.refused, info.skipped, info.dram_bytes, info.word_bytes) == (2, 0, 4096, 8)


def test_arbiter_two_masters_at_once():
    """Two bridges write and read back their own regions through one arbiter and one AxiRam
    with stalls, at the same time: every burst lands whole and R/B beats reach their master."""
    seed = 12
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    m = Module()
    bridges = [_bridge(), _bridge()]
    m.submodules.b0, m.submodules.b1 = bridges
    arbiter = m.submodules.arbiter = AxiArbiter(addr_width=32, data_width=64, id_width=2)
    ram = m.submodules.ram = AxiRam(addr_width=32, data_width=64, id_width=3, depth=512,
                                    stall=0.3, jitter=3, seed=9)
    wiring.connect(m, bridges[0].axi, arbiter.m0)
    wiring.connect(m, bridges[1].axi, arbiter.m1)
    wiring.connect(m, arbiter.slave, ram.axi)
    plans = {i: [(0x800 * i + 0x40 * j, rng.integers(0, 256, 8 * int(rng.integers(1, 9)),
                                                   dtype=np.uint8).tobytes())
                 for j in range(4)] for i in (0, 1)}
    results = {0: [], 1: []}

    def master(i):
        async def bench(ctx):
            for addr, data in plans[i]:
                assert await exchange(ctx, bridges[i], mem_write(addr, data), rng, 0.3) == \
                    encode_reply(Status.OK)
            for addr, data in plans[i]:
                results[i].append(await exchange(ctx, bridges[i], mem_read(addr, len(data)),
                                                 rng, 0.3))
        return bench

    run_simulation(m, [master(0), master(1)], max_cycles=20_000)
    for i in (0, 1):
        assert results[i] == [encode_reply(Status.OK, data) for _, data in plans[i]]


def test_pll_settings_within_the_ecp5_limits():
    for fin in (25.0, 100.0):                               # the ECP5 boards here
        for fout in (20.0, 25.0, 40.0, 50.0, 62.5, 75.0, 100.0):
            refdiv, fbdiv, opdiv, got = ecp5_pll_params(fin, fout)
            pfd, vco = fin / refdiv, fin / refdiv * fbdiv * opdiv
            assert abs(got - fout) <= 0.01 * fout
            assert 3.125 <= pfd <= 400 and 400 <= vco <= 800
    assert ecp5_pll_params(25.0, 40.0) == (5, 8, 15, 40.0)     # what yowasp-ecppll gives
    with pytest.raises(ValueError, match="PLL"):
        ecp5_pll_params(25.0, 1000.0)


def test_bad_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match="divisor"):
        UartTx(divisor=2)
    with pytest.raises(ValueError, match="baud"):
        uart_divisor(1e6, 0)
    with pytest.raises(ValueError, match="within 2 %"):
        uart_divisor(1e6, 230_400)
    with pytest.raises(ValueError, match="dram_bytes"):
        BoardSystem(config=TileConfig(), dram_bytes=1001, clock_hz=1e6, baud=125_000)
    with pytest.raises(TypeError, match="TileConfig"):
        BoardSystem(config=None, dram_bytes=1024, clock_hz=1e6, baud=125_000)
    with pytest.raises(ValueError, match="nbytes"):
        pack_arguments(Command.MEM_READ, addr=0, nbytes=1 << 16)
    with pytest.raises(ValueError, match="takes"):
        pack_arguments(Command.REG_READ, address=0)


def test_build_cli_refusals_are_one_line(tmp_path, capsys):
    for flag, value in (("--freq", "0.5"), ("--placer-density", "0.2"), ("--router", "sa"),
                        ("--placer", "sa")):
        with pytest.raises(SystemExit) as exited:
            main(["build", "--board", "ulx3s-85f", flag, value])
        assert exited.value.code == 2
        assert flag in capsys.readouterr().err
    assert main(["build", "--board", "ulx3s-85f", "--placer", "static", "--placer-density",
                 "0.7", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--placer-density" in err and "--placer heap" in err
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["build", "--board", "ulx3s-85f", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert main(["build", "--board", "ulx3s-85f", "--depth", "100", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_board_system_verilog_is_lint_clean(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from systolica.config import ArrayConfig, PsumConfig, SbufConfig
    from systolica.synth.verilog import to_verilog
    beside = os.path.join(os.path.dirname(sys.executable), "verilator-cli")
    verilator = beside if os.access(beside, os.X_OK) else shutil.which("verilator")
    if verilator is None:
        pytest.skip("needs Verilator")
    config = TileConfig(array=ArrayConfig(rows=2, cols=2), sbuf=SbufConfig(partitions=2,
                                                                            depth=64),
                        psum=PsumConfig(banks=2, bank_rows=16))
    system = BoardSystem(config=config, dram_bytes=4096, clock_hz=1e6, baud=125_000)
    path = tmp_path / "board.v"
    path.write_text(to_verilog(system, "board"))
    proc = subprocess.run([verilator, "--lint-only", "-Wno-fatal", "--top-module", "board",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "%Error" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("fmax, allow, status", [(52.5, False, 0), (31.2, False, 2),
                                                 (31.2, True, 0)])
def test_build_fails_on_missed_timing_unless_allowed(fmax, allow, status, tmp_path, capsys,
                                                     monkeypatch):
    """The report and the timing decision, with the tools replaced by a stand-in that writes
    what nextpnr and ecppack would (its Fmax is the parameter); the real build is slow."""
    import json

    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    def fake_build(platform, top, *, name, build_dir, **kwargs):
        assert "--timing-allow-fail" in kwargs["nextpnr_opts"]      # so Fmax is always reported
        assert "--seed 3 " in kwargs["nextpnr_opts"]
        assert "--placer-heap-beta 0.8 " in kwargs["nextpnr_opts"]
        assert "--router router1 " in kwargs["nextpnr_opts"]
        assert "--placer heap " in kwargs["nextpnr_opts"]
        for design in (top, top.system):        # not elaborated here: no "never used" warning
            design._MustUse__used = True
        report = {"fmax": {"sync_clk": {"achieved": fmax, "constraint": 40.0}},
                  "utilization": {cell: {"used": used, "available": 1000}
                                  for cell, used in (("TRELLIS_COMB", 900), ("TRELLIS_FF", 800),
                                                     ("DP16KD", 7), ("MULT18X18D", 6))}}
        (tmp_path / "out" / "build" / f"{name}.report.json").write_text(json.dumps(report))
        (tmp_path / "out" / "build" / f"{name}.bit").write_bytes(b"\xff" * 64)

    monkeypatch.setattr(ULX3S_85F_Platform, "build", fake_build)
    out = tmp_path / "out"
    argv = ["build", "--board", "ulx3s-85f", "--rows", "2", "--cols", "2", "--partitions", "2",
            "--depth", "64", "--bank_rows", "16", "--freq", "40", "--seed", "3",
            "--placer-density", "0.8", "--router", "router1", "-o", str(out)]
    assert main(argv + (["--allow-timing-fail"] if allow else [])) == status
    captured = capsys.readouterr()
    report = json.loads((out / "systolica_ulx3s_85f.json").read_text())   # written in any case
    assert (report["board"], report["luts"], report["ffs"], report["brams"], report["dsps"]) == \
        ("ulx3s-85f", 900, 800, 7, 6)
    assert report["fmax_mhz"] == fmax and report["clock_mhz"] == 40.0
    assert report["timing_met"] is (fmax >= 40.0) and report["seconds"] >= 0
    assert (report["seed"], report["placer_density"], report["router"], report["placer"]) == \
        (3, 0.8, "router1", "heap")
    assert (out / "systolica_ulx3s_85f.bit").exists() is (status == 0)
    if status:
        assert captured.err.count("\n") == 1 and "timing not met" in captured.err
        assert "--allow-timing-fail" in captured.err
    else:
        assert "wrote" in captured.out and ("NOT MET" in captured.out) is (fmax < 40.0)


def test_build_board_refuses_an_unknown_router(tmp_path):
    from systolica.board.build import build_board
    with pytest.raises(ValueError, match="build_board router must be one of router1, router2; "
                                         "got 'sa'"):
        build_board("ulx3s-85f", TileConfig(), tmp_path, router="sa")
    with pytest.raises(ValueError, match="build_board placer must be one of heap, static; "
                                         "got 'sa'"):
        build_board("ulx3s-85f", TileConfig(), tmp_path, placer="sa")
    with pytest.raises(ValueError, match="build_board placer_density is HeAP's"):
        build_board("ulx3s-85f", TileConfig(), tmp_path, placer="static", placer_density=0.7)


def test_build_without_config_builds_the_boards_profile(tmp_path, monkeypatch, capsys):
    """No --config: the board's profile (docs/fpga.md: a 4x4 tile, 4 partitions of 512 words,
    PSUM banks of 64 rows, the rest as systolica/default.toml); flags override single fields;
    --config is the whole base instead. The build itself is replaced by a stand-in."""
    from systolica.board import build
    from systolica.config import ArrayConfig, DmaConfig, SbufConfig
    built = []

    def stand_in(board, config, out_dir, **kwargs):
        built.append((board, config))
        raise build.TimingError("stand-in: nothing built")

    monkeypatch.setattr(build, "build_board", stand_in)
    for board in sorted(build.BOARDS):
        assert main(["build", "--board", board, "-o", str(tmp_path / board)]) == 2
        name, config = built[-1]
        assert name == board and config == build.board_config(board)
        assert (config.array.rows, config.array.cols, config.sbuf.partitions, config.sbuf.depth,
                config.psum.bank_rows) == (4, 4, 4, 512, 64)
        assert config.dma == DmaConfig() and config.array.moving_dtype == "int8"
    assert main(["build", "--board", "ulx3s-85f", "--rows", "2", "--cols", "2",
                 "-o", str(tmp_path / "flags")]) == 2
    config = built[-1][1]
    assert (config.array.rows, config.array.cols, config.sbuf.partitions,
            config.sbuf.depth) == (2, 2, 4, 512)
    toml = tmp_path / "eight.toml"
    toml.write_text("[array]\nrows = 8\ncols = 8\n")
    assert main(["build", "--board", "ulx3s-85f", "--config", str(toml),
                 "-o", str(tmp_path / "file")]) == 2
    config = built[-1][1]
    assert config.array == ArrayConfig(rows=8, cols=8) and config.sbuf == SbufConfig()
    assert capsys.readouterr().err.count("stand-in") == 4


def test_written_config_toml_reads_back_as_the_same_config(tmp_path):
    from systolica.board.build import known_board_configs, write_config_toml
    from systolica.config import ArrayConfig, load_toml
    configs = {**known_board_configs(),
               "bf16": TileConfig(array=ArrayConfig(rows=2, cols=3, moving_dtype="bfloat16",
                                                    stationary_dtype="bfloat16"))}
    for name, config in configs.items():
        write_config_toml(config, tmp_path / f"{name}.toml")
        assert TileConfig.from_sections(load_toml(tmp_path / f"{name}.toml")) == config


class _FingerprintLine:
    """A serial-like stand-in for a board: answers REG_READ of ID and FINGERPRINT."""

    def __init__(self, value):
        self.value, self.pending = value, bytearray()

    def write(self, frame):
        import struct
        from systolica.registers import TILE_MAGIC
        assert frame[1] == Command.REG_READ.value
        addr = struct.unpack("<H", frame[4:6])[0]
        self.pending += encode_reply(Status.OK, struct.pack("<I", {0: TILE_MAGIC,
                                                                   4: self.value}[addr]))

    def read(self, n):
        data = bytes(self.pending[:n])
        del self.pending[:n]
        return data

    def reset_input_buffer(self):
        self.pending.clear()


def test_board_without_a_config_is_identified_by_its_fingerprint():
    from systolica.board import Board, BoardError
    from systolica.board.build import BOARDS, board_config, known_board_configs
    from systolica.config import ArrayConfig
    from systolica.isa import fingerprint
    assert set(known_board_configs()) == {"default", *BOARDS}
    for config in (TileConfig(), *(board_config(b) for b in BOARDS)):
        board = Board(_FingerprintLine(fingerprint(config)))
        assert board.config == config and board.map["FINGERPRINT"].offset == 4
    other = TileConfig(array=ArrayConfig(rows=3, cols=3))
    with pytest.raises(BoardError, match=r"board fingerprint 0x[0-9a-f]{8} is none of the known "
                                         r"configs \(default, ecpix5-85f, ulx3s-85f\): pass "
                                         r"config="):
        Board(_FingerprintLine(fingerprint(other)))
