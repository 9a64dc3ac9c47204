"""``nnc.BF16MatMul``: a float32 matmul computed on bfloat16 inputs (the ``bf16-weights`` pass).

    Y[M, n] = float32(bf16(A) @ bf16(B)) (+ bias)

A is rounded to bfloat16 (round to nearest even) when the kernel reads it; B
is a build-time constant stored as bfloat16 bits (uint16), *packed* in the
layout AMX-BF16 tiles read: ``[N/16][Kp/2][16][2]`` (two consecutive k of 16
columns per 64-byte row, K padded with zeros to a multiple of 32).  Products
of bfloat16 values are exact in float32; the sums are float32, in the
kernel's order, so results differ from the reference by float32 rounding
only (tests use a tolerance), and from the float model by bfloat16's 8-bit
mantissa (about 3 significant digits).
"""

from __future__ import annotations

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType
from .quantization import check_in

NNC = "nnc"
BF16_K = 32   # k per AMX-BF16 tile multiply (16 pairs)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN stays NaN."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, np.float32))
    return np.where(nan, np.uint16(0x7FC0), rounded).astype(np.uint16)


def from_bf16_bits(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, np.uint16).astype(np.uint32) << 16).view(np.float32)


def packed_k(k: int) -> int:
    return -(-k // BF16_K) * BF16_K


def pack_bf16_weights(w_kn: np.ndarray) -> np.ndarray:
    """B[K, N] float32 -> bfloat16 bits packed ``[N/16][Kp/2][16][2]`` (zeros past K and N)."""
    k, n = w_kn.shape
    kp, np16 = packed_k(k), -(-n // 16) * 16
    full = np.zeros((kp, np16), np.uint16)
    full[:k, :n] = to_bf16_bits(w_kn)
    return np.ascontiguousarray(full.reshape(kp // 2, 2, np16 // 16, 16).transpose(2, 0, 3, 1))


def unpack_bf16_weights(p: np.ndarray, k: int, n: int) -> np.ndarray:
    """The float32 values of packed B, ``[K, N]``."""
    nb, kh, _, _ = p.shape
    full = np.asarray(p).transpose(1, 3, 0, 2).reshape(kh * 2, nb * 16)
    return from_bf16_bits(full[:k, :n])


bf16_matmul = define(
    "BF16MatMul", domain=NNC, kind=OPAQUE,
    inputs=["A", "B", "bias?"], outputs=["Y"],
    attrs={"n": Attr.int(required=True)},
    doc="float32 A[..., M, K] @ B[K, n] (+ bias[n]) on bfloat16 inputs with float32 accumulation; "
        "B packed bfloat16 bits (ir.ops.bf16_nnc.pack_bf16_weights).")


@bf16_matmul.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, frozenset({DType.F32}), "A")
    check_in(ctx, 1, frozenset({DType.U16}), "packed B")
    n = ctx.attr("n")
    if ctx.has_input(2):
        check_in(ctx, 2, frozenset({DType.F32}), "bias")
        bs = ctx.shape(2)
        if bs is not None and tuple(bs) != (n,):
            ctx.fail("bias must be a vector of n values", expected=f"[{n}]", found=f"shape {list(bs)}")
    a = ctx.shape(0)
    if a is None:
        return [TensorType(DType.F32, None)]
    if len(a) < 2:
        ctx.fail("nnc.BF16MatMul needs A of rank >= 2", found=f"shape {list(a)}")
    bs, k = ctx.shape(1), a[-1]
    if isinstance(k, int) and bs is not None and tuple(bs) != (-(-n // 16), packed_k(k) // 2, 16, 2):
        ctx.fail("packed B does not match A and n", expected=f"[{-(-n // 16)}, {packed_k(k) // 2}, 16, 2]",
                 found=f"shape {list(bs)}", hint="build it with ir.ops.bf16_nnc.pack_bf16_weights")
    return [TensorType(DType.F32, tuple(a[:-1]) + (n,))]


@bf16_matmul.reference
def _(a, b, bias=None, *, n):
    k = a.shape[-1]
    a16 = from_bf16_bits(to_bf16_bits(a)).astype(np.float64)
    y = a16 @ unpack_bf16_weights(b, k, n).astype(np.float64)
    if bias is not None:
        y = y + bias
    return y.astype(np.float32)
