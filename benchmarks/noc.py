"""Mesh NoC traffic benchmark: simulates a mesh (Amaranth simulator) under synthetic traffic and
prints one JSON object.

    python benchmarks/noc.py --mesh 4x4 --traffic uniform --rate 0.3 [--vcs 2 --buf 8 --packet 1]
    python benchmarks/noc.py --mesh 4x4 --sweep --out-dir bench_out   # CSV + PNG (matplotlib)

* ``offered``: flits created per node per cycle in the measurement window (Bernoulli injection
  at ``--rate``; packet lengths uniform in 1..``--packet``);
* ``accepted``: flits delivered per node per cycle in the measurement window;
* ``avg_latency`` / ``p99_latency``: cycles from a packet's creation (it may wait in its
  source queue) to the cycle its tail word is handed over at the destination, over the packets
  created in the measurement window (all of which are drained before the run ends);
* ``zero_load_latency``: ``avg_latency`` of a separate run at ``--zero-load-rate`` (default
  0.01 flits/node/cycle);
* ``avg_hops``: mean router-to-router hops of those packets;
* ``delivered``, ``lost``, ``duplicated``: packets, checked end to end (lost and duplicated
  must be 0; any checker error makes the script exit non-zero).

``--sweep`` runs ``--rates`` (default 0.05 .. 1.0) and writes ``noc_<mesh>_<traffic>.csv`` and,
when matplotlib is installed (``pip install systolica[plot]``), a PNG of latency vs offered
load; the JSON then lists every point plus two saturation figures: the largest accepted
throughput seen, and the largest offered rate whose average latency stays below 3x the
zero-load latency.
"""

import argparse
import csv
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from systolica.config import NocConfig
from systolica.hdl.noc.mesh import Mesh
from systolica.testbench.noc import PATTERNS, NocCheckError, run_traffic


DEFAULT_RATES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)


def parse_mesh(text):
    try:
        x, y = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mesh must look like 4x4; got {text!r}") from None
    return x, y


def run_point(args, rate, *, measure=None, warmup=None):
    x, y = args.mesh
    config = NocConfig(width=x, height=y, vcs=args.vcs, buffer_depth=args.buf,
                       payload_bits=args.payload_bits, link_stages=args.link_stages,
                       in_order=not args.any_vc, allocation=args.allocation)
    mesh = Mesh(config=config)
    start = time.perf_counter()
    traffic = run_traffic(mesh, pattern=args.traffic, rate=rate, packet_len=args.packet,
                          seed=args.seed, warmup=args.warmup if warmup is None else warmup,
                          measure=args.measure if measure is None else measure,
                          eject_stall=args.eject_stall, deadlock_cycles=args.deadlock_cycles)
    elapsed = time.perf_counter() - start
    result = traffic.results()
    result["sim_seconds"] = round(elapsed, 2)
    result["cycles_per_second"] = round(traffic.cycles / elapsed, 1)
    result["in_order"] = config.in_order
    result["allocation"] = config.allocation
    try:
        traffic.check()
        result["check"] = "ok"
    except NocCheckError as e:
        result["check"] = str(e)
    return result


