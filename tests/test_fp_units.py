"""The floating-point arithmetic gateware (hdl/fp/) against the NumPy model, bit for bit:
exact product + fp32 addition (one PE), fp32 + fp32 (PSUM), on random bit patterns and edge
values (signed zeros, subnormals, infinities, NaN, overflow, cancellation)."""

import itertools
import zlib

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolica.hdl.fp import add_to_fp32, exact_product, unpack_fp32
from systolica.model.fp import add_fp32, float_bits, fma_fp32, from_bits
from systolica.testbench.fp import edge_bits, random_floats, random_fp32
from systolica.testbench.sim import run_simulation


class _Fma(wiring.Component):
    """acc + a * w (``live``) or acc + b (fp32 + fp32, ``fp32_mode``)."""

    def __init__(self, a_dtype, w_dtype):
        self._dtypes = (a_dtype, w_dtype)
        width = {"bfloat16": 16}.get
        super().__init__({
            "a": In(width(a_dtype, 8)), "w": In(width(w_dtype, 8)), "live": In(1),
            "acc": In(32), "b": In(32), "fp32_mode": In(1),
            "fma": Out(32), "sum": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        product = exact_product(m, self.a, self._dtypes[0], self.w, self._dtypes[1], self.live)
        acc = unpack_fp32(m, self.acc, "acc")
        m.d.comb += self.fma.eq(add_to_fp32(m, acc, product, "fma_sum"))
        m.d.comb += self.sum.eq(add_to_fp32(m, acc, unpack_fp32(m, self.b, "b"), "plain_sum"))
        # A clocked domain for the watchdog.
        tick = Signal()
        m.d.sync += tick.eq(~tick)
        return m


def _simulate(dut, vectors):
    """[(a, w, live, acc, b)] -> (fma bits, sum bits)."""
    out = {}

    async def bench(ctx):
        fma, total = [], []
        for a, w, live, acc, b in vectors:
            ctx.set(dut.a, a)
            ctx.set(dut.w, w)
            ctx.set(dut.live, live)
            ctx.set(dut.acc, acc)
            ctx.set(dut.b, b)
            fma.append(ctx.get(dut.fma))
            total.append(ctx.get(dut.sum))
        out["fma"], out["sum"] = fma, total
        await ctx.tick()

    run_simulation(dut, [bench], max_cycles=10)
    return np.array(out["fma"], dtype=np.uint32), np.array(out["sum"], dtype=np.uint32)


DTYPE_PAIRS = [("bfloat16", "bfloat16"), ("float8_e4m3", "float8_e4m3"),
               ("float8_e5m2", "float8_e5m2"), ("bfloat16", "float8_e4m3"),
               ("float8_e5m2", "float8_e4m3")]


@pytest.mark.parametrize("a_dtype,w_dtype", DTYPE_PAIRS)
def test_fma_and_add_bit_exact(a_dtype, w_dtype):
    rng = np.random.default_rng(zlib.crc32(f"{a_dtype} {w_dtype}".encode()))
    n = 1500
    a = random_floats(rng, a_dtype, n, edge_fraction=0.2)
    w = random_floats(rng, w_dtype, n, edge_fraction=0.2)
    acc = random_fp32(rng, n, edge_fraction=0.2)
    b = random_fp32(rng, n, edge_fraction=0.2)
    # Cancellation: acc = -(a * w) rounded, and b = -acc (exact zeros, signs of zero).
    with np.errstate(over="ignore", invalid="ignore"):
        product = a.astype(np.float64) * w.astype(np.float64)
        cancel = (-product).astype(np.float32)
        pick = rng.random(n) < 0.15
        acc = np.where(pick, cancel, acc).astype(np.float32)
        b = np.where(rng.random(n) < 0.1, -acc, b).astype(np.float32)
        # Near-equal exponents: massive cancellation with a remainder.
        near = rng.random(n) < 0.1
        b = np.where(near, np.nextafter(-acc, np.float32(0)), b).astype(np.float32)
    # Edge x edge products, all pairs.
    edges = list(itertools.product(edge_bits(a_dtype), edge_bits(w_dtype)))
    a = np.concatenate([a, from_bits(np.array([e[0] for e in edges]), a_dtype)])
    w = np.concatenate([w, from_bits(np.array([e[1] for e in edges]), w_dtype)])
    acc = np.concatenate([acc, random_fp32(rng, len(edges), edge_fraction=0.5)])
    b = np.concatenate([b, random_fp32(rng, len(edges), edge_fraction=0.5)])
    live = rng.random(len(a)) < 0.95

    want_fma = float_bits(np.where(live, fma_fp32(acc, a, w), add_fp32(acc, -0.0)), "float32")
    want_sum = float_bits(add_fp32(acc, b), "float32")
    vectors = list(zip((int(x) for x in float_bits(a, a_dtype)),
                       (int(x) for x in float_bits(w, w_dtype)), (int(x) for x in live),
                       (int(x) for x in float_bits(acc, "float32")),
                       (int(x) for x in float_bits(b, "float32"))))
    got_fma, got_sum = _simulate(_Fma(a_dtype, w_dtype), vectors)
    bad = np.flatnonzero(got_fma != want_fma)
    assert not bad.size, [(vectors[i], hex(got_fma[i]), hex(want_fma[i])) for i in bad[:5]]
    bad = np.flatnonzero(got_sum != want_sum)
    assert not bad.size, [(vectors[i], hex(got_sum[i]), hex(want_sum[i])) for i in bad[:5]]
