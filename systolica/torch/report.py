"""Per-layer reports of graphs compiled by the systolica backend."""

from dataclasses import dataclass, field

__all__ = ["LayerReport", "GraphReport", "Report", "plan_summary"]


def plan_summary(plan):
    """One line of a :class:`~systolica.compiler.GemmPlan`: blocks, W residency, bound."""
    return (f"{plan.m_blocks}x{plan.m_block} M rows, {plan.n_groups}x{plan.n_group} N tiles, "
            f"{plan.k_chunks}x{plan.k_chunk} K tiles, W "
            f"{'resident' if plan.w_resident else 'streamed'}, {plan.bound}-bound")


@dataclass
class LayerReport:
    """One matmul node of a graph: its shapes, what ran where, and how well.

    ``batch`` × (``m`` × ``k``) @ (``k`` × ``n``); ``rhs`` is ``"weight"`` (per-channel scales)
    or ``"activation"`` (per-tensor, calibrated); ``cycles`` sum the device runs of the last
    call (measured on the RTL backends, the performance model's estimate on ``model``);
    ``exact``: the device's int32 result equalled NumPy's int8 matmul of the same operands;
    ``rel_error``: ‖y − y_fp32‖ / ‖y_fp32‖ of this op against PyTorch's fp32 op on the same
    inputs; ``fallback``: why the op ran in PyTorch instead (None: it ran on the device)."""
    name: str
    op: str
    batch: int = 1
    m: int = 0
    k: int = 0
    n: int = 0
    rhs: str = "activation"
    calls: int = 0
    device_runs: int = 0
    cycles: int = 0
    predicted_cycles: int = 0
    measured: bool = False
    macs: int = 0
    array: tuple = (0, 0)
    scale_a: float = 0.0
    scale_b: object = None
    saturated: int = 0
    exact: object = None
    rel_error: float = None
    max_abs_error: float = None
    plan: object = None
    fallback: str = None
    tensors: dict = field(default=None, repr=False)

    @property
    def utilization(self):
        rows, cols = self.array
        return self.macs / (rows * cols * self.cycles) if self.cycles else 0.0

    @property
    def shape(self):
        mkn = f"{self.m}x{self.k}x{self.n}"
        return f"{self.batch}*{mkn}" if self.batch != 1 else mkn

    def to_dict(self):
        return {
            "name": self.name, "op": self.op, "batch": self.batch, "m": self.m, "k": self.k,
            "n": self.n, "rhs": self.rhs, "calls": self.calls, "device_runs": self.device_runs,
            "cycles": self.cycles, "predicted_cycles": self.predicted_cycles,
            "measured": self.measured, "utilization": self.utilization, "macs": self.macs,
            "scale_a": self.scale_a, "saturated": self.saturated, "exact": self.exact,
            "rel_error": self.rel_error, "max_abs_error": self.max_abs_error,
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "fallback": self.fallback,
        }


@dataclass
class GraphReport:
    """One graph Dynamo handed to the backend: its matmul layers and the ATen ops left to
    PyTorch (``pytorch_ops``: op name → count)."""
    index: int
    backend: str
    layers: list = field(default_factory=list)
    pytorch_ops: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@dataclass
class Report:
    graphs: list

    @property
    def layers(self):
        return [layer for g in self.graphs for layer in g.layers]

    @property
    def cycles(self):
        return sum(layer.cycles for layer in self.layers)

    def to_dict(self):
        return {"graphs": [{"index": g.index, "backend": g.backend,
                            "layers": [layer.to_dict() for layer in g.layers],
                            "pytorch_ops": dict(g.pytorch_ops), "notes": list(g.notes)}
                           for g in self.graphs],
                "cycles": self.cycles}

    def __str__(self):
        lines = []
        for g in self.graphs:
            lines.append(f"graph {g.index} ({g.backend} backend): {len(g.layers)} matmuls on "
                         f"the accelerator path, PyTorch ops: "
                         + (", ".join(f"{op} x{c}" for op, c in sorted(g.pytorch_ops.items()))
                            or "none"))
            lines += [f"  note: {n}" for n in g.notes]
            head = (f"  {'layer':<14} {'op':<6} {'shape (b*m x k x n)':<20} {'rhs':<10} "
                    f"{'cycles':>8} {'util':>6} {'sat':>4} {'exact':>5} {'rel.err':>8}  plan")
            lines.append(head)
            for layer in g.layers:
                if layer.fallback:
                    lines.append(f"  {layer.name:<14} {layer.op:<6} {layer.shape:<20} "
                                 f"PyTorch: {layer.fallback}")
                    continue
                err = f"{layer.rel_error:.4f}" if layer.rel_error is not None else "-"
                plan = plan_summary(layer.plan) if layer.plan is not None else "-"
                lines.append(f"  {layer.name:<14} {layer.op:<6} {layer.shape:<20} "
                             f"{layer.rhs:<10} {layer.cycles:>8} {layer.utilization:>6.3f} "
                             f"{layer.saturated:>4} {str(layer.exact):>5} {err:>8}  {plan}")
        lines.append(f"total: {self.cycles} cycles")
        return "\n".join(lines)
