"""An AXI4 slave simulation model of a DRAM, backed by a NumPy byte array.

Use it with :func:`systolica.testbench.sim.run_simulation`::

    dram = AxiDram(dut.axi, size=1 << 16, read_latency=20, stall=0.3, rng=rng)
    run_simulation(dut, [testbench], processes=dram.processes(), max_cycles=...)

``bus`` is the DUT's AXI4 master port (an :class:`systolica.hdl.axi.Axi4Signature` interface).
The model drives ``ar.ready``, ``r``, ``aw.ready``, ``w.ready`` and ``b``; it answers bursts in order
(every ID alike), with

* ``read_latency``: cycles from the AR handshake to the earliest handshake of the first R beat
  (later beats may follow every cycle; bursts in flight are pipelined);
* ``write_latency``: cycles from the WLAST handshake to the earliest B handshake;
* random stalls on every channel: ``stall`` (a probability, or a dict per channel name
  ``ar``, ``r``, ``aw``, ``w``, ``b``) holds a ready low (AR, AW, W) or delays offering a beat
  (R, B) in a cycle; a beat, once offered, is held until accepted;
* W beats are accepted only for bursts whose AW was accepted (``allow_w_before_aw=False``, the
  default, fails the run if WVALID rises before that AW handshake);
* ``max_reads`` / ``max_writes``: outstanding transactions (AR accepted and not fully returned /
  AW accepted and B not yet accepted); the model holds ``arready`` / ``awready`` low at the limit;
* error injection: :meth:`add_error` makes reads and/or writes touching a byte range answer SLVERR
  or DECERR (read beats then carry zero data, write beats are dropped); an access beyond ``size``
  answers DECERR;
* protocol checks: the run fails (``AxiProtocolError``) if the master drops ``valid`` or changes a
  payload before ``ready`` on AR/AW/W, issues a burst type other than INCR, a size other than the
  bus width, a burst that crosses a 4 KiB boundary, sends a W beat before its AW handshake, sets
  WLAST on the wrong beat, or strobes bytes below the start address of an unaligned burst.

Statistics for benchmarks are in ``stats`` (cycle numbers count clock edges from the start).
"""

from collections import deque

import numpy as np

from systolica.hdl.axi import BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR
from .handshake import hold_check


__all__ = ["AxiProtocolError", "AxiDram"]

_CHANNELS = ("ar", "r", "aw", "w", "b")


class AxiProtocolError(AssertionError):
    """The AXI master broke a protocol rule (see :class:`AxiDram`)."""


