"""int8 quantisation of one matmul (docs/pytorch.md, "Numerics"), in float32 throughout.

Symmetric, zero point 0, range [-127, 127] (never -128, so negation cannot overflow):

* a weight (the right operand, k × n, traced back to a parameter): one scale per output
  channel ``s_w[j] = max_i |W[i, j]| / 127``;
* an activation: one scale per tensor ``s_x = max |X| / 127``, calibrated on the first call
  (the example inputs) and then fixed; later values outside ±127·s_x saturate;
* ``q = clamp(round_half_even(v / s), -127, 127)`` as int8; a zero scale becomes 1;
* the device computes ``acc = Xq @ Wq`` in int32 (exact: |acc| ≤ 127²·k < 2³¹ for
  k ≤ :data:`MAX_K`); the host dequantises ``y = float32(acc) * (s_x * s_w)``.
"""

import numpy as np
import torch

__all__ = ["QMAX", "MAX_K", "tensor_scale", "channel_scales", "quantize", "dequantize",
           "saturated"]

QMAX = 127
#: The largest k whose int32 accumulators cannot wrap: 127² · k < 2³¹.
MAX_K = (2**31 - 1) // (QMAX * QMAX)


def _nonzero(scale):
    return torch.where(scale == 0, torch.ones_like(scale), scale)


def tensor_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-tensor scale: a float32 0-d tensor ``max|x| / 127`` (1 for an all-zero tensor)."""
    return _nonzero(x.detach().abs().amax().to(torch.float32) / QMAX)


def channel_scales(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel scales of a (k × n) weight: float32 (n,), ``max_i |w[i, j]| / 127``."""
    return _nonzero(w.detach().abs().amax(dim=0).to(torch.float32) / QMAX)


def quantize(x: torch.Tensor, scale: torch.Tensor) -> np.ndarray:
    """``clamp(round_half_even(x / scale), -127, 127)`` as a NumPy int8 array."""
    q = torch.clamp(torch.round(x.detach().to(torch.float32) / scale), -QMAX, QMAX)
    return q.to(torch.int8).numpy()


def saturated(x: torch.Tensor, scale: torch.Tensor) -> int:
    """How many values of ``x`` lie outside what ``scale`` represents (they saturate)."""
    return int((torch.round(x.detach().to(torch.float32) / scale).abs() > QMAX).sum())


def dequantize(acc: np.ndarray, scale: torch.Tensor) -> torch.Tensor:
    """``float32(acc) * scale`` (``scale``: the product of both operands' scales)."""
    return torch.from_numpy(np.ascontiguousarray(acc)).to(torch.float32) * scale
