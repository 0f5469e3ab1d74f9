"""A Python model of the SBUF side of an SBUF word port (``hdl/sbuf_port.py``), for testing
requesters (the DMA) without the real SBUF.

``port`` is the requester's ``SbufPortSignature`` interface. The model holds the SBUF contents in
``mem`` (a ``partitions x (depth * word_bytes)`` uint8 array), accepts requests with random stalls
on ``request.ready`` (``req_stall``), answers reads in order after ``latency`` cycles with random
stalls on ``response.valid`` (``resp_stall``; a response, once offered, is held until accepted),
and holds ``request.ready`` low while ``max_pending`` responses wait. As the port contract says, an
out-of-range access does not touch memory, counts in ``errors`` and is answered with zeros. It
also fails the run if the requester drops ``request.valid`` or changes the payload before ready.
"""

from collections import deque

import numpy as np

from systolica.config import SbufConfig
from .handshake import hold_check


__all__ = ["SbufPortModel"]


class SbufPortModel:
    def __init__(self, port, config: SbufConfig, *, mem=None, req_stall=0.0, resp_stall=0.0,
                 latency=1, max_pending=4, rng=None, name="sbuf"):
        if latency < 1 or max_pending < 1:
            raise ValueError("SbufPortModel: latency and max_pending must be >= 1")
        self.port = port
        self.config = config
        W = config.word_bytes
        self.mem = (np.zeros((config.partitions, config.depth * W), dtype=np.uint8)
                    if mem is None else mem)
        if self.mem.shape != (config.partitions, config.depth * W):
            raise ValueError(f"SbufPortModel: mem must have shape "
                             f"{(config.partitions, config.depth * W)}; got {self.mem.shape}")
        self.req_stall = req_stall
        self.resp_stall = resp_stall
        self.latency = latency
        self.max_pending = max_pending
        self.rng = rng if rng is not None else np.random.default_rng(2)
        self.name = name
        self.errors = 0
        self.reads = 0
        self.writes = 0

    def processes(self):
        return [self._process]

    def _fail(self, message):
        raise AssertionError(f"{self.name}: request: {message}")

    async def _process(self, ctx):
        req, resp = self.port.request, self.port.response
        W = self.config.word_bytes
        P, depth = self.config.partitions, self.config.depth
        rng = self.rng
        signals = [req.valid, req.payload.write, req.payload.partition, req.payload.addr,
                   req.payload.data.as_value(), req.payload.byte_enable, resp.ready]
        queue = deque()         # [ready_cycle, data]
        req_ready = False
        resp_valid = False
        pending = None
        cycle = 0
        async for values in ctx.tick().sample(*signals):
            _, _, valid, write, partition, addr, wdata, byte_enable, resp_ready = values
            cycle += 1
            payload = (write, partition, addr, wdata, byte_enable)
            pending = hold_check(pending, valid, req_ready, payload, self._fail)

            if resp_valid and resp_ready:
                queue.popleft()
                resp_valid = False
            if valid and req_ready:
                in_range = partition < P and addr < depth
                if not in_range:
                    self.errors += 1
                if write:
                    self.writes += 1
                    if in_range:
                        row = self.mem[partition]
                        for i in range(W):
                            if (byte_enable >> i) & 1:
                                row[addr * W + i] = (wdata >> (8 * i)) & 0xFF
                else:
                    self.reads += 1
                    value = 0
                    if in_range:
                        value = int.from_bytes(
                            self.mem[partition, addr * W:(addr + 1) * W].tobytes(), "little")
                    queue.append([cycle + self.latency - 1, value])

            if (not resp_valid and queue and queue[0][0] <= cycle
                    and not (self.resp_stall and rng.random() < self.resp_stall)):
                ctx.set(resp.payload.data.as_value(), queue[0][1])
                resp_valid = True
            req_ready = (len(queue) < self.max_pending
                         and not (self.req_stall and rng.random() < self.req_stall))
            ctx.set(resp.valid, resp_valid)
            ctx.set(req.ready, req_ready)
