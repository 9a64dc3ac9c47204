"""ONNX Attention as the fused nnc.StridedAttention kernel: float16 (f16 loads/stores, f32 math),
causal masking and grouped-query heads, against the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import compiler
from backends.cpu.codegen import supported_dtype
from frontends.onnx import import_onnx
from ir.dtypes import DType
from passes.fuse_attention import match_onnx_attention
from tests.cpu.helpers import compare_cpu

RNG = np.random.default_rng(11)


def attention_model(b, hq, s, l, d, dv, mask: bool, three_d: bool, hkv: int = 0, causal: bool = False,
                    dtype=np.float16):
    hkv = hkv or hq
    if three_d:
        shapes = {"Q": [b, s, hq * d], "K": [b, l, hkv * d], "V": [b, l, hkv * dv]}
        out = [b, s, hq * dv]
        attrs = {"q_num_heads": hq, "kv_num_heads": hkv}
    else:
        shapes = {"Q": [b, hq, s, d], "K": [b, hkv, l, d], "V": [b, hkv, l, dv]}
        out = [b, hq, s, dv]
        attrs = {}
    if causal:
        attrs["is_causal"] = 1
    names = ["Q", "K", "V"]
    if mask:
        shapes["M"] = [s, l]
        names.append("M")
    node = h.make_node("Attention", names, ["Y"], **attrs)
    et = T.FLOAT16 if dtype == np.float16 else T.FLOAT
    ins = [h.make_tensor_value_info(n, et, shapes[n]) for n in names]
    m = h.make_model(h.make_graph([node], "att", ins, [h.make_tensor_value_info("Y", et, out)]),
                     opset_imports=[h.make_opsetid("", 23)])
    m.ir_version = 10
    feeds = {n: RNG.standard_normal(shapes[n]).astype(dtype) for n in names}
    return m, feeds


@pytest.mark.parametrize("b,hq,s,l,d,dv,mask,three_d", [
    (2, 3, 7, 19, 24, 40, True, False),
    (1, 4, 16, 16, 16, 16, False, True),
    (3, 1, 5, 33, 8, 17, True, True),
])
def test_fp16_attention_matches_reference(b, hq, s, l, d, dv, mask, three_d):
    model, feeds = attention_model(b, hq, s, l, d, dv, mask, three_d)
    (node,) = import_onnx(model).find_nodes("Attention")
    assert match_onnx_attention(node) is not None, "fuse-attention did not take the f16 Attention node"
    compare_cpu(model, feeds, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("b,hq,hkv,s,l,d,dv,mask,three_d", [
    (2, 6, 2, 9, 9, 16, 16, False, False),     # GQA 3:1, square causal
    (1, 4, 1, 5, 21, 8, 24, True, True),       # MQA, more keys than queries, a mask too
    (2, 2, 2, 33, 33, 32, 8, False, True),     # rows past a vector of keys
])
def test_causal_and_grouped_attention_matches_reference(dtype, b, hq, hkv, s, l, d, dv, mask, three_d):
    model, feeds = attention_model(b, hq, s, l, d, dv, mask, three_d, hkv=hkv, causal=True, dtype=dtype)
    (node,) = import_onnx(model).find_nodes("Attention")
    m = match_onnx_attention(node)
    assert m is not None and m["attrs"]["kv_group"] == hq // hkv and m["attrs"]["causal"] == 1
    tol = 2e-3 if dtype == np.float16 else 1e-5
    compare_cpu(model, feeds, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_kv_cache_attention_matches_reference(dtype, causal):
    """past_key/past_value: K/V are concatenated (the present outputs) and queries follow the cache."""
    b, hq, hkv, s, past, d, dv = 2, 6, 3, 5, 11, 16, 12
    et = T.FLOAT16 if dtype == np.float16 else T.FLOAT
    shapes = {"Q": [b, hq, s, d], "K": [b, hkv, s, d], "V": [b, hkv, s, dv], "M": [s, past + s],
              "PK": [b, hkv, past, d], "PV": [b, hkv, past, dv]}
    node = h.make_node("Attention", ["Q", "K", "V", "M", "PK", "PV"], ["Y", "PKo", "PVo"],
                       **({"is_causal": 1} if causal else {}))
    outs = [h.make_tensor_value_info("Y", et, [b, hq, s, dv]),
            h.make_tensor_value_info("PKo", et, [b, hkv, past + s, d]),
            h.make_tensor_value_info("PVo", et, [b, hkv, past + s, dv])]
    model = h.make_model(h.make_graph([node], "kv", [h.make_tensor_value_info(n, et, shp) for n, shp in shapes.items()],
                                      outs), opset_imports=[h.make_opsetid("", 23)])
    model.ir_version = 10
    feeds = {n: RNG.standard_normal(shp).astype(dtype) for n, shp in shapes.items()}
    (att,) = import_onnx(model).find_nodes("Attention")
    m = match_onnx_attention(att)
    assert m is not None and m["attrs"]["causal_offset"] == past and m["attrs"]["dims"][3] == past + s
    tol = 2e-3 if dtype == np.float16 else 1e-5
    compare_cpu(model, feeds, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("causal,left,right,lengths", [
    (1, 3, -1, [20, 7, 2]),    # causal sliding window, per-batch key lengths (an early row sees no key)
    (0, 2, 4, None),           # two-sided window, no lengths
    (0, -1, -1, [1, 20, 13]),  # padding only
])
def test_windows_and_key_lengths_match_reference(dtype, causal, left, right, lengths):
    b, hq, hkv, s, l, d, dv = 3, 4, 2, 6, 20, 8, 16
    et = T.FLOAT16 if dtype == np.float16 else T.FLOAT
    names = ["Q", "K", "V", "M"]
    shapes = {"Q": [b, hq, s, d], "K": [b, hkv, l, d], "V": [b, hkv, l, dv], "M": [1, l]}
    ins = [h.make_tensor_value_info(n, et, shapes[n]) for n in names]
    if lengths is not None:
        names += ["", "", "N"]
        ins.append(h.make_tensor_value_info("N", T.INT64, [b]))
    attrs = {"is_causal": causal, "left_window_size": left, "right_window_size": right}
    node = h.make_node("Attention", names, ["Y"], **attrs)
    model = h.make_model(h.make_graph([node], "win", ins, [h.make_tensor_value_info("Y", et, [b, hq, s, dv])]),
                         opset_imports=[h.make_opsetid("", 25)])
    model.ir_version = 11
    feeds = {n: RNG.standard_normal(shapes[n]).astype(dtype) for n in ("Q", "K", "V", "M")}
    if lengths is not None:
        feeds["N"] = np.array(lengths, np.int64)
    (att,) = import_onnx(model).find_nodes("Attention")
    assert match_onnx_attention(att) is not None
    tol = 2e-3 if dtype == np.float16 else 1e-5
    out = compare_cpu(model, feeds, rtol=tol, atol=tol)
    assert np.isfinite(out["Y"]).all()


@pytest.mark.skipif(not supported_dtype(DType.BF16), reason="the cpu code generator has no bfloat16 type yet")
@pytest.mark.parametrize("causal", [0, 1])
def test_bf16_attention_matches_reference(causal):
    import ml_dtypes
    b, hq, hkv, s, l, d, dv = 2, 4, 2, 7, 19, 16, 24
    shapes = {"Q": [b, hq, s, d], "K": [b, hkv, l, d], "V": [b, hkv, l, dv]}
    node = h.make_node("Attention", ["Q", "K", "V"], ["Y"], is_causal=causal)
    ins = [h.make_tensor_value_info(n, T.BFLOAT16, shp) for n, shp in shapes.items()]
    model = h.make_model(h.make_graph([node], "bf", ins, [h.make_tensor_value_info("Y", T.BFLOAT16, [b, hq, s, dv])]),
                         opset_imports=[h.make_opsetid("", 23)])
    model.ir_version = 10
    feeds = {n: RNG.standard_normal(shp).astype(ml_dtypes.bfloat16) for n, shp in shapes.items()}
    ref = compiler.compile(model, target="ref").run(feeds)["Y"].astype(np.float32)
    cpu = compiler.compile(model, target="cpu").run(feeds)["Y"].astype(np.float32)
    np.testing.assert_allclose(cpu, ref, rtol=2e-2, atol=2e-2)  # bf16 keeps 8 bits of mantissa
