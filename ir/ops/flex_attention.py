"""FlexAttention (ai.onnx.preview): attention with user subgraphs that modify scores and probabilities.

    Scores = (Q @ K^T) * scale;  Scores = score_mod(Scores)
    Probs = Softmax(Scores, axis=-1);  Probs = prob_mod(Probs);  Y = Probs @ V

Subgraphs are closed in our IR: values a modifier reads from the outer graph
are trailing inputs, ``num_score_captures`` for score_mod followed by the rest
for prob_mod (IR-only attribute).
"""

from __future__ import annotations

import numpy as np

from ..dtypes import DType
from ..interpreter import run_subgraph
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType
from ._common import FLOAT_TYPES, check_dtype

flex = define(
    "FlexAttention", domain="ai.onnx.preview", inputs=["Q", "K", "V", "captures...?"], outputs=["Y"],
    attrs={"score_mod": Attr.graph(), "prob_mod": Attr.graph(), "scale": Attr.float(),
           "softmax_precision": Attr.int(), "num_score_captures": Attr.int(0)},
    kind=OPAQUE)


@flex.infer
def _(ctx: InferContext) -> list[TensorType]:
    dtype = check_dtype(ctx, 0, FLOAT_TYPES, "Q")
    shapes = [ctx.shape(i) for i in range(3)]
    for i, s in enumerate(shapes):
        if ctx.dtype(i) != dtype:
            ctx.fail("Q, K and V must share one element type")
        if s is not None and len(s) != 4:
            ctx.fail(f"input {'QKV'[i]} must be rank 4 (batch, heads, sequence, head size)",
                     found=str(ctx.input_type(i)))
    q, k, v = shapes
    if q is not None and k is not None and all(isinstance(d, int) for d in (q[1], k[1])) and q[1] % k[1]:
        ctx.fail("query heads must be a multiple of key/value heads", found=f"{q[1]} and {k[1]}")
    if q is None or v is None:
        return [TensorType(dtype, None)]
    return [TensorType(dtype, (q[0], q[1], q[2], v[3]))]


def _softmax_dtype(x: np.ndarray, precision) -> np.dtype:
    if precision is not None:
        return DType.from_onnx(precision).np
    return np.float64 if x.dtype == np.float64 else np.float32


@flex.reference
def _(q, k, v, *captures, score_mod=None, prob_mod=None, scale=None, softmax_precision=None,
      num_score_captures=0):
    ct = _softmax_dtype(q, softmax_precision)
    group = q.shape[1] // k.shape[1]
    kk = np.repeat(k, group, axis=1).astype(ct)
    vv = np.repeat(v, group, axis=1).astype(ct)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q.astype(ct) @ np.swapaxes(kk, -1, -2)) * ct(s)
    if score_mod is not None:
        scores = np.asarray(run_subgraph(score_mod, [scores, *captures[:num_score_captures]])[0]).astype(ct)
    shifted = scores - np.max(scores, axis=-1, keepdims=True)
    e = np.exp(shifted)
    probs = e / np.sum(e, axis=-1, keepdims=True)
    if prob_mod is not None:
        probs = np.asarray(run_subgraph(prob_mod, [probs, *captures[num_score_captures:]])[0]).astype(ct)
    return (probs @ vv).astype(q.dtype)
