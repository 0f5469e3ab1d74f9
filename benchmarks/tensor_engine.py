"""Tensor-engine benchmark: cycles and utilisation of back-to-back matmuls, and simulator speed.

    python benchmarks/tensor_engine.py --rows R --cols C --m M [--back-to-back B] [--stall P]
        [--moving-dtype T] [--stationary-dtype T]

Prints one JSON object. Every matmul is (M x R) @ (R x C) with a different random W, checked
bit-exactly against NumPy (the script exits 1 on a mismatch).

Definitions: utilisation = useful MACs / (R * C * cycles). ``utilization_total`` counts cycles
from the start of the simulation (first weight row offered) to the last result taken;
``utilization_steady`` counts the cycles from the first result to the last result, inclusive.
``sim_cycles_per_s`` is simulated cycles per second of the simulator's cycle loop (simulator
construction excluded; ``sim_build_seconds`` reports it).
"""

import argparse
import json
import sys
import time

import numpy as np

from systolica.config import DTYPES, ArrayConfig
from systolica.testbench.tensor_engine import expected_results, random_job, run_matmuls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--m", type=int, default=None, help="rows of A per matmul (default 2R)")
    parser.add_argument("--back-to-back", type=int, default=4, metavar="B")
    parser.add_argument("--stall", type=float, default=0.0,
                        help="random stall probability on every stream")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", default=None, help="amaranth (default) or verilator")
    parser.add_argument("--rows-per-stage", type=int, default=1)
    parser.add_argument("--cols-per-stage", type=int, default=1)
    parser.add_argument("--multiplier-stages", type=int, default=2, choices=(0, 1, 2))
    parser.add_argument("--moving-dtype", default="int8", choices=tuple(DTYPES))
    parser.add_argument("--stationary-dtype", default="int8", choices=tuple(DTYPES))
    args = parser.parse_args(argv)

    config = ArrayConfig(rows=args.rows, cols=args.cols, rows_per_stage=args.rows_per_stage,
                         cols_per_stage=args.cols_per_stage,
                         multiplier_stages=args.multiplier_stages,
                         moving_dtype=args.moving_dtype, stationary_dtype=args.stationary_dtype)
    m = args.m if args.m is not None else 2 * config.rows
    rng = np.random.default_rng(args.seed)
    jobs = [random_job(config, rng, m=m, k=config.rows, n=config.cols)
            for _ in range(args.back_to_back)]
    start = time.perf_counter()
    run = run_matmuls(config, jobs, seed=args.seed, stall_moving=args.stall,
                      stall_weights=args.stall, stall_result=args.stall, backend=args.backend)
    wall = time.perf_counter() - start
    # Floating point: compared as fp32 bit patterns (NaN included).
    exact = all(np.array_equal(got.view(np.uint32), want.view(np.uint32)) if config.is_float
                else np.array_equal(got, want)
                for got, want in zip(run.results, expected_results(config, jobs)))
    macs = sum(len(j.a) * j.w.shape[0] * j.w.shape[1] for j in jobs)
    peak = config.rows * config.cols
    loop_seconds = run.extra.get("run_seconds", wall)
    report = {
        "rows": config.rows, "cols": config.cols, "moving_dtype": config.moving_dtype,
        "stationary_dtype": config.stationary_dtype, "m": m, "back_to_back": args.back_to_back,
        "stall": args.stall,
        "cycles": run.total_cycles,
        "steady_cycles": run.steady_cycles,
        "useful_macs": macs,
        "utilization_steady": macs / (peak * run.steady_cycles),
        "utilization_total": macs / (peak * run.total_cycles),
        "sim_cycles": run.sim_cycles,
        "sim_cycles_per_s": round(run.sim_cycles / loop_seconds, 1),
        "sim_build_seconds": round(run.extra.get("build_seconds", 0.0), 3),
        "wall_seconds": round(wall, 3),
        "bit_exact": exact,
    }
    print(json.dumps(report))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
