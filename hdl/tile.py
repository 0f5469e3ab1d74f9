"""The tile: sequencer + datapath (SBUF, tensor engine, PSUM, ACT) + DMA, one AXI4 master to DRAM
and an AXI4-Lite host control/status port (register map: systolica/registers.py,
docs/registers.md). docs/tile.md describes the whole.

* ``axi`` (out): AXI4 master. Instruction fetch (ID ``FETCH_AXI_ID``) and the DMA (ID 0) share the
  read address channel (round-robin, held until accepted); R beats are routed back by RID. Only the
  DMA writes.
* ``host`` (in): AXI4-Lite slave of :func:`systolica.registers.tile_register_map`.
* A chip's tile (``Tile(config=ChipConfig, x=, y=)``) adds ``noc_send`` / ``noc_recv`` (the
  streams of its network interface) and ``noc_refused`` (in: that interface's refused-packet
  counter, read back in ``NOC_REFUSED``; tie it to 0 where there is none), ``done`` /
  ``halted`` (out: STATUS.done / STATUS.halted, for the chip's bitmaps) and a
  :class:`~.remote.RemoteInterface` between them and the DMA, the SBUF and the semaphores.

The sequencer's PE command streams (``weights_cmd``, ``moving_cmd``) reach the SBUF through a
register slice each (:attr:`Tile.pe_command_slices`, a :class:`~.lib.SkidBuffer`): one cycle
from issue to the SBUF reader, two commands held, one per cycle (a timing cut, docs/tile.md).

Completion events the sequencer needs are taken from the streams between the blocks: a weight load
is complete when its ``last`` row enters the engine; a multiply when its last result (``tag.last``)
has entered PSUM and passed PSUM's read-modify-write pipeline (``PSUM_SETTLE`` cycles later); an
ACT command when its last row has been written to the SBUF (the ACT's vector writes are counted).
"""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import EngineState
from systolica.config import ChipConfig, HostConfig, TileConfig
from systolica.hdl.contracts import (moving_command_layout, recv_layout, send_layout,
                                     weights_command_layout)
from systolica.hdl.noc.flit import check_position
from systolica.isa import fingerprint, tile_queues
from systolica.registers import TILE_MAGIC, tile_register_map
from .axi import Axi4LiteSignature, Axi4Signature
from .axi_ram import Lfsr
from .dma import Dma
from .lib import SkidBuffer
from .regs import RegisterFile
from .remote import RemoteInterface, SbufPortShare
from .sequencer import FETCH_AXI_ID, Sequencer
from .tensor_engine import TensorEngine
from .tile_datapath import TileDatapath


__all__ = ["Tile", "PSUM_SETTLE"]

#: Cycles from a result's acceptance by PSUM until a PSUM read sees it (read, register, write).
PSUM_SETTLE = 3


def _connect_stalled(m, name, source, sink, stall, seed):
    """Connect stream ``source`` to ``sink``, holding back a new beat in a pseudo-random
    ``stall`` (0..1) of the cycles (an LFSR; once shown, a beat stays valid until accepted)."""
    if not stall:
        wiring.connect(m, source, sink)
        return
    lfsr = m.submodules[f"{name}_stall"] = Lfsr(seed)
    stalled = lfsr.value[:8] < int(round(stall * 256))
    shown = Signal(name=f"{name}_shown")
    m.d.comb += [sink.payload.eq(source.payload),
                 sink.valid.eq(source.valid & (shown | ~stalled)),
                 source.ready.eq(sink.ready & sink.valid)]
    m.d.sync += shown.eq(sink.valid & ~sink.ready)


