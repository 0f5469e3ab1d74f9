"""GEMMs split over the mesh (systolica.compiler.mesh), run on the chip model with its checks
across tiles, bit-exact against NumPy; the chip performance model; the runtime on a chip."""

import numpy as np
import pytest

import systolica
from systolica import isa
from systolica.compiler import CompileError, Linear, reference
from systolica.compiler.mesh import MESH_SEMAPHORES, compile_mesh_gemm, plan_mesh_gemm
from systolica.config import ArrayConfig, ChipConfig, DmaConfig, NocConfig, SbufConfig, TileConfig
from systolica.model.chip import ChipModel
from systolica.runtime import BackendUnavailable, Device, DeviceError

MESHES = [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2), (4, 4)]


def chip(width, height, queues=3, dtype="int8", depth=256):
    tile = TileConfig(array=ArrayConfig(moving_dtype=dtype, stationary_dtype=dtype),
                      sbuf=SbufConfig(depth=depth), dma=DmaConfig(queues=queues))
    return ChipConfig(tile=tile, noc=NocConfig(width=width, height=height))


def run_on_model(config, compiled, a, seed=None):
    model = ChipModel(config, dram_bytes=compiled.dram_bytes)
    for addr, raw in compiled.data(a).items():
        model.dram[addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)
    result = model.run(compiled.programs, seed=seed)
    return compiled.unpack(model.dram), result


def _shape_cases():
    rng = np.random.default_rng(12)
    cases = []
    for i, mesh in enumerate(MESHES * 2):
        m, k, n = (int(v) for v in rng.integers(1, 70, 3))
        queues = (2, 3, 4)[i % 3]
        seed = None if i % 2 else i
        cases.append((mesh, m, k, n, queues, seed))
    cases += [((4, 4), 1, 1, 1, 3, None), ((2, 2), 64, 64, 64, 3, 3), ((3, 2), 9, 130, 17, 2, None)]
    return cases


@pytest.mark.parametrize("mesh, m, k, n, queues, seed", _shape_cases())
def test_random_shapes_pass_the_chip_checks_and_are_bit_exact(mesh, m, k, n, queues, seed):
    config = chip(*mesh, queues=queues)
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    compiled = compile_mesh_gemm(config, m, k, n, w=b)
    c, result = run_on_model(config, compiled, a, seed)
    result.check()                                     # no race, deadlock, halt or drop
    assert np.array_equal(c, a @ b)
    assert result.noc_flits == compiled.plan.noc_flits == compiled.predict().noc_flits
    assert result.lost_flits == 0
    for tile_result in result.tiles.values():
        assert all(v == 0 for v in tile_result.semaphores)   # every semaphore ends at 0
    # every tile's programs are built for the chip
    fp = isa.fingerprint(config)
    assert all(p.fingerprint == fp for p in compiled.programs.values())
    assert set(compiled.programs) == {(x, y) for x in range(mesh[0]) for y in range(mesh[1])}


@pytest.mark.parametrize("dtype, out", [("uint8", "int32"), ("int16", "int32"), ("int8", "int8"),
                                        ("uint8", "uint8"), ("int8", "int16")])
def test_dtypes_and_requantised_outputs(dtype, out):
    config = chip(2, 2, dtype=dtype)
    lo, hi = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}[dtype]
    rng = np.random.default_rng(5)
    m, k, n = 21, 19, 27
    a = rng.integers(lo, hi + 1, (m, k))
    b = rng.integers(lo, hi + 1, (k, n))
    kw = {}
    if out != "int32":
        kw = dict(scale=rng.integers(1, 200, n), shift=rng.integers(8, 20, n), relu=True)
    device = Device(config)
    y = device.matmul(a, b, out_dtype=out, **kw)
    expected = reference([Linear(b, out_dtype=out, **kw)], a, config.tile)
    assert y.dtype == expected.dtype and np.array_equal(y, expected)
    e = device.last
    assert e.mesh == (2, 2) and e.tiles == 4 and e.lost_flits == 0 and e.noc_flits > 0


def test_extreme_values_wrap_like_numpy():
    config = chip(2, 1)
    m, k, n = 9, 300, 10
    a = np.full((m, k), -128)
    b = np.full((k, n), -128)
    c = systolica.matmul(a.astype(np.int8), b.astype(np.int8), device=Device(config))
    assert np.array_equal(c, a @ b)


