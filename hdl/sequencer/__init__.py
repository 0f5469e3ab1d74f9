"""The tile's sequencer: instruction fetch, one in-order front end per queue, the semaphore file
and the ACT parameter table (docs/tile.md).

Queues are :func:`systolica.isa.tile_queues` of the config: ``dma0..`` (each feeding one DMA
descriptor queue), ``pe`` (the SBUF's ``weights_cmd`` / ``moving_cmd``) and ``act`` (``act_cmd``
plus the per-column ``scale`` / ``shift`` from parameter-table entry of the running command).

A chip's tile (``config`` a :class:`ChipConfig`) also has ``remote_signal[q]`` (the SIGNAL_REMOTE
flits of DMA queue q), ``remote_sem`` (a remote SIGNAL to apply: the semaphore file's last
signal port, after every engine's) and ``remote_overflow`` (it would overflow: not applied).
"""

from amaranth.hdl import *
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from systolica.codes import EngineState
from systolica.config import ChipConfig, TileConfig
from systolica.hdl.axi import axi4_addr_layout, axi4_r_layout
from systolica.hdl.contracts import (act_command_layout, dma_descriptor_layout, dma_done_layout,
                                     moving_command_layout, remote_signal_layout,
                                     weights_command_layout)
from systolica.isa import (ACT_PARAM_ENTRIES, ACT_PARAM_GROUP, INSTRUCTION_LAYOUT, SEMAPHORES,
                           SEMAPHORE_BITS, Engine, fingerprint, tile_queues)
from .engine import QueueEngine, engine_status_layout
from .fetch import Fetch
from .semaphores import SemaphoreFile, semaphore_request_layout


__all__ = ["Sequencer", "FETCH_AXI_ID"]

#: AXI ID of instruction fetches (the DMA uses ID 0).
FETCH_AXI_ID = 1


