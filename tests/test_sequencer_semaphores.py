# amaranth: UnusedElaboratable=no
"""The sequencer's semaphore file alone, cycle by cycle against a Python model of its contract
(hdl/sequencer/semaphores.py's docstring, docs/tile.md): round-robin waits checked a cycle
ahead, consumed by the grant and subtracted from the counters in the next cycle, one engine's
signal pair taken per cycle (round-robin, the remote port first), checked in the next cycle and
applied in the one after, overflow refusing both signals of the pair, clear."""

import numpy as np
import pytest

from systolica.hdl.sequencer.semaphores import SemaphoreFile
from systolica.testbench.sim import run_simulation


def round_robin(requests, last, n):
    """(winner or None, new last) of hdl.lib.RoundRobinArbiter with ``advance`` high."""
    for k in range(n):
        i = (last + 1 + k) % n
        if requests >> i & 1:
            return i, i
    return None, last


class SemaphoreModel:
    """The contract of the file's docstring: a wait checked on the values of the cycle before
    its grant (its pairs shown then too, as the engines must; no grant of the two cycles
    before on its counters and no clear in between), subtracted in the cycle after the grant;
    a signal pair taken in one cycle, checked in the next (on the counter less the grant being
    subtracted, plus the pair being applied then) and applied in the one after if it fits, its
    verdict registered. ``values`` are the file's registers (a grant shows there two edges
    after it, a signal three)."""

    def __init__(self, count, bits, engines):
        self.count, self.limit, self.n = count, (1 << bits) - 1, engines
        self.values = [0] * count
        self.wait_last = self.signal_last = engines - 1
        self.shown = [None] * engines          # the pairs each engine showed last cycle
        self.met = [False] * engines           # ... and whether the values then met them
        self.last_grant = None                 # the pairs granted last cycle: subtracted now
        self.older_grant = None                # ... the cycle before
        self.cleared = False
        # the cases the delayed subtraction decides: a signal that fits only because the grant
        # being subtracted is counted, a wait refused only for the grant of two cycles before
        self.fits_by_subtraction = self.held_by_older_grant = 0
        self.verdict = (None, False)           # the overflow of the previous cycle's check
        self.pending = None                    # (merged {id: amount}, engine or "remote")
        self.applying = {}                     # the pair checked last cycle, if it fitted
        self.checked_over_applying = 0         # checks on a counter whose pair is being applied

    def step(self, waits, signals, remote, clear):
        """waits[e]: (valid, ((id, amount), (id, amount))); signals[e]: [(id, amount) or
        None]*2; remote: None or (id, amount). Returns (granted, signal_ready, overflow,
        remote_overflow): granted and signal_ready engine indices or None, overflow the engine
        whose pair taken two cycles before overflowed (or None), remote_overflow a bool."""
        v = self.values
        touched = {i for g in (self.last_grant, self.older_grant) for i, a in (g or ()) if a}
        subtracting = {i: a for i, a in (self.last_grant or ()) if a}
        last = {i for i, a in (self.last_grant or ()) if a}
        ok = 0
        for e, (valid, pairs) in enumerate(waits):
            assert not valid or pairs == self.shown[e], "the pairs are shown a cycle ahead"
            ready = valid and self.met[e] and not self.cleared
            ids = {i for i, a in pairs if a}
            if ready and not ids & touched:
                ok |= 1 << e
            elif ready and not ids & last:
                self.held_by_older_grant += 1
        granted, self.wait_last = round_robin(ok, self.wait_last, self.n)
        applying = self.applying
        if self.pending is not None and set(self.pending[0]) & set(applying):
            self.checked_over_applying += 1
        bad = self.pending is not None and any(
            v[i] - subtracting.get(i, 0) + applying.get(i, 0) + a > self.limit
            for i, a in self.pending[0].items())
        if self.pending is not None and not bad and any(
                v[i] + applying.get(i, 0) + a > self.limit for i, a in self.pending[0].items()):
            self.fits_by_subtraction += 1
        owner = self.pending[1] if bad else None
        shown = sum(1 << e for e, s in enumerate(signals) if any(x is not None for x in s))
        taken, ready, who = [remote, None], None, "remote"
        if remote is None:
            ready, self.signal_last = round_robin(shown, self.signal_last, self.n)
            taken = signals[ready] if ready is not None else [None, None]
            who = ready
        added = {}
        for s in taken:
            if s is not None:
                added[s[0]] = added.get(s[0], 0) + s[1]
        self.shown = [pairs for _, pairs in waits]
        self.met = [all(v[i] >= a for i, a in pairs) for _, pairs in waits]
        self.older_grant = self.last_grant
        self.last_grant = waits[granted][1] if granted is not None and not clear else None
        self.cleared = clear
        if clear:
            self.values = [0] * self.count
        else:
            for i, a in applying.items():
                v[i] += a
            for i, a in subtracting.items():
                v[i] -= a
        self.applying = self.pending[0] if self.pending is not None and not bad and not clear \
            else {}
        self.pending = (added, who) if added and not clear else None
        verdict = self.verdict                 # registered: the check of the cycle before
        self.verdict = ((owner if owner != "remote" else None), owner == "remote")
        return (granted, ready) + verdict