def test_plan_is_readable_and_shares_every_operand():
    config = chip(4, 4, depth=2048)
    plan = plan_mesh_gemm(config, 512, 512, 512)
    assert plan.grid == (4, 4) and (plan.mt, plan.nt) == (128, 128)
    # every A row block and B column block is read from DRAM by one tile, once
    assert [r[0] for r in plan.a_rings] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert [r[0] for r in plan.b_rings] == [(0, 1), (1, 2), (2, 3), (3, 0)]
    readers = plan.readers()
    assert all(len(v) == 1 for v in readers.values()) and len(readers) == 8
    assert plan.dram_bytes == plan.min_dram_bytes == 512 * 512 * (1 + 1 + 4)
    assert plan.forwarded_bytes == 2 * 4 * 3 * 128 * 512
    text = str(plan)
    for word in ("A rings", "B rings", "forwarded", "DRAM data traffic", "every tile's plan"):
        assert word in text
    d = plan.to_dict()
    assert d["grid"] == [4, 4] and d["tile_plan"]["a_pieces"] > 1
    assert max(MESH_SEMAPHORES.values()) < isa.SEMAPHORES


def test_small_gemms_leave_tiles_idle_and_pad_blocks():
    config = chip(4, 4)
    plan = plan_mesh_gemm(config, 3, 5, 12)
    assert plan.grid == (2, 3) and plan.nt == 8 and plan.mt == 1
    assert any("idle" in note for note in plan.notes)
    compiled = compile_mesh_gemm(config, 3, 5, 12)
    idle = compiled.programs[(3, 3)]
    assert all(len(q) == 2 for q in idle.queues.values())      # CHECK, END


def test_chip_prediction_and_flits_for_a_mesh():
    config = chip(2, 2, depth=1024)
    compiled = compile_mesh_gemm(config, 128, 128, 128)
    timeline = compiled.predict()
    assert timeline.cycles == max(timeline.tile_cycles.values())
    assert set(timeline.tile_cycles) == set(compiled.programs)
    fwd = timeline.forwarding()
    assert fwd["transfers"] > 0 and fwd["max_latency"] >= 4 + 2     # at least one hop
    one = compile_mesh_gemm(chip(1, 1, depth=1024), 128, 128, 128).predict().cycles
    assert 2.5 < one / timeline.cycles <= 4.0


def test_bad_input():
    with pytest.raises(CompileError, match="m must be a positive integer"):
        compile_mesh_gemm(chip(2, 2), 0, 4, 4)
    with pytest.raises(TypeError, match="ChipConfig"):
        compile_mesh_gemm(TileConfig(), 4, 4, 4)
    with pytest.raises(CompileError, match="values must be in"):
        compile_mesh_gemm(chip(2, 2), 4, 4, 4, w=np.full((4, 4), 300))
    device = Device(chip(2, 2))
    with pytest.raises(ValueError, match="do not multiply"):
        device.matmul(np.zeros((3, 4), np.int8), np.zeros((5, 4), np.int8))
    with pytest.raises(CompileError, match="one GEMM at a time"):
        device.run([Linear(np.ones((4, 4), np.int64), out_dtype="int8"),
                    Linear(np.ones((4, 4), np.int64))], np.ones((2, 4), np.int64))


def test_chip_rtl_backend_needs_the_chip_test_bench():
    try:
        import systolica.testbench.chip  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="run_chip"):
            Device(chip(2, 2), backend="verilator")
    else:
        pytest.skip("the chip test bench is installed")


def test_a_broken_schedule_is_reported_by_the_device():
    config = chip(2, 1)
    compiled = compile_mesh_gemm(config, 16, 16, 16)
    # drop the "data ready" signals of the A ring: the receiver waits forever
    for xy, program in compiled.programs.items():
        for name, insns in program.queues.items():
            program.queues[name] = [i for i in insns if not (
                i.opcode == isa.Opcode.SIGNAL_REMOTE and i.sem == 0)]
    device = Device(config)
    from systolica.runtime.chip import execute_on_chip
    compiled._timeline = compile_mesh_gemm(config, 16, 16, 16).predict()
    with pytest.raises(DeviceError, match="deadlock"):
        execute_on_chip(device, compiled, np.ones((16, 16), np.int64))


