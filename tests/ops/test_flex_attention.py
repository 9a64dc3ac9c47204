"""FlexAttention (ai.onnx.preview) with modifier subgraphs, against a NumPy formula."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import compiler


def _model(score_mod=None, opset_preview=1):
    attrs = {}
    if score_mod is not None:
        attrs["score_mod"] = score_mod
    node = helper.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview", **attrs)
    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
    g = helper.make_graph([node], "g", [vi("Q", [1, 4, 3, 8]), vi("K", [1, 2, 5, 8]), vi("V", [1, 2, 5, 6])],
                          [vi("Y", [1, 4, 3, 6])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 26),
                                            helper.make_opsetid("ai.onnx.preview", opset_preview)])
    m.ir_version = 10
    return m


def _expected(q, k, v, bias=0.0):
    k, v = np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(8) + bias
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def test_flex_attention_with_gqa_and_score_mod():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((1, 4, 3, 8), (1, 2, 5, 8), (1, 2, 5, 6)))
    y = compiler.compile(_model()).run({"Q": q, "K": k, "V": v})["Y"]
    np.testing.assert_allclose(y, _expected(q, k, v), rtol=1e-5, atol=1e-6)
    bias = numpy_helper.from_array(np.array(0.5, np.float32), "bias")
    body = helper.make_graph([helper.make_node("Add", ["scores", "bias"], ["out"])], "mod",
                             [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)],
                             [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [bias])
    y2 = compiler.compile(_model(body)).run({"Q": q, "K": k, "V": v})["Y"]
    np.testing.assert_allclose(y2, _expected(q, k, v, 0.5), rtol=1e-5, atol=1e-6)