class AxiDram:
    def __init__(self, bus, *, size=None, mem=None, read_latency=8, write_latency=2, stall=0.0,
                 max_reads=16, max_writes=16, rng=None, allow_w_before_aw=False, name="dram"):
        if (size is None) == (mem is None):
            raise ValueError("AxiDram: give exactly one of size= and mem=")
        self.mem = np.zeros(size, dtype=np.uint8) if mem is None else mem
        if self.mem.dtype != np.uint8 or self.mem.ndim != 1:
            raise ValueError("AxiDram: mem must be a 1-D uint8 array")
        if read_latency < 1 or write_latency < 1:
            raise ValueError(f"AxiDram: read_latency and write_latency must be >= 1; got "
                             f"{read_latency}, {write_latency}")
        if max_reads < 1 or max_writes < 1:
            raise ValueError("AxiDram: max_reads and max_writes must be >= 1")
        self.bus = bus
        self.data_bytes = len(bus.w.payload.strb)
        self.size_log2 = self.data_bytes.bit_length() - 1
        self.read_latency = read_latency
        self.write_latency = write_latency
        if isinstance(stall, dict):
            unknown = set(stall) - set(_CHANNELS)
            if unknown:
                raise ValueError(f"AxiDram: unknown stall channel(s) {sorted(unknown)}")
            self.stall = {ch: float(stall.get(ch, 0.0)) for ch in _CHANNELS}
        else:
            self.stall = {ch: float(stall) for ch in _CHANNELS}
        self.max_reads = max_reads
        self.max_writes = max_writes
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.allow_w_before_aw = allow_w_before_aw
        self.name = name
        self.errors = []            # (lo, hi, resp, reads, writes)
        self.stats = {"ar": 0, "aw": 0, "r_beats": 0, "w_beats": 0, "b": 0,
                      "first_ar": None, "first_r": None, "last_r": None,
                      "first_aw": None, "first_w": None, "last_w": None, "last_b": None,
                      "max_reads_seen": 0, "max_writes_seen": 0}

    # --- host helpers ------------------------------------------------------------------------------

    def add_error(self, lo, hi, *, resp=RESP_SLVERR, reads=True, writes=True):
        """Accesses touching bytes ``[lo, hi)`` answer ``resp`` (SLVERR or DECERR)."""
        if resp not in (RESP_SLVERR, RESP_DECERR):
            raise ValueError(f"AxiDram.add_error: resp must be SLVERR (2) or DECERR (3); "
                             f"got {resp}")
        self.errors.append((lo, hi, resp, reads, writes))

    def write(self, addr, values):
        values = np.asarray(values, dtype=np.uint8).ravel()
        self.mem[addr:addr + len(values)] = values

    def read(self, addr, n):
        return self.mem[addr:addr + n].copy()

    def _resp(self, lo, hi, is_write):
        if lo < 0 or hi > len(self.mem):
            return RESP_DECERR
        for elo, ehi, resp, reads, writes in self.errors:
            if (writes if is_write else reads) and lo < ehi and elo < hi:
                return resp
        return RESP_OKAY

    def _fail(self, message):
        raise AxiProtocolError(f"{self.name}: AXI protocol violation: {message}")

    def _check_burst(self, kind, addr, length, size, burst):
        beats = length + 1
        if burst != BURST_INCR:
            self._fail(f"{kind} burst type {burst} (only INCR={BURST_INCR} is allowed)")
        if size != self.size_log2:
            self._fail(f"{kind} size {size} (the bus is {self.data_bytes} bytes: size "
                       f"{self.size_log2})")
        if beats > 256:
            self._fail(f"{kind} burst of {beats} beats (> 256)")
        first = addr & ~(self.data_bytes - 1)
        last = first + beats * self.data_bytes - 1
        if (addr >> 12) != (last >> 12):
            self._fail(f"{kind} burst at {addr:#x} of {beats} beats crosses a 4 KiB boundary")

    # --- the simulation process --------------------------------------------------------------------

    def processes(self):
        return [self._process]

    async def _process(self, ctx):
        bus = self.bus
        W = self.data_bytes
        stall = self.stall
        rng = self.rng
        st = self.stats

        def stalled(ch):
            p = stall[ch]
            return p > 0.0 and rng.random() < p

        ar, r, aw, w, b = bus.ar, bus.r, bus.aw, bus.w, bus.b
        has_id = "id" in {name for name, _ in ar.payload.shape()}
        signals = [ar.valid, ar.payload.addr, ar.payload.len, ar.payload.size, ar.payload.burst,
                   ar.payload.id if has_id else ar.payload.addr,
                   r.ready,
                   aw.valid, aw.payload.addr, aw.payload.len, aw.payload.size, aw.payload.burst,
                   aw.payload.id if has_id else aw.payload.addr,
                   w.valid, w.payload.data, w.payload.strb, w.payload.last,
                   b.ready]

        reads = deque()         # [ready_cycle, addr, beats, id, beat]
        writes = deque()        # AW accepted, W beats pending: [addr, beats, id, beat, resp]
        responses = deque()     # [ready_cycle, id, resp]
        writes_open = 0         # AW accepted, B not yet accepted
        ar_ready = aw_ready = w_ready = False
        r_valid = b_valid = False
        pending = {"ar": None, "aw": None, "w": None}
        cycle = 0

        async for values in ctx.tick().sample(*signals):
            (_, _, arvalid, araddr, arlen, arsize, arburst, arid, rready,
             awvalid, awaddr, awlen, awsize, awburst, awid,
             wvalid, wdata, wstrb, wlast, bready) = values
            cycle += 1

            # Stream rules on the master's channels.
            for ch, valid, ready, payload in (
                    ("ar", arvalid, ar_ready, (araddr, arlen, arsize, arburst, arid)),
                    ("aw", awvalid, aw_ready, (awaddr, awlen, awsize, awburst, awid)),
                    ("w", wvalid, w_ready, (wdata, wstrb, wlast))):
                pending[ch] = hold_check(pending[ch], valid, ready, payload,
                                         lambda msg: self._fail(f"{ch.upper()}: {msg}"))

            # R beat taken?
            if r_valid and rready:
                burst = reads[0]
                burst[4] += 1
                st["r_beats"] += 1
                if st["first_r"] is None:
                    st["first_r"] = cycle
                st["last_r"] = cycle
                if burst[4] == burst[2]:
                    reads.popleft()
                r_valid = False

            # W beat (checked before this edge's AW: a W beat with no accepted AW is early).
            if wvalid and not writes and not self.allow_w_before_aw:
                self._fail("WVALID before the AW handshake of its burst")
            if wvalid and w_ready:
                wr = writes[0]
                addr, beats, wid, beat, resp = wr
                first = addr & ~(W - 1)
                beat_addr = first + beat * W
                if bool(wlast) != (beat == beats - 1):
                    self._fail(f"WLAST={wlast} on beat {beat} of a {beats}-beat burst at "
                               f"{addr:#x}")
                if beat == 0 and wstrb & ((1 << (addr - first)) - 1):
                    self._fail(f"WSTRB {wstrb:#x} enables bytes below the start address "
                               f"{addr:#x} of the burst")
                beat_resp = self._resp(beat_addr, beat_addr + W, True)
                if beat_resp == RESP_OKAY:
                    for i in range(W):
                        if (wstrb >> i) & 1:
                            self.mem[beat_addr + i] = (wdata >> (8 * i)) & 0xFF
                elif resp == RESP_OKAY:
                    wr[4] = beat_resp
                st["w_beats"] += 1
                if st["first_w"] is None:
                    st["first_w"] = cycle
                st["last_w"] = cycle
                wr[3] += 1
                if wr[3] == beats:
                    writes.popleft()
                    responses.append([cycle + self.write_latency - 1, wid, wr[4]])

            # B taken?
            if b_valid and bready:
                responses.popleft()
                writes_open -= 1
                st["b"] += 1
                st["last_b"] = cycle
                b_valid = False

            # AR / AW handshakes.
            if arvalid and ar_ready:
                self._check_burst("AR", araddr, arlen, arsize, arburst)
                reads.append([cycle + self.read_latency - 1, araddr, arlen + 1, arid, 0])
                st["ar"] += 1
                if st["first_ar"] is None:
                    st["first_ar"] = cycle
                st["max_reads_seen"] = max(st["max_reads_seen"], len(reads))
            if awvalid and aw_ready:
                self._check_burst("AW", awaddr, awlen, awsize, awburst)
                writes.append([awaddr, awlen + 1, awid, 0, RESP_OKAY])
                writes_open += 1
                st["aw"] += 1
                if st["first_aw"] is None:
                    st["first_aw"] = cycle
                st["max_writes_seen"] = max(st["max_writes_seen"], writes_open)

            # Outputs for the next cycle.
            if not r_valid and reads and reads[0][0] <= cycle and not stalled("r"):
                _, addr, beats, rid, beat = reads[0]
                beat_addr = (addr & ~(W - 1)) + beat * W
                resp = self._resp(beat_addr, beat_addr + W, False)
                value = 0
                if resp == RESP_OKAY:
                    value = int.from_bytes(self.mem[beat_addr:beat_addr + W].tobytes(),
                                           "little")
                ctx.set(r.payload.data, value)
                ctx.set(r.payload.resp, resp)
                ctx.set(r.payload.last, beat == beats - 1)
                if has_id:
                    ctx.set(r.payload.id, rid)
                r_valid = True
            if not b_valid and responses and responses[0][0] <= cycle and not stalled("b"):
                _, bid, resp = responses[0]
                ctx.set(b.payload.resp, resp)
                if has_id:
                    ctx.set(b.payload.id, bid)
                b_valid = True
            ar_ready = len(reads) < self.max_reads and not stalled("ar")
            aw_ready = writes_open < self.max_writes and not stalled("aw")
            w_ready = bool(writes) and not stalled("w")
            ctx.set(r.valid, r_valid)
            ctx.set(b.valid, b_valid)
            ctx.set(ar.ready, ar_ready)
            ctx.set(aw.ready, aw_ready)
            ctx.set(w.ready, w_ready)
