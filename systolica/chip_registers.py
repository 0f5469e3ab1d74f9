"""The chip's host address space, declared once: its windows and the chip registers (window 0).

The host port of a chip (docs/chip.md) is one AXI4-Lite slave whose byte address space is cut
into equal *windows* of :func:`window_bytes` of the tile map (``2 ** ceil_log2`` of the end of
its last register): window 0 holds the chip registers of :func:`chip_register_map`, tile
``(x, y)`` is window ``1 + y * X + x`` and holds that tile's own register map
(:func:`systolica.registers.tile_register_map`). The declaration uses the classes of
:mod:`systolica.registers` (amaranth-soc's CSR-builder style), so the same generators give the
gateware (``systolica.hdl.chip`` builds a ``RegisterFile`` from it), the Python map the runtime
and test benches use (:class:`HostMap`), a C header (:func:`c_header`) and the chip section of
docs/registers.md (:func:`registers_markdown`; ``python -m systolica.chip_registers --markdown >
docs/registers.md`` writes the whole file, tile map first; a test checks it is current).

Errors: an address outside every window answers DECERR; a hole inside a window, or a write to a
read-only register, SLVERR; neither changes anything (reads return 0).
"""

import argparse
import sys
from dataclasses import dataclass

from systolica.registers import Field, RegisterMap, tile_register_map


__all__ = ["CHIP_MAGIC", "CHIP_MAP_VERSION", "BITMAP_REGISTERS", "window_bytes", "HostMap",
           "Window", "chip_register_map", "host_map", "c_header", "registers_markdown"]

#: Value of the chip's ``ID`` register ("SYSC" in ASCII, little-endian).
CHIP_MAGIC = int.from_bytes(b"SYSC", "little")
#: Version of the chip register map and window layout (``VERSION.registers``); bump on any
#: incompatible change.
CHIP_MAP_VERSION = 1
#: Registers of each per-tile bitmap (RUNNING, DONE, HALTED): 32 tiles each, 256 tiles at most.
BITMAP_REGISTERS = 8
_BITMAPS = (("RUNNING", 0x40, "is running (the tile's `running` output, `STATUS.running`)"),
            ("DONE", 0x60, "has ended every started engine since the last start "
                           "(`STATUS.done`)"),
            ("HALTED", 0x80, "has an engine halted on a bad instruction (`STATUS.halted`)"))


def window_bytes(regmap):
    """Bytes of the window a register map decodes: the end of its last register, rounded up to a
    power of two (an access beyond it is outside the window)."""
    end = max((reg.offset + regmap.word_bytes for reg in regmap), default=regmap.word_bytes)
    return 1 << (end - 1).bit_length()


def _tile_map(chip):
    """The register map in every tile window (the map of a chip's tile)."""
    return tile_register_map(chip)


@dataclass(frozen=True)
class Window:
    """One window of the host address space: ``index``, byte ``base``, ``size``, the
    ``tile`` position (None for window 0) and its register map."""
    index: int
    base: int
    size: int
    tile: tuple
    map: RegisterMap

    @property
    def name(self):
        return "chip" if self.tile is None else f"tile ({self.tile[0]}, {self.tile[1]})"

    def address(self, register):
        """Host byte address of ``register`` (a name) in this window."""
        return self.base + self.map.address(register)


class HostMap:
    """The chip's host address space (see the module docstring): ``windows`` (window 0 first),
    ``chip`` (window 0) and :meth:`tile` ``(x, y)``."""

    def __init__(self, chip):
        from systolica.config import ChipConfig
        if not isinstance(chip, ChipConfig):
            raise TypeError(f"HostMap chip must be a ChipConfig; got {chip!r}")
        self.config = chip
        tile_map = _tile_map(chip)
        self.window_bytes = window_bytes(tile_map)
        self.window_bits = self.window_bytes.bit_length() - 1
        noc = chip.noc
        self.windows = [Window(0, 0, self.window_bytes, None, chip_register_map(chip))]
        for y in range(noc.height):
            for x in range(noc.width):
                index = 1 + y * noc.width + x
                self.windows.append(Window(index, index * self.window_bytes, self.window_bytes,
                                           (x, y), tile_map))

    @property
    def chip(self):
        return self.windows[0]

    def tile(self, x, y):
        noc = self.config.noc
        if not (0 <= x < noc.width and 0 <= y < noc.height):
            raise ValueError(f"HostMap.tile: ({x}, {y}) is outside the {noc.width}x{noc.height} "
                             f"mesh")
        return self.windows[1 + y * noc.width + x]

    @property
    def bytes(self):
        """End of the last window."""
        return len(self.windows) * self.window_bytes