class Sequencer(wiring.Component):
    def __init__(self, *, config: TileConfig, fetch_depth=4, scoreboard_depth=8):
        # A chip's tile checks programs against the chip's fingerprint.
        self._fingerprint_config = config
        self._chip = config if isinstance(config, ChipConfig) else None
        if isinstance(config, ChipConfig):
            config = config.tile
        if not isinstance(config, TileConfig):
            raise TypeError(f"Sequencer config must be a TileConfig or ChipConfig; got {config!r}")
        self._config = config
        self._queues = tile_queues(config)
        self._fetch_depth, self._board_depth = fetch_depth, scoreboard_depth
        dma, arr, act = config.dma, config.array, config.act
        n = len(self._queues)
        shift_bits = max(1, act.max_shift.bit_length())
        chip = self._chip
        members = {
            "ar": Out(stream.Signature(axi4_addr_layout(dma.addr_width, dma.id_width))),
            "r": In(stream.Signature(axi4_r_layout(dma.data_width, dma.id_width))),
            "base": In(unsigned(dma.addr_width)).array(n),
            "length": In(32).array(n),
            "start": In(1), "abort": In(1),
            "status": Out(engine_status_layout()).array(n),
            "sem_values": Out(data.ArrayLayout(unsigned(SEMAPHORE_BITS), SEMAPHORES)),
            "running": Out(1), "done": Out(1),
            "dma_desc": Out(stream.Signature(dma_descriptor_layout(
                dma, chip and chip.noc))).array(dma.queues),
            "dma_done": In(1), "dma_done_info": In(dma_done_layout(dma)),
            "weights_cmd": Out(stream.Signature(weights_command_layout(config.sbuf, arr))),
            "moving_cmd": Out(stream.Signature(moving_command_layout(config.sbuf, arr))),
            "load_done": In(1), "multiply_done": In(1),
            "act_cmd": Out(stream.Signature(act_command_layout(config))),
            "act_written": In(1),
            "scale": Out(data.ArrayLayout(signed(act.scale_bits), arr.cols)),
            "shift": Out(data.ArrayLayout(unsigned(shift_bits), arr.cols)),
        }
        if chip is not None:
            members.update({
                "remote_signal": Out(stream.Signature(
                    remote_signal_layout(chip))).array(dma.queues),
                "remote_sem": In(semaphore_request_layout(SEMAPHORES, SEMAPHORE_BITS)),
                "remote_overflow": Out(1),
            })
        super().__init__(members)

    @property
    def queues(self):
        return self._queues

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        dma = cfg.dma
        n = len(self._queues)
        fp = fingerprint(self._fingerprint_config)
        fetch = m.submodules.fetch = Fetch(
            engines=n, instr_bits=INSTRUCTION_LAYOUT.size, addr_width=dma.addr_width,
            data_width=dma.data_width, id_width=dma.id_width, axi_id=FETCH_AXI_ID,
            queue_depth=self._fetch_depth)
        chip = self._chip
        # A chip's tile: remote SIGNALs on the file's remote port (taken before the engines').
        sems = m.submodules.semaphores = SemaphoreFile(count=SEMAPHORES, bits=SEMAPHORE_BITS,
                                                       engines=n, remote=chip is not None)
        if chip is not None:
            m.d.comb += [sems.remote.eq(self.remote_sem),
                         self.remote_overflow.eq(sems.remote_overflow)]
        wiring.connect(m, wiring.flipped(self.ar), fetch.ar)
        wiring.connect(m, wiring.flipped(self.r), fetch.r)
        running = Signal()
        # start is registered (timing: ``running`` is an OR over every engine and ``start``
        # fans out to all of them); ``running`` shows it pending, so the host sees no gap
        start = Signal()
        m.d.sync += start.eq(self.start & ~running)
        m.d.comb += [fetch.start.eq(start),
                     fetch.flush.eq(self.abort), sems.clear.eq(self.abort),
                     self.sem_values.eq(sems.values)]
        engines = []
        for i, q in enumerate(self._queues):
            e = QueueEngine(config=chip or cfg, queue=q, fingerprint=fp,
                            scoreboard_depth=self._board_depth)
            m.submodules[f"engine_{q.name}"] = e
            engines.append(e)
            wiring.connect(m, fetch.instr[i], e.instr)
            m.d.comb += [fetch.base[i].eq(self.base[i]), fetch.length[i].eq(self.length[i]),
                         e.length.eq(self.length[i]), e.start.eq(start), e.abort.eq(self.abort),
                         sems.wait[i].eq(e.wait), e.granted.eq(sems.granted[i]),
                         e.overflow.eq(sems.overflow[i]),
                         e.signal_ready.eq(sems.signal_ready[i]),
                         sems.signal[i][0].eq(e.signal[0]), sems.signal[i][1].eq(e.signal[1]),
                         self.status[i].eq(e.status)]
            if q.engine == Engine.DMA:
                wiring.connect(m, e.desc, wiring.flipped(self.dma_desc[q.index]))
                m.d.comb += [e.dma_done.eq(self.dma_done & (self.dma_done_info.queue == q.index)),
                             e.dma_error.eq(self.dma_done_info.error)]
                if chip is not None:
                    wiring.connect(m, e.remote_signal,
                                   wiring.flipped(self.remote_signal[q.index]))
            elif q.engine == Engine.PE:
                wiring.connect(m, e.weights_cmd, wiring.flipped(self.weights_cmd))
                wiring.connect(m, e.moving_cmd, wiring.flipped(self.moving_cmd))
                m.d.comb += [e.load_done.eq(self.load_done),
                             e.multiply_done.eq(self.multiply_done)]
            else:
                wiring.connect(m, e.act_cmd, wiring.flipped(self.act_cmd))
                m.d.comb += e.act_written.eq(self.act_written)
                self._param_table(m, e, start)
        m.d.comb += running.eq(start | fetch.busy | Cat(e.active for e in engines).any())
        started = Signal()
        with m.If(start):
            m.d.sync += started.eq(1)
        m.d.comb += [self.running.eq(running), self.done.eq(started & ~running)]
        return m

    def _param_table(self, m, engine, start):
        """ACT parameter table: entry x column pairs of (scale, shift), every pair (1, 0) after
        reset and at start (docs/isa.md); the ACT reads the entry of its current command.

        One LUT-RAM row per entry (a column's pair is one write lane) and one flip-flop per
        pair saying it was written since start: an unwritten pair reads (1, 0).

        An ACT_PARAM is written one column per cycle, ``count`` cycles from the cycle after its
        issue (``param_busy`` meanwhile: the ACT queue issues no ACT or ACT_PARAM): its pairs
        are latched and shifted down, so every column's write port sees the same pair (no
        group-to-column crossbar, which placed as the board's densest routing)."""
        cols = self._config.array.cols
        pw = engine.param_write
        pair = data.StructLayout({"scale": self.scale.shape().elem_shape,
                                  "shift": self.shift.shape().elem_shape})
        table = m.submodules.act_params = memory.Memory(
            shape=data.ArrayLayout(pair, cols), depth=ACT_PARAM_ENTRIES, init=[])
        write = table.write_port(granularity=1)
        read = table.read_port(domain="comb")
        written = Signal(data.ArrayLayout(cols, ACT_PARAM_ENTRIES))
        entry = Signal.like(pw.entry)
        column = Signal(range(cols + 1))     # first_col + count <= cols (checked at issue)
        left = Signal(range(ACT_PARAM_GROUP + 1))
        pairs = Signal(data.ArrayLayout(pair, ACT_PARAM_GROUP))
        with m.If(pw.valid):
            m.d.sync += [entry.eq(pw.entry), column.eq(pw.first_col), left.eq(pw.count)]
            m.d.sync += [pairs[i].eq(Cat(pw.scale[i][:len(pairs[i].scale)],
                                         pw.shift[i][:len(pairs[i].shift)]))
                         for i in range(ACT_PARAM_GROUP)]
        with m.Elif(left != 0):
            m.d.sync += [column.eq(column + 1), left.eq(left - 1)]
            m.d.sync += [pairs[i].eq(pairs[i + 1]) for i in range(ACT_PARAM_GROUP - 1)]
        with m.If(start):
            m.d.sync += left.eq(0)
        m.d.comb += [engine.param_busy.eq(left != 0),
                     write.addr.eq(entry), read.addr.eq(engine.param_entry)]
        for c in range(cols):
            takes = Signal(name=f"param_takes_{c}")
            m.d.comb += [takes.eq((left != 0) & (column == c)),
                         write.en[c].eq(takes), write.data[c].eq(pairs[0])]
            with m.If(takes):
                m.d.sync += written[entry][c].eq(1)
            valid = written[engine.param_entry][c]
            m.d.comb += [self.scale[c].eq(Mux(valid, read.data[c].scale, 1)),
                         self.shift[c].eq(Mux(valid, read.data[c].shift, 0))]
        with m.If(start):
            m.d.sync += written.eq(0)
