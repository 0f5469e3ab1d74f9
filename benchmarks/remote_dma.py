"""Remote DMA benchmark: on two chip tiles of a 2 x 1 mesh (4 x 4 array, 4 x 64-word SBUF), one
contiguous copy of ``--bytes`` from tile (0, 0) as a DRAM -> local SBUF, a DRAM -> remote SBUF
and an SBUF -> remote SBUF copy, each in its own run. Prints one JSON object.

    python benchmarks/remote_dma.py --bytes 1024

Per copy: ``busy_cycles`` (the source DMA queue's DMA0_BUSY_CYCLES: the copy from issue to
completion, i.e. to its last flit entering the network for a remote one), ``words`` (SBUF
words written), ``words_per_cycle``, ``flits_sent`` / ``flits_received`` and ``bit_exact`` (the
destination SBUF holds the bytes).
"""

import argparse
import json
import sys

import numpy as np

from systolica import isa
from systolica.config import (ArrayConfig, ChipConfig, NocConfig, PsumConfig, SbufConfig,
                              TileConfig)
from systolica.testbench.chip_tiles import run_tiles

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
CHIP = ChipConfig(tile=CFG, noc=NocConfig(width=2, height=1))
DATA = 0x1000


def run(kind, nbytes, seed=0):
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, nbytes, dtype=np.uint8)
    src, dst = (0, 0), (1, 0)
    lin = (nbytes,), (1,)
    source = {"local": isa.dram(DATA, *lin), "remote_from_dram": isa.dram(DATA, *lin),
              "remote_from_sbuf": isa.sbuf(0, *lin)}[kind]
    target = isa.sbuf(0, *lin) if kind == "local" else isa.remote_sbuf(0, *lin)
    programs = {src: isa.Program.build(CHIP, {"dma0": [isa.dma_copy(source, target,
                                                                    dst_tile=dst)]}),
                dst: isa.Program.build(CHIP, {})}
    sbuf0 = np.zeros(CFG.sbuf.partitions * CFG.sbuf.partition_bytes, np.uint8)
    sbuf0[:nbytes] = payload
    runs, cycles = run_tiles(CHIP, programs, data={src: {DATA: payload.tobytes()}},
                             sbuf_init={src: sbuf0} if kind == "remote_from_sbuf" else None,
                             max_cycles=50_000)
    landed = runs[src if kind == "local" else dst].sbuf[:nbytes]
    busy = runs[src].queues["dma0"]["busy_cycles"]
    words = -(-nbytes // CFG.sbuf.word_bytes)
    return {"busy_cycles": busy, "words": words, "words_per_cycle": round(words / busy, 3),
            "flits_sent": runs[src].remote["sent"], "flits_received": runs[dst].remote["received"],
            "bit_exact": bool(np.array_equal(landed, payload))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1024,
                        help="bytes per copy (1..SBUF size, 2048)")
    args = parser.parse_args(argv)
    limit = CFG.sbuf.partitions * CFG.sbuf.partition_bytes
    if not 1 <= args.bytes <= limit:
        parser.error(f"--bytes must be in [1, {limit}]; got {args.bytes}")
    out = {"bytes": args.bytes}
    for kind in ("local", "remote_from_dram", "remote_from_sbuf"):
        out[kind] = run(kind, args.bytes)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
