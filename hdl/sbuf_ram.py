"""One SBUF partition's memory, with registered inputs and a registered output word.

Both ports take a request in cycle t (write: ``write.addr/data/en``, byte enables; read:
``read.addr/en``); their registered copies reach the block RAM in t + 1, and a read's word is in
``word`` in cycle t + ``READ_LATENCY`` (3), held until the next read's. ``written`` holds the
write the block RAM takes this cycle (its registered inputs), for the SBUF's collision bypass:
a read and a write of one word meeting at the block RAM leave the read's word undefined.

Two implementations of the same cycle behaviour:

* any platform: an Amaranth ``Memory`` (``partition_ram`` adds it as ``m.submodules[name]``,
  which simulations read), its read port written as an asynchronous port plus a data register
  (yosys' ``memory_dff`` merges that register into the block RAM, so ``no_rw_check`` applies:
  synthesis adds no collision logic of its own), then a fabric register for the word;
* ECP5 (``platform.family == "ecp5"``) with ``depth == 2048`` and no initial contents: one
  DP16KD per byte (2,048 x 9) with its output register (``REGMODE_B = "OUTREG"``) as the word's
  register. A DP16KD's output without it is about 5.8 ns after the clock (nextpnr's model) and
  the next flip-flop was placed up to 5 ns away; yosys' mapping never uses the output register.
"""

from types import SimpleNamespace

from amaranth.hdl import *
from amaranth.lib import memory

from .contracts import index_bits
from .multiplier import is_ecp5


__all__ = ["READ_LATENCY", "ECP5_BRAM_DEPTH", "partition_ram"]

#: Cycles from a read request to its word in ``word``.
READ_LATENCY = 3
#: The depth at which each byte of a word fills one DP16KD (2,048 x 9).
ECP5_BRAM_DEPTH = 2048


def partition_ram(m, name, platform, *, depth, word_bytes, init=()):
    """Adds partition memory ``name`` to ``m``; returns a namespace of ``write`` (addr, data,
    en: the request), ``read`` (addr, en: the request), ``written`` (addr, data, en: what the
    block RAM writes this cycle) and ``word``."""
    W = word_bytes
    addr_bits = index_bits(depth)
    write = SimpleNamespace(addr=Signal(addr_bits, name=f"{name}_write_addr"),
                            data=Signal(8 * W, name=f"{name}_write_data"),
                            en=Signal(W, name=f"{name}_write_en"))
    read = SimpleNamespace(addr=Signal(addr_bits, name=f"{name}_read_addr"),
                           en=Signal(name=f"{name}_read_en"))
    # The registered requests, in front of the block RAM: at the default depth a partition is
    # 8 block RAMs spread over the die, and the arbitrated address / enable nets to them were
    # the critical path (about 7 ns of routing after the grant).
    written = SimpleNamespace(addr=Signal(addr_bits, name=f"{name}_ram_write_addr"),
                              data=Signal(8 * W, name=f"{name}_ram_write_data"),
                              en=Signal(W, name=f"{name}_ram_write_en"))
    read_addr = Signal(addr_bits, name=f"{name}_ram_read_addr")
    read_en = Signal(name=f"{name}_ram_read_en")
    m.d.sync += [written.addr.eq(write.addr), written.data.eq(write.data),
                 written.en.eq(write.en), read_addr.eq(read.addr), read_en.eq(read.en)]
    word = Signal(8 * W, name=f"{name}_word")
    if is_ecp5(platform) and depth == ECP5_BRAM_DEPTH and not any(init):
        _ecp5_bytes(m, name, written, read_addr, read_en, word, W)
    else:
        mem = memory.Memory(shape=unsigned(8 * W), depth=depth, init=init,
                            attrs={"no_rw_check": 1})
        m.submodules[name] = mem
        wport = mem.write_port(granularity=8)
        m.d.comb += [wport.addr.eq(written.addr), wport.data.eq(written.data),
                     wport.en.eq(written.en)]
        async_port = mem.read_port(domain="comb")
        ram_data = Signal(8 * W, name=f"{name}_ram_data", reset_less=True)
        m.d.comb += async_port.addr.eq(read_addr)
        with m.If(read_en):
            m.d.sync += ram_data.eq(async_port.data)
        m.d.sync += word.eq(ram_data)
    return SimpleNamespace(write=write, read=read, written=written, word=word)


def _ecp5_bytes(m, name, written, read_addr, read_en, word, W):
    """One DP16KD per byte, 2,048 x 9 on both ports (address bits ADx13..ADx3): port A writes,
    port B reads into its output register (its clock enable CEB is the read's enable, so the
    word holds between reads, as the generic memory's)."""
    zero = Const(0, 1)
    for b in range(W):
        out = Signal(18, name=f"{name}_byte{b}_out")
        ports = {}
        for side, addr in (("A", written.addr), ("B", read_addr)):
            ports |= {f"i_AD{side}{i}": zero for i in range(3)}
            ports |= {f"i_AD{side}{i + 3}": addr[i] for i in range(11)}
            ports |= {f"i_CS{side}{i}": zero for i in range(3)}
        ports |= {f"i_DIA{i}": written.data[8 * b + i] if i < 8 else zero for i in range(18)}
        ports |= {f"i_DIB{i}": zero for i in range(18)}
        ports |= {f"o_DOB{i}": out[i] for i in range(18)}
        m.submodules[f"{name}_byte{b}"] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=9, p_DATA_WIDTH_B=9, p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="ASYNC", p_ASYNC_RESET_RELEASE="ASYNC", p_CSDECODE_A="0b000",
            p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
            p_CLKAMUX="CLKA", p_CLKBMUX="CLKB", p_GSR="DISABLED",
            i_CLKA=ClockSignal("sync"), i_CEA=Const(1, 1), i_OCEA=Const(1, 1),
            i_WEA=written.en[b], i_RSTA=zero,
            i_CLKB=ClockSignal("sync"), i_CEB=read_en, i_OCEB=Const(1, 1), i_WEB=zero,
            i_RSTB=zero,
            **ports)
        m.d.comb += word[8 * b:8 * b + 8].eq(out[:8])
