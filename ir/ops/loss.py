"""Loss functions: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Both take class scores ``[N, C, d1, ...]`` and integer labels ``[N, d1, ...]``,
with optional per-class weights, an ``ignore_index`` whose positions count
for nothing, and a ``reduction`` of ``none``, ``sum`` or ``mean`` (the mean
divides by the total weight of the positions that were not ignored).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType
from ._common import FLOAT_TYPES, check_dtype, widen

_LABEL_TYPES = frozenset({DType.I32, DType.I64})
_REDUCTIONS = ("none", "sum", "mean")


def _check_loss_inputs(ctx: InferContext) -> TensorType:
    """Validate scores/labels/weights; return the type of the unreduced loss."""
    check_dtype(ctx, 0, FLOAT_TYPES, "scores")
    check_dtype(ctx, 1, _LABEL_TYPES, "labels")
    if ctx.attr("reduction") not in _REDUCTIONS:
        ctx.fail("unknown reduction", expected=" or ".join(_REDUCTIONS), found=repr(ctx.attr("reduction")))
    scores, labels = ctx.shape(0), ctx.shape(1)
    if scores is not None and len(scores) < 2:
        ctx.fail("scores must be [N, C, ...]", found=str(ctx.input_type(0)))
    if scores is not None and labels is not None:
        if len(labels) != len(scores) - 1:
            ctx.fail("labels must be scores' shape without the class axis",
                     expected=f"rank {len(scores) - 1}", found=str(ctx.input_type(1)))
        for a, b in zip((scores[0],) + tuple(scores[2:]), labels):
            if isinstance(a, int) and isinstance(b, int) and a != b:
                ctx.fail("labels do not match scores", found=f"{ctx.input_type(0)} and {ctx.input_type(1)}")
    if ctx.has_input(2):
        if ctx.dtype(2) != ctx.dtype(0):
            ctx.fail("weights must have the scores' element type", found=ctx.dtype(2).short)
        if ctx.rank(2) not in (None, 1):
            ctx.fail("weights must be 1-D [C]", found=str(ctx.input_type(2)))
    unreduced = None if scores is None else (scores[0],) + tuple(scores[2:])
    return TensorType(ctx.dtype(0), unreduced if labels is None else tuple(labels))


def _loss_type(ctx: InferContext) -> TensorType:
    t = _check_loss_inputs(ctx)
    return t if ctx.attr("reduction") == "none" else TensorType(t.dtype, ())


def nll(log_prob: np.ndarray, labels: np.ndarray, weights: Optional[np.ndarray],
        ignore_index: Optional[int], reduction: str) -> np.ndarray:
    """Negative log likelihood of ``labels`` under ``log_prob`` (classes on axis 1)."""
    x = widen(log_prob)
    classes = x.shape[1]
    labels = labels.astype(np.int64)
    ignored = labels == ignore_index if ignore_index is not None else np.zeros(labels.shape, bool)
    safe = np.where(ignored, 0, labels)
    if np.any((safe < 0) | (safe >= classes)):
        from ..errors import ExecutionError
        raise ExecutionError("label out of range", expected=f"in [0, {classes})",
                             found=str(int(safe[(safe < 0) | (safe >= classes)][0])))
    picked = np.take_along_axis(x, safe[:, None], axis=1)[:, 0]
    w = np.ones_like(picked) if weights is None else widen(weights)[safe]
    w = np.where(ignored, 0, w).astype(x.dtype)
    loss = -picked * w
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = np.sum(loss)
    else:
        total = np.sum(w)
        out = np.sum(loss) / total if total != 0 else np.zeros((), x.dtype)
    return np.asarray(out).astype(log_prob.dtype)


nll_loss = define(
    "NegativeLogLikelihoodLoss", inputs=["input", "target", "weight?"], outputs=["loss"],
    attrs={"ignore_index": Attr.int(), "reduction": Attr.string("mean")}, kind=OPAQUE)


@nll_loss.infer
def _(ctx: InferContext) -> list[TensorType]:
    return [_loss_type(ctx)]


@nll_loss.reference
def _(x, target, weight=None, *, ignore_index, reduction):
    return nll(x, target, weight, ignore_index, reduction)


sce_loss = define(
    "SoftmaxCrossEntropyLoss", inputs=["scores", "labels", "weights?"], outputs=["output", "log_prob?"],
    attrs={"ignore_index": Attr.int(), "reduction": Attr.string("mean")}, kind=OPAQUE)


@sce_loss.infer
def _(ctx: InferContext) -> list[TensorType]:
    return [_loss_type(ctx), TensorType(ctx.dtype(0), ctx.shape(0))]


@sce_loss.reference
def _(scores, labels, weights=None, *, ignore_index, reduction):
    x = widen(scores)
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_prob = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = nll(log_prob, labels, weights, ignore_index, reduction)
    return loss, log_prob.astype(scores.dtype)
