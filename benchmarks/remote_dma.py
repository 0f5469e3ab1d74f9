"""Remote DMA benchmark: on two chip tiles of a 2 x 1 mesh (4 x 4 array, 4 x 64-word SBUF), one
contiguous copy of ``--bytes`` from tile (0, 0) as a DRAM -> local SBUF, an SBUF -> local SBUF
(into the upper half), a DRAM -> remote SBUF and an SBUF -> remote SBUF copy, each in its own
run. Prints one JSON object.

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
    half = CFG.sbuf.partitions * CFG.sbuf.partition_bytes // 2
    source = isa.sbuf(0, *lin) if kind.endswith("from_sbuf") else isa.dram(DATA, *lin)
    target = {"local_from_dram": isa.sbuf(0, *lin), "local_from_sbuf": isa.sbuf(half, *lin)}.get(
        kind, isa.remote_sbuf(0, *lin))
    programs = {src: isa.Program.build(CHIP, {"dma0": [isa.dma_copy(source, target,
                                                                    dst_tile=dst)]}),
                dst: isa.Program.build(CHIP, {})}
    sbuf0 = np.zeros(CFG.sbuf.partitions * CFG.sbuf.partition_bytes, np.uint8)
    sbuf0[:nbytes] = payload
    runs, cycles = run_tiles(CHIP, programs, data={src: {DATA: payload.tobytes()}},
                             sbuf_init={src: sbuf0} if kind.endswith("from_sbuf") else None,
                             max_cycles=50_000)
    at = {"local_from_dram": 0, "local_from_sbuf": half}.get(kind, 0)
    landed = runs[src if kind.startswith("local") else dst].sbuf[at:at + nbytes]
    busy = runs[src].queues["dma0"]["busy_cycles"]
    words = -(-nbytes // CFG.sbuf.word_bytes)
    return {"busy_cycles": busy, "words": words, "words_per_cycle": round(words / busy, 3),
            "flits_sent": runs[src].remote["sent"], "flits_received": runs[dst].remote["received"],
            "bit_exact": bool(np.array_equal(landed, payload))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1024,
                        help="bytes per copy (1..half the SBUF, 1024)")
    args = parser.parse_args(argv)
    limit = CFG.sbuf.partitions * CFG.sbuf.partition_bytes // 2
    if not 1 <= args.bytes <= limit:
        parser.error(f"--bytes must be in [1, {limit}]; got {args.bytes}")
    out = {"bytes": args.bytes}
    for kind in ("local_from_dram", "local_from_sbuf", "remote_from_dram", "remote_from_sbuf"):
        out[kind] = run(kind, args.bytes)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
