"""NumPy golden models. Each block's model lives here, written from the spec, not from the RTL."""

import numpy as np


__all__ = ["wrap_signed", "matmul_reference"]


def wrap_signed(values, bits):
    """Two's-complement wraparound of integer ``values`` to ``bits`` bits (as int64)."""
    values = np.asarray(values, dtype=np.int64)
    if bits >= 64:
        return values
    mask = (1 << bits) - 1
    values = values & mask
    return np.where(values >= (1 << (bits - 1)), values - (1 << bits), values)


def matmul_reference(a, w, acc_bits=32):
    """``a @ w`` with exact integer products and an accumulator of ``acc_bits`` bits that wraps
    (two's complement), like the tensor engine and like NumPy int32 for ``acc_bits=32``.

    Exact in int64 for every supported type: a 16x16-bit product is < 2**32 and at most 256 of them
    are summed, so the int64 sum cannot overflow before the wrap.
    """
    a = np.asarray(a)
    w = np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"matmul_reference: shapes {a.shape} and {w.shape} do not multiply")
    product = a.astype(np.int64) @ w.astype(np.int64)
    return wrap_signed(product, acc_bits)
