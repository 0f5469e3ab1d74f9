"""Tensor engine -> PSUM -> ACT -> SBUF: a requantised int8 GEMM, C = requant(A @ W), with K split
over two tiles accumulated in PSUM, operands loaded into the SBUF by DMA writes, and a second layer
that takes the first layer's output straight from the SBUF as its moving operand. Bit-exact against
NumPy (matmul_reference + requantize)."""

import numpy as np

from systolica.codes import ActMode
from systolica.config import ActConfig, ArrayConfig, PsumConfig, SbufConfig
from systolica.hdl.tile_datapath import TileDatapath
from systolica.testbench.memories import accept_monitor, run_phases, tile_config
from systolica.model.reference import SbufModel, matmul_reference, requantize


ARRAY = ArrayConfig(rows=4, cols=4, result_addr_bits=6)
SBUF = SbufConfig(partitions=4, depth=32, word_bytes=8)
PSUM = PsumConfig(banks=2, bank_rows=16)
ACT = ActConfig(scale_bits=16, max_shift=31)


def dma_writes(model):
    return [{"write": 1, "partition": p, "addr": a, "data": model.read_word(p, a),
             "byte_enable": 0xFF} for p in range(model.partitions) for a in range(model.depth)]


def dma_dump(cfg):
    return [{"write": 0, "partition": p, "addr": a, "data": [0] * cfg.word_bytes,
             "byte_enable": 0} for p in range(cfg.partitions) for a in range(cfg.depth)]


def test_requantised_gemm_two_layers(seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    M, K, N = 12, 8, 4                       # K = 2 tiles of R = 4
    a = rng.integers(-128, 128, size=(M, K))
    w = rng.integers(-128, 128, size=(K, N))
    w2 = rng.integers(-128, 128, size=(N, N))
    scale = rng.integers(1, 1 << 12, size=N)
    shift = rng.integers(12, 20, size=N)
    zp1, zp2 = int(rng.integers(-10, 10)), int(rng.integers(-10, 10))

    # SBUF placement (element offsets, int8): A tile t at 16 t, W tile t at 40 + 8 t, W2 at 60,
    # layer-1 output at 100, layer-2 output at 140.
    model = SbufModel(SBUF.partitions, SBUF.depth, SBUF.word_bytes)
    model.bytes[:] = rng.integers(0, 256, size=model.bytes.shape, dtype=np.uint8)
    for t in range(2):
        for k in range(4):
            model.store(k, 16 * t, a[:, 4 * t + k], "int8")      # A[m, k] at partition k
        for n in range(N):
            model.store(n, 40 + 8 * t, w[4 * t:4 * t + 4, n], "int8")   # W[k, n] at partition n
    for n in range(N):
        model.store(n, 60, w2[:, n], "int8")
    assert np.array_equal(model.stationary(48, 4, N, "int8"), w[4:])    # the layout in the docs
    loads = dma_writes(model)

    c1 = requantize(matmul_reference(a, w), scale, shift, zero_point=zp1, relu=True)
    c2 = requantize(matmul_reference(c1, w2), scale, shift, zero_point=zp2, relu=False)
    for n in range(N):
        model.store(n, 100, c1[:, n], "int8")
        model.store(n, 140, c2[:, n], "int8")

    dut = TileDatapath(config=tile_config(sbuf=SBUF, array=ARRAY, psum=PSUM, act=ACT))
    results = []            # cycles in which PSUM took an engine result

    def wait_results(n):
        async def hook(ctx):
            ctx.set(dut.scale, [int(x) for x in scale])
            ctx.set(dut.shift, [int(x) for x in shift])
            while len(results) < n:
                await ctx.tick()
            for _ in range(3):                  # the last accumulation lands in PSUM
                await ctx.tick()
        return hook

    async def wait_act(ctx):
        while ctx.get(dut.act_busy):
            await ctx.tick()
        for _ in range(2):
            await ctx.tick()

    async def errors(ctx):
        return ctx.get(dut.errors.as_value())

    layer1 = {
        "weights_cmd": [{"offset": 40, "rows": 4, "cols": N}, {"offset": 48, "rows": 4, "cols": N}],
        "moving_cmd": [{"offset": 0, "count": M, "start": 1, "addr": 0, "accumulate": 0},
                       {"offset": 16, "count": M, "start": 1, "addr": 0, "accumulate": 1}],
    }
    act1 = {"act_cmd": [{"psum_addr": 0, "rows": M, "offset": 100, "cols": N, "mode": ActMode.INT8,
                         "relu": 1, "zero_point": zp1}]}
    layer2 = {
        "weights_cmd": [{"offset": 60, "rows": 4, "cols": N}],
        "moving_cmd": [{"offset": 100, "count": M, "start": 1, "addr": 16, "accumulate": 0}],
    }
    act2 = {"act_cmd": [{"psum_addr": 16, "rows": M, "offset": 140, "cols": N, "mode": ActMode.INT8,
                         "relu": 0, "zero_point": zp2}]}
    dump = {"dma.request": dma_dump(SBUF), "dma.response": SBUF.partitions * SBUF.depth}
    run = run_phases(dut, [{"dma.request": loads}, layer1, act1, layer2, act2, dump],
                     seed=seed, stall=0.3,
                     before={2: wait_results(2 * M), 3: wait_act, 4: wait_results(3 * M),
                             5: wait_act},
                     processes=[accept_monitor(dut.engine.result, results)], final=errors,
                     check=["sbuf.moving", "sbuf.weights", "engine.result", "sbuf.vector_write"])
    got = [r["data"] for r in run["phases"][5]["dma.response"][0]]
    expected = [model.read_word(p, a) for p in range(SBUF.partitions) for a in range(SBUF.depth)]
    out1 = np.array([[model.element(n, 100 + m, "int8") for n in range(N)] for m in range(M)])
    assert np.array_equal(out1, c1)              # the model holds C1 where the docs say
    assert got == expected
    assert run["final"] == 0
