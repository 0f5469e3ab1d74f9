"""Simulation support: stream drivers with random stalls, the cycle watchdog, NumPy golden models
and host-side drivers that run blocks in simulation."""
