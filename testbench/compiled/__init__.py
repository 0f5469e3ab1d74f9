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

The package: :mod:`.toolchain` (finding Verilator and a compiler), :mod:`.cache` (building and the
build cache), :mod:`.glue` (the generated C++ glue), :mod:`.codecs` (ports, streams, payload
packing), :mod:`.run` (the loaded model and its run loop), :mod:`.dram` (the shared
multi-port AXI4 DRAM model), :mod:`.errors`.
"""

from .cache import BuildInfo, build
from .codecs import PayloadCodec, StreamPorts, stream_ports
from .dram import AXI_DRAM_SOURCE, DramPort, SharedDram
from .errors import BackendUnavailable, BuildError, ProtocolError
from .run import CompiledModel, CompiledSim
from .toolchain import Toolchain, cache_dir, find_toolchain, fst_supported


__all__ = [
    "BackendUnavailable", "BuildError", "ProtocolError", "find_toolchain", "fst_supported",
    "cache_dir",
    "CompiledModel", "CompiledSim", "build", "PayloadCodec", "stream_ports",
    "BuildInfo", "StreamPorts", "Toolchain", "AXI_DRAM_SOURCE", "DramPort", "SharedDram",
]
