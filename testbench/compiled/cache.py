"""Building a component into a Verilated shared library, and the build cache: one directory per
hash of everything that goes into the build, a file lock so parallel workers build each design
once, and Verilator's own runtime objects compiled once per toolchain."""

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .codecs import _flat_ports
from .errors import BackendUnavailable, BuildError
from .glue import _glue_source
from .run import CompiledModel
from .toolchain import (
    BUILD_TIMEOUT_S, CXX_DIR, CXXFLAGS, GLUE_VERSION, HARNESS_FILES, LDFLAGS, VERILATOR_FLAGS,
    Toolchain, cache_dir, find_toolchain, fst_supported)


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


def build(component, *, trace=None, opt="-O3", extra_sources=(), jobs=None, verilog=None):
    """Verilate ``component`` with the generic harness into a shared library, or reuse the cached
    one. ``trace`` is ``None``, ``"fst"`` or ``"vcd"`` (waveform support costs build time and
    some speed, so it is a separate build); ``opt`` is the C++ optimisation of the model code;
    ``extra_sources`` are C++ files with models (see ``cxx/systolica_harness.h``). Returns a
    :class:`CompiledModel`."""
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
    if verilog is None:
        verilog = to_verilog(component, "dut")
    ports = [("clk", "input", 1), ("rst", "input", 1)] + list(_flat_ports(component))
    extra_sources = [Path(p).resolve() for p in extra_sources]
    h = hashlib.sha256()
    for part in (GLUE_VERSION, CXXFLAGS, LDFLAGS, repr(VERILATOR_FLAGS), tc.version, tc.cxx,
                 repr(trace), opt, repr(ports), verilog):
        h.update(part.encode() + b"\0")
    for name in HARNESS_FILES:
        h.update((CXX_DIR / name).read_bytes() + b"\0")
    for p in extra_sources:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    key = h.hexdigest()[:24]
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    lib = final / "libdut.so"
    if lib.exists():
        return CompiledModel(BuildInfo(final, key, True, 0.0, tc), component, ports)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # another process may be building the same design
        if lib.exists():
            return CompiledModel(BuildInfo(final, key, True, 0.0, tc), component, ports)
        start = time.monotonic()
        work = root / f"{key}.tmp{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            _build_into(work, tc, verilog, ports, trace, opt, extra_sources, jobs)
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        seconds = time.monotonic() - start
    return CompiledModel(BuildInfo(final, key, False, seconds, tc), component, ports)


def _runtime_dir(tc, trace):
    """Where the compiled objects of Verilator's runtime (verilated*.o, the same for every design
    built with this toolchain and trace setting) are kept between builds."""
    key = hashlib.sha256(repr((GLUE_VERSION, CXXFLAGS, tc.version, tc.cxx, trace)).encode())
    key = key.hexdigest()
    return cache_dir() / f"runtime-{key[:16]}"


def _save_runtime(obj, runtime):
    tmp = runtime.with_name(f"{runtime.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in list(obj.glob("verilated*.o")) + list(obj.glob("verilated*.d")):
        shutil.copy2(f, tmp / f.name)
    try:
        os.rename(tmp, runtime)
    except OSError:                 # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def _build_into(work, tc, verilog, ports, trace, opt, extra_sources, jobs):
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
    if trace == "fst":
        cmd.append("--trace-fst")
    elif trace == "vcd":
        cmd.append("--trace")
    with open(work / "build.log", "w") as log:
        _run(cmd, work, env, log, "verilator")
        header = (work / "obj" / "Vdut.h").read_text()
        (work / "dut_glue.cpp").write_text(_glue_source(header, "Vdut", ports, trace))
        jobs = jobs or os.cpu_count() or 1
        runtime = _runtime_dir(tc, trace)
        if runtime.is_dir():        # Verilator's own runtime, compiled by an earlier build
            for f in runtime.iterdir():
                shutil.copy(f, work / "obj" / f.name)   # newer than Vdut.mk: make skips them
        _run([tc.make, "-C", "obj", "-f", "Vdut.mk", f"-j{jobs}", "CFG_CXXFLAGS_PCH_I=-include",
              f"OPT_FAST={opt}", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2", f"CXX={tc.cxx}"],
             work, env, log, "C++ build")
        if not runtime.is_dir():
            _save_runtime(work / "obj", runtime)
    shutil.move(str(work / "obj" / "libdut.so"), str(work / "libdut.so"))
    shutil.rmtree(work / "obj", ignore_errors=True)
