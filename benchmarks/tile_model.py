"""Tile-model benchmark: the hand-scheduled double-buffered GEMM (systolica/model/programs.py) on
the instruction-level model, with what the program costs in instruction fetch.

    python benchmarks/tile_model.py --rows R --cols C --m M --k K --n N [--depth D] [--transposed]

Prints one JSON object: ``bit_exact`` (C against NumPy ``a @ b``), ``model_seconds`` (encode +
run, race checks included), ``instructions`` and ``instruction_bytes`` (64 per word), per queue
counts, ``dma_bytes`` (bytes the copies move), ``pe_busy_cycles`` (the sum of M over the
multiplies: the cycles the array streams at one row per cycle, a lower bound of the run),
``fetch_beats`` (instruction bytes / AXI width) and ``fetch_beats_per_pe_cycle``.
"""

import argparse
import json
import sys
import time

import numpy as np

from systolica import isa
from systolica.config import ArrayConfig, SbufConfig, TileConfig
from systolica.model.programs import run_gemm
from systolica.model.tile import TileModel


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--m", type=int, default=128)
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--depth", type=int, default=256, help="SBUF words per partition")
    parser.add_argument("--transposed", action="store_true",
                        help="A and B stored transposed in DRAM (contiguous DMA runs)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    parts = max(args.rows, args.cols)
    config = TileConfig(array=ArrayConfig(rows=args.rows, cols=args.cols),
                        sbuf=SbufConfig(partitions=parts, depth=args.depth))
    rng = np.random.default_rng(args.seed)
    a = rng.integers(-128, 128, (args.m, args.k)).astype(np.int8)
    b = rng.integers(-128, 128, (args.k, args.n)).astype(np.int8)
    need = a.nbytes + b.nbytes + 4 * args.m * args.n + 256
    model = TileModel(config, dram_bytes=max(1 << 16, need))
    start = time.perf_counter()
    c, result, program, plan = run_gemm(model, a, b, transposed=args.transposed)
    seconds = time.perf_counter() - start
    bit_exact = bool(np.array_equal(c, a.astype(np.int32) @ b.astype(np.int32)))
    insns = [i for q in program.queues.values() for i in q]
    dma_bytes = sum(int(np.prod(i.dst_count)) * i.elem_bytes for i in insns
                    if i.opcode == isa.Opcode.DMA_COPY)
    pe_cycles = sum(i.m * i.repeat for i in insns if i.opcode == isa.Opcode.MULTIPLY_MOVING)
    fetch_beats = len(insns) * isa.WORD_BYTES // config.sbuf.word_bytes
    out = {
        "rows": args.rows, "cols": args.cols, "m": args.m, "k": args.k, "n": args.n,
        "sbuf_depth": args.depth, "transposed": args.transposed, "bit_exact": bit_exact,
        "checks_passed": result.ok, "model_seconds": round(seconds, 3),
        "instructions": len(insns), "instruction_bytes": len(insns) * isa.WORD_BYTES,
        "queue_instructions": {n: len(q) for n, q in program.queues.items()},
        "m_block": plan.m_block, "dma_bytes": dma_bytes, "pe_busy_cycles": pe_cycles,
        "fetch_beats": fetch_beats,
        "fetch_beats_per_pe_cycle": round(fetch_beats / pe_cycles, 4),
        "dma_beats_per_pe_cycle": round(dma_bytes / config.sbuf.word_bytes / pe_cycles, 4),
    }
    print(json.dumps(out))
    return 0 if bit_exact and result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