def zero_load(args):
    return run_point(args, args.zero_load_rate, measure=args.zero_load_cycles, warmup=0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mesh", type=parse_mesh, default=(4, 4), help="XxY (default 4x4)")
    p.add_argument("--traffic", choices=PATTERNS, default="uniform")
    p.add_argument("--rate", type=float, default=0.1, help="offered flits/node/cycle")
    p.add_argument("--vcs", type=int, default=2)
    p.add_argument("--buf", type=int, default=8, help="flits per VC buffer")
    p.add_argument("--packet", type=int, default=1, help="max packet length L (flits)")
    p.add_argument("--payload-bits", type=int, default=32)
    p.add_argument("--link-stages", type=int, default=0)
    p.add_argument("--any-vc", action="store_true",
                   help="in_order=False: heads take any free VC (no per-pair ordering)")
    p.add_argument("--allocation", choices=("pipelined", "single_cycle"), default="pipelined",
                   help="router allocation (NocConfig.allocation)")
    p.add_argument("--eject-stall", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=300, help="cycles before measuring")
    p.add_argument("--measure", type=int, default=1500, help="measurement window (cycles)")
    p.add_argument("--deadlock-cycles", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--zero-load-rate", type=float, default=0.01)
    p.add_argument("--zero-load-cycles", type=int, default=1500)
    p.add_argument("--no-zero-load", action="store_true", help="skip the zero-load run")
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--rates", type=lambda s: [float(v) for v in s.split(",")],
                   default=list(DEFAULT_RATES))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out-dir", default=".")
    args = p.parse_args(argv)

    if not args.sweep:
        result = run_point(args, args.rate)
        if not args.no_zero_load:
            zl = zero_load(args)
            result["zero_load_latency"] = zl["avg_latency"]
            result["zero_load_packets"] = zl["measured_packets"]
        print(json.dumps(result, indent=2))
        return 0 if result["check"] == "ok" and result["lost"] == 0 else 1

    if args.jobs <= 1:
        zl = zero_load(args)
        points = [run_point(args, r) for r in args.rates]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            zl_future = pool.submit(zero_load, args)
            futures = [pool.submit(run_point, args, r) for r in args.rates]
            points = [f.result() for f in futures]
            zl = zl_future.result()
    zero = zl["avg_latency"]
    for pt in points:
        pt["zero_load_latency"] = zero
    max_accepted = max(pt["accepted"] for pt in points)
    below = [pt["offered"] for pt in points if pt["avg_latency"] < 3 * zero]
    name = f"noc_{args.mesh[0]}x{args.mesh[1]}_{args.traffic}" + ("_anyvc" if args.any_vc else "")
    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = os.path.join(args.out_dir, name + ".csv")
    columns = ["rate", "offered", "accepted", "avg_latency", "p99_latency",
               "avg_network_latency", "avg_hops", "zero_load_latency", "delivered", "lost",
               "duplicated", "measured_packets", "warmup_cycles", "measure_cycles",
               "total_cycles", "sim_seconds", "check"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(points)
    summary = {
        "mesh": f"{args.mesh[0]}x{args.mesh[1]}", "traffic": args.traffic, "vcs": args.vcs,
        "buffer_depth": args.buf, "packet_len": args.packet, "in_order": not args.any_vc,
        "zero_load_latency": zero, "zero_load_packets": zl["measured_packets"],
        "saturation_max_accepted": max_accepted,
        "saturation_offered_latency_below_3x_zero_load": max(below) if below else None,
        "csv": csv_path, "points": points,
    }
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'systolica[plot]'): wrote the CSV only",
              file=sys.stderr)
        summary["png"] = None
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([pt["offered"] for pt in points], [pt["avg_latency"] for pt in points], "o-",
                label="average")
        ax.plot([pt["offered"] for pt in points], [pt["p99_latency"] for pt in points], "s--",
                label="99th percentile")
        ax.axhline(zero, color="grey", lw=0.8, label=f"zero-load {zero:.1f}")
        ax.set_xlabel("offered load (flits/node/cycle)")
        ax.set_ylabel("latency (cycles)")
        ax.set_yscale("log")
        ax.set_title(f"{summary['mesh']} mesh, {args.traffic}, {args.vcs} VCs x {args.buf} "
                     f"flits, packets 1..{args.packet}")
        ax.legend()
        ax.grid(True, alpha=0.3)
        png_path = os.path.join(args.out_dir, name + ".png")
        fig.tight_layout()
        fig.savefig(png_path, dpi=120)
        summary["png"] = png_path
    print(json.dumps(summary, indent=2))
    ok = all(pt["check"] == "ok" and pt["lost"] == 0 for pt in points) and zl["check"] == "ok"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