def host_map(chip):
    return HostMap(chip)


def chip_register_map(chip):
    """The chip registers of window 0 for ``chip`` (a ChipConfig)."""
    from systolica.isa import ISA_VERSION
    noc, tiles = chip.noc, chip.tiles
    tile_control = _tile_map(chip)["CONTROL"]
    regs = RegisterMap("systolica_chip", data_width=chip.host.data_width,
                       addr_width=chip.host.addr_width,
                       doc="The chip registers (window 0 of the host port). `CONTROL` reaches "
                           "every tile at once; the bitmaps have bit `y * X + x` for tile "
                           "(x, y), 32 tiles per register.")
    group = "window 0: chip registers"
    regs.add("ID", [Field("magic", 32, "ro", f"always {CHIP_MAGIC:#x} (\"SYSC\")")],
             "Identifies a systolica chip.", group=group)
    regs.add("VERSION", [
        Field("registers", 16, "ro", f"version of this map and window layout "
                                     f"({CHIP_MAP_VERSION})"),
        Field("isa", 16, "ro", f"ISA version of the tiles ({ISA_VERSION})")],
        "Versions.", group=group)
    regs.add("FINGERPRINT", [Field("value", 32, "ro",
                                   "fingerprint of the chip config (systolica.isa.fingerprint); "
                                   "every tile's program must carry it")],
             "Chip config fingerprint.", group=group)
    regs.add("MESH", [Field("width", 8, "ro", "X: tiles per row"),
                      Field("height", 8, "ro", "Y: tiles per column")],
             "Mesh size.", group=group)
    regs.add("TILES", [Field("count", 16, "ro", "tiles (X * Y)")], "Tile count.", group=group)
    regs.add("WINDOW", [Field("log2_bytes", 8, "ro", "log2 of the window size: tile (x, y)'s "
                                                     "registers start at `(1 + y * X + x) << "
                                                     "log2_bytes`")],
             "Window size.", group=group)
    regs.add("CONTROL", list(tile_control.fields),
             "Chip-wide control: one write is the same write to `CONTROL` of every tile, in the "
             "same cycle (start, abort and clear the errors of every tile at once).",
             group=group)
    regs.add("STATUS", [
        Field("running", 1, "ro", "some tile is running"),
        Field("done", 1, "ro", "every tile is done (since its last start)"),
        Field("halted", 1, "ro", "some tile has a halted engine")],
        "Chip status (the OR / AND of the bitmaps).", group=group)
    regs.add("NOC_STATUS", [
        Field("overflow", 1, "ro", "sticky: a router buffer received a flit with no room (never "
                                   "set unless the credit protocol is broken)"),
        Field("refused", 1, "ro", "some network interface refused a packet for a destination "
                                  "outside the mesh (its counter is non-zero)")],
        "Mesh status.", group=group)
    for name, base, meaning in _BITMAPS:
        for i in range(-(-tiles // 32)):
            width = min(32, tiles - 32 * i)
            regs.add(f"{name}{i}", [Field("tiles", width, "ro",
                                          f"bit t: tile {32 * i} + t {meaning}")],
                     f"Per-tile bitmap, tiles {32 * i}..{32 * i + width - 1}.",
                     offset=base + 4 * i, group=group)
    return regs


def c_header(chip):
    """A C header: the chip registers (``SYSTOLICA_CHIP_*``), the window layout and the tile
    registers (``SYSTOLICA_TILE_*``, offsets inside a tile window)."""
    hmap = HostMap(chip)
    noc = chip.noc
    chip_text = hmap.chip.map.c_header("SYSTOLICA_CHIP")
    layout = [f"#define SYSTOLICA_CHIP_MESH_WIDTH {noc.width}u",
              f"#define SYSTOLICA_CHIP_MESH_HEIGHT {noc.height}u",
              f"#define SYSTOLICA_CHIP_WINDOW_BYTES 0x{hmap.window_bytes:x}u",
              "/* byte address of tile (x, y)'s window; add a SYSTOLICA_TILE_*_OFFSET */",
              "#define SYSTOLICA_CHIP_TILE_WINDOW(x, y) "
              "((1u + (unsigned)(y) * SYSTOLICA_CHIP_MESH_WIDTH + (unsigned)(x)) * "
              "SYSTOLICA_CHIP_WINDOW_BYTES)", ""]
    head, tail = chip_text.rsplit("#endif", 1)
    return head + "\n".join(layout) + "\n#endif" + tail + "\n" + hmap.tile(0, 0).map.c_header()


def _chip_section(chip):
    hmap = HostMap(chip)
    noc = chip.noc
    w = hmap.window_bytes
    lines = ["# Chip host address space", "",
             "Generated by `python -m systolica.chip_registers --markdown` from "
             "`systolica/chip_registers.py` (shown for the default chip, "
             f"{noc.width}×{noc.height} tiles).", "",
             "The chip's host port (`s_axil_*` in `systolica verilog --block chip`) is one "
             "AXI4-Lite slave cut into equal windows of `2 ** ceil_log2(tile map bytes)` bytes "
             f"({w:#x} here; the chip's `WINDOW` register says it): window 0 holds the chip "
             "registers below, tile (x, y) is window `1 + y * X + x` and holds that tile's "
             "register map (the tile map above, at the same offsets). "
             "`ChipConfig` refuses a `host.addr_width` too small for every window.", "",
             "Errors: an address outside every window answers **DECERR**; a hole inside a "
             "window, or a write to a read-only register, **SLVERR**. A refused access "
             "changes nothing; a refused read returns 0. Every access is answered (no hang). "
             "A standalone tile's host port follows the same rules (its window is the "
             f"{w:#x} bytes above; `hdl/regs.py`).",
             "", "| window | bytes | holds |", "|---|---|---|"]
    for win in hmap.windows:
        holds = "chip registers" if win.tile is None else f"tile ({win.tile[0]}, {win.tile[1]})"
        lines.append(f"| {win.index} | `{win.base:#07x}`–`{win.base + win.size - 1:#07x}` | "
                     f"{holds} |")
    aw = chip.host.addr_width
    lines += ["", f"The windows need `(1 + X * Y) * {w:#x}` bytes, so `host.addr_width` must "
              f"be at least `ceil_log2` of that: with this tile, {aw} bits reach "
              f"{(1 << aw) // w - 1} tiles, an 8×8 chip needs "
              f"{(65 * w - 1).bit_length()} (`ChipConfig.validate` refuses less).", ""]
    # the chip registers, rendered by RegisterMap.markdown from its first group heading on
    body = hmap.chip.map.markdown().split("\n## ", 1)[1]
    return "\n".join(lines) + "\n## " + body


def registers_markdown():
    """docs/registers.md: the tile register map, then the chip section (default configs)."""
    from systolica.config import ChipConfig
    return (tile_register_map(ChipConfig()).markdown("Tile register map") + "\n"
            + _chip_section(ChipConfig()))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m systolica.chip_registers",
                                     description="print the register maps (tile and chip)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="docs/registers.md")
    group.add_argument("--c-header", action="store_true", help="a C header for the default chip")
    args = parser.parse_args(argv)
    from systolica.config import ChipConfig
    sys.stdout.write(registers_markdown() if args.markdown else c_header(ChipConfig()))


if __name__ == "__main__":
    main()
