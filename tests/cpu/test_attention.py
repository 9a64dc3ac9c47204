"""Fused attention (passes/fuse_attention.py -> nnc.StridedAttention, backends/cpu/kernels/attention.py).

Models are built with onnx.helper the way torch exports attention (head
split by Reshape/Transpose, K transposed, or one fused QKV projection split
by Gather as timm's ViT does), with random weights; the cpu target is
compared with the reference interpreter on the unfused graph, and with a
symbolic batch the rows of a batch of 3 must be bitwise those of each
sample run alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import compiler
from passes.fuse_attention import affine

RNG = np.random.default_rng(0)


def _init(name, arr):
    arr = np.asarray(arr)
    dtype = {np.dtype(np.float32): T.FLOAT, np.dtype(np.int64): T.INT64}[arr.dtype]
    return h.make_tensor(name, dtype, arr.shape, arr.reshape(-1).tolist())


def bert_style(seq: int, hidden: int, heads: int, mask: bool = True, div: bool = False):
    """Separate Q/K/V projections, an additive padding mask from a 0/1 input, merged heads out."""
    dh = hidden // heads
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", seq, hidden])
    inputs = [x]
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", seq, hidden])
    inits = [_init(f"w{n}", RNG.standard_normal((hidden, hidden)).astype(np.float32) / math.sqrt(hidden))
             for n in "qkv"]
    inits += [_init("split", np.array([0, seq, heads, dh], np.int64)),
              _init("merge", np.array([0, seq, hidden], np.int64)),
              _init("scale", np.array(math.sqrt(dh) if div else 1 / math.sqrt(dh), np.float32)),
              _init("one", np.array(1.0, np.float32)), _init("big", np.array(-10000.0, np.float32)),
              _init("axes12", np.array([1, 2], np.int64))]
    nodes = []
    for n in "qkv":
        nodes += [h.make_node("MatMul", ["x", f"w{n}"], [f"{n}p"]),
                  h.make_node("Reshape", [f"{n}p", "split"], [f"{n}r"])]
    nodes += [h.make_node("Transpose", ["qr"], ["q"], perm=[0, 2, 1, 3]),
              h.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1]),
              h.make_node("Transpose", ["vr"], ["v"], perm=[0, 2, 1, 3]),
              h.make_node("MatMul", ["q", "kt"], ["s0"]),
              h.make_node("Div" if div else "Mul", ["s0", "scale"], ["s1"])]
    last = "s1"
    if mask:
        inputs.append(h.make_tensor_value_info("keep", T.FLOAT, ["N", seq]))
        nodes += [h.make_node("Unsqueeze", ["keep", "axes12"], ["keep4"]),
                  h.make_node("Sub", ["one", "keep4"], ["drop"]),
                  h.make_node("Mul", ["drop", "big"], ["bias"]),
                  h.make_node("Add", ["s1", "bias"], ["s2"])]
        last = "s2"
    nodes += [h.make_node("Softmax", [last], ["p"], axis=-1),
              h.make_node("MatMul", ["p", "v"], ["o"]),
              h.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              h.make_node("Reshape", ["ot", "merge"], ["y"])]
    g = h.make_graph(nodes, "attn", inputs, [y], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def vit_style(seq: int, dim: int, heads: int):
    """One QKV projection, [N, S, 3, H, Dh] permuted to [3, N, H, S, Dh], q/k/v taken by Gather."""
    dh = dim // heads
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", seq, dim])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", seq, dim])
    inits = [_init("w", RNG.standard_normal((dim, 3 * dim)).astype(np.float32) / math.sqrt(dim)),
             _init("bqkv", RNG.standard_normal(3 * dim).astype(np.float32)),
             _init("split", np.array([0, seq, 3, heads, dh], np.int64)),
             _init("merge", np.array([0, seq, dim], np.int64)),
             _init("scale", np.array(dh ** -0.5, np.float32))]
    inits += [_init(f"i{k}", np.array(k, np.int64)) for k in range(3)]
    nodes = [h.make_node("MatMul", ["x", "w"], ["qkv0"]), h.make_node("Add", ["qkv0", "bqkv"], ["qkv"]),
             h.make_node("Reshape", ["qkv", "split"], ["r"]),
             h.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 3, 1, 4])]
    nodes += [h.make_node("Gather", ["t", f"i{k}"], [n], axis=0) for k, n in enumerate("qkv")]
    nodes += [h.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
              h.make_node("MatMul", ["q", "kt"], ["s0"]), h.make_node("Mul", ["s0", "scale"], ["s1"]),
              h.make_node("Softmax", ["s1"], ["p"], axis=-1), h.make_node("MatMul", ["p", "v"], ["o"]),
              h.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              h.make_node("Reshape", ["ot", "merge"], ["y"])]
    g = h.make_graph(nodes, "vit_attn", [x], [y], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def _feeds(model, batch: int, seq: int, hidden: int, rng) -> dict[str, np.ndarray]:
    feeds = {"x": rng.standard_normal((batch, seq, hidden)).astype(np.float32)}
    if any(i.name == "keep" for i in model.graph.input):
        keep = (rng.random((batch, seq)) < 0.7).astype(np.float32)
        keep[:, 0] = 1.0
        feeds["keep"] = keep
    return feeds


def _check(model, seq: int, hidden: int, batches=(1, 3), isa: str = "") -> None:
    built = compiler.build(model, target="cpu", options={"threads": 2, **({"isa": isa} if isa else {})})
    ops = built.graph.op_counts()
    assert ops.get("nnc.StridedAttention", 0) == 1, ops
    assert "Softmax" not in ops and "Transpose" not in ops, ops
    cpu = built.module
    ref = compiler.compile(model, target="ref")
    rng = np.random.default_rng(1)
    singles = []
    for batch in batches:
        feeds = _feeds(model, batch, seq, hidden, rng)
        got, want = cpu.run(feeds)["y"], ref.run(feeds)["y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
        if batch == 1:
            singles.append((feeds, got))
    # A batch of 3 built from three single samples: each row bitwise what it was alone.
    samples = [_feeds(model, 1, seq, hidden, np.random.default_rng(10 + i)) for i in range(3)]
    alone = [cpu.run(f)["y"] for f in samples]
    together = cpu.run({k: np.concatenate([f[k] for f in samples]) for k in samples[0]})["y"]
    for i in range(3):
        assert np.array_equal(together[i:i + 1], alone[i])


@pytest.mark.parametrize("seq,hidden,heads,mask,div", [
    (16, 32, 2, True, False),     # whole vectors everywhere
    (13, 48, 2, True, True),      # S, L past a vector; Dh 24: V packed, scalar output tail; Div scale
    (20, 64, 4, False, False),    # no mask
    (37, 40, 5, True, False),     # Dh 8: less than a vector
])
def test_bert_style_attention_matches_reference(seq, hidden, heads, mask, div):
    _check(bert_style(seq, hidden, heads, mask, div), seq, hidden)


def test_attention_on_avx2_vectors():
    """8-lane vectors and 16 registers: other padding and register tiles."""
    _check(bert_style(13, 48, 2, True, True), 13, 48, isa="avx2")


@pytest.mark.parametrize("seq,dim,heads", [(17, 48, 3), (50, 64, 2)])
def test_vit_style_fused_qkv_attention_matches_reference(seq, dim, heads):
    _check(vit_style(seq, dim, heads), seq, dim)


def test_attention_not_fused_when_probabilities_are_read_elsewhere():
    model = bert_style(8, 16, 2, mask=False)
    model.graph.output.append(h.make_tensor_value_info("p", T.FLOAT, ["N", 2, 8, 8]))
    built = compiler.build(model, target="cpu")
    assert "nnc.StridedAttention" not in built.graph.op_counts()
    feeds = _feeds(model, 2, 8, 16, np.random.default_rng(0))
    got, want = built.module.run(feeds), compiler.compile(model, target="ref").run(feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)


def test_affine_fit_accepts_strided_and_refuses_shuffled_indices():
    idx = np.arange(2 * 3 * 4).reshape(2, 3, 4).transpose(1, 0, 2)
    assert affine(idx) == [0, 4, 12, 1]
    shuffled = idx.copy().reshape(-1)
    shuffled[[0, 1]] = shuffled[[1, 0]]
    assert affine(shuffled.reshape(idx.shape)) is None
    assert affine(np.broadcast_to(np.arange(5), (3, 5))) == [0, 0, 1]


def test_strided_attention_reference_matches_numpy():
    """The op's reference (what the cpu kernel is tested against through the pass) on a plain layout."""
    from ir.registry import get_schema
    ref = get_schema("StridedAttention", "nnc").reference_fn
    b, hh, s, l, d = 1, 2, 5, 7, 4
    q = RNG.standard_normal((b, hh, s, d)).astype(np.float32)
    k = RNG.standard_normal((b, hh, l, d)).astype(np.float32)
    v = RNG.standard_normal((b, hh, l, d)).astype(np.float32)
    strides = lambda shape: [int(np.prod(shape[i + 1:])) for i in range(4)]  # noqa: E731
    y = ref(q, k, v, dims=(b, hh, s, l, d, d), q_view=[0] + strides(q.shape), k_view=[0] + strides(k.shape),
            v_view=[0] + strides(v.shape), y_view=[0] + strides((b, hh, s, d)), y_shape=(b, hh, s, d), scale=0.5)
    sc = q @ k.transpose(0, 1, 3, 2) * 0.5
    p = np.exp(sc - sc.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(y, p @ v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,fn", [("Erf", math.erf), ("Tanh", math.tanh)])
def test_vectorized_erf_and_tanh_accuracy(op, fn):
    x = np.concatenate([np.linspace(-12, 12, 20001), [0.0, -0.0, 1e-7, -3e-4, 5e-4, np.inf, -np.inf, np.nan]])
    x = x.astype(np.float32)
    g = h.make_graph([h.make_node(op, ["x"], ["y"])], "g", [h.make_tensor_value_info("x", T.FLOAT, [x.size])],
                     [h.make_tensor_value_info("y", T.FLOAT, [x.size])])
    y = compiler.compile(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), target="cpu").run({"x": x})["y"]
    want = np.array([fn(float(v)) if not math.isnan(v) else math.nan for v in x])
    finite = ~np.isnan(want)
    assert np.max(np.abs(y[finite] - want[finite])) < 5e-7
    assert np.isnan(y[-1]) and y[-3] == 1.0 and y[-2] == -1.0
    assert np.signbit(y[x.size - 7])  # -0.0 stays -0.0


@pytest.mark.parametrize("rank,mask_shape,scale", [(4, None, None), (4, (1, 1, 9, 11), 0.3), (3, (9, 11), None)])
def test_onnx_attention_op_runs_in_the_fused_kernel(rank, mask_shape, scale):
    b, heads, s, l, d, dv = 2, 3, 9, 11, 8, 20
    if rank == 4:
        shapes = {"Q": (b, heads, s, d), "K": (b, heads, l, d), "V": (b, heads, l, dv)}
        out = (b, heads, s, dv)
        attrs = {}
    else:
        shapes = {"Q": (b, s, heads * d), "K": (b, l, heads * d), "V": (b, l, heads * dv)}
        out = (b, s, heads * dv)
        attrs = {"q_num_heads": heads, "kv_num_heads": heads}
    if scale is not None:
        attrs["scale"] = scale
    names = ["Q", "K", "V"] + (["M"] if mask_shape else [])
    if mask_shape:
        shapes["M"] = mask_shape
    inputs = [h.make_tensor_value_info(n, T.FLOAT, shapes[n]) for n in names]
    g = h.make_graph([h.make_node("Attention", names, ["Y"], **attrs)], "onnx_attention", inputs,
                     [h.make_tensor_value_info("Y", T.FLOAT, out)])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 23)])
    built = compiler.build(model, target="cpu")
    assert built.graph.op_counts().get("nnc.StridedAttention") == 1
    rng = np.random.default_rng(3)
    feeds = {n: rng.standard_normal(shapes[n]).astype(np.float32) for n in names}
    np.testing.assert_allclose(built.module.run(feeds)["Y"], compiler.compile(model, target="ref").run(feeds)["Y"],
                               rtol=1e-4, atol=2e-5)
