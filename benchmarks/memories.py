"""Throughput of the on-chip memories in simulation; prints one JSON object.

* ``psum_vectors_per_cycle``: result beats PSUM accepts per cycle, no stalls, over a stream that
  mixes random rows with runs of back-to-back accumulations into one row.
* ``engine_stall_cycles_during_dma``: cycles without a moving beat, between the first and the last
  beat of a long moving-operand read, while the DMA writes the SBUF every cycle and the weights
  reader streams W rows (consumers always ready); also the DMA writes accepted and the weight rows
  delivered per cycle meanwhile.
* ``act_vectors_per_cycle``: SBUF rows the ACT unit writes per cycle over a whole PSUM drain.

Usage: python benchmarks/memories.py [--seed N]
"""

import argparse
import json
import time

import numpy as np

from systolica.codes import ActMode
from systolica.config import ActConfig, ArrayConfig, PsumConfig, SbufConfig
from systolica.hdl.psum import Psum
from systolica.hdl.contracts import elements_per_word
from systolica.hdl.sbuf import Sbuf
from systolica.hdl.tile_datapath import TileDatapath
from systolica.testbench.memories import accept_monitor, run_phases, tile_config


def rate(cycles):
    return len(cycles) / (cycles[-1] - cycles[0] + 1)


def bench_psum(array, psum, rng, n=2000):
    beats = []
    while len(beats) < n:
        addr = int(rng.integers(psum.rows))
        run = int(rng.integers(1, 9))            # 1..8 beats into the same row
        for i in range(run):
            beats.append({"data": [int(x) for x in rng.integers(-1000, 1000, size=array.cols)],
                          "tag": {"addr": addr, "accumulate": int(i > 0), "last": 0}})
    out = run_phases(Psum(config=tile_config(psum=psum, array=array)), [{"result": beats[:n]}])
    cycles = out["phases"][0]["result"]
    same_row = sum(1 for a, b in zip(beats, beats[1:n]) if a["tag"]["addr"] == b["tag"]["addr"])
    return {"psum_vectors_per_cycle": round(rate(cycles), 4), "psum_beats": n,
            "psum_same_row_back_to_back": same_row}


def bench_dma_vs_moving(sbuf, array, rng):
    elems = sbuf.depth * elements_per_word(sbuf, array.moving_dtype)
    count = elems - 5
    cmds = [{"offset": 5, "count": count, "start": 1, "addr": 0, "accumulate": 0}]
    writes = [{"write": 1, "partition": int(rng.integers(sbuf.partitions)),
               "addr": int(rng.integers(sbuf.depth)),
               "data": [int(x) for x in rng.integers(0, 256, size=sbuf.word_bytes)],
               "byte_enable": (1 << sbuf.word_bytes) - 1} for _ in range(count + 64)]
    w_elems = sbuf.depth * elements_per_word(sbuf, array.stationary_dtype)
    wcmds = [{"offset": int(rng.integers(w_elems - array.rows)), "rows": array.rows,
              "cols": array.cols} for _ in range(count // array.rows)]
    out = run_phases(Sbuf(config=tile_config(sbuf=sbuf, array=array)), [{"moving_cmd": cmds, "moving": count,
                                          "dma.request": writes, "weights_cmd": wcmds,
                                          "weights": len(wcmds) * array.rows}])
    _, moving = out["phases"][0]["moving"]
    _, weights = out["phases"][0]["weights"]
    dma = out["phases"][0]["dma.request"]
    span = moving[-1] - moving[0] + 1
    during = [c for c in dma if moving[0] <= c <= moving[-1]]
    return {"engine_stall_cycles_during_dma": span - len(moving), "moving_beats": count,
            "dma_writes_per_cycle_during_moving": round(len(during) / span, 4),
            "weights_rows_per_cycle_meanwhile": round(rate(weights), 4)}


def bench_act(sbuf, array, psum, act, rng):
    acc = rng.integers(-(1 << 31), 1 << 31, size=(psum.rows, array.cols), dtype=np.int64)
    fill = [{"data": [int(x) for x in row], "tag": {"addr": a, "accumulate": 0, "last": 0}}
            for a, row in enumerate(acc)]
    cmds = [{"psum_addr": 0, "rows": psum.rows, "offset": 0, "cols": array.cols, "mode": ActMode.INT8,
             "relu": 1, "zero_point": 3}]
    dut = TileDatapath(config=tile_config(sbuf=sbuf, array=array, psum=psum, act=act),
                       engine=False)
    writes = []

    async def params(ctx):
        ctx.set(dut.scale, [int(x) for x in rng.integers(1, 1 << 14, size=array.cols)])
        ctx.set(dut.shift, [int(x) for x in rng.integers(10, 30, size=array.cols)])

    async def drain(ctx):
        while ctx.get(dut.act_busy):
            await ctx.tick()

    run_phases(dut, [{"result": fill}, {"act_cmd": cmds}], before={0: params},
               final=drain, processes=[accept_monitor(dut.sbuf.vector_write, writes)])
    return {"act_vectors_per_cycle": round(rate(writes), 4), "act_rows": len(writes)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    array = ArrayConfig(rows=8, cols=8)
    sbuf = SbufConfig(partitions=8, depth=256, word_bytes=8)
    psum = PsumConfig(banks=2, bank_rows=128)
    act = ActConfig()
    start = time.monotonic()
    result = {"config": {"array": array.to_dict(), "sbuf": sbuf.to_dict(), "psum": psum.to_dict(),
                         "act": act.to_dict()}}
    result.update(bench_psum(array, psum, rng))
    result.update(bench_dma_vs_moving(sbuf, array, rng))
    result.update(bench_act(sbuf, array, psum, act, rng))
    result["wall_seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
