"""Building a component into a Verilated shared library, and the build cache: one directory per
hash of everything that goes into the build, a file lock so parallel workers build each design
once, and Verilator's own runtime objects compiled once per toolchain."""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from systolica.hdl.lib.elaboratables import mark_used

from .codecs import _flat_ports
from .errors import BackendUnavailable, BuildError
from .glue import _glue_source
from .run import CompiledModel
from .toolchain import (
    BUILD_TIMEOUT_S, CXX_DIR, CXXFLAGS, GLUE_VERSION, HARNESS_FILES, LDFLAGS, VERILATOR_FLAGS,
    Toolchain, cache_dir, find_toolchain, fst_supported)


#: Bumped whenever the glue of hierarchical builds changes (flat builds keep their keys).
HIER_GLUE_VERSION = "3"


def _run(cmd, cwd, env, log, what):
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{what} did not finish in {BUILD_TIMEOUT_S} s: {' '.join(cmd)}") from e
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n"
              f"[{what}: {time.monotonic() - start:.1f} s, rc={proc.returncode}]\n")
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise BuildError(f"{what} failed (rc={proc.returncode}): {' '.join(cmd)}\n{tail}")


@dataclass
class BuildInfo:
    path: Path              # the directory holding libdut.so, dut.v, ports.txt, build.log
    key: str
    cached: bool            # True when an existing build was reused
    build_seconds: float    # time spent building now (0 when cached)
    toolchain: Toolchain


