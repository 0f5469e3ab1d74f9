"""The register slices between the sequencer's PE command streams and the SBUF (hdl/tile.py,
``Tile.pe_command_slices``), watched inside a running tile: every weights and moving command a
MATMUL program issues passes through in order, unchanged, none lost or doubled; the slice's
``i.ready`` is its room (at most two held, nothing combinational from the SBUF's ready); a
command is offered to the SBUF the cycle after it was taken and held there until accepted; and
without stalls the 1-row multiplies pass back to back, one per cycle. Runs with and without
pseudo-random stalls between the slices and the SBUF, under the cycle watchdog; the GEMM is
checked against NumPy."""

import numpy as np
import pytest

from systolica import isa
from systolica.codes import ActMode, EngineState
from systolica.config import ArrayConfig, PsumConfig, SbufConfig, TileConfig
from systolica.testbench.handshake import hold_check
from systolica.testbench.streams import to_python
from systolica.testbench.tile import run_tile

CFG = TileConfig(array=ArrayConfig(rows=4, cols=4), sbuf=SbufConfig(partitions=4, depth=64),
                 psum=PsumConfig(banks=2, bank_rows=16))
PB, R = CFG.sbuf.partition_bytes, CFG.array.rows
A_DRAM, W_DRAM, C_DRAM = 0, 2048, 4096
W_SBUF, C_SBUF = 256, 384


def _program(rows, k, n, matmuls):
    """``matmuls`` back-to-back MATMULs of ``rows`` 1-row repeats (``m=1``: every multiply is a
    one-beat moving command) over K = k, the later ones accumulating: C = matmuls * A @ W."""
    tiles, k_last = -(-k // R), k - (-(-k // R) - 1) * R
    dma = [isa.dma_copy(isa.dram(A_DRAM + t * R * rows, (rows, min(R, k - t * R)), (1, rows)),
                        isa.sbuf(t * rows, (rows, min(R, k - t * R)), (1, PB)))
           for t in range(tiles)]
    dma.append(isa.dma_copy(isa.dram(W_DRAM, (k, n), (1, k)), isa.sbuf(W_SBUF, (k, n), (1, PB)),
                            signals=[(0, 1)]))
    pe = [isa.matmul(0, 1, 0, w_offset=W_SBUF, tiles=tiles, k_last=k_last, n=n, a_step=rows,
                     w_step=R, repeat=rows, offset_step=1, psum_step=1, accumulate=i > 0,
                     waits=[(0, 1)] if i == 0 else [],
                     signals=[(1, 1)] if i == matmuls - 1 else [])
          for i in range(matmuls)]
    act = [isa.act(0, rows, C_SBUF // 4, n, mode=ActMode.INT32, waits=[(1, 1)],
                   signals=[(2, 1)])]
    store = [isa.dma_copy(isa.sbuf(C_SBUF, (rows * 4, n), (1, PB)),
                          isa.dram(C_DRAM, (rows * 4, n), (1, rows * 4)), waits=[(2, 1)])]
    return isa.Program.build(CFG, {"dma0": dma, "pe": pe, "act": act, "dma1": store})


def _expected_commands(rows, k, n, matmuls):
    """The commands the MATMULs stand for (docs/isa.md): per k tile a weights command, then
    one moving command per repeat, the first switching to the new weights."""
    tiles, k_last = -(-k // R), k - (-(-k // R) - 1) * R
    weights, moving = [], []
    for i in range(matmuls):
        for t in range(tiles):
            weights.append({"offset": W_SBUF + t * R, "rows": k_last if t == tiles - 1 else R,
                            "cols": n})
            moving += [{"offset": t * rows + r, "count": 1, "start": int(r == 0), "addr": r,
                        "accumulate": int(i > 0 or t > 0)} for r in range(rows)]
    return {"weights_cmd": weights, "moving_cmd": moving}


def _watch(name, log):
    """A monitor of ``name``'s slice: checks its contract every cycle and logs both sides'
    accepted commands with their cycles."""
    def monitor(tile):
        cut = tile.pe_command_slices[name]
        sides = {"in": [], "out": []}
        log[name] = sides

        def fail(message):
            raise AssertionError(f"{name} slice: {message}")

        async def process(ctx):
            held, cycle, pending_in, pending_out = 0, 0, None, None
            async for _, _, *v in ctx.tick().sample(cut.i.valid, cut.i.ready, cut.i.payload,
                                                     cut.o.valid, cut.o.ready, cut.o.payload):
                i_valid, i_ready, i_payload, o_valid, o_ready, o_payload = v
                i_payload, o_payload = to_python(i_payload), to_python(o_payload)
                if bool(i_ready) != (held < 2):
                    fail(f"i.ready {i_ready} with {held} held (cycle {cycle})")
                if bool(o_valid) != (held > 0):
                    fail(f"o.valid {o_valid} with {held} held (cycle {cycle})")
                pending_in = hold_check(pending_in, i_valid, i_ready, i_payload, fail)
                pending_out = hold_check(pending_out, o_valid, o_ready, o_payload, fail)
                if i_valid and i_ready:
                    sides["in"].append((cycle, i_payload))
                if o_valid and o_ready:
                    sides["out"].append((cycle, o_payload))
                held += int(bool(i_valid and i_ready)) - int(bool(o_valid and o_ready))
                cycle += 1
        return process
    return monitor


def _longest_run(cycles):
    """The most commands accepted in consecutive cycles."""
    best = run = 1
    for a, b in zip(cycles, cycles[1:]):
        run = run + 1 if b == a + 1 else 1
        best = max(best, run)
    return best


@pytest.mark.parametrize("command_stall", [0.0, 0.35])
def test_pe_command_slices_in_order_held_and_one_per_cycle(seed, command_stall):
    rng = np.random.default_rng(seed)
    rows, k, n, matmuls = 8, 13, 3, 2
    a = rng.integers(-128, 128, (rows, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    data = {A_DRAM: np.ascontiguousarray(a.T).tobytes(),
            W_DRAM: np.ascontiguousarray(w.T).tobytes()}
    log = {}
    run = run_tile(CFG, _program(rows, k, n, matmuls), data=data, dram_bytes=1 << 14,
                   program_base=8192, max_cycles=30_000, command_stall=command_stall,
                   seed=seed % 1000,
                   monitors=[_watch("weights_cmd", log), _watch("moving_cmd", log)])
    assert all(q["state"] is EngineState.DONE for q in run.queues.values()), run.queues
    got = np.frombuffer(run.dram[C_DRAM:C_DRAM + 4 * rows * n].tobytes(), "<i4")
    assert np.array_equal(got.reshape(n, rows).T,
                          matmuls * (a.astype(np.int64) @ w.astype(np.int64)))
    expected = _expected_commands(rows, k, n, matmuls)
    for name, sides in log.items():
        taken = [p for _, p in sides["in"]]
        given = [p for _, p in sides["out"]]
        assert taken == expected[name], name
        assert given == expected[name], name
        # one cycle through the slice at the least
        assert all(o > i for (i, _), (o, _) in zip(sides["in"], sides["out"])), name
    moving = log["moving_cmd"]
    if command_stall == 0.0:
        # the 1-row multiplies of a k tile pass back to back, on both sides
        assert _longest_run([c for c, _ in moving["in"]]) >= rows - 1
        assert _longest_run([c for c, _ in moving["out"]]) >= rows - 1
    else:
        # the stalls made the slice hold commands back (it filled)
        assert any(o - i > 1 for (i, _), (o, _) in zip(moving["in"], moving["out"]))
