"""The tile model runs floating-point programs: a bf16 / fp8 GEMM DRAM -> DRAM through the ISA
(K split over tiles: per tile a column sum from -0, then fp32 PSUM accumulation in tile order),
ACT to bf16 / fp8 / fp32 with scale, against the block models composed by hand."""

import numpy as np
import pytest

from systolica.codes import ActMode, IsaError
from systolica.config import ArrayConfig, PsumConfig, SbufConfig, TileConfig
from systolica import isa
from systolica.model.fp import act_convert_fp, gemm_fp, matmul_fp, psum_accumulate_fp, to_dtype
from systolica.model.programs import run_gemm
from systolica.model.tile import TileModel


def fp_tile(moving="bfloat16", stationary="bfloat16"):
    return TileConfig(array=ArrayConfig(rows=4, cols=4, moving_dtype=moving,
                                        stationary_dtype=stationary),
                      sbuf=SbufConfig(partitions=4, depth=1024),
                      psum=PsumConfig(banks=2, bank_rows=16))


def expected_gemm(a, b, rows):
    """Tiles of K (rows at a time) summed in PSUM in order, each tile's column sum from -0,
    composed here from the block models (gemm_fp must agree)."""
    acc = None
    for k0 in range(0, a.shape[1], rows):
        part = matmul_fp(a[:, k0:k0 + rows], b[k0:k0 + rows])
        acc = part if acc is None else psum_accumulate_fp(acc, part)
    assert np.array_equal(acc.view(np.uint32), gemm_fp(a, b, rows).view(np.uint32))
    return acc


@pytest.mark.parametrize("moving,stationary,out", [
    ("bfloat16", "bfloat16", ActMode.BF16), ("float8_e4m3", "float8_e5m2", ActMode.FP8_E4M3),
    ("bfloat16", "float8_e4m3", ActMode.FP32), ("float8_e5m2", "float8_e5m2", ActMode.INT8)])
def test_float_gemm_through_the_isa(seed, moving, stationary, out):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    config = fp_tile(moving, stationary)
    m, k, n = 9, 11, 6
    a = to_dtype(rng.standard_normal((m, k)) * 3, moving)
    b = to_dtype(rng.standard_normal((k, n)) * 3, stationary)
    scale = [int(x) for x in rng.integers(1, 1 << 10, n)]
    shift = [int(x) for x in rng.integers(0, 12, n)]
    c, result, _, _ = run_gemm(TileModel(config), a, b, out=out, scale=scale, shift=shift,
                               zero_point=3, relu=False, m_block=4)
    result.check()
    want = act_convert_fp(expected_gemm(a, b, config.array.rows), scale, shift, mode=out,
                          zero_point=3)
    assert c.dtype == want.dtype
    assert np.array_equal(c.view(f"u{c.dtype.itemsize}"), want.view(f"u{want.dtype.itemsize}"))


def test_raw_fp32_accumulators():
    config = fp_tile()
    rng = np.random.default_rng(2)
    a = to_dtype(rng.standard_normal((5, 8)), "bfloat16")
    b = to_dtype(rng.standard_normal((8, 3)), "bfloat16")
    c, result, _, _ = run_gemm(TileModel(config), a, b, out=ActMode.INT32)
    result.check()
    assert np.array_equal(c.view(np.uint32), expected_gemm(a, b, 4).view(np.uint32))


def test_float_act_mode_on_an_integer_tile_halts():
    config = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4),
                        psum=PsumConfig(banks=2, bank_rows=16))
    act_queue = isa.tile_queues(config)[-1].name
    program = isa.Program.build(config, {act_queue: [isa.act(0, 1, 0, 4, mode=ActMode.BF16)]})
    result = TileModel(config).run(program.encode())
    assert [q.error for q in result.halted.values()] == [IsaError.BAD_ACT_PARAM]
