"""Design-space sweeps: grids or random samples of configs, measured (area, Fmax, workload
cycles), cached, run locally or on Dask, written as tables and plots. See docs/sweeps.md.

    from systolica.sweep import load_spec, run_sweep
    result = run_sweep(load_spec("sweep.toml"), jobs=2, output_dir="out")
"""

from .spec import SweepError, SweepSpec, load_spec, parse_spec
from .measurements import Measurement, MEASUREMENTS, PartialFailure, register_measurement
from .runner import SweepResult, run_sweep


__all__ = ["SweepError", "SweepSpec", "load_spec", "parse_spec", "Measurement",
           "MEASUREMENTS", "PartialFailure", "register_measurement", "SweepResult", "run_sweep"]
