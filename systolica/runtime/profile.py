"""Profiles of a run (as neuron-profile's per-engine timeline): per queue, busy and wait
segments, from the RTL (sampled state registers) or from the performance model's prediction;
written as a Chrome trace JSON (open it in ui.perfetto.dev) or a PNG timeline (matplotlib)."""

import json
from dataclasses import dataclass, field

__all__ = ["Segment", "Profile", "chrome_trace", "write_chrome_trace", "plot_timeline",
           "utilization_table"]


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    kind: str       # "busy" or "wait"
    label: str


@dataclass
class Profile:
    """``cycles`` and, per queue, its :class:`Segment` list; ``source`` says where they came
    from."""
    cycles: int
    tracks: dict = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_timeline(cls, timeline, source="predicted by the performance model"):
        tracks = {}
        for q, intervals in timeline.intervals.items():
            segs = []
            for iv in intervals:
                if iv.start > iv.wait_from:
                    segs.append(Segment(iv.wait_from, iv.start, "wait", f"wait: {iv.opcode} "
                                                                         f"pc {iv.pc}"))
                if iv.end > iv.start:
                    segs.append(Segment(iv.start, iv.end, "busy", f"{iv.opcode} pc {iv.pc}"))
            tracks[q] = segs
        return cls(timeline.cycles, tracks, source)

    def busy(self, queue):
        """Cycles covered by the queue's busy segments."""
        total, last = 0, 0
        for s in sorted((s for s in self.tracks.get(queue, ()) if s.kind == "busy"),
                        key=lambda s: s.start):
            lo = max(s.start, last)
            if s.end > lo:
                total += s.end - lo
                last = s.end
        return total


def chrome_trace(profiles):
    """The Chrome trace event JSON (a dict) of ``profiles`` (one process each, one thread per
    queue; 1 cycle = 1 µs on the time axis)."""
    events = []
    for pid, profile in enumerate(profiles):
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"name": profile.source}})
        for tid, (queue, segs) in enumerate(profile.tracks.items()):
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                           "args": {"name": queue}})
            for s in segs:
                events.append({"name": s.label, "cat": s.kind, "ph": "X", "pid": pid,
                               "tid": tid, "ts": s.start, "dur": max(1, s.end - s.start)})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"time unit": "1 us = 1 tile clock cycle"}}


def write_chrome_trace(path, profiles):
    with open(path, "w") as f:
        json.dump(chrome_trace(profiles), f)


def plot_timeline(path, profiles, title=""):
    """A PNG: one row per queue and profile, busy segments coloured, waits grey."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'systolica[plot]'") from None
    rows = [(p, q) for p in profiles for q in p.tracks]
    fig, ax = plt.subplots(figsize=(12, 0.5 + 0.45 * len(rows)))
    colours = {"dma0": "tab:blue", "dma1": "tab:cyan", "pe": "tab:red", "act": "tab:green"}
    labels = []
    for y, (profile, queue) in enumerate(rows):
        busy = [(s.start, s.end - s.start) for s in profile.tracks[queue] if s.kind == "busy"]
        wait = [(s.start, s.end - s.start) for s in profile.tracks[queue] if s.kind == "wait"]
        ax.broken_barh(wait, (y - 0.35, 0.7), facecolors="0.85")
        ax.broken_barh(busy, (y - 0.35, 0.7), facecolors=colours.get(queue, "tab:purple"))
        tag = "model" if "predict" in profile.source else "RTL"
        labels.append(f"{queue} ({tag})" if len(profiles) > 1 else queue)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("cycle")
    ax.set_title(title or "engine timeline (colour: busy, grey: waiting on a semaphore)")
    ax.set_xlim(0, max(p.cycles for p in profiles) or 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def utilization_table(execution):
    """Lines: per queue busy cycles and busy / cycles."""
    lines = []
    for q, busy in execution.busy_cycles.items():
        share = busy / execution.cycles if execution.cycles else 0.0
        lines.append(f"    {q:<5} busy {busy:>9} cycles  {share:6.1%}")
    return lines
