"""Floating-point arithmetic gateware (docs/floating_point.md): exact products of bf16/fp8
operands, the exactly rounded fp32 addition the tensor engine and PSUM accumulate with, and
the ACT unit's conversion of scaled fp32 values to bf16, fp8, fp32 or integers."""

from .add import (ADDEND_LAYOUT, ALIGNED_SUM_LAYOUT, FP32_NAN, add_to_fp32, align_and_add,
                  exact_product, leading_zeros, multiply, normalise_and_round,
                  normalise_product, raw_product_layout, unpack_fp32)
from .convert import round_scaled, scale_fp32

__all__ = ["ADDEND_LAYOUT", "ALIGNED_SUM_LAYOUT", "FP32_NAN", "add_to_fp32", "align_and_add",
           "exact_product", "leading_zeros", "multiply", "normalise_and_round",
           "normalise_product", "raw_product_layout", "unpack_fp32", "round_scaled",
           "scale_fp32"]
