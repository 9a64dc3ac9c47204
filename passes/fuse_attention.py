"""fuse-attention: the exported attention pattern becomes one ``nnc.StridedAttention`` node.

Matched (what torch exports for ``softmax(q @ k.transpose(-2, -1) * scale + mask) @ v``)::

    S = MatMul(q, kt)            q [.., S, D], kt [.., D, L]
    S = Mul(S, c) | Div(S, c)    optional, c a scalar constant
    S = Add(S, mask)             optional, mask broadcast to [.., S, L]
    P = Softmax(S, axis=-1)
    O = MatMul(P, v)             v [.., L, Dv]
    Y = Transpose/Reshape...(O)  optional, each intermediate read once

``q``, ``kt``, ``v`` and the mask are traced back through ops that only move
elements (Reshape, Transpose, Gather with constant indices, Squeeze,
Unsqueeze, Flatten, Identity) to the tensors they read; the element each
view reads is computed once, here, by running the chain on an index tensor,
and kept when it is an affine function of the view's index (offset plus one
stride per axis, which covers heads split out of a fused QKV projection and
the transposed K).  The output chain is inverted the same way, so the node
writes the merged-heads layout directly.  The transposes, gathers and
reshapes are then dead; the scores and probabilities never exist in memory.

ONNX's ``Attention`` op becomes the same node when it is f32, f16 or bf16 without
a KV cache, window masking or softcap, with an additive mask of the same
type covering every key (causal masking and grouped-query heads are
attributes of the node): the target then needs no expansion of its
function body (the pipeline runs this pass before ``expand-functions`` too).

Leading axes beyond two (batch, heads) must be 1-sized or foldable into
them; f32 only; the per-row working set of the cpu kernel (``K^T`` packed,
one row of scores) must fit ``MAX_SCRATCH_BYTES``.  Nothing fires on
symbolic shapes.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.types import TensorType

from .manager import PassContext, register_pass

VIEW_OPS = frozenset({"Reshape", "Transpose", "Gather", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
OUT_VIEW_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
MAX_SCRATCH_BYTES = 1 << 17   # packed K^T + two rows of scores (+ packed V), on the task's stack (128 KiB)
MAX_INDEX_ELEMENTS = 1 << 24  # the index tensors computed here


def _static(v: Value) -> Optional[tuple[int, ...]]:
    t = v.type
    if isinstance(t, TensorType) and t.is_static:
        return tuple(int(d) for d in t.shape)
    return None


def _only_use(v: Value, node: Node) -> bool:
    return not v.is_graph_output and len(v.uses) == 1 and v.uses[0].node is node


def _apply(node: Node, idx: np.ndarray) -> Optional[np.ndarray]:
    """The index tensor after ``node`` (a view op), or None when it cannot say."""
    out = _static(node.outputs[0])
    if out is None:
        return None
    if node.op == "Transpose":
        perm = node.attr("perm")
        return np.transpose(idx, tuple(perm) if perm else None)
    if node.op == "Gather":
        ind = node.inputs[1].const
        axis = node.attr("axis") or 0
        taken = np.take(idx, np.asarray(ind, np.int64), axis=axis % idx.ndim)
        return taken.reshape(out)
    if node.op in ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"):
        return idx.reshape(out) if idx.size == math.prod(out) else None
    return None


def trace_view(v: Value) -> Optional[tuple[Value, np.ndarray]]:
    """(the tensor ``v`` reads, the flat index of it each element of ``v`` reads)."""
    chain = []
    while v.producer is not None and v.producer.domain == "" and v.producer.op in VIEW_OPS \
            and len(v.producer.outputs) == 1 \
            and all(x is None or x.const is not None for x in v.producer.inputs[1:]):
        chain.append(v.producer)
        v = v.producer.inputs[0]
    shape = _static(v)
    if shape is None or math.prod(shape) > MAX_INDEX_ELEMENTS:
        return None
    idx = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    for node in reversed(chain):
        idx = _apply(node, idx)
        if idx is None:
            return None
    return v, idx


def affine(idx: np.ndarray) -> Optional[list[int]]:
    """[offset, strides...] when ``idx[i] == offset + sum(i_k * stride_k)`` everywhere, else None."""
    if idx.size == 0:
        return None
    off = int(idx.reshape(-1)[0])
    strides = []
    for axis, n in enumerate(idx.shape):
        if n == 1:
            strides.append(0)
            continue
        at = [0] * idx.ndim
        at[axis] = 1
        strides.append(int(idx[tuple(at)]) - off)
    model = np.full(idx.shape, off, np.int64)
    for axis, (n, st) in enumerate(zip(idx.shape, strides)):
        model = model + (np.arange(n, dtype=np.int64) * st).reshape([n if a == axis else 1 for a in range(idx.ndim)])
    return [off] + strides if np.array_equal(model, idx) else None


def _as_bh(idx: np.ndarray, lead: tuple[int, ...]) -> Optional[np.ndarray]:
    """``idx`` [*lead', X, Y] broadcast to [*lead, X, Y] and its leading axes folded to [B, H, X, Y]."""
    try:
        idx = np.broadcast_to(idx, lead + idx.shape[-2:])
    except ValueError:
        return None
    if len(lead) > 2:
        # Fold all but the last leading axis into B (affinity is checked afterwards).
        idx = idx.reshape((math.prod(lead[:-1]), lead[-1]) + idx.shape[-2:])
    elif len(lead) < 2:
        idx = idx.reshape((1,) * (2 - len(lead)) + idx.shape)
    return idx


def _scalar(v: Optional[Value]) -> Optional[float]:
    if v is None or v.const is None or v.const.size != 1:
        return None
    return float(np.asarray(v.const).reshape(-1)[0])


def match(graph: Graph, softmax: Node) -> Optional[dict]:
    """The attention around ``softmax`` as the new node's inputs and attributes, or None."""
    if softmax.domain != "" or softmax.op != "Softmax" or len(softmax.outputs) != 1:
        return None
    p = softmax.outputs[0]
    shape = _static(p)
    if shape is None or len(shape) < 2 or p.type.dtype is not DType.F32:
        return None
    if (softmax.attr("axis") if softmax.attr("axis") is not None else -1) % len(shape) != len(shape) - 1:
        return None
    if p.is_graph_output or len(p.uses) != 1:
        return None
    pv = p.uses[0].node
    if pv.domain != "" or pv.op != "MatMul" or pv.inputs[0] is not p or pv.inputs[1] is p:
        return None
    s = softmax.inputs[0]
    mask = None
    scale = 1.0
    node = s.producer
    if node is not None and node.domain == "" and node.op == "Add" and _only_use(s, softmax):
        for i in (0, 1):
            cand = node.inputs[i].producer
            if cand is not None and cand.op in ("Mul", "Div", "MatMul") and _static(node.inputs[i]) == shape:
                s, mask = node.inputs[i], node.inputs[1 - i]
                break
        else:
            return None
        if not _only_use(s, node):
            return None
        reader, node = node, s.producer
    else:
        reader = softmax
    if node is not None and node.domain == "" and node.op in ("Mul", "Div"):
        c = _scalar(node.inputs[1]) if node.op == "Div" else (_scalar(node.inputs[1]) if _scalar(node.inputs[1])
                                                              is not None else _scalar(node.inputs[0]))
        if c is None or (node.op == "Div" and c == 0.0):
            return None
        x = node.inputs[0] if node.op == "Div" or node.inputs[1].const is not None else node.inputs[1]
        if not _only_use(x, node) or not _only_use(s, reader):
            return None
        scale = 1.0 / c if node.op == "Div" else c
        s, reader, node = x, node, x.producer
    if node is None or node.domain != "" or node.op != "MatMul" or not _only_use(s, reader):
        return None
    qk = node
    q, kt, v = qk.inputs[0], qk.inputs[1], pv.inputs[1]
    qs, ks, vs, os_ = _static(q), _static(kt), _static(v), _static(pv.outputs[0])
    if None in (qs, ks, vs, os_) or min(len(qs), len(ks), len(vs)) < 2 or _static(s) != shape:
        return None
    if any(x.type.dtype is not DType.F32 for x in (q, kt, v)):
        return None
    lead = shape[:-2]
    S, L = shape[-2:]
    D, Dv = qs[-1], vs[-1]
    if qs[-2] != S or ks[-2:] != (D, L) or vs[-2] != L or os_ != lead + (S, Dv):
        return None
    if mask is not None and (mask.type.dtype is not DType.F32 or _static(mask) is None):
        return None
    views = {}
    for name, val, want in (("q", q, None), ("k", kt, None), ("v", v, None), ("mask", mask, None)):
        if val is None:
            continue
        traced = trace_view(val)
        if traced is None:
            return None
        base, idx = traced
        if name == "mask":
            try:
                idx = np.broadcast_to(idx, shape)
            except ValueError:
                return None
            idx = _as_bh(idx, lead)
        else:
            idx = _as_bh(idx, lead)
        if idx is None:
            return None
        if name == "k":
            idx = np.swapaxes(idx, -1, -2)  # [B, H, L, D]
        view = affine(idx)
        if view is None or (base.type.dtype is not DType.F32):
            return None
        views[name] = (base, view)
    B, H = (_as_bh(np.zeros(lead + (1, 1)), lead)).shape[:2]
    # The output: follow single-use moves forward, then invert them.
    o = pv.outputs[0]
    chain = []
    while not o.is_graph_output and len(o.uses) == 1:
        user = o.uses[0].node
        if user.domain != "" or user.op not in OUT_VIEW_OPS or user.inputs[0] is not o or len(user.outputs) != 1 \
                or not all(x is None or x.const is not None for x in user.inputs[1:]):
            break
        chain.append(user)
        o = user.outputs[0]
    y_shape = _static(o)
    if y_shape is None or math.prod(os_) > MAX_INDEX_ELEMENTS:
        return None
    fwd = np.arange(math.prod(os_), dtype=np.int64).reshape(os_)
    for n in chain:
        fwd = _apply(n, fwd)
        if fwd is None:
            return None
    inv = np.empty(fwd.size, np.int64)
    inv[fwd.reshape(-1)] = np.arange(fwd.size, dtype=np.int64)
    y_idx = _as_bh(inv.reshape(os_), lead)
    y_view = affine(y_idx) if y_idx is not None else None
    if y_view is None:
        return None
    lanes = 16
    lp = -(-L // lanes) * lanes
    dvp = -(-Dv // lanes) * lanes
    if 4 * (D * lp + 2 * lp + L * dvp) > MAX_SCRATCH_BYTES:
        return None
    return {"inputs": [views["q"][0], views["k"][0], views["v"][0]] + ([views["mask"][0]] if mask is not None else []),
            "attrs": {"dims": (B, H, S, L, D, Dv), "q_view": tuple(views["q"][1]), "k_view": tuple(views["k"][1]),
                      "v_view": tuple(views["v"][1]),
                      "mask_view": tuple(views["mask"][1]) if mask is not None else (),
                      "y_view": tuple(y_view), "y_shape": tuple(y_shape), "scale": float(scale)},
            "replaces": o, "anchor": pv}


def _contiguous_view(shape: tuple[int, ...], heads: int, seq: int, size: int) -> list[int]:
    """[offset, b, h, s, d strides] of ONNX Attention's 4-D [B, H, S, D] or 3-D [B, S, H*D] layout."""
    if len(shape) == 4:
        return [0, heads * seq * size, seq * size, size, 1]
    return [0, seq * heads * size, size, heads * size, 1]


def match_onnx_attention(node: Node) -> Optional[dict]:
    """ONNX's Attention op (f32/f16; causal and window masks, GQA, a 4-D KV cache or per-batch
    key lengths allowed; no softcap) as the new node.  With a cache, ``"past"`` names the (past,
    new) pairs to concatenate along the sequence; the concatenations are the present outputs."""
    if node.domain != "" or node.op != "Attention":
        return None
    past_k, past_v, lengths = node.input(4), node.input(5), node.input(6)
    if lengths is not None and (lengths.type.dtype is not DType.I64 or _static(lengths) is None):
        return None
    for extra in node.outputs[1 if past_k is None else 3:]:
        if extra.uses or extra.is_graph_output:
            return None
    if node.attr("softcap"):
        return None
    q, k, v, mask = node.input(0), node.input(1), node.input(2), node.input(3)
    y = node.outputs[0]
    shapes = [_static(x) for x in (q, k, v, y)]
    dtype = q.type.dtype
    if None in shapes or dtype not in (DType.F32, DType.F16, DType.BF16) \
            or any(x.type.dtype is not dtype for x in (k, v, y)):
        return None
    qs, ks, vs, ys = shapes
    if not (len(qs) == len(ks) == len(vs) in (3, 4)):
        return None
    past_len = 0
    if past_k is not None:  # K/V become Concat(past, new) along the sequence: 4-D only here
        ps, pv = _static(past_k), _static(past_v)
        if len(ks) != 4 or ps is None or pv is None or past_k.type.dtype is not dtype \
                or past_v.type.dtype is not dtype or ps[:2] + ps[3:] != ks[:2] + ks[3:] \
                or pv[:2] + pv[3:] != vs[:2] + vs[3:] or ps[2] != pv[2]:
            return None
        past_len = ps[2]
        ks = ks[:2] + (ks[2] + past_len,) + ks[3:]
        vs = vs[:2] + (vs[2] + past_len,) + vs[3:]
    if len(qs) == 4:
        B, Hq, S, D = qs
        Hk, L = ks[1], ks[2]
        Dv = vs[3]
        if ks[3] != D or vs[1] != Hk or vs[2] != L:
            return None
    else:
        Hq, Hk = node.attr("q_num_heads"), node.attr("kv_num_heads")
        if not Hq or not Hk or qs[2] % Hq or ks[2] % Hk or vs[2] % Hk:
            return None
        B, S, D = qs[0], qs[1], qs[2] // Hq
        L, Dv = ks[1], vs[2] // Hk
        if ks[2] // Hk != D or vs[1] != L:
            return None
    if Hk < 1 or Hq % Hk or ks[0] != B or vs[0] != B or math.prod(ys) != B * Hq * S * Dv:
        return None
    if lengths is not None and math.prod(_static(lengths)) != B:
        return None
    mask_view: tuple = ()
    if mask is not None:
        ms = _static(mask)
        if ms is None or mask.type.dtype is not dtype or math.prod(ms) > MAX_INDEX_ELEMENTS:
            return None
        if ms[-1] != L:
            return None  # a short mask is padded with -inf by ONNX: not a plain broadcast
        try:
            idx = np.broadcast_to(np.arange(math.prod(ms), dtype=np.int64).reshape(ms), (B, Hq, S, L))
        except ValueError:
            return None
        view = affine(idx)
        if view is None:
            return None
        mask_view = tuple(view)
    lanes = 16
    lp, dvp = -(-L // lanes) * lanes, -(-Dv // lanes) * lanes
    if 4 * (D * lp + 2 * lp + L * dvp) > MAX_SCRATCH_BYTES:
        return None
    scale = node.attr("scale")
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(D)
    window = (node.attr("left_window_size"), node.attr("right_window_size"))
    return {"inputs": [q, k, v] + ([mask] if mask is not None or lengths is not None else [])
                      + ([lengths] if lengths is not None else []),
            "attrs": {"dims": (B, Hq, S, L, D, Dv), "q_view": tuple(_contiguous_view(qs, Hq, S, D)),
                      "k_view": tuple(_contiguous_view(ks, Hk, L, D)),
                      "v_view": tuple(_contiguous_view(vs, Hk, L, Dv)), "mask_view": mask_view,
                      "y_view": tuple(_contiguous_view(ys, Hq, S, Dv)), "y_shape": tuple(ys), "scale": scale,
                      "kv_group": Hq // Hk, "causal": int(bool(node.attr("is_causal"))),
                      "causal_offset": past_len,
                      "left_window": -1 if window[0] is None else int(window[0]),
                      "right_window": -1 if window[1] is None else int(window[1])},
            "replaces": y, "anchor": node,
            "past": [(past_k, k, node.outputs[1] if len(node.outputs) > 1 else None),
                     (past_v, v, node.outputs[2] if len(node.outputs) > 2 else None)] if past_k is not None else []}


@register_pass("fuse-attention")
def fuse_attention(graph: Graph, ctx: PassContext) -> bool:
    """Replace MatMul/scale/mask/Softmax/MatMul attention (and the moves around it) by nnc.StridedAttention."""
    changed = False
    for node in list(graph.nodes):
        if node.graph is not graph or node.op not in ("Softmax", "Attention"):
            continue
        m = match(graph, node) if node.op == "Softmax" else match_onnx_attention(node)
        if m is None:
            continue
        out = m["replaces"]
        for i, (past, cur, present) in enumerate(m.get("past", ()), start=1):  # the KV cache grows
            cat = graph.create_node("Concat", [past, cur], {"axis": 2}, name=node.name,
                                    output_names=[(present.name if present is not None else out.name) + "_cat"],
                                    before=m["anchor"]).output
            m["inputs"][i] = cat
            if present is not None:
                graph.replace_all_uses(present, cat)
        new = graph.create_node("StridedAttention", m["inputs"], m["attrs"], domain="nnc",
                                name=node.name or "attention", output_names=[out.name + "_attn"],
                                before=m["anchor"])
        graph.replace_all_uses(out, new.output)
        ctx.decide("fuse attention", node=new.describe(), rule="QK^T, scale, mask, softmax, V in one kernel",
                   dims=list(m["attrs"]["dims"]), mask=len(m["inputs"]) > 3 and m["inputs"][3] is not None)
        changed = True
    if changed:
        graph.topological_sort()  # the moves and matmuls left behind are dead: `dce` removes them
    return changed
