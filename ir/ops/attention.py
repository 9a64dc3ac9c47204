"""Transformer building blocks: Attention, RotaryEmbedding, SwiGLU, Dropout, and the
recurrent-model ops of opset 27 (CausalConvWithState, LinearAttention).

Attention follows the opset-25 ONNX op (masks, causal and sliding-window
masking, GQA/MQA, an internal KV cache, softcap, the qk_matmul_output debug
output).  Everything is computed in float32 (float64 for float64 inputs);
Attention additionally rounds narrow types where the ONNX reference does.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..errors import ExecutionError
from ..registry import ELEMENTWISE, OPAQUE, Attr, InferContext, define
from ..types import Dim, TensorType
from ._common import check_dtype

_FLOATS = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})


def compute_type(x: np.ndarray) -> np.dtype:
    """float64 for float64 data, else float32 (narrow floats are widened)."""
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


def _mul(a: Dim, b: Dim) -> Dim:
    return a * b if isinstance(a, int) and isinstance(b, int) else None


def _div(a: Dim, b: Dim) -> Dim:
    return a // b if isinstance(a, int) and isinstance(b, int) and b and a % b == 0 else None


def _add(a: Dim, b: Dim) -> Dim:
    return a + b if isinstance(a, int) and isinstance(b, int) else None


def _clash(a: Dim, b: Dim) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a != b


# ------------------------------------------------------------------ Dropout
dropout = define(
    "Dropout", inputs=["data", "ratio?", "training_mode?"], outputs=["output", "mask?"],
    kind=OPAQUE, static_inputs=["ratio", "training_mode"], attrs={"seed": Attr.int()},
    doc="The identity unless training_mode is true; then it zeroes a random `ratio` of the "
        "elements (from NumPy's RandomState(seed), so deterministic) and scales the rest.")

_DROPOUT_TYPES = _FLOATS | {DType.F8E4M3FN, DType.F8E4M3FNUZ, DType.F8E5M2, DType.F8E5M2FNUZ}


@dropout.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _DROPOUT_TYPES, "data")
    if ctx.has_input(1):
        check_dtype(ctx, 1, _DROPOUT_TYPES, "ratio")
        if ctx.shape(1) not in (None, ()):
            ctx.fail("ratio must be a scalar", found=str(ctx.input_type(1)))
        r = ctx.const(1)
        if r is not None and not 0 <= float(np.asarray(r, np.float64)) < 1:
            ctx.fail("ratio out of range", expected="in [0, 1)", found=str(float(r)))
    if ctx.has_input(2):
        check_dtype(ctx, 2, {DType.BOOL}, "training_mode")
        if ctx.shape(2) not in (None, ()):
            ctx.fail("training_mode must be a scalar", found=str(ctx.input_type(2)))
    out = [TensorType(dt, ctx.shape(0))]
    if ctx.num_outputs > 1:
        out.append(TensorType(DType.BOOL, ctx.shape(0)))
    return out


@dropout.reference
def _(data: np.ndarray, ratio: Optional[np.ndarray] = None,
      training_mode: Optional[np.ndarray] = None, *,
      seed: Optional[int]) -> Any:
    r = 0.5 if ratio is None else float(np.asarray(ratio, np.float64))
    if training_mode is None or not bool(training_mode) or r == 0:
        return data, np.ones(data.shape, dtype=bool)
    if seed is None:
        raise ExecutionError("Dropout in training mode needs a `seed` attribute",
                             hint="the reference interpreter is deterministic; give the node a "
                                  "seed, or set training_mode to false for inference")
    if not 0 <= r < 1:
        raise ExecutionError("Dropout ratio out of range", expected="in [0, 1)", found=str(r))
    # The ONNX test generator's draw: numpy's legacy RandomState seeded with `seed`.
    keep = np.random.RandomState(seed & 0xFFFFFFFF).uniform(0, 1.0, data.shape) >= r
    ct = compute_type(data)
    y = data.astype(ct) * keep * ct.type(1.0 / (1.0 - r))
    return y.astype(data.dtype), keep


# ------------------------------------------------------------------- SwiGLU
swiglu = define("SwiGLU", inputs=["A", "B"], outputs=["Y"], kind=ELEMENTWISE,
                attrs={"alpha": Attr.float(1.0)},
                doc="Swish_alpha(A) * B for same-shape A and B (no broadcasting).")


@swiglu.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _FLOATS, "A")
    if ctx.dtype(1) != dt:
        ctx.fail("A and B must share one element type", expected=dt.short, found=ctx.dtype(1).short)
    a, b = ctx.shape(0), ctx.shape(1)
    if a is not None and b is not None and (len(a) != len(b) or any(_clash(x, y) for x, y in zip(a, b))):
        ctx.fail("A and B must have the same shape (SwiGLU does not broadcast)",
                 found=f"{ctx.input_type(0)} and {ctx.input_type(1)}")
    shape = a if b is None or a is None else tuple(x if isinstance(x, int) else y for x, y in zip(a, b))
    return [TensorType(dt, shape if shape is not None else b)]


@swiglu.reference
def _(a: np.ndarray, b: np.ndarray, *, alpha: float) -> np.ndarray:
    ct = compute_type(a)
    aw = a.astype(ct)
    z = ct.type(alpha) * aw
    e = np.exp(-np.abs(z))  # split by sign so exp never overflows
    sig = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return (aw * sig * b.astype(ct)).astype(a.dtype)


# --------------------------------------------------------- RotaryEmbedding
rotary = define(
    "RotaryEmbedding", inputs=["X", "cos_cache", "sin_cache", "position_ids?"], outputs=["Y"],
    kind=OPAQUE, attrs={"interleaved": Attr.int(0), "rotary_embedding_dim": Attr.int(0),
                        "num_heads": Attr.int()},
    doc="Rotates pairs of features by position-dependent angles (RoPE).")


@rotary.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, {DType.F16, DType.F32, DType.BF16}, "X")
    for i, name in ((1, "cos_cache"), (2, "sin_cache")):
        if ctx.dtype(i) != dt:
            ctx.fail(f"{name} must have X's element type", expected=dt.short, found=ctx.dtype(i).short)
    if ctx.has_input(3):
        check_dtype(ctx, 3, {DType.I64}, "position_ids")
    s = ctx.shape(0)
    if s is None:
        return [TensorType(dt, None)]
    if len(s) not in (3, 4):
        ctx.fail("X must be 3-D (B, S, hidden) or 4-D (B, heads, S, head_size)",
                 found=str(ctx.input_type(0)))
    heads = ctx.attr("num_heads")
    if len(s) == 3:
        if not heads:
            ctx.fail("num_heads is required for 3-D input", found="no num_heads attribute")
        head_size = _div(s[2], heads)
        if isinstance(s[2], int) and head_size is None:
            ctx.fail("hidden size must be a multiple of num_heads", found=f"{s[2]} and {heads}")
    else:
        head_size = s[3]
    rot = ctx.attr("rotary_embedding_dim") or head_size
    if isinstance(rot, int) and (rot % 2 or (isinstance(head_size, int) and rot > head_size)):
        ctx.fail("rotary_embedding_dim must be even and at most the head size",
                 found=f"{rot} with head size {head_size}")
    want = 2 if ctx.has_input(3) else 3
    for i in (1, 2):
        cs = ctx.shape(i)
        if cs is not None and (len(cs) != want or _clash(cs[-1], _div(rot, 2) if isinstance(rot, int) else None)):
            ctx.fail(f"{'cos_cache' if i == 1 else 'sin_cache'} has the wrong shape",
                     expected=f"rank {want} with last dim rotary_dim/2"
                              f"{' = ' + str(rot // 2) if isinstance(rot, int) else ''}",
                     found=str(ctx.input_type(i)))
    return [TensorType(dt, s)]


@rotary.reference
def _(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, position_ids: Optional[np.ndarray] = None, *,
      interleaved: int, rotary_embedding_dim: int, num_heads: Optional[int]) -> np.ndarray:
    ct = compute_type(x)
    # Work on (B, S, heads, head_size).
    if x.ndim == 4:
        xs = x.astype(ct).transpose(0, 2, 1, 3)
    else:
        b, s, hidden = x.shape
        xs = x.astype(ct).reshape(b, s, num_heads, hidden // num_heads)
    rot = rotary_embedding_dim or xs.shape[3]
    if position_ids is not None:
        cos, sin = cos[position_ids], sin[position_ids]  # (B, S, rot/2)
    cos = cos.astype(ct)[:, :, None, :]
    sin = sin.astype(ct)[:, :, None, :]
    head = xs[..., :rot]
    x1, x2 = (head[..., 0::2], head[..., 1::2]) if interleaved else (head[..., :rot // 2], head[..., rot // 2:])
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    out = xs.copy()
    if interleaved:
        out[..., 0:rot:2], out[..., 1:rot:2] = real, imag
    else:
        out[..., :rot // 2], out[..., rot // 2:rot] = real, imag
    out = out.transpose(0, 2, 1, 3) if x.ndim == 4 else out.reshape(x.shape)
    return out.astype(x.dtype)


# ---------------------------------------------------------------- Attention
attention = define(
    "Attention", inputs=["Q", "K", "V", "attn_mask?", "past_key?", "past_value?", "nonpad_kv_seqlen?"],
    outputs=["Y", "present_key?", "present_value?", "qk_matmul_output?"], kind=OPAQUE,
    attrs={"is_causal": Attr.int(0), "kv_num_heads": Attr.int(), "q_num_heads": Attr.int(),
           "qk_matmul_output_mode": Attr.int(0), "scale": Attr.float(), "softcap": Attr.float(0.0),
           "softmax_precision": Attr.int(), "left_window_size": Attr.int(-1),
           "right_window_size": Attr.int(-1)},
    doc="Scaled dot-product attention (ONNX opset 25).")


def _heads_layout(ctx: InferContext, i: int, heads: Optional[int]) -> tuple[Dim, Dim, Dim, Dim]:
    """(batch, heads, seq, head_size) of input ``i`` (3-D inputs pack heads into the last dim)."""
    s = ctx.shape(i)
    if len(s) == 4:
        return s[0], s[1], s[2], s[3]
    size = _div(s[2], heads)
    if isinstance(s[2], int) and size is None:
        ctx.fail(f"input {i}'s hidden size must be a multiple of its head count",
                 found=f"{s[2]} for {heads} heads")
    return s[0], heads, s[1], size


@attention.infer
def _(ctx: InferContext) -> list[TensorType]:
    dq = check_dtype(ctx, 0, _FLOATS, "Q")
    if ctx.dtype(1) != dq:
        ctx.fail("Q and K must share one element type", expected=dq.short, found=ctx.dtype(1).short)
    dv = check_dtype(ctx, 2, _FLOATS, "V")
    if ctx.has_input(4) != ctx.has_input(5):
        ctx.fail("past_key and past_value must be given together")
    if ctx.has_input(6):
        check_dtype(ctx, 6, {DType.I64}, "nonpad_kv_seqlen")
        if ctx.has_input(4):
            ctx.fail("nonpad_kv_seqlen cannot be used with past_key/past_value")
    if ctx.attr("qk_matmul_output_mode") not in (0, 1, 2, 3):
        ctx.fail("qk_matmul_output_mode must be 0, 1, 2 or 3", found=str(ctx.attr("qk_matmul_output_mode")))
    for name in ("left_window_size", "right_window_size"):
        if ctx.attr(name) < -1:
            ctx.fail(f"{name} must be -1 or non-negative", found=str(ctx.attr(name)))
    sp = ctx.attr("softmax_precision")
    if sp is not None and sp not in (1, 10, 11, 16):
        ctx.fail("unsupported softmax_precision", expected="1, 10, 11 or 16", found=str(sp))
    types = [dq, dq, dv, dq]
    ranks = [ctx.rank(i) for i in range(3)]
    if None in ranks:
        return [TensorType(t, None) for t in types[:ctx.num_outputs]]
    if ranks[0] not in (3, 4) or len(set(ranks)) != 1:
        ctx.fail("Q, K and V must all be 3-D or all be 4-D",
                 found=", ".join(str(ctx.input_type(i)) for i in range(3)))
    qh, kvh = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
    if ranks[0] == 3 and not (qh and kvh):
        ctx.fail("3-D inputs need the q_num_heads and kv_num_heads attributes")
    if ranks[0] == 4 and (qh is not None or kvh is not None):
        ctx.fail("q_num_heads and kv_num_heads must not be given for 4-D inputs")
    b, hq, sq, dk = _heads_layout(ctx, 0, qh)
    _, hk, skv, dk2 = _heads_layout(ctx, 1, kvh)
    _, hv, _, dvs = _heads_layout(ctx, 2, kvh)
    if _clash(dk, dk2):
        ctx.fail("Q and K must have the same head size", found=f"{dk} and {dk2}")
    if isinstance(hq, int) and isinstance(hk, int) and (hk == 0 or hq % hk):
        ctx.fail("the query head count must be a multiple of the key/value head count",
                 found=f"{hq} query heads, {hk} key/value heads")
    past = skv_past = 0
    if ctx.has_input(4):
        ps = ctx.shape(4)
        if ps is not None and len(ps) != 4:
            ctx.fail("past_key must be 4-D (B, kv_heads, past_len, head_size)", found=str(ctx.input_type(4)))
        skv_past = ps[2] if ps is not None else None
        past = 1
    total = _add(skv_past, skv) if past else skv
    y = (b, hq, sq, dvs) if ranks[0] == 4 else (b, sq, _mul(hq, dvs))
    shapes = [y, (b, hk, total, dk), (b, hv, total, dvs), (b, hq, sq, total)]
    return [TensorType(t, s) for t, s in zip(types, shapes)][:ctx.num_outputs]


def _to_heads(x: np.ndarray, heads: Optional[int]) -> np.ndarray:
    """(B, S, H*D) -> (B, H, S, D); 4-D inputs are already in that layout."""
    if x.ndim == 4:
        return x
    b, s, hidden = x.shape
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def _position_bias(sq: int, total: int, offset: Any, allowed_fn) -> np.ndarray:
    """0 where ``allowed_fn(query position - key index)`` holds, -inf elsewhere.

    ``offset`` is a scalar (past length) or one per batch (external cache);
    the result is (Sq, total) or (B, 1, Sq, total).
    """
    i = np.arange(sq).reshape(sq, 1)
    j = np.arange(total).reshape(1, total)
    if np.ndim(offset):
        diff = (i + np.reshape(offset, (-1, 1, 1))) - j
        return np.where(allowed_fn(diff), 0.0, -np.inf)[:, None]
    return np.where(allowed_fn(i + int(offset) - j), 0.0, -np.inf)


def _attention_bias(mask: Optional[np.ndarray], sq: int, total: int, offset: Any, is_causal: int,
                    left: int, right: int, nonpad: Optional[np.ndarray], ct: np.dtype) -> np.ndarray:
    """The additive score bias: the mask, causal and window frontiers, and KV padding.

    Broadcastable to (B, Hq, Sq, total); -inf marks a key a query may not attend.
    """
    bias = np.zeros((sq, total), ct)
    if mask is not None:
        if mask.shape[-1] < total:  # a short mask is padded with "masked"
            pad = [(0, 0)] * (mask.ndim - 1) + [(0, total - mask.shape[-1])]
            mask = np.pad(mask, pad, constant_values=False if mask.dtype == bool else -np.inf)
        bias = bias + (np.where(mask, 0, -np.inf).astype(ct) if mask.dtype == bool else mask.astype(ct))
    if is_causal:
        bias = bias + _position_bias(sq, total, offset, lambda d: d >= 0).astype(ct)
    if left >= 0 or right >= 0:
        def inside(d: np.ndarray) -> np.ndarray:
            ok = np.ones(d.shape, bool)
            if left >= 0:
                ok &= d <= left
            if right >= 0:
                ok &= -d <= right
            return ok
        bias = bias + _position_bias(sq, total, offset, inside).astype(ct)
    if nonpad is not None:
        valid = np.arange(total) < nonpad.reshape(-1, 1)
        bias = bias + np.where(valid, 0, -np.inf).astype(ct).reshape(-1, 1, 1, total)
    return bias


def _rounder(dtype: np.dtype, ct: np.dtype):
    """A function rounding ``ct`` arrays to ``dtype`` and back (identity when ``dtype`` is wide)."""
    if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64)):
        return lambda a: a
    return lambda a: np.asarray(a).astype(dtype).astype(ct)


def _safe_softmax(x: np.ndarray, rnd=lambda a: a) -> np.ndarray:
    """Softmax over the last axis; an all -inf row gives zeros, not NaN.

    ``rnd`` rounds each step's result, to follow a narrow-float computation.
    """
    m = np.max(x, axis=-1, keepdims=True)
    e = rnd(np.exp(rnd(x - np.where(np.isneginf(m), 0, m))))
    s = rnd(np.sum(e, axis=-1, keepdims=True))
    return rnd(e / np.where(s == 0, 1, s))


@attention.reference
def _(q: np.ndarray, k: np.ndarray, v: np.ndarray, attn_mask: Optional[np.ndarray] = None,
      past_key: Optional[np.ndarray] = None, past_value: Optional[np.ndarray] = None,
      nonpad_kv_seqlen: Optional[np.ndarray] = None, *, is_causal: int, kv_num_heads: Optional[int],
      q_num_heads: Optional[int], qk_matmul_output_mode: int, scale: Optional[float], softcap: float,
      softmax_precision: Optional[int], left_window_size: int, right_window_size: int) -> Any:
    ct = compute_type(q)
    # float16/bfloat16 are computed in float32 but rounded wherever the ONNX
    # reference (which computes in T1) rounds, so narrow results match it and
    # stay within an ulp or two of onnxruntime; float32/64 are never rounded.
    rnd = _rounder(q.dtype, ct)
    sm_rnd = rnd if softmax_precision is None else _rounder(DType.from_onnx(softmax_precision).np, ct)

    q4, k4, v4 = _to_heads(q, q_num_heads), _to_heads(k, kv_num_heads), _to_heads(v, kv_num_heads)
    present_k = np.concatenate([past_key, k4], axis=2) if past_key is not None else k4
    present_v = np.concatenate([past_value, v4], axis=2) if past_value is not None else v4
    batch, hq, sq, head_size = q4.shape
    total = present_k.shape[2]

    if past_key is not None:
        offset: Any = past_key.shape[2]  # queries follow the cached keys
    elif nonpad_kv_seqlen is not None:
        offset = nonpad_kv_seqlen.reshape(-1) - sq  # external cache: per batch
    else:
        offset = 0
    bias = _attention_bias(attn_mask, sq, total, offset, is_causal, left_window_size,
                           right_window_size, nonpad_kv_seqlen, ct)

    # Grouped-query attention: each K/V head serves hq/hkv consecutive query heads.
    reps = hq // present_k.shape[1]
    kk = np.repeat(present_k, reps, axis=1) if reps > 1 else present_k
    vv = np.repeat(present_v, reps, axis=1) if reps > 1 else present_v

    s = rnd(np.asarray(np.sqrt(1 / np.sqrt(head_size) if scale is None else scale), ct))
    qk = rnd(np.matmul(rnd(q4.astype(ct) * s), np.swapaxes(rnd(kk.astype(ct) * s), -1, -2)))
    raw = qk
    if softcap > 0:
        qk = rnd(ct.type(softcap) * rnd(np.tanh(rnd(qk / ct.type(softcap)))))
    capped = qk
    biased = rnd(qk + bias)
    # The softmax runs in softmax_precision (default T1).
    wide = np.float64 if softmax_precision == 11 else ct
    probs = _safe_softmax(sm_rnd(biased).astype(wide), sm_rnd)
    # A query row that may attend no key at all outputs zeros.
    probs = np.where(np.isneginf(np.max(bias, axis=-1, keepdims=True)), 0, probs)
    probs = rnd(probs)  # the weights are rounded to T1 before P @ V
    y = np.matmul(probs, vv.astype(ct))
    if q.ndim == 3:
        y = y.transpose(0, 2, 1, 3).reshape(batch, sq, -1)
    qk_out = (raw, capped, biased, probs)[qk_matmul_output_mode]
    qk_out = np.broadcast_to(qk_out, (batch, hq, sq, total))
    return y.astype(q.dtype), present_k, present_v, qk_out.astype(q.dtype)


# ------------------------------------------------------ CausalConvWithState
causal_conv = define(
    "CausalConvWithState", inputs=["input", "weight", "bias?", "past_state?"],
    outputs=["output", "present_state"], kind=OPAQUE, attrs={"activation": Attr.string("none")},
    doc="Depthwise causal 1-D convolution over (B, C, L) carrying the last k-1 inputs as state.")


@causal_conv.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, {DType.F16, DType.F32, DType.BF16}, "input")
    for i, name in ((1, "weight"), (2, "bias"), (3, "past_state")):
        if ctx.has_input(i) and ctx.dtype(i) != dt:
            ctx.fail(f"{name} must have the input's element type", expected=dt.short,
                     found=ctx.dtype(i).short)
    if ctx.attr("activation") not in ("none", "silu", "swish"):
        ctx.fail("unsupported activation", expected="'none', 'silu' or 'swish'",
                 found=repr(ctx.attr("activation")))
    x, w = ctx.shape(0), ctx.shape(1)
    if x is not None and len(x) != 3:
        ctx.fail("input must be 3-D (batch, channels, length)", found=str(ctx.input_type(0)))
    if w is not None and (len(w) != 3 or _clash(w[1], 1)):
        ctx.fail("weight must be (channels, 1, k)", found=str(ctx.input_type(1)))
    if x is not None and w is not None and _clash(x[1], w[0]):
        ctx.fail("weight must have one kernel per channel", found=f"{ctx.input_type(0)} and "
                 f"{ctx.input_type(1)}")
    k = w[2] if w is not None else None
    state = None if x is None else (x[0], x[1], k - 1 if isinstance(k, int) else None)
    return [TensorType(dt, x), TensorType(dt, state)]


@causal_conv.reference
def _(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray] = None,
      past_state: Optional[np.ndarray] = None, *, activation: str) -> Any:
    batch, channels, length = x.shape
    k = weight.shape[2]
    pad = past_state if past_state is not None else np.zeros((batch, channels, k - 1), x.dtype)
    padded = np.concatenate([pad, x], axis=2)
    ct = compute_type(x)
    p, w = padded.astype(ct), weight.astype(ct)[:, 0, :]
    # Sum of k shifted slices: out[:, c, t] = sum_j padded[:, c, t + j] * w[c, j].
    out = np.zeros((batch, channels, length), ct)
    for j in range(k):
        out += p[:, :, j:j + length] * w[None, :, j:j + 1]
    if bias is not None:
        out += bias.astype(ct)[None, :, None]
    out = out.astype(x.dtype).astype(ct)  # the convolution result is rounded to T first
    if activation in ("silu", "swish"):
        out = out / (1 + np.exp(-out))
    return out.astype(x.dtype), padded[:, :, padded.shape[2] - (k - 1):]


# ---------------------------------------------------------- LinearAttention
linear_attention = define(
    "LinearAttention", inputs=["query", "key", "value", "past_state?", "decay?", "beta?"],
    outputs=["output", "present_state"], kind=OPAQUE,
    attrs={"q_num_heads": Attr.int(required=True), "kv_num_heads": Attr.int(required=True),
           "update_rule": Attr.string("gated_delta"), "scale": Attr.float(0.0),
           "chunk_size": Attr.int(64)},
    doc="Recurrent (linear) attention over packed (B, T, H*D) inputs with a (B, H_kv, d_k, d_v) "
        "state; update_rule picks linear, gated, delta or gated_delta.")

_LA_TYPES = frozenset({DType.F16, DType.F32, DType.BF16})


@linear_attention.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _LA_TYPES, "query")
    rule = ctx.attr("update_rule")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        ctx.fail("unknown update_rule", expected="linear, gated, delta or gated_delta", found=repr(rule))
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if ctx.has_input(4) != gated:
        ctx.fail(f"update_rule {rule!r} {'needs' if gated else 'takes no'} decay input")
    if ctx.has_input(5) != delta:
        ctx.fail(f"update_rule {rule!r} {'needs' if delta else 'takes no'} beta input")
    hq, hkv = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
    if hq <= 0 or hkv <= 0 or hq % hkv:
        ctx.fail("q_num_heads must be a positive multiple of kv_num_heads", found=f"{hq} and {hkv}")
    for i in (0, 1, 2, 4, 5):
        if ctx.has_input(i) and ctx.rank(i) not in (None, 3):
            ctx.fail(f"input {i} must be 3-D (B, T, H*D)", found=str(ctx.input_type(i)))
    q, kk, v = ctx.shape(0), ctx.shape(1), ctx.shape(2)
    state_dt = ctx.dtype(3) if ctx.has_input(3) else dt
    if q is None or v is None:
        return [TensorType(dt, None), TensorType(state_dt, None)]
    dk, dv = _div(q[2], hq), _div(v[2], hkv)
    if kk is not None and _clash(kk[2], _mul(hkv, dk)):
        ctx.fail("key must hold kv_num_heads heads of the query's head size",
                 found=f"{ctx.input_type(1)} for {hkv} heads of size {dk}")
    return [TensorType(dt, (q[0], q[1], _mul(hq, dv))), TensorType(state_dt, (q[0], hkv, dk, dv))]


@linear_attention.reference
def _(query: np.ndarray, key: np.ndarray, value: np.ndarray, past_state: Optional[np.ndarray] = None,
      decay: Optional[np.ndarray] = None, beta: Optional[np.ndarray] = None, *, q_num_heads: int,
      kv_num_heads: int, update_rule: str, scale: float, chunk_size: int) -> Any:
    f32 = np.float32
    b, t, _ = query.shape
    dk, dv = query.shape[2] // q_num_heads, value.shape[2] // kv_num_heads
    q4 = _to_heads(query, q_num_heads).astype(f32)
    k4 = _to_heads(key, kv_num_heads).astype(f32)
    v4 = _to_heads(value, kv_num_heads).astype(f32)
    if decay is not None:  # per head (B, T, H) or per key dim (B, T, H*dk) -> (B, H, T, 1 or dk)
        per_head = decay.shape[2] == kv_num_heads
        g4 = (decay.reshape(b, t, kv_num_heads, 1).transpose(0, 2, 1, 3) if per_head
              else _to_heads(decay, kv_num_heads)).astype(f32)
    if beta is not None:  # (B, T, H or 1) -> (B, H or 1, T, 1)
        beta4 = beta.reshape(b, t, beta.shape[2], 1).transpose(0, 2, 1, 3).astype(f32)
    state = (past_state.astype(f32) if past_state is not None
             else np.zeros((b, kv_num_heads, dk, dv), f32))
    s = f32(scale) if scale else f32(1 / np.sqrt(dk))
    group = q_num_heads // kv_num_heads
    out = np.zeros((b, q_num_heads, t, dv), f32)
    for i in range(t):  # the recurrence is sequential in time
        kt, vt = k4[:, :, i, :], v4[:, :, i, :]
        if decay is not None:
            state = state * np.exp(g4[:, :, i, :])[..., None]
        if beta is not None:
            vt = beta4[:, :, i, :] * (vt - np.einsum("bhdm,bhd->bhm", state, kt))
        state = state + kt[..., :, None] * vt[..., None, :]
        read = np.repeat(state, group, axis=1) if group > 1 else state
        out[:, :, i, :] = s * np.einsum("bhd,bhdm->bhm", q4[:, :, i, :], read)
    y = out.transpose(0, 2, 1, 3).reshape(b, t, q_num_heads * dv).astype(query.dtype)
    return y, state.astype(past_state.dtype if past_state is not None else query.dtype)
