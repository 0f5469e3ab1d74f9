"""The datapath of a tile without its sequencer: SBUF -> tensor engine -> PSUM -> ACT -> SBUF.

Wiring (docs/memories.md): the SBUF's moving and weights readers feed the tensor engine, the
engine's results accumulate in PSUM, the ACT unit reads PSUM and writes the SBUF's vector-write
port. What stays outside is what a sequencer (or a test) drives: the DMA word port, the three
command streams (``moving_cmd``, ``weights_cmd``, ``act_cmd``) and the ACT's per-column ``scale``
and ``shift``. ``engine=False`` leaves the tensor engine out and exposes the SBUF's ``moving`` and
``weights`` streams and PSUM's ``result`` stream instead (for memory-only tests and benchmarks).
"""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.config import TileConfig
from systolica.hdl.act import Act
from systolica.hdl.contracts import (SbufPortSignature, act_command_layout, act_errors_layout,
                                     moving_command_layout, moving_layout, psum_errors_layout,
                                     result_layout, sbuf_errors_layout, weight_row_layout,
                                     weights_command_layout)
from systolica.hdl.psum import Psum
from systolica.hdl.sbuf import Sbuf, check_sbuf_init
from systolica.hdl.tensor_engine import TensorEngine


__all__ = ["TileDatapath"]


class TileDatapath(wiring.Component):
    def __init__(self, *, config: TileConfig, engine=True, sbuf_init=None):
        if not isinstance(config, TileConfig):
            raise TypeError(f"TileDatapath config must be a TileConfig; got {config!r}")
        check_sbuf_init(config.sbuf, sbuf_init, "TileDatapath sbuf_init")
        self._config = config
        self._sbuf = Sbuf(config=config, init=sbuf_init)
        self._psum = Psum(config=config)
        self._act = Act(config=config)
        self._engine = TensorEngine(config=config.array) if engine else None
        cfg, arr = config.sbuf, config.array
        members = {
            "dma": In(SbufPortSignature(cfg)),
            "moving_cmd": In(stream.Signature(moving_command_layout(cfg, arr))),
            "weights_cmd": In(stream.Signature(weights_command_layout(cfg, arr))),
            "act_cmd": In(stream.Signature(act_command_layout(config))),
            "scale": In(self._act.scale.shape()),
            "shift": In(self._act.shift.shape()),
            "act_busy": Out(1),
            "errors": Out(data.StructLayout({"sbuf": sbuf_errors_layout(),
                                             "psum": psum_errors_layout(),
                                             "act": act_errors_layout(),
                                             "engine_weights_overflow": 1})),
            "clear_errors": In(1),
        }
        if not engine:
            members.update({
                "moving": Out(stream.Signature(moving_layout(arr))),
                "weights": Out(stream.Signature(weight_row_layout(arr))),
                "result": In(stream.Signature(result_layout(arr))),
            })
        super().__init__(members)

    @property
    def config(self):
        return self._config

    @property
    def sbuf(self):
        return self._sbuf

    @property
    def act(self):
        return self._act

    @property
    def engine(self):
        return self._engine

    def elaborate(self, platform):
        m = Module()
        sbuf, psum, act = self._sbuf, self._psum, self._act
        m.submodules.sbuf = sbuf
        m.submodules.psum = psum
        m.submodules.act = act
        wiring.connect(m, wiring.flipped(self.dma), sbuf.dma)
        wiring.connect(m, wiring.flipped(self.moving_cmd), sbuf.moving_cmd)
        wiring.connect(m, wiring.flipped(self.weights_cmd), sbuf.weights_cmd)
        wiring.connect(m, wiring.flipped(self.act_cmd), act.cmd)
        wiring.connect(m, act.psum, psum.read)
        wiring.connect(m, act.sbuf, sbuf.vector_write)
        if self._engine is not None:
            engine = m.submodules.engine = self._engine
            wiring.connect(m, sbuf.moving, engine.moving)
            wiring.connect(m, sbuf.weights, engine.weights)
            wiring.connect(m, engine.result, psum.result)
            m.d.comb += [self.errors.engine_weights_overflow.eq(engine.weights_overflow),
                         engine.clear_errors.eq(self.clear_errors)]
        else:
            wiring.connect(m, sbuf.moving, wiring.flipped(self.moving))
            wiring.connect(m, sbuf.weights, wiring.flipped(self.weights))
            wiring.connect(m, wiring.flipped(self.result), psum.result)
        m.d.comb += [
            act.scale.eq(self.scale), act.shift.eq(self.shift),
            self.act_busy.eq(act.busy),
            self.errors.sbuf.eq(sbuf.errors), self.errors.psum.eq(psum.errors),
            self.errors.act.eq(act.errors),
            sbuf.clear_errors.eq(self.clear_errors), psum.clear_errors.eq(self.clear_errors),
            act.clear_errors.eq(self.clear_errors),
        ]
        return m
