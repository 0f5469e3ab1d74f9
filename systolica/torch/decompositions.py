"""ATen decompositions that expose matmuls hidden inside PyTorch's fused kernels.

In eval mode without autograd, ``nn.TransformerEncoderLayer`` calls the fused CPU kernel
``aten._transformer_encoder_layer_fwd``, which the backend cannot see into. Its decomposition
below computes the same function with ``linear``, ``bmm``, ``softmax`` and ``layer_norm``
(as ``aten/src/ATen/native/transformers/transformer.cpp`` does), so the projections, the
feed-forward layers and both attention matmuls reach the accelerator. An attention mask keeps
the fused kernel (the decomposition returns ``NotImplemented``; the backend says so).

PyTorch's own decomposition of ``_scaled_dot_product_flash_attention_for_cpu`` (the slow path's
attention) is added for the same reason.
"""

import math

import torch
import torch.nn.functional as F
from torch._decomp import get_decompositions

aten = torch.ops.aten

__all__ = ["decompositions", "attention"]


def attention(x, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias):
    """Self-attention of ``x`` (batch, seq, embed), as ``_native_multi_head_attention`` with
    ``need_weights=False`` and no mask: one QKV projection, q scaled by 1/sqrt(head_dim),
    softmax(q kᵀ) v per head (two ``bmm``), the output projection."""
    b, t, _ = x.shape
    d = embed_dim // num_heads
    q, k, v = F.linear(x, qkv_weight, qkv_bias).split(embed_dim, dim=-1)

    def heads(y):   # (b, t, e) -> (b*h, t, d)
        return y.reshape(b, t, num_heads, d).transpose(1, 2).reshape(b * num_heads, t, d)

    q, k, v = heads(q) / math.sqrt(d), heads(k), heads(v)
    weights = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)
    out = torch.bmm(weights, v).reshape(b, num_heads, t, d).transpose(1, 2).reshape(b, t, -1)
    return F.linear(out, proj_weight, proj_bias)


def _transformer_encoder_layer_fwd(src, embed_dim, num_heads, qkv_weight, qkv_bias,
                                   proj_weight, proj_bias, use_gelu, norm_first, eps,
                                   norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2,
                                   ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2,
                                   mask=None, mask_type=None):
    if mask is not None or src.dim() != 3:
        return NotImplemented

    def norm(y, w, b):
        return F.layer_norm(y, (embed_dim,), w, b, eps)

    x = norm(src, norm_weight_1, norm_bias_1) if norm_first else src
    x = src + attention(x, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias)
    if not norm_first:
        x = norm(x, norm_weight_1, norm_bias_1)
    y = norm(x, norm_weight_2, norm_bias_2) if norm_first else x
    hidden = F.linear(y, ffn_weight_1, ffn_bias_1)
    hidden = F.gelu(hidden) if use_gelu else F.relu(hidden)
    x = x + F.linear(hidden, ffn_weight_2, ffn_bias_2)
    if not norm_first:
        x = norm(x, norm_weight_2, norm_bias_2)
    return x


def decompositions():
    """The decomposition table for ``aot_autograd``."""
    table = get_decompositions([aten._scaled_dot_product_flash_attention_for_cpu])
    table[aten._transformer_encoder_layer_fwd.default] = _transformer_encoder_layer_fwd
    return table
