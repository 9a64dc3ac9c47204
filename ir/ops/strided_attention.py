"""nnc.StridedAttention: scaled dot-product attention over strided views of its operands.

``passes/fuse_attention.py`` replaces the exported pattern

    Y = view_out(MatMul(Softmax(MatMul(view_q(Q), view_kt(K)) * scale [+ view_m(M)]), view_v(V)))

(the views being chains of Reshape/Transpose/Gather/Squeeze/Unsqueeze that
only move elements) by one node that reads ``Q``, ``K``, ``V`` and the mask
``M`` where they are and writes ``Y`` in its final layout, so no transposed
copy is ever made.  With ``dims = [B, H, S, L, D, Dv]``::

    q[b, h, s, d]  = Q.flat[q_view[0] + b*q_view[1] + h*q_view[2] + s*q_view[3] + d*q_view[4]]
    k[b, h, l, d]  = K.flat[k_view[0] + b*k_view[1] + h*k_view[2] + l*k_view[3] + d*k_view[4]]
    v[b, h, l, d]  = V.flat[... v_view likewise ...]
    m[b, h, s, l]  = M.flat[... mask_view likewise ...]          (stride 0: broadcast)
    p[b, h, s, :]  = softmax(scale * q[b, h, s] . k[b, h, :] + m[b, h, s, :])
    Y.flat[y_view[0] + b*y_view[1] + h*y_view[2] + s*y_view[3] + d*y_view[4]] = p[b, h, s] . v[b, h, :, d]

With ``kv_group = g > 1`` (grouped-query attention) query head ``h`` reads
K/V head ``h // g`` (``k[b, h, l, d]`` then uses ``h // g`` in place of ``h``).
Query row ``s`` sits at key position ``p = s + causal_offset``, or, with
the optional ``KVLengths`` input (int64 ``[B]``, valid keys per batch),
``p = s + KVLengths[b] - S``; keys ``l >= KVLengths[b]`` are padding.
``causal = 1`` hides keys ``l > p``; ``left_window >= 0`` hides ``l < p -
left_window`` and ``right_window >= 0`` hides ``l > p + right_window``
(their scores are -inf).  A row that sees no key outputs zeros.

Every element of ``Y`` (shape ``y_shape``) is written exactly once.  Strides and
offsets count elements.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType

strided_attention = define(
    "StridedAttention", domain="nnc", inputs=["Q", "K", "V", "Mask?", "KVLengths?"], outputs=["Y"], kind=OPAQUE,
    attrs={"dims": Attr.ints(required=True), "q_view": Attr.ints(required=True),
           "k_view": Attr.ints(required=True), "v_view": Attr.ints(required=True),
           "mask_view": Attr.ints(()), "y_view": Attr.ints(required=True),
           "y_shape": Attr.ints(required=True), "scale": Attr.float(1.0),
           "kv_group": Attr.int(1), "causal": Attr.int(0), "causal_offset": Attr.int(0),
           "left_window": Attr.int(-1), "right_window": Attr.int(-1)},
    doc="softmax(scale * Q K^T + mask) V over strided views of Q, K, V, mask and Y (see the module doc).")


def _view(flat: np.ndarray, view, shape) -> np.ndarray:
    """The strided view ``view = [offset, strides...]`` of a flat array, as a copy of ``shape``."""
    off, strides = int(view[0]), [int(s) for s in view[1:]]
    idx = np.full(tuple(shape), off, np.int64)
    for axis, (n, st) in enumerate(zip(shape, strides)):
        r = np.arange(n, dtype=np.int64) * st
        idx = idx + r.reshape([n if a == axis else 1 for a in range(len(shape))])
    return flat[idx]


@strided_attention.infer
def _(ctx: InferContext) -> list[TensorType]:
    dims, y_shape = list(ctx.attr("dims")), list(ctx.attr("y_shape"))
    if len(dims) != 6 or any(d < 1 for d in dims):
        ctx.fail("dims must be six positive sizes [B, H, S, L, D, Dv]", found=str(dims))
    for name in ("q_view", "k_view", "v_view", "y_view"):
        if len(ctx.attr(name)) != 5:
            ctx.fail(f"{name} must be [offset, 4 strides]", found=str(list(ctx.attr(name))))
    if ctx.has_input(3) and len(ctx.attr("mask_view")) != 5:
        ctx.fail("mask_view must be [offset, 4 strides] when there is a mask")
    b, h, s, _, _, dv = dims
    if int(np.prod(y_shape)) != b * h * s * dv:
        ctx.fail("y_shape does not hold B*H*S*Dv elements", found=str(y_shape))
    g = ctx.attr("kv_group")
    if not isinstance(g, int) or g < 1 or h % g:
        ctx.fail("kv_group must divide the head count", found=f"{g} for {h} heads")
    if ctx.attr("causal") and ctx.attr("causal_offset") < 0:
        ctx.fail("causal_offset must be non-negative (every query row attends at least key 0)")
    dtype = ctx.dtype(0)
    if dtype not in (DType.F32, DType.F16, DType.BF16):
        ctx.fail("StridedAttention reads f32, f16 or bf16 (and computes in f32)", found=dtype.short)
    return [TensorType(dtype, tuple(y_shape))]


@strided_attention.reference
def _(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: Optional[np.ndarray] = None,
      kv_lengths: Optional[np.ndarray] = None, *, dims, q_view, k_view, v_view, mask_view=(), y_view, y_shape,
      scale=1.0, kv_group=1, causal=0, causal_offset=0, left_window=-1, right_window=-1) -> np.ndarray:
    b, h, s, l, d, dv = (int(x) for x in dims)
    f32 = np.float32  # narrow floats are computed in f32 and rounded once, at the end
    qv = _view(q.reshape(-1), q_view, (b, h, s, d)).astype(f32)
    hk = h // kv_group
    kv = np.repeat(_view(k.reshape(-1), k_view, (b, hk, l, d)).astype(f32), kv_group, axis=1)
    vv = np.repeat(_view(v.reshape(-1), v_view, (b, hk, l, dv)).astype(f32), kv_group, axis=1)
    scores = np.matmul(qv, np.swapaxes(kv, -1, -2)) * np.float32(scale)
    if mask is not None:
        scores = scores + _view(mask.reshape(-1), mask_view, (b, h, s, l)).astype(f32)
    keys = np.arange(l).reshape(1, 1, l)
    if kv_lengths is not None:
        lengths = np.asarray(kv_lengths, np.int64).reshape(b, 1, 1)
        pos = np.arange(s).reshape(1, s, 1) + lengths - s
        visible = keys < lengths
    else:
        pos = np.arange(s).reshape(1, s, 1) + int(causal_offset)
        visible = np.ones((1, 1, l), bool)
    d = pos - keys  # (b or 1, s, l)
    if causal:
        visible = visible & (d >= 0)
    if left_window >= 0:
        visible = visible & (d <= left_window)
    if right_window >= 0:
        visible = visible & (-d <= right_window)
    scores = np.where(visible[:, None], scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isneginf(top), 0, top))
    total = e.sum(axis=-1, keepdims=True)
    p = e / np.where(total == 0, 1, total)  # a row that sees no key outputs zeros
    out = np.matmul(p, vv).astype(q.dtype)
    y = np.empty(int(np.prod(y_shape)), q.dtype)
    pos = _view(np.arange(y.size, dtype=np.int64), y_view, (b, h, s, dv))
    y[pos.reshape(-1)] = out.reshape(-1)
    return y.reshape(tuple(int(x) for x in y_shape))
