"""The run loop of the compiled backend: a loaded model (:class:`CompiledModel`) and its
simulation instances (:class:`CompiledSim`): step-wise set/get/tick, and whole stream transfers
with stall masks run in C++."""

import ctypes
import os

import numpy as np

from ..sim import SimulationTimeout
from .codecs import PayloadCodec, stream_ports
from .errors import BuildError, ProtocolError


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
            "sys_tick": ([ctypes.c_void_p, ctypes.c_int64], ctypes.c_int),
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
            "sys_num_memories": ([], ctypes.c_int),
            "sys_memory_name": ([ctypes.c_int], ctypes.c_char_p),
            "sys_memory_width": ([ctypes.c_int], ctypes.c_int),
            "sys_memory_depth": ([ctypes.c_int], ctypes.c_int),
            "sys_memory_elem_bytes": ([ctypes.c_int], ctypes.c_int),
            "sys_memory_ptr": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_void_p),
            "sys_memory_written": ([ctypes.c_void_p], None),
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

    def __init__(self, info, component, ports):      # info: a cache.BuildInfo
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
        #: ``{dotted name: (index, width, depth, bytes per word in the model)}`` of the design's
        #: memories (``"datapath.sbuf.partition0"``), for :meth:`CompiledSim.memory`.
        self.memories = {}
        for i in range(self.lib.sys_num_memories()):
            self.memories[self.lib.sys_memory_name(i).decode()] = (
                i, self.lib.sys_memory_width(i), self.lib.sys_memory_depth(i),
                self.lib.sys_memory_elem_bytes(i))

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

    def _memory_view(self, name):
        try:
            index, width, depth, elem = self.model.memories[name]
        except KeyError:
            raise KeyError(f"no memory {name!r}; memories: "
                           f"{', '.join(self.model.memories)}") from None
        ptr = self.lib.sys_memory_ptr(self.handle, index)
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * (depth * elem)).from_address(ptr))
        return raw.reshape(depth, elem), (width + 7) // 8

    def memory(self, name):
        """The words of memory ``name`` (a key of ``model.memories``) now: a ``(depth,
        ceil(width / 8))`` uint8 array (a copy), word ``i``'s bytes little-endian in row
        ``i``."""
        raw, nbytes = self._memory_view(name)
        return raw[:, :nbytes].copy()

    def write_memory(self, name, words):
        """Overwrite memory ``name`` with ``words`` (shaped as :meth:`memory` returns)."""
        raw, nbytes = self._memory_view(name)
        words = np.asarray(words, dtype=np.uint8)
        if words.shape != (raw.shape[0], nbytes):
            raise ValueError(f"memory {name!r} takes a {(raw.shape[0], nbytes)} uint8 array; "
                             f"got shape {words.shape}")
        raw[:, :nbytes] = words
        width = self.model.memories[name][1]
        if width % 8:               # the model keeps the bits above the width 0
            raw[:, nbytes - 1] &= (1 << (width % 8)) - 1
        self.lib.sys_memory_written(self.handle)

    def tick(self, n=1):
        """``n`` clock edges (the C++ models take part in each cycle, as in :meth:`run`)."""
        if self.lib.sys_tick(self.handle, int(n)):
            raise ProtocolError(self.lib.sys_error(self.handle).decode())

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
        if wait_while and self._port(wait_while)[1] > 64:
            raise ValueError(f"wait_while port {wait_while!r} is wider than 64 bits")
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