def random_wait(rng, count, bits):
    first = int(rng.integers(count))
    second = int(rng.integers(count))
    amounts = [int(rng.integers(0, 4)), int(rng.integers(0, 4))]
    if first == second and amounts[0] and amounts[1]:
        amounts[1] = 0                # the ISA's distinct ids (checked before the wait)
    return ((first, amounts[0]), (second, amounts[1]))


def random_signals(rng, count, bits):
    big = (1 << bits) - 1
    out = []
    for _ in range(2):
        if rng.random() < 0.3:
            out.append(None)
        else:
            amount = big if rng.random() < 0.05 else int(rng.integers(1, 6))
            out.append((int(rng.integers(count)), amount))
    if out == [None, None]:
        out[0] = (int(rng.integers(count)), 1)
    return out


@pytest.mark.parametrize("count, bits, engines, remote", [(32, 16, 4, False), (5, 4, 3, False),
                                                          (4, 4, 4, True), (3, 5, 1, True)])
def test_semaphore_file_matches_its_contract(seed, count, bits, engines, remote):
    """Random engines: a wait held until granted (sometimes withdrawn), signals held until
    taken; few counters of few bits so that pairs collide, waits and signals meet on one counter
    and signals overflow. Every cycle: grant, signal_ready, overflow and the values."""
    rng = np.random.default_rng(seed)
    dut = SemaphoreFile(count=count, bits=bits, engines=engines, remote=remote)
    model = SemaphoreModel(count, bits, engines)
    seen = {"grants": 0, "taken": 0, "overflows": 0, "remote": 0, "clears": 0}

    def request(valid, pair):
        return {"valid": int(valid), "id": pair[0] if valid else 0,
                "amount": pair[1] if valid else 0}

    async def bench(ctx):
        waits = [None] * engines
        signals = [[None, None] for _ in range(engines)]
        for cycle in range(1500):
            for e in range(engines):
                if waits[e] is None and rng.random() < 0.4:
                    # shown at least a cycle ahead of its valid, as an engine does from its
                    # check (the file's contract)
                    waits[e] = [False, random_wait(rng, count, bits)]
                elif waits[e] is not None and not waits[e][0] and rng.random() < 0.5:
                    waits[e][0] = True
                elif waits[e] is not None and rng.random() < 0.03:
                    waits[e] = None   # a DMA queue's wait drops on a failed retirement
                if signals[e] == [None, None] and rng.random() < 0.3:
                    signals[e] = random_signals(rng, count, bits)
            remote_req = None
            if remote and rng.random() < 0.15:
                remote_req = random_signals(rng, count, bits)[0] or (0, 1)
            clear = rng.random() < 0.01
            shown = [(False, ((0, 0), (0, 0))) if w is None else (w[0], w[1]) for w in waits]
            for e in range(engines):
                valid, pairs = shown[e]
                ctx.set(dut.wait[e], {"valid": int(valid),
                                      "pair": [{"id": p[0], "amount": p[1]} for p in pairs]})
                for j in range(2):
                    s = signals[e][j]
                    ctx.set(dut.signal[e][j], request(s is not None, s or (0, 0)))
            if remote:
                ctx.set(dut.remote, request(remote_req is not None, remote_req or (0, 0)))
            ctx.set(dut.clear, int(clear))
            assert [int(x) for x in ctx.get(dut.values)] == model.values, f"cycle {cycle}"
            granted, ready, overflow, remote_overflow = model.step(shown, signals, remote_req,
                                                                   clear)
            assert ctx.get(dut.granted) == (0 if granted is None else 1 << granted), cycle
            assert ctx.get(dut.signal_ready) == (0 if ready is None else 1 << ready), cycle
            assert ctx.get(dut.overflow) == (0 if overflow is None else 1 << overflow), cycle
            if remote:
                assert ctx.get(dut.remote_overflow) == int(remote_overflow), cycle
            if granted is not None:
                waits[granted] = None
                seen["grants"] += 1
            if ready is not None:
                signals[ready] = [None, None]
                seen["taken"] += 1
            seen["overflows"] += (overflow is not None) + remote_overflow
            seen["remote"] += remote_req is not None
            seen["clears"] += clear
            await ctx.tick()
        assert [int(x) for x in ctx.get(dut.values)] == model.values

    run_simulation(dut, [bench], max_cycles=2000)
    assert seen["grants"] > 100 and seen["taken"] > 100 and seen["overflows"] > 0
    assert seen["clears"] > 0 and (seen["remote"] > 0) == remote
    assert model.held_by_older_grant > 0 and model.checked_over_applying > 0
    assert model.fits_by_subtraction > 0 or bits > 5, "few bits: signals meet a grant at the top"


@pytest.mark.parametrize("name, value", [("count", 0), ("bits", -1), ("engines", 1.5)])
def test_semaphore_file_bad_parameters(name, value):
    args = {"count": 4, "bits": 8, "engines": 2, name: value}
    with pytest.raises(ValueError, match=name):
        SemaphoreFile(**args)
