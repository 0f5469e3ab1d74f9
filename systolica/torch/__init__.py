"""PyTorch on systolica: ``torch.compile(model, backend="systolica")``.

The backend (registered with Dynamo under ``"systolica"``, through the
``torch_dynamo_backends`` entry point or on import of this module) lowers Dynamo's graph to
ATen with ``aot_autograd`` and runs every ``aten.mm``, ``addmm``, ``bmm`` and ``linear`` —
attention's matmuls included — on a systolica :class:`~systolica.runtime.Device`, quantised to
int8 (:mod:`.quant`); everything else runs in PyTorch. docs/pytorch.md has the details.

    model = torch.compile(model, backend="systolica")                    # model backend
    model = torch.compile(model, backend="systolica", options={"device": "amaranth"})
    y = model(x)
    print(systolica.torch.report())                    # per layer: shapes, cycles, plan

Needs ``pip install "systolica[torch]"``.
"""

from importlib.metadata import entry_points

from .backend import OPTIONS, SystolicaBackend
from .layer import MATMUL_OPS, AcceleratedMatmul, AcceleratorMismatch, FallbackWarning
from .report import GraphReport, LayerReport, Report, plan_summary

__all__ = ["backend", "report", "reset", "register", "compare", "SystolicaBackend", "OPTIONS",
           "FallbackWarning", "AcceleratorMismatch", "AcceleratedMatmul", "MATMUL_OPS",
           "Report", "GraphReport", "LayerReport", "plan_summary"]

#: The backend registered as ``"systolica"``.
backend = SystolicaBackend()
BACKEND_NAME = "systolica"


def report():
    """The per-layer :class:`Report` of every graph the ``"systolica"`` backend compiled
    since :func:`reset`."""
    return backend.report()


def reset():
    """Forget the reports (Dynamo's compiled code: ``torch._dynamo.reset()``)."""
    backend.reset()


def register():
    """Register :data:`backend` with Dynamo as ``"systolica"`` (idempotent). An installed
    systolica registers it through its entry point, so this is only needed in a checkout that
    is not installed."""
    from torch._dynamo.backends import registry
    if BACKEND_NAME not in registry._COMPILER_FNS:
        registry.register_backend(compiler_fn=backend, name=BACKEND_NAME)


def compare(model, compiled, *inputs):
    """The compiled model's output against the eager fp32 model's on ``inputs``:
    ``{"max_abs_error", "rel_error" (‖y − y_fp32‖ / ‖y_fp32‖), "max_abs_reference"}``."""
    import torch
    with torch.no_grad():
        reference, output = model(*inputs), compiled(*inputs)
    diff = (output - reference).float()
    return {"max_abs_error": float(diff.abs().max()),
            "rel_error": float(diff.norm() / reference.float().norm()),
            "max_abs_reference": float(reference.abs().max())}


if not any(ep.name == BACKEND_NAME for ep in entry_points(group="torch_dynamo_backends")):
    register()
