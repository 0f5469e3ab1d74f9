"""DMA throughput benchmark: one contiguous DRAM -> SBUF transfer, no stalls, a DRAM model with a
fixed read latency. Prints one JSON object.

    python benchmarks/dma.py --bytes 4096 --latency 50 --outstanding 8

* ``cycles``: simulated cycles from reset until the descriptor's completion has been seen;
* ``bus_utilization``: R data beats / cycles from the first AR handshake to the last R beat
  (the read channel's busy window, *including* the first access latency);
* ``steady_utilization``: R data beats / cycles from the first to the last R beat;
* ``end_to_end_utilization``: R data beats / ``cycles``.

``--sweep`` prints a Markdown table of bus_utilization over latency x outstanding instead.
"""

import argparse
import json
import sys
import time

import numpy as np

from systolica.codes import DmaError
from systolica.config import DmaConfig, SbufConfig, TileConfig
from systolica.hdl.dma import Dma
from systolica.testbench.dma import run_dma
from systolica.model.dma import DmaSide, DmaTransfer


def run(nbytes, latency, outstanding, data_width=64, src_offset=0, dst_offset=0,
        max_burst=256):
    W = data_width // 8
    partitions = 8
    depth = 1 << max(1, ((nbytes + dst_offset + W * partitions - 1) // (W * partitions) - 1)
                     .bit_length())
    scfg = SbufConfig(partitions=partitions, depth=depth, word_bytes=W)
    cfg = DmaConfig(data_width=data_width, outstanding_reads=outstanding, max_burst=max_burst)
    dut = Dma(config=TileConfig(sbuf=scfg, dma=cfg))
    elem = 1 if nbytes < (1 << 16) else 64
    if nbytes % elem:
        raise SystemExit(f"--bytes must be < 65536 or a multiple of 64; got {nbytes}")
    transfer = DmaTransfer(DmaSide("dram", 0x10000 + src_offset, (nbytes // elem, 1, 1),
                                   (elem, 0, 0)),
                           DmaSide("sbuf", dst_offset, (nbytes // elem, 1, 1), (elem, 0, 0)),
                           elem, 0, cfg)
    rng = np.random.default_rng(0)
    dram = rng.integers(0, 256, 0x10000 + src_offset + nbytes + 64, dtype=np.uint8)
    sbuf = np.zeros((partitions, depth * W), dtype=np.uint8)
    t0 = time.perf_counter()
    result = run_dma(dut, [[transfer]], dram_mem=dram, sbuf_mem=sbuf, read_latency=latency,
                     max_reads=64, rng=rng, max_cycles=20 * nbytes // W + 100 * latency + 10_000)
    wall = time.perf_counter() - t0
    ok = np.array_equal(sbuf.reshape(-1)[dst_offset:dst_offset + nbytes],
                        dram[0x10000 + src_offset:0x10000 + src_offset + nbytes])
    st = result.dram.stats
    beats = st["r_beats"]
    return {
        "bytes": nbytes,
        "data_width": data_width,
        "latency": latency,
        "outstanding": outstanding,
        "max_burst": max_burst,
        "cycles": result.cycles,
        "r_beats": beats,
        "ar_bursts": st["ar"],
        "bus_utilization": round(beats / (st["last_r"] - st["first_ar"] + 1), 4),
        "steady_utilization": round(beats / (st["last_r"] - st["first_r"] + 1), 4),
        "end_to_end_utilization": round(beats / result.cycles, 4),
        "max_reads_in_flight": st["max_reads_seen"],
        "correct": bool(ok and result.done[0]["error"] == DmaError.OK),
        "sim_seconds": round(wall, 2),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bytes", type=int, default=4096)
    p.add_argument("--latency", type=int, default=50)
    p.add_argument("--outstanding", type=int, default=8)
    p.add_argument("--data-width", type=int, default=64, choices=(32, 64, 128, 256))
    p.add_argument("--max-burst", type=int, default=256, help="DmaConfig.max_burst (beats)")
    p.add_argument("--src-offset", type=int, default=0, help="byte misalignment of the source")
    p.add_argument("--dst-offset", type=int, default=0, help="byte misalignment in the SBUF")
    p.add_argument("--sweep", action="store_true",
                   help="Markdown table over latency (10, 50, 100, 200) x outstanding "
                        "(1, 2, 4, 8) at --bytes")
    args = p.parse_args(argv)
    if args.bytes < 1:
        p.error("--bytes must be >= 1")
    if args.sweep:
        latencies, outs = (10, 50, 100, 200), (1, 2, 4, 8)
        print(f"bus_utilization, {args.bytes} B contiguous DRAM -> SBUF, "
              f"{args.data_width}-bit AXI, bursts of <= {args.max_burst} beats\n")
        print("| latency \\ outstanding | " + " | ".join(map(str, outs)) + " |")
        print("|---|" + "---|" * len(outs))
        for lat in latencies:
            row = [run(args.bytes, lat, o, args.data_width, max_burst=args.max_burst)
                   ["bus_utilization"] for o in outs]
            print(f"| {lat} | " + " | ".join(f"{u:.3f}" for u in row) + " |")
        return 0
    result = run(args.bytes, args.latency, args.outstanding, args.data_width, args.src_offset,
                 args.dst_offset, args.max_burst)
    print(json.dumps(result))
    return 0 if result["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
