"""Traffic generation and end-to-end checking for the mesh NoC
(:class:`systolica.hdl.noc.mesh.Mesh`).

One testbench coroutine drives every node's ``send`` stream and ``recv`` ready and samples them
all once per cycle (payloads as raw integers), which keeps the per-cycle Python work small.

* Traffic patterns (:data:`PATTERNS`): ``uniform`` (any node, itself included, like BookSim's
  uniform), ``transpose`` ((x, y) -> (y, x); square meshes), ``hotspot`` (a fraction of the
  packets to one node, the rest uniform), ``neighbour`` (a random existing nearest neighbour).
* Bernoulli injection: each node creates a packet in a cycle with probability
  ``rate / mean packet length``, so ``rate`` is the offered load in flits/node/cycle. Lengths are
  uniform in 1..``packet_len`` flits (words). Packets wait in an unbounded source queue; their
  latency counts from creation (so it includes source queueing, as in BookSim).
* The checker: every packet must arrive exactly once, with the same words, at its destination,
  with the right source, in order per (source, destination) pair (when the mesh is configured
  ``in_order``; otherwise ``ordered=False`` drops that one check); packets to a destination
  outside the mesh must be refused by the source's interface (its saturating counter is
  compared with the number of such packets, capped at ``2**error_counter_bits - 1``). A
  deadlock watchdog fails the run if flits are in flight (or waiting at a source) and nothing
  moves for ``deadlock_cycles`` cycles.

Run: warm-up cycles, then a measurement window (offered/accepted load and latency are taken over
packets created in it), then generation stops and the run drains until every packet is
delivered (the watchdog guards that too).
"""

from collections import deque

import numpy as np

from systolica.testbench.sim import run_simulation


__all__ = ["PATTERNS", "NocCheckError", "DeadlockDetected", "destination_function",
           "NocTraffic", "run_traffic"]

PATTERNS = ("uniform", "transpose", "hotspot", "neighbour")


class NocCheckError(AssertionError):
    """A packet was lost, duplicated, corrupted, misrouted or reordered."""


class DeadlockDetected(AssertionError):
    """No flit moved for the watchdog's number of cycles while packets were outstanding."""