def test_cli_gemm_on_a_mesh(capsys, tmp_path):
    from systolica.cli import main
    trace = tmp_path / "chip.json"
    assert main(["gemm", "--m", "19", "--k", "23", "--n", "30", "--mesh", "3x2", "--queues", "3",
                 "--out-dtype", "int8", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    for word in ("3x2 mesh", "A rings", "B rings", "per tile (0,0)", "forwarding", "NoC:",
                 "0 lost", "bit-exact"):
        assert word in out
    import json
    assert json.loads(trace.read_text())["traceEvents"]


@pytest.mark.parametrize("mesh, message", [("5", "expected XxY"), ("0x2", "must be in [1, 16]"),
                                           ("17x1", "must be in [1, 16]")])
def test_cli_gemm_refuses_a_bad_mesh_in_one_line(capsys, mesh, message):
    from systolica.cli import main
    try:
        code = main(["gemm", "--m", "2", "--k", "2", "--n", "2", "--mesh", mesh])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_benchmark_gemm_mesh_prints_the_chip_fields(capsys):
    import importlib.util
    import json
    import pathlib
    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "gemm.py"
    spec = importlib.util.spec_from_file_location("bench_gemm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--mesh", "2x2", "--m", "24", "--k", "40", "--n", "33", "--sbuf-depth", "256"])
    out = json.loads(capsys.readouterr().out)
    for key in ("mesh", "tiles", "speedup_vs_one_tile", "noc_flits", "lost_flits", "dram_bytes",
                "min_dram_bytes", "cycles", "predicted_cycles", "useful_macs", "utilization",
                "bit_exact", "plan", "m", "k", "n", "rows", "cols", "one_port_dram_bound_cycles"):
        assert key in out
    assert out["mesh"] == "2x2" and out["tiles"] == 4 and out["bit_exact"] is True
    assert out["lost_flits"] == 0 and out["noc_flits"] == out["plan"]["noc_flits"]
    assert out["expected_flits"] == out["plan"]["noc_flits"]
    # on model the baseline is one tile's prediction, named as such
    assert out["one_tile_cycles_measured"] is False
    assert out["one_tile_cycles"] == out["one_tile_predicted_cycles"]
    assert out["speedup_vs_one_tile"] == out["predicted_speedup_vs_one_tile"]
    assert set(out["queue_busy"]) >= {"pe", "dma0"} and out["measured_dram_bytes"] is None
    assert out["dram_bytes"] == out["data_dram_bytes"] + out["program_bytes"]
    # reads (data minus the C writes, plus program fetch) through one 8-byte port
    c_bytes = 2 * 2 * 12 * 24 * 4          # four 12 x 24 int32 blocks (C padded to 24 x 48)
    assert out["one_port_dram_bound_cycles"] == max(
        out["data_dram_bytes"] - c_bytes + out["program_bytes"], c_bytes) // 8


def test_execute_a_compiled_mesh_program_on_a_chip_device():
    config = chip(2, 2)
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (13, 20))
    b = rng.integers(-128, 128, (20, 11))
    compiled = compile_mesh_gemm(config, 13, 20, 11, w=b)
    device = Device(config, seed=4)                # a random schedule of the chip model
    e = device.execute(compiled, a)
    assert np.array_equal(e.output, a @ b) and device.last is e
    assert e.cycles == e.predicted_cycles == compiled.predict().cycles and not e.measured
    with pytest.raises(ValueError, match="shape"):
        device.execute(compiled, a[:5])
    with pytest.raises(ValueError, match="another chip config"):
        Device(chip(2, 2, queues=2)).execute(compiled, a)
    with pytest.raises(TypeError, match="MeshCompiledProgram"):
        device.execute(object(), a)


def test_a_floating_point_chip_is_refused_clearly():
    from systolica.config import ArrayConfig, TileConfig
    tile = TileConfig(array=ArrayConfig(moving_dtype="bfloat16", stationary_dtype="bfloat16"))
    with pytest.raises(CompileError, match="integer tiles only"):
        plan_mesh_gemm(ChipConfig(tile=tile), 4, 4, 4)