class Tile(wiring.Component):
    """``config``: a :class:`TileConfig` (a standalone tile), or a :class:`ChipConfig` and the
    tile's mesh position ``x``, ``y`` (a chip's tile: it also has ``noc_send`` / ``noc_recv``,
    the streams of its network interface, and checks programs against the chip's fingerprint).

    ``command_stall`` (0..1, for tests): pseudo-random stalls on every command stream between
    the sequencer and the engines (weights and moving after their register slices, ACT, each
    DMA queue), from LFSRs seeded by ``stall_seed``; 0 (the default) connects them directly.

    ``position_ports=True`` (a chip's tile): the tile's position is read from the input ports
    ``tile_x`` / ``tile_y`` (8 bits, what TILE_POSITION shows) instead of being built in, so
    that every tile of a chip is the same module (the chip drives them)."""

    def __init__(self, *, config: TileConfig, x=0, y=0, fetch_depth=4, command_stall=0.0,
                 stall_seed=1, position_ports=False):
        chip = None
        if isinstance(config, ChipConfig):
            chip, config = config, config.tile
            check_position(chip.noc, x, y, "Tile")
        if not isinstance(config, TileConfig):
            raise TypeError(f"Tile config must be a TileConfig or ChipConfig; got {config!r}")
        if not 0.0 <= command_stall < 1.0:
            raise ValueError(f"Tile command_stall must be in [0, 1); got {command_stall!r}")
        self._config, self._chip, self._x, self._y = config, chip, x, y
        self._fetch_depth = fetch_depth
        self._stall, self._stall_seed = command_stall, stall_seed
        self._map = tile_register_map(chip or config)
        host = chip.host if chip is not None else HostConfig()
        dma = config.dma
        members = {
            "axi": Out(Axi4Signature(addr_width=dma.addr_width, data_width=dma.data_width,
                                     id_width=dma.id_width)),
            "host": In(Axi4LiteSignature(addr_width=host.addr_width,
                                         data_width=host.data_width)),
            "running": Out(1),          # STATUS.running (e.g. an interrupt: its fall = done)
        }
        if chip is not None:
            members["noc_send"] = Out(stream.Signature(send_layout(chip.noc)))
            members["noc_recv"] = In(stream.Signature(recv_layout(chip.noc)))
            members["noc_refused"] = In(chip.noc.error_counter_bits)
            members["done"] = Out(1)        # STATUS.done / STATUS.halted, for the chip's bitmaps
            members["halted"] = Out(1)
            if position_ports:
                members["tile_x"] = In(8)
                members["tile_y"] = In(8)
        super().__init__(members)
        self._datapath = TileDatapath(config=config, engine=False)
        # A register slice (a skid buffer: one cycle, two commands) on each PE command stream
        # between the sequencer and the SBUF: the SBUF readers' command acceptance hangs on
        # the tensor engine's ready (a start beat waits for its weights) and ran on, in the
        # same cycle, into the PE queue's issue and its offset counters (the tile's critical
        # path). Still one command per cycle.
        self._pe_slices = {
            "weights_cmd": SkidBuffer(shape=weights_command_layout(config.sbuf, config.array)),
            "moving_cmd": SkidBuffer(shape=moving_command_layout(config.sbuf, config.array)),
        }

    @property
    def config(self):
        return self._config

    @property
    def chip(self):
        """The :class:`ChipConfig` of a chip's tile, or None."""
        return self._chip

    @property
    def position(self):
        return (self._x, self._y)

    @property
    def register_map(self):
        return self._map

    @property
    def datapath(self):
        return self._datapath

    @property
    def pe_command_slices(self):
        """``{"weights_cmd": SkidBuffer, "moving_cmd": SkidBuffer}``: the register slices
        between the sequencer's PE command streams (``i``) and the SBUF's (``o``)."""
        return dict(self._pe_slices)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        regs = m.submodules.regs = RegisterFile(self._map)
        chip = self._chip
        seq = m.submodules.sequencer = Sequencer(config=chip or cfg,
                                                 fetch_depth=self._fetch_depth)
        dp = m.submodules.datapath = self._datapath
        engine = m.submodules.engine = TensorEngine(config=cfg.array)
        dma = m.submodules.dma = Dma(config=chip or cfg)
        wiring.connect(m, wiring.flipped(self.host), regs.bus)

        # datapath, engine, DMA
        wiring.connect(m, dp.moving, engine.moving)
        wiring.connect(m, dp.weights, engine.weights)
        wiring.connect(m, engine.result, dp.result)
        if chip is None:
            wiring.connect(m, dma.sbuf, dp.dma)
        else:
            self._remote(m, regs, seq, dma, dp)
        for name, cut in self._pe_slices.items():
            m.submodules[f"{name}_slice"] = cut
            wiring.connect(m, getattr(seq, name), cut.i)
        streams = [("weights_cmd", self._pe_slices["weights_cmd"].o, dp.weights_cmd),
                   ("moving_cmd", self._pe_slices["moving_cmd"].o, dp.moving_cmd),
                   ("act_cmd", seq.act_cmd, dp.act_cmd)]
        streams += [(f"dma_desc{q}", seq.dma_desc[q], dma.queues[q])
                    for q in range(cfg.dma.queues)]
        for i, (name, source, sink) in enumerate(streams):
            _connect_stalled(m, name, source, sink, self._stall, self._stall_seed * 7 + i * 101)
        settle = Signal(PSUM_SETTLE)
        result_last = engine.result.valid & engine.result.ready & engine.result.payload.tag.last
        m.d.sync += settle.eq(Cat(result_last, settle[:-1]))
        m.d.comb += [
            dp.scale.eq(seq.scale), dp.shift.eq(seq.shift),
            seq.act_written.eq(dp.act.sbuf.valid & dp.act.sbuf.ready),
            seq.load_done.eq(engine.weights.valid & engine.weights.ready &
                             engine.weights.payload.last),
            seq.multiply_done.eq(settle[-1]),
            seq.dma_done.eq(dma.done), seq.dma_done_info.eq(dma.done_info),
        ]

        # one AXI4 master: fetch and DMA share AR (round-robin, locked until accepted)
        axi = self.axi
        fetch_ar, dma_ar = seq.ar, dma.axi.ar
        locked, owner, last_owner = Signal(), Signal(), Signal()
        pick = Signal()                 # 1: fetch owns AR this cycle
        m.d.comb += pick.eq(Mux(locked, owner, Mux(fetch_ar.valid & dma_ar.valid, ~last_owner,
                                                   fetch_ar.valid)))
        m.d.comb += [
            axi.ar.valid.eq(Mux(pick, fetch_ar.valid, dma_ar.valid)),
            axi.ar.payload.eq(Mux(pick, fetch_ar.payload, dma_ar.payload)),
            fetch_ar.ready.eq(pick & axi.ar.ready),
            dma_ar.ready.eq(~pick & axi.ar.ready),
        ]
        m.d.sync += [locked.eq(axi.ar.valid & ~axi.ar.ready), owner.eq(pick)]
        with m.If(axi.ar.valid & axi.ar.ready):
            m.d.sync += last_owner.eq(pick)
        to_fetch = axi.r.payload.id == FETCH_AXI_ID
        m.d.comb += [
            seq.r.payload.eq(axi.r.payload), dma.axi.r.payload.eq(axi.r.payload),
            seq.r.valid.eq(axi.r.valid & to_fetch), dma.axi.r.valid.eq(axi.r.valid & ~to_fetch),
            axi.r.ready.eq(Mux(to_fetch, seq.r.ready, dma.axi.r.ready)),
        ]
        wiring.connect(m, dma.axi.aw, wiring.flipped(axi.aw))
        wiring.connect(m, dma.axi.w, wiring.flipped(axi.w))
        wiring.connect(m, wiring.flipped(axi.b), dma.axi.b)

        # host registers
        errors = dp.errors
        halted = Cat(s.state == EngineState.HALTED for s in seq.status).any()
        if chip is not None:
            m.d.comb += [self.done.eq(seq.done), self.halted.eq(halted)]
        m.d.comb += [
            regs.id.magic.eq(TILE_MAGIC), regs.fingerprint.value.eq(fingerprint(chip or cfg)),
            seq.start.eq(regs.control.start), seq.abort.eq(regs.control.abort),
            dp.clear_errors.eq(regs.control.clear_errors),
            dma.clear_errors.eq(regs.control.clear_errors),
            regs.status.running.eq(seq.running), regs.status.done.eq(seq.done),
            self.running.eq(seq.running),
            regs.status.halted.eq(halted),
            regs.status.datapath_error.eq(errors.as_value().any() | dma.error),
            regs.datapath_errors.sbuf.eq(errors.sbuf), regs.datapath_errors.psum.eq(errors.psum),
            regs.datapath_errors.act.eq(errors.act),
            regs.datapath_errors.weights_overflow.eq(engine.weights_overflow),
            regs.datapath_errors.dma.eq(dma.error),
            regs.datapath_errors.dma_last_error.eq(dma.last_error),
            engine.clear_errors.eq(regs.control.clear_errors),
        ]
        cycles = Signal(32)
        with m.If(regs.control.start & ~seq.running):
            m.d.sync += cycles.eq(0)
        with m.Elif(seq.running):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += regs.cycles.value.eq(cycles)
        for i, q in enumerate(tile_queues(cfg)):
            p = q.name
            st = seq.status[i]
            base = getattr(regs, f"{p}_base").addr
            if cfg.dma.addr_width > 32:
                base = Cat(base, getattr(regs, f"{p}_base_hi").addr)
            m.d.comb += [
                seq.base[i].eq(base), seq.length[i].eq(getattr(regs, f"{p}_length").instructions),
                getattr(regs, f"{p}_state").state.eq(st.state),
                getattr(regs, f"{p}_state").semaphore.eq(st.semaphore),
                getattr(regs, f"{p}_pc").pc.eq(st.pc),
                getattr(regs, f"{p}_retired").count.eq(st.retired),
                getattr(regs, f"{p}_busy_cycles").count.eq(st.busy_cycles),
                getattr(regs, f"{p}_error").code.eq(st.error),
                getattr(regs, f"{p}_error").dma.eq(st.dma_error),
            ]
        for s in range(len(seq.sem_values)):
            m.d.comb += getattr(regs, f"sem{s}").value.eq(seq.sem_values[s])
        return m

    def _remote(self, m, regs, seq, dma, dp):
        """A chip's tile: the remote interface between the NoC ports, the DMA, the sequencer's
        SIGNAL_REMOTEs and remote semaphore port, and the SBUF word port (shared with the DMA)."""
        chip = self._chip
        remote = m.submodules.remote = RemoteInterface(config=chip)
        share = m.submodules.sbuf_share = SbufPortShare(config=self._config)
        wiring.connect(m, dma.sbuf, share.dma)
        wiring.connect(m, remote.sbuf_write, share.remote)
        wiring.connect(m, share.sbuf, dp.dma)
        wiring.connect(m, dma.remote, remote.write)
        for q in range(self._config.dma.queues):
            wiring.connect(m, seq.remote_signal[q], remote.signal[q])
        wiring.connect(m, remote.send, wiring.flipped(self.noc_send))
        wiring.connect(m, wiring.flipped(self.noc_recv), remote.recv)
        m.d.comb += [
            seq.remote_sem.eq(remote.sem), remote.sem_overflow.eq(seq.remote_overflow),
            remote.clear_errors.eq(regs.control.clear_errors),
            regs.tile_position.x.eq(getattr(self, "tile_x", self._x)),
            regs.tile_position.y.eq(getattr(self, "tile_y", self._y)),
            regs.tile_position.width.eq(chip.noc.width),
            regs.tile_position.height.eq(chip.noc.height),
            regs.remote_errors.semaphore_overflow.eq(remote.semaphore_overflow),
            regs.remote_errors.bad_signal.eq(remote.bad_signal),
            regs.remote_flits_sent.count.eq(remote.flits_sent),
            regs.remote_flits_received.count.eq(remote.flits_received),
            regs.noc_refused.count.eq(self.noc_refused),
        ]
