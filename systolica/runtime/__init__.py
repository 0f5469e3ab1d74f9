"""The systolica runtime: one device API (:class:`Device`) over the backends ``model``
(default, fast), ``amaranth`` and ``verilator`` (the tile RTL with its DRAM), the entry points
:func:`matmul` and :func:`run`, and profiles (:mod:`.profile`: Chrome trace JSON, PNG timeline,
per-engine utilisation). docs/compiler.md has the details.

Imports the compiler and the model; the RTL backends import systolica.testbench lazily.
"""

from .device import (BACKENDS, BackendUnavailable, Device, DeviceError, Execution, check_input,
                     matmul, run)
from .chip import ChipExecution, run_chip_rtl
from .profile import Profile, Segment, chrome_trace, plot_timeline, write_chrome_trace

__all__ = ["ChipExecution", "run_chip_rtl", "BACKENDS", "BackendUnavailable", "Device", "DeviceError", "Execution", "check_input",
           "matmul", "run", "Profile", "Segment", "chrome_trace", "plot_timeline",
           "write_chrome_trace"]
