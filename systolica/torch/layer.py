"""One ATen matmul node (``mm``, ``addmm``, ``bmm``, ``linear``) run on a systolica device.

The node's inputs are quantised to int8 (:mod:`.quant`), multiplied on the device in int32,
checked against NumPy's int8 matmul of the same operands, and dequantised; ``addmm``'s and
``linear``'s bias is added in float32 on the host. Whatever the device cannot take (dtypes
other than float32, other devices, empty or too-deep operands, non-finite values, shapes the
compiler refuses) runs in PyTorch, with a :class:`FallbackWarning` saying why.
"""

import warnings

import numpy as np
import torch

from systolica.compiler import CompileError

from . import quant
from .report import LayerReport

__all__ = ["AcceleratedMatmul", "FallbackWarning", "AcceleratorMismatch", "MATMUL_OPS"]

aten = torch.ops.aten
#: The ATen ops the backend runs on the device, and their short names.
MATMUL_OPS = {aten.mm.default: "mm", aten.addmm.default: "addmm", aten.bmm.default: "bmm",
              aten.linear.default: "linear"}


class FallbackWarning(UserWarning):
    """An op the backend would run on the device runs in PyTorch; the message says why."""


class AcceleratorMismatch(RuntimeError):
    """The device's int32 result differs from NumPy's int8 matmul of the same operands."""


class AcceleratedMatmul(torch.nn.Module):
    """Stands in for one matmul node of an ATen graph (``target``: the ATen op).
    ``rhs_is_weight``: the right operand is a parameter (per-channel scales)."""

    def __init__(self, target, name, device, *, rhs_is_weight, check=True, keep_tensors=False,
                 warn=True):
        super().__init__()
        self.target, self.device = target, device
        self.check, self.keep_tensors, self.warn = check, keep_tensors, warn
        self.scale_a = self.scale_b = None          # calibrated on the first call
        arr = device.config.array
        self.report = LayerReport(name=name, op=MATMUL_OPS[target],
                                  rhs="weight" if rhs_is_weight else "activation",
                                  array=(arr.rows, arr.cols))
        self._warned = set()

    # --- the op's operands as (batch, m, k) @ (batch, k, n) + bias --------------------------

    def _operands(self, args, kwargs):
        op = self.report.op
        alpha = beta = 1
        bias = None
        if op == "mm":
            a, b = args
        elif op == "addmm":
            bias, a, b = args[:3]
            beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
        elif op == "bmm":
            a, b = args
        else:                                            # linear(x, w, bias=None)
            a, w = args[:2]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            b = w.t()
        return a, b, bias, alpha, beta

    def _unsupported(self, a, b, bias):
        tensors = [a, b] + ([bias] if bias is not None else [])
        dtypes = {t.dtype for t in tensors}
        if dtypes != {torch.float32}:
            names = "/".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
            return (f"dtype {names}: the backend quantises float32 to int8 "
                    "(convert the model with .float())")
        if any(t.device.type != "cpu" for t in tensors):
            return "operands are not on the CPU"
        if a.dim() < 2 or b.dim() != (2 if self.report.op != "bmm" else 3):
            return f"operand ranks {a.dim()} and {b.dim()}"
        k = a.shape[-1]
        if a.numel() == 0 or b.numel() == 0:
            return f"an empty operand ({tuple(a.shape)} @ {tuple(b.shape)})"
        if k > quant.MAX_K:
            return (f"k = {k} > {quant.MAX_K}: int32 accumulators of int8 products could "
                    "wrap")
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            return "non-finite values (inf or nan) cannot be quantised"
        return None

    def _fallback(self, reason, args, kwargs):
        self.report.fallback = reason
        if self.warn and reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(f"systolica: {self.report.name} ({self.report.op}) runs in PyTorch: "
                          f"{reason}", FallbackWarning, stacklevel=3)
        return self.target(*args, **kwargs)

    # --- the call ------------------------------------------------------------------------------

    def forward(self, *args, **kwargs):
        a, b, bias, alpha, beta = self._operands(args, kwargs)
        reason = self._unsupported(a, b, bias)
        if reason is not None:
            return self._fallback(reason, args, kwargs)
        rep = self.report
        out_shape = None
        if rep.op != "bmm":
            if a.dim() != 2:
                out_shape = (*a.shape[:-1], b.shape[-1])
            a, b = a.reshape(1, -1, a.shape[-1]), b.unsqueeze(0)
        if self.scale_a is None:
            self.scale_a = quant.tensor_scale(a)
            if rep.rhs == "activation":
                self.scale_b = quant.tensor_scale(b)
        scale_b = quant.channel_scales(b[0]) if rep.rhs == "weight" else self.scale_b
        aq, bq = quant.quantize(a, self.scale_a), quant.quantize(b, scale_b)
        try:
            acc, runs = self._device_matmul(aq, bq)
        except CompileError as e:
            return self._fallback(f"the compiler refused it: {e}", args, kwargs)
        y = quant.dequantize(acc, self.scale_a * scale_b)
        if alpha != 1:
            y = y * alpha
        if bias is not None:
            y = y + (bias if beta == 1 else beta * bias)
        if out_shape is not None:
            y = y.reshape(out_shape)
        elif rep.op != "bmm":
            y = y[0]

        reference = self.target(*args, **kwargs)
        err = (y - reference).norm() / reference.norm().clamp_min(torch.finfo(torch.float32).tiny)
        rep.fallback = None
        rep.calls += 1
        rep.batch, rep.m, rep.k, rep.n = aq.shape[0], aq.shape[1], aq.shape[2], bq.shape[2]
        rep.scale_a = float(self.scale_a)
        rep.scale_b = scale_b.tolist() if scale_b.dim() else float(scale_b)
        rep.saturated = quant.saturated(a, self.scale_a) + (
            quant.saturated(b, scale_b) if rep.rhs == "activation" else 0)
        rep.exact = True if self.check else None
        rep.rel_error = float(err)
        rep.max_abs_error = float((y - reference).abs().max())
        rep.device_runs = len(runs)
        rep.cycles = sum(e.cycles for e in runs)
        rep.predicted_cycles = sum(e.predicted_cycles for e in runs)
        rep.measured = runs[0].measured
        rep.macs = sum(e.useful_macs for e in runs)
        rep.plan = runs[0].compiled.plans[0]
        if self.keep_tensors:
            rep.tensors = {"a": a.detach(), "b": b.detach(), "aq": aq, "bq": bq, "acc": acc,
                           "out": y.detach(), "reference": reference.detach()}
        return y

    def _device_matmul(self, aq, bq):
        """int32 ``aq[i] @ bq[i]`` per batch entry on the device; the executions."""
        accs, runs = [], []
        for ai, bi in zip(aq, bq):
            acc = self.device.matmul(ai, bi)
            runs.append(self.device.last)
            if self.check:
                expected = ai.astype(np.int64) @ bi.astype(np.int64)
                if not np.array_equal(acc, expected):
                    bad = int((acc != expected).sum())
                    raise AcceleratorMismatch(
                        f"systolica: {self.report.name}: the device's result differs from "
                        f"NumPy's int8 matmul in {bad} of {acc.size} values "
                        f"({self.device!r})")
            accs.append(acc)
        return np.stack(accs), runs
