"""Running a simulation with a cycle watchdog.

Every simulation in systolica goes through :func:`run_simulation`: it adds the testbenches, a
background watchdog that fails the run after ``max_cycles`` clock cycles, and optionally writes a
waveform. A hang therefore becomes a :class:`SimulationTimeout` naming the limit, never a stuck test.
The same test benches run on the Amaranth simulator (default) or, with ``backend="verilator"``, on
a compiled model of the component (:mod:`systolica.testbench.backends`).
"""

import os
import time
from contextlib import nullcontext

from amaranth.sim import Simulator


__all__ = ["SimulationTimeout", "run_simulation", "CLOCK_PERIOD"]

#: Simulated clock period in seconds (100 MHz); only matters for waveforms.
CLOCK_PERIOD = 1e-8


class SimulationTimeout(AssertionError):
    """The cycle watchdog fired: the simulation did not finish in its cycle budget."""


def run_simulation(dut, testbenches, *, max_cycles, processes=(), vcd=None, domain="sync",
                   stats=None, backend="amaranth", memo_key=None):
    """Simulate ``dut`` until every testbench returns.

    ``testbenches`` are async functions ``(ctx) -> None`` (critical), ``processes`` are async
    functions run in the background (monitors, memory models). Raises :class:`SimulationTimeout`
    after ``max_cycles`` cycles. ``vcd`` (a path) writes a waveform; the environment variable
    ``SYSTOLICA_VCD_DIR`` does the same for every simulation, named after the DUT's class.
    Returns the number of cycles simulated. A ``stats`` dict, if given, receives
    ``build_seconds`` (simulator construction) and ``run_seconds`` (the cycle loop).

    ``backend``: ``"amaranth"`` (default), ``"verilator"`` or ``None`` (``$SYSTOLICA_SIM_BACKEND``,
    see :func:`~systolica.testbench.backends.resolve_backend`). On the compiled backend the test
    benches may only ``ctx.set`` / ``ctx.get`` / ``ctx.tick()`` whole ports of ``dut``'s
    signature, which is what the stream sources, sinks and protocol checker do; ``memo_key``
    reuses the compiled model (see :func:`~systolica.testbench.backends.compiled_model`).
    """
    if max_cycles <= 0:
        raise ValueError(f"max_cycles must be positive; got {max_cycles}")
    if vcd is None and os.environ.get("SYSTOLICA_VCD_DIR"):
        os.makedirs(os.environ["SYSTOLICA_VCD_DIR"], exist_ok=True)
        vcd = os.path.join(os.environ["SYSTOLICA_VCD_DIR"], f"{type(dut).__name__}.vcd")
    if backend != "amaranth":
        from .backends import resolve_backend, run_compiled_testbenches
        if resolve_backend(backend) != "amaranth":
            if domain != "sync":
                raise NotImplementedError("the compiled backend simulates the `sync` domain only")
            return run_compiled_testbenches(dut, testbenches, processes=processes,
                                            max_cycles=max_cycles, vcd=vcd, memo_key=memo_key,
                                            stats=stats)
    started = time.perf_counter()
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD, domain=domain)
    cycles = [0]

    async def watchdog(ctx):
        async for _ in ctx.tick(domain):
            cycles[0] += 1
            if cycles[0] > max_cycles:
                raise SimulationTimeout(
                    f"cycle watchdog: {type(dut).__name__} simulation did not finish within "
                    f"{max_cycles} cycles")

    sim.add_process(watchdog)
    for process in processes:
        sim.add_process(process)
    for testbench in testbenches:
        sim.add_testbench(testbench)

    built = time.perf_counter()
    with sim.write_vcd(vcd) if vcd else nullcontext():
        sim.run()
    if stats is not None:
        stats.update(build_seconds=built - started, run_seconds=time.perf_counter() - built)
    return cycles[0]
