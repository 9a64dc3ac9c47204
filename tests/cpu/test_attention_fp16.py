"""ONNX Attention on float16 as the fused nnc.StridedAttention kernel (f16 loads/stores, f32 math)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from frontends.onnx import import_onnx
from passes.fuse_attention import match_onnx_attention
from tests.cpu.helpers import compare_cpu

RNG = np.random.default_rng(11)


def attention_model(b, hq, s, l, d, dv, mask: bool, three_d: bool):
    if three_d:
        shapes = {"Q": [b, s, hq * d], "K": [b, l, hq * d], "V": [b, l, hq * dv]}
        out = [b, s, hq * dv]
        attrs = {"q_num_heads": hq, "kv_num_heads": hq}
    else:
        shapes = {"Q": [b, hq, s, d], "K": [b, hq, l, d], "V": [b, hq, l, dv]}
        out = [b, hq, s, dv]
        attrs = {}
    names = ["Q", "K", "V"]
    if mask:
        shapes["M"] = [s, l]
        names.append("M")
    node = h.make_node("Attention", names, ["Y"], **attrs)
    ins = [h.make_tensor_value_info(n, T.FLOAT16, shapes[n]) for n in names]
    m = h.make_model(h.make_graph([node], "att", ins, [h.make_tensor_value_info("Y", T.FLOAT16, out)]),
                     opset_imports=[h.make_opsetid("", 23)])
    m.ir_version = 10
    feeds = {n: RNG.standard_normal(shapes[n]).astype(np.float16) for n in names}
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