def _source_digest(component):
    """A hash of everything a component's Verilog can depend on without being told: the
    sources of systolica, its gateware and its Verilog export, the module that defines the
    component's class, and the Amaranth version."""
    import amaranth
    import systolica
    import systolica.hdl
    import systolica.synth
    h = hashlib.sha256(amaranth.__version__.encode())
    files = set()
    for pkg in (systolica, systolica.hdl, systolica.synth):
        for root in pkg.__path__:
            files.update(Path(root).rglob("*.py"))
    module = sys.modules.get(type(component).__module__)
    if getattr(module, "__file__", None):
        files.add(Path(module.__file__))
    for f in sorted(files):
        h.update(str(f).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def build(component, *, trace=None, opt="-O3", extra_sources=(), jobs=None, verilog=None,
          design_key=None, hier_block=None):
    """Verilate ``component`` with the generic harness into a shared library, or reuse the cached
    one. ``trace`` is ``None``, ``"fst"`` or ``"vcd"`` (waveform support costs build time and
    some speed, so it is a separate build); ``opt`` is the C++ optimisation of the model code;
    ``extra_sources`` are C++ files with models (see ``cxx/systolica_harness.h``).
    ``design_key`` (a repr-able description that with the sources identifies the design, e.g.
    ``("Tile", config)``) lets a later process find the build without generating the Verilog
    again (the key also covers the sources of systolica and of the component's module, so an
    edit rebuilds). ``verilog``: the design's Verilog (text, or a function returning it, called
    only when the build is not cached), else ``component``'s. ``hier_block``: the name of a
    module of that Verilog that is verilated once, on its own, for all its instances
    (Verilator's hierarchical verilation; the module must be instantiated with the same
    parameters everywhere); its memories are reachable as those of the flat model, by
    instance path. Returns a :class:`CompiledModel`."""
    from systolica.synth.verilog import to_verilog
    if trace not in (None, "fst", "vcd"):
        raise ValueError(f"trace must be None, 'fst' or 'vcd'; got {trace!r}")
    if opt not in ("-O0", "-O1", "-O2", "-O3", "-Os"):
        raise ValueError(f"opt must be one of -O0, -O1, -O2, -O3, -Os; got {opt!r}")
    tc = find_toolchain()
    if trace == "fst":
        ok, reason = fst_supported(tc)
        if not ok:
            raise BackendUnavailable(reason)
    ports = [("clk", "input", 1), ("rst", "input", 1)] + list(_flat_ports(component))
    extra_sources = [Path(p).resolve() for p in extra_sources]
    h = hashlib.sha256()
    for part in (GLUE_VERSION, CXXFLAGS, LDFLAGS, repr(VERILATOR_FLAGS), tc.version, tc.cxx,
                 repr(trace), opt, repr(ports)):
        h.update(part.encode() + b"\0")
    for name in HARNESS_FILES:
        h.update((CXX_DIR / name).read_bytes() + b"\0")
    for p in extra_sources:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    if hier_block is not None:
        h.update(f"hier_block={hier_block} glue={HIER_GLUE_VERSION}\0".encode())
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    link = None
    if design_key is not None and (verilog is None or callable(verilog)):
        d = h.copy()
        d.update(f"{type(component).__qualname__}\0{design_key!r}\0".encode())
        d.update(_source_digest(component).encode())
        link = root / "designs" / d.hexdigest()[:24]
        key = link.read_text().strip() if link.exists() else None
        if key and (root / key / "libdut.so").exists():
            mark_used(component)
            return CompiledModel(BuildInfo(root / key, key, True, 0.0, tc), component, ports)
    if verilog is None:
        verilog = to_verilog(component, "dut")
    elif callable(verilog):
        verilog = verilog()
    if hier_block is not None:
        verilog = mark_hier_block(verilog, hier_block)
    h.update(verilog.encode() + b"\0")
    key = h.hexdigest()[:24]
    final = root / key
    lib = final / "libdut.so"
    if lib.exists():
        _link(link, key)
        return CompiledModel(BuildInfo(final, key, True, 0.0, tc), component, ports)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # another process may be building the same design
        if lib.exists():
            _link(link, key)
            return CompiledModel(BuildInfo(final, key, True, 0.0, tc), component, ports)
        start = time.monotonic()
        work = root / f"{key}.tmp{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            _build_into(work, tc, verilog, ports, trace, opt, extra_sources, jobs, hier_block)
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        seconds = time.monotonic() - start
    _link(link, key)
    return CompiledModel(BuildInfo(final, key, False, seconds, tc), component, ports)


def _link(link, key):
    """Remember that the design behind ``link`` (a design-key file) is build ``key``."""
    if link is None:
        return
    link.parent.mkdir(exist_ok=True)
    tmp = link.with_name(f"{link.name}.tmp{os.getpid()}")
    tmp.write_text(key + "\n")
    os.replace(tmp, link)


def _runtime_dir(tc, trace):
    """Where the compiled objects of Verilator's runtime (verilated*.o, the same for every design
    built with this toolchain and trace setting) are kept between builds. The key includes the
    toolchain's root: the objects' make dependencies name its headers by absolute path."""
    key = hashlib.sha256(repr((GLUE_VERSION, CXXFLAGS, tc.version, tc.cxx, tc.root,
                               trace)).encode())
    key = key.hexdigest()
    return cache_dir() / f"runtime-{key[:16]}"


def _save_runtime(obj, runtime):
    tmp = runtime.with_name(f"{runtime.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in obj.glob("verilated*.o"):      # not the .d files: they name this venv's sources
        shutil.copy2(f, tmp / f.name)
    try:
        os.rename(tmp, runtime)
    except OSError:                 # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def mark_hier_block(verilog, name):
    """``verilog`` with Verilator's ``hier_block`` metacomment in module ``name``."""
    header = re.search(rf"^module {re.escape(name)}\s*\([^;]*\);", verilog, re.MULTILINE)
    if header is None:
        raise BuildError(f"hier_block: the Verilog has no module {name!r}")
    return (verilog[:header.end()] + " /*verilator hier_block*/" + verilog[header.end():])


def _build_into(work, tc, verilog, ports, trace, opt, extra_sources, jobs, hier_block=None):
    (work / "dut.v").write_text(verilog)
    for name in HARNESS_FILES:
        shutil.copy(CXX_DIR / name, work / name)
    extra_names = []
    for i, p in enumerate(extra_sources):
        dest = f"extra{i}_{p.name}"
        shutil.copy(p, work / dest)
        extra_names.append(dest)
    (work / "dut_glue.cpp").write_text("// placeholder\n")
    (work / "ports.txt").write_text("".join(f"{n} {d} {w}\n" for n, d, w in ports))
    env = dict(os.environ, VERILATOR_ROOT=tc.root)
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    cmd = [tc.verilator, "--cc", "dut.v", "--top-module", "dut", "--prefix", "Vdut",
           "-Mdir", "obj", *VERILATOR_FLAGS,
           "--exe", "harness.cpp", "dut_glue.cpp", *extra_names,
           "-CFLAGS", f"{CXXFLAGS} -I{work}", "-LDFLAGS", LDFLAGS, "-o", "libdut.so"]
    if hier_block is not None:
        # the glue reads the block's memories: its headers are in obj/V<block>/
        cmd[cmd.index("-CFLAGS") + 1] += f" -I{work}/obj/V{hier_block}"
        # --flatten: the blocks' DPI wrappers are inlined into the root, where the glue
        # finds their handles (with many instances Verilator would keep them as classes)
        cmd += ["--hierarchical", "--flatten"]
    if trace == "fst":
        cmd.append("--trace-fst")
    elif trace == "vcd":
        cmd.append("--trace")
    with open(work / "build.log", "w") as log:
        _run(cmd, work, env, log, "verilator")
        header = (work / "obj" / "Vdut.h").read_text()
        root_header = (work / "obj" / "Vdut___024root.h").read_text()
        hier = None
        if hier_block is not None:
            block_root = (work / "obj" / f"V{hier_block}" /
                          f"V{hier_block}___024root.h").read_text()
            hier = (f"V{hier_block}", block_root)
        (work / "dut_glue.cpp").write_text(_glue_source(header, "Vdut", ports, trace,
                                                        root_header, hier))
        jobs = jobs or os.cpu_count() or 1
        runtime = _runtime_dir(tc, trace)
        if runtime.is_dir():        # Verilator's own runtime, compiled by an earlier build
            for f in runtime.glob("verilated*.o"):   # newer than their sources: make skips them
                shutil.copy(f, work / "obj" / f.name)
        _run([tc.make, "-C", "obj", "-f", "Vdut.mk", f"-j{jobs}", "CFG_CXXFLAGS_PCH_I=-include",
              f"OPT_FAST={opt}", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2", f"CXX={tc.cxx}"],
             work, env, log, "C++ build")
        if not runtime.is_dir():
            _save_runtime(work / "obj", runtime)
    shutil.move(str(work / "obj" / "libdut.so"), str(work / "libdut.so"))
    shutil.rmtree(work / "obj", ignore_errors=True)