def destination_function(pattern, width, height, *, hotspot=(0, 0), hotspot_fraction=0.2):
    """``f(rng, (x, y)) -> (dx, dy)`` for a traffic pattern."""
    if pattern == "uniform":
        return lambda rng, src: (int(rng.integers(width)), int(rng.integers(height)))
    if pattern == "transpose":
        if width != height:
            raise ValueError(f"transpose traffic needs a square mesh; got {width}x{height}")
        return lambda rng, src: (src[1], src[0])
    if pattern == "hotspot":
        if not (0 <= hotspot[0] < width and 0 <= hotspot[1] < height):
            raise ValueError(f"hotspot {hotspot} is outside the {width}x{height} mesh")
        if not 0 <= hotspot_fraction <= 1:
            raise ValueError(f"hotspot_fraction must be in [0, 1]; got {hotspot_fraction}")

        def hot(rng, src):
            if rng.random() < hotspot_fraction:
                return tuple(hotspot)
            return (int(rng.integers(width)), int(rng.integers(height)))
        return hot
    if pattern == "neighbour":
        if width * height < 2:
            raise ValueError("neighbour traffic needs at least 2 nodes")

        def neighbour(rng, src):
            x, y = src
            options = [(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
                       if 0 <= x + dx < width and 0 <= y + dy < height]
            return options[int(rng.integers(len(options)))]
        return neighbour
    raise ValueError(f"traffic pattern must be one of {', '.join(PATTERNS)}; got {pattern!r}")


def _fields(layout):
    return {name: (layout[name].offset, layout[name].width) for name, _ in layout}


class NocTraffic:
    """Drives and checks traffic on a :class:`~systolica.hdl.noc.mesh.Mesh`; use
    :meth:`testbench` in a simulation and :meth:`results` afterwards (or :func:`run_traffic`)."""

    def __init__(self, mesh, *, pattern="uniform", rate=0.1, packet_len=1, seed=0,
                 warmup=100, measure=500, eject_stall=0.0, bad_dest_fraction=0.0,
                 deadlock_cycles=500, hotspot=(0, 0), hotspot_fraction=0.2, ordered=None):
        cfg = mesh.config
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1] flits/node/cycle; got {rate}")
        if not isinstance(packet_len, int) or packet_len < 1:
            raise ValueError(f"packet_len must be a positive integer; got {packet_len!r}")
        self.mean_len = (packet_len + 1) / 2
        if rate / self.mean_len > 1:
            raise ValueError(f"rate {rate} needs more than one packet per cycle with "
                             f"packet_len {packet_len}")
        if not 0 <= eject_stall <= 1:
            raise ValueError(f"eject_stall must be in [0, 1]; got {eject_stall}")
        if not 0 <= bad_dest_fraction <= 1:
            raise ValueError(f"bad_dest_fraction must be in [0, 1]; got {bad_dest_fraction}")
        if warmup < 0 or measure < 1 or deadlock_cycles < 1:
            raise ValueError("warmup must be >= 0, measure and deadlock_cycles >= 1")
        self.mesh, self.cfg = mesh, cfg
        self.pattern, self.rate, self.packet_len = pattern, rate, packet_len
        self.seed, self.warmup, self.measure = seed, warmup, measure
        self.eject_stall, self.bad_dest_fraction = eject_stall, bad_dest_fraction
        self.deadlock_cycles = deadlock_cycles
        # In-order delivery per (source, destination) is checked when the mesh promises it.
        self.ordered = cfg.in_order if ordered is None else ordered
        self.rng = np.random.default_rng(seed)
        self.dest = destination_function(pattern, cfg.width, cfg.height, hotspot=hotspot,
                                         hotspot_fraction=hotspot_fraction)
        self.nodes = mesh.topology.nodes
        self.done = False

        send_layout = mesh.send(0, 0).payload.shape()
        recv_layout = mesh.recv(0, 0).payload.shape()
        self._sf = _fields(send_layout)
        self._rf = _fields(recv_layout)

        n = len(self.nodes)
        self.queues = [deque() for _ in range(n)]          # beats waiting at each source
        self.expected = {}                                  # (src, dst) -> deque of packets
        self.delivered_words = {}                           # (src, dst) -> set of word tuples
        self.partial = [None] * n                           # packet being received per node
        self.refused_packets = [0] * n
        self.latencies, self.net_latencies, self.hops = [], [], []
        self.generated_flits = 0                            # in the measurement window
        self.accepted_flits = 0                             # delivered in the window
        self.delivered_packets = 0
        self.delivered_flits = 0
        self.injected_flits = 0
        self.total_packets = 0
        self.errors = []
        self.cycles = 0

    # --- packets -----------------------------------------------------------------------------
    def _pack_send(self, dst, word, last):
        f = self._sf
        return ((dst[0] << f["dst_x"][0]) | (dst[1] << f["dst_y"][0])
                | (word << f["data"][0]) | (int(last) << f["last"][0]))

    def _new_packet(self, index, cycle, measured):
        src = self.nodes[index]
        rng = self.rng
        length = int(rng.integers(1, self.packet_len + 1))
        words = tuple(int(w) for w in rng.integers(0, 1 << self.cfg.payload_bits, size=length,
                                                   dtype=np.uint64)) \
            if self.cfg.payload_bits <= 63 else \
            tuple(int.from_bytes(rng.bytes((self.cfg.payload_bits + 7) // 8), "little")
                  & ((1 << self.cfg.payload_bits) - 1) for _ in range(length))
        if self.bad_dest_fraction and rng.random() < self.bad_dest_fraction:
            # Outside the mesh: x = width (the send layout can express it) or y = height.
            if rng.random() < 0.5:
                dst = (self.cfg.width, int(rng.integers(self.cfg.height)))
            else:
                dst = (int(rng.integers(self.cfg.width)), self.cfg.height)
            self.refused_packets[index] += 1
            packet = None
        else:
            dst = self.dest(rng, src)
            packet = {"words": words, "created": cycle, "measured": measured,
                      "hops": abs(src[0] - dst[0]) + abs(src[1] - dst[1]), "injected": None}
            self.expected.setdefault((src, dst), deque()).append(packet)
            self.total_packets += 1
            if measured:
                self.generated_flits += length
        q = self.queues[index]
        for i, w in enumerate(words):
            q.append((self._pack_send(dst, w, i == length - 1), packet if i == 0 else None,
                      packet is not None))
        return packet

    def _deliver(self, index, src, words, cycle):
        dst = self.nodes[index]
        key = (src, dst)
        pending = self.expected.get(key)
        if pending and pending[0]["words"] == words:
            packet = pending.popleft()
        else:
            match = None
            for k, p in enumerate(pending or ()):
                if p["words"] == words:
                    match = k
                    break
            if match is not None:
                if self.ordered:
                    self.errors.append(f"cycle {cycle}: packet {src}->{dst} delivered out of "
                                       f"order")
                packet = pending[match]
                del pending[match]
            elif words in self.delivered_words.get(key, ()):
                self.errors.append(f"cycle {cycle}: packet {src}->{dst} duplicated: {words}")
                return
            else:
                self.errors.append(f"cycle {cycle}: packet arrived at {dst} claiming source "
                                   f"{src} matches no packet sent (corrupted or misrouted): "
                                   f"{words}")
                return
        self.delivered_words.setdefault(key, set()).add(words)
        self.delivered_packets += 1
        if packet["measured"]:
            self.latencies.append(cycle - packet["created"])
            self.net_latencies.append(cycle - packet["injected"])
            self.hops.append(packet["hops"])

    # --- the testbench -----------------------------------------------------------------------
    async def testbench(self, ctx):
        mesh, rng = self.mesh, self.rng
        n = len(self.nodes)
        sends = [mesh.send(*node) for node in self.nodes]
        recvs = [mesh.recv(*node) for node in self.nodes]
        send_valid = [s.valid for s in sends]
        send_payload = [s.payload.as_value() for s in sends]
        send_ready = [s.ready for s in sends]
        recv_valid = [r.valid for r in recvs]
        recv_payload = [r.payload.as_value() for r in recvs]
        recv_ready = [r.ready for r in recvs]
        sampled = send_ready + recv_valid + recv_payload
        rf = self._rf
        sx_off, sx_w = rf["src_x"]
        sy_off, sy_w = rf["src_y"]
        d_off, d_w = rf["data"]
        last_off = rf["last"][0]
        sx_mask, sy_mask, d_mask = (1 << sx_w) - 1, (1 << sy_w) - 1, (1 << d_w) - 1

        p_packet = self.rate / self.mean_len
        gen_end = self.warmup + self.measure
        shown = [None] * n          # payload currently driven per node (None = valid low)
        ready_now = [False] * n
        in_flight = 0
        last_progress = 0
        cycle = 0
        stall = self.eject_stall
        if not stall:
            for r in recv_ready:
                ctx.set(r, 1)
            ready_now = [True] * n

        while True:
            # Generation.
            if cycle < gen_end:
                measured = cycle >= self.warmup
                hits = np.flatnonzero(rng.random(n) < p_packet)
                for i in hits:
                    self._new_packet(int(i), cycle, measured)
            # Drive sources.
            for i in range(n):
                q = self.queues[i]
                want = q[0][0] if q else None
                if want != shown[i]:
                    if want is None:
                        ctx.set(send_valid[i], 0)
                    else:
                        if shown[i] is None:
                            ctx.set(send_valid[i], 1)
                        ctx.set(send_payload[i], want)
                    shown[i] = want
            if stall:
                draws = rng.random(n) >= stall
                for i in range(n):
                    r = bool(draws[i])
                    if r != ready_now[i]:
                        ctx.set(recv_ready[i], r)
                        ready_now[i] = r

            values = (await ctx.tick().sample(*sampled))[2:]
            progress = False
            for i in range(n):
                if shown[i] is not None and values[i]:
                    q = self.queues[i]
                    beat, packet, real = q.popleft()
                    if packet is not None:
                        packet["injected"] = cycle
                    if real:
                        in_flight += 1
                        self.injected_flits += 1
                    progress = True
                    if not q:
                        # A payload is offered only until it is accepted: with nothing more
                        # to send, valid drops now (the run may end here, and a word left
                        # offered would be accepted again in every idle cycle).
                        ctx.set(send_valid[i], 0)
                        shown[i] = None
                if values[n + i] and ready_now[i]:
                    raw = values[2 * n + i]
                    src = ((raw >> sx_off) & sx_mask, (raw >> sy_off) & sy_mask)
                    word = (raw >> d_off) & d_mask
                    part = self.partial[i]
                    if part is None:
                        part = self.partial[i] = (src, [])
                    elif part[0] != src:
                        self.errors.append(f"cycle {cycle}: node {self.nodes[i]} got a word "
                                           f"from {src} inside a packet from {part[0]}")
                    part[1].append(word)
                    in_flight -= 1
                    self.delivered_flits += 1
                    if self.warmup <= cycle < gen_end:
                        self.accepted_flits += 1
                    if (raw >> last_off) & 1:
                        self._deliver(i, part[0], tuple(part[1]), cycle)
                        self.partial[i] = None
                    progress = True
            cycle += 1
            self.cycles = cycle
            if progress:
                last_progress = cycle
            outstanding = in_flight > 0 or any(self.queues)
            if outstanding and cycle - last_progress > self.deadlock_cycles:
                raise DeadlockDetected(
                    f"deadlock watchdog: no flit moved for {self.deadlock_cycles} cycles at "
                    f"cycle {cycle} with {in_flight} flit(s) in flight and "
                    f"{sum(map(len, self.queues))} waiting at sources (seed={self.seed})")
            if in_flight < 0:
                raise NocCheckError(f"more flits delivered than injected at cycle {cycle}")
            if cycle >= gen_end and not outstanding:
                break

        # A few idle cycles: nothing more may arrive.
        for _ in range(8):
            values = (await ctx.tick().sample(*recv_valid))[2:]
            if any(values):
                self.errors.append("a flit arrived after every packet had been delivered "
                                   "(duplicate)")
        for i, node in enumerate(self.nodes):
            got = ctx.get(mesh.refused(*node))
            if got != self.expected_refused_counter(i):
                self.errors.append(f"node {node}: refused counter {got}, expected "
                                   f"{self.expected_refused_counter(i)} "
                                   f"({self.refused_packets[i]} packet(s) refused)")
        if ctx.get(mesh.overflow):
            self.errors.append("a router/interface buffer overflowed (credit protocol broken)")
        self.done = True

    # --- results -----------------------------------------------------------------------------
    def expected_refused_counter(self, index):
        """What node ``index``'s refused counter must read: one per packet sent outside the
        mesh, saturating at ``2**error_counter_bits - 1`` (docs/noc.md)."""
        return min(self.refused_packets[index], (1 << self.cfg.error_counter_bits) - 1)

    def lost_packets(self):
        return sum(len(q) for q in self.expected.values())

    def check(self):
        """Raise :class:`NocCheckError` listing every problem found."""
        problems = list(self.errors)
        if not self.done:
            problems.append("the traffic run did not finish")
        lost = self.lost_packets()
        if lost:
            problems.append(f"{lost} packet(s) never delivered")
        if self.delivered_flits != self.injected_flits:
            problems.append(f"{self.injected_flits} flits injected, {self.delivered_flits} "
                            f"delivered")
        if problems:
            raise NocCheckError(f"seed={self.seed}: " + "; ".join(problems[:10]))

    def results(self):
        nodes = len(self.nodes)
        lat = np.array(self.latencies, dtype=float)
        duplicated = sum("duplicated" in e or "duplicate)" in e for e in self.errors)
        return {
            "mesh": f"{self.cfg.width}x{self.cfg.height}",
            "traffic": self.pattern,
            "rate": self.rate,
            "packet_len": self.packet_len,
            "vcs": self.cfg.vcs,
            "buffer_depth": self.cfg.buffer_depth,
            "seed": self.seed,
            "warmup_cycles": self.warmup,
            "measure_cycles": self.measure,
            "total_cycles": self.cycles,
            "offered": self.generated_flits / (nodes * self.measure),
            "accepted": self.accepted_flits / (nodes * self.measure),
            "avg_latency": float(lat.mean()) if len(lat) else None,
            "p99_latency": float(np.percentile(lat, 99)) if len(lat) else None,
            "avg_network_latency": (float(np.mean(self.net_latencies))
                                    if self.net_latencies else None),
            "avg_hops": float(np.mean(self.hops)) if self.hops else None,
            "measured_packets": len(self.latencies),
            "delivered": self.delivered_packets,
            "delivered_flits": self.delivered_flits,
            "lost": self.lost_packets(),
            "duplicated": duplicated,
            "errors": len(self.errors),
        }


def run_traffic(mesh, *, max_cycles=None, **kwargs):
    """Simulate ``mesh`` under one traffic run; returns the :class:`NocTraffic` (call
    ``.check()`` / ``.results()``). ``max_cycles`` is the simulation's cycle watchdog (default:
    generous for the run plus its drain)."""
    traffic = NocTraffic(mesh, **kwargs)
    if max_cycles is None:
        max_cycles = 20 * (traffic.warmup + traffic.measure) + 10 * traffic.deadlock_cycles
    run_simulation(mesh, [traffic.testbench], max_cycles=max_cycles)
    return traffic
