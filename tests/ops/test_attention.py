"""Attention, RotaryEmbedding, SwiGLU, Dropout, CausalConvWithState and LinearAttention."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from ir.errors import ExecutionError, TypeInferenceError
from ir.registry import has_schema
from tests.ops.ortcheck import Const, check_op, make_model, run_ours

rng = np.random.default_rng(99)
TOL = {"rtol": 1e-4, "atol": 1e-5}
F16_TOL = {"rtol": 3e-3, "atol": 3e-3}


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def compile_one(op: str, inputs: list, attrs: dict | None = None, *, opset: int = 21, num_outputs=1):
    import compiler
    compiler.compile(make_model(op, inputs, attrs, opset=opset, num_outputs=num_outputs))


def onnx_reference(op: str, inputs: list, attrs: dict, *, opset: int, num_outputs: int = 1) -> list:
    """ONNX's own reference implementation, for cases onnxruntime does not run."""
    from onnx.reference import ReferenceEvaluator
    model = make_model(op, inputs, attrs, opset=opset, num_outputs=num_outputs)
    feeds = {f"in{i}": x for i, x in enumerate(inputs) if x is not None and not isinstance(x, Const)}
    return ReferenceEvaluator(model).run(None, feeds)


def one_node(op: str, inputs: dict, attrs: dict, opset: int, outputs: list[tuple[str, int]],
             shapes: dict | None = None):
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                         (shapes or {}).get(n, a.shape)) for n, a in inputs.items()]
    node = helper.make_node(op, list(inputs), [n for n, _ in outputs], **attrs)
    graph = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info(n, t, None) for n, t in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


# ------------------------------------------------------------------ Dropout
@pytest.mark.parametrize("opset", [7, 10, 12, 13, 22])
def test_dropout_inference_is_identity(opset):
    x = rand(3, 4, 5)
    attrs = {"ratio": 0.3} if opset < 12 else {}
    out = check_op("Dropout", [x], attrs, opset=opset)
    np.testing.assert_array_equal(out[0], x)


@pytest.mark.parametrize("opset", [12, 13, 22])
def test_dropout_mask_ratio_and_false_training_mode(opset):
    x = rand(3, 4)
    check_op("Dropout", [x, np.float32(0.3), np.bool_(False)], {}, opset=opset, num_outputs=2)
    check_op("Dropout", [x, Const(np.float32(0.3))], {"seed": 5}, opset=opset, num_outputs=2)


def test_dropout_old_mask_is_all_kept():
    # ONNX's reference (and opset 12+ onnxruntime) return an all-true mask at
    # inference; onnxruntime's Dropout-7..10 kernels return zeros instead.
    x = rand(2, 3)
    out = check_op("Dropout", [x], {"ratio": 0.2}, opset=10, num_outputs=2,
                   expected=[x, np.ones(x.shape, bool)])
    assert out[1].dtype == bool
    # Before opset 10 the mask has the data's type.
    out = check_op("Dropout", [x], {"ratio": 0.2}, opset=7, num_outputs=2,
                   expected=[x, np.ones(x.shape, np.float32)])
    assert out[1].dtype == np.float32


@pytest.mark.parametrize("attrs", [{"is_test": 1}, {"is_test": 1, "ratio": 0.9}])
def test_dropout_opset6_test_mode(attrs):
    x = rand(4, 2)
    check_op("Dropout", [x], attrs, opset=6, expected=[x])


def test_dropout_training_with_seed_is_numpy_reproducible():
    x, ratio = rand(3, 4, 5), 0.75
    y, mask = check_op("Dropout", [x, np.float32(ratio), np.bool_(True)], {"seed": 0}, opset=13,
                       num_outputs=2, expected=_numpy_dropout(x, ratio, 0))
    assert mask.dtype == bool and 0 < mask.sum() < mask.size


def _numpy_dropout(x, ratio, seed):
    keep = np.random.RandomState(seed).uniform(0, 1, x.shape) >= ratio
    return [(x * keep / (1 - ratio)).astype(x.dtype), keep]


def test_dropout_training_without_seed_is_refused():
    model = make_model("Dropout", [rand(2, 3), np.float32(0.5), np.bool_(True)], opset=13)
    with pytest.raises(ExecutionError, match="needs a `seed`"):
        run_ours(model, {"in0": rand(2, 3), "in1": np.float32(0.5), "in2": np.bool_(True)})


def test_dropout_opset6_training_without_seed_is_refused():
    x = rand(2, 3)
    with pytest.raises(ExecutionError, match="needs a `seed`"):
        run_ours(make_model("Dropout", [x], {"is_test": 0}, opset=6), {"in0": x})


def test_dropout_rejects_bad_inputs():
    with pytest.raises(TypeInferenceError, match="ratio out of range"):
        compile_one("Dropout", [rand(2, 3), Const(np.float32(1.5))], opset=13)
    with pytest.raises(TypeInferenceError, match="training_mode"):
        compile_one("Dropout", [rand(2, 3), np.float32(0.5), np.float32(1.0)], opset=13)


# ------------------------------------------------------------------- SwiGLU
@pytest.mark.parametrize("alpha", [1.0, 1.702])
def test_swiglu(alpha):
    # onnxruntime cannot run SwiGLU-28 (it expands to Swish-24): compare with the formula.
    a, b = rand(2, 3, 8), rand(2, 3, 8)
    want = a / (1 + np.exp(-alpha * a)) * b
    check_op("SwiGLU", [a, Const(b)], {"alpha": alpha}, opset=28, expected=[want], **TOL)


def test_swiglu_float16_and_shape_check():
    a, b = rand(4, 6, dtype=np.float16), rand(4, 6, dtype=np.float16)
    af = a.astype(np.float32)
    check_op("SwiGLU", [a, b], {}, opset=28, expected=[(af / (1 + np.exp(-af)) * b).astype(np.float16)],
             **F16_TOL)
    with pytest.raises(TypeInferenceError, match="does not broadcast"):
        compile_one("SwiGLU", [rand(4, 6), rand(1, 6)], opset=28)


# --------------------------------------------------------- RotaryEmbedding
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rot_dim", [0, 4])
def test_rotary_4d_with_position_ids(interleaved, rot_dim):
    half = (rot_dim or 8) // 2
    pos = rng.integers(0, 10, (2, 3)).astype(np.int64)
    check_op("RotaryEmbedding", [rand(2, 4, 3, 8), Const(rand(10, half)), Const(rand(10, half)), pos],
             {"interleaved": interleaved, "rotary_embedding_dim": rot_dim}, opset=23, **TOL)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_3d_without_position_ids(interleaved):
    check_op("RotaryEmbedding", [rand(2, 3, 16), rand(2, 3, 4), rand(2, 3, 4)],
             {"num_heads": 2, "interleaved": interleaved}, opset=23, **TOL)


def test_rotary_float16():
    check_op("RotaryEmbedding", [rand(1, 2, 3, 8, dtype=np.float16), rand(1, 3, 4, dtype=np.float16),
                                 rand(1, 3, 4, dtype=np.float16)], {}, opset=23, **F16_TOL)


def test_rotary_rejects_bad_inputs():
    with pytest.raises(TypeInferenceError, match="num_heads is required"):
        compile_one("RotaryEmbedding", [rand(2, 3, 16), rand(2, 3, 4), rand(2, 3, 4)], opset=23)
    with pytest.raises(TypeInferenceError, match="cos_cache has the wrong shape"):
        compile_one("RotaryEmbedding", [rand(2, 4, 3, 8), rand(2, 3, 3), rand(2, 3, 4)], opset=23)
    with pytest.raises(TypeInferenceError, match="must be even"):
        compile_one("RotaryEmbedding", [rand(2, 4, 3, 8), rand(2, 3, 3), rand(2, 3, 3)],
                    {"rotary_embedding_dim": 3}, opset=23)


# ---------------------------------------------------------------- Attention
Q4, K4, V4 = (2, 4, 3, 8), (2, 4, 5, 8), (2, 4, 5, 6)


@pytest.mark.parametrize("opset", [23, 24, 25])
@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"scale": 0.3}, {"softcap": 2.0}])
def test_attention_4d(opset, attrs):
    check_op("Attention", [rand(*Q4), rand(*K4), rand(*V4)], attrs, opset=opset, **TOL)


@pytest.mark.parametrize("mask", ["float2d", "float4d", "bool", "bool_short", "float_short"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_masks(mask, causal):
    masks = {"float2d": rand(3, 5), "float4d": rand(2, 1, 3, 5), "bool": rng.random((2, 4, 3, 5)) > 0.3,
             "bool_short": rng.random((3, 4)) > 0.2, "float_short": rand(1, 3, 4)}
    inputs = [rand(*Q4), rand(*K4), rand(*V4), masks[mask]]
    # onnxruntime rejects masks shorter than the key sequence (ONNX pads them with "masked").
    expected = onnx_reference("Attention", inputs, {"is_causal": causal}, opset=24) \
        if mask.endswith("short") else None
    check_op("Attention", inputs, {"is_causal": causal}, opset=24, expected=expected, **TOL)


def test_attention_fully_masked_row_is_zero():
    mask = np.ones((3, 5), bool)
    mask[1] = False
    out = check_op("Attention", [rand(*Q4), rand(*K4), rand(*V4), mask], {}, opset=24, **TOL)
    assert not np.isnan(out[0]).any() and np.all(out[0][:, :, 1] == 0)


@pytest.mark.parametrize("heads", [(4, 2), (4, 1)])
def test_attention_gqa_3d(heads):
    qh, kvh = heads
    check_op("Attention", [rand(2, 3, qh * 8), rand(2, 5, kvh * 8), rand(2, 5, kvh * 6)],
             {"q_num_heads": qh, "kv_num_heads": kvh, "is_causal": 1}, opset=23, **TOL)


def test_attention_kv_cache():
    past_k, past_v = rand(2, 2, 4, 8), rand(2, 2, 4, 6)
    out = check_op("Attention", [rand(2, 4, 1, 8), rand(2, 2, 1, 8), rand(2, 2, 1, 6), None, past_k, past_v],
                   {"is_causal": 1}, opset=24, num_outputs=3, **TOL)
    assert out[1].shape == (2, 2, 5, 8) and np.array_equal(out[1][:, :, :4], past_k)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_qk_matmul_output_modes(mode):
    check_op("Attention", [rand(*Q4), rand(*K4), rand(*V4), rand(3, 5)],
             {"qk_matmul_output_mode": mode, "softcap": 3.0}, opset=24, num_outputs=4, **TOL)


def test_attention_causal_bias_output_keeps_minus_infinity():
    # Mode 2 exposes the biased scores: ONNX says masked scores are -inf
    # (onnxruntime writes -FLT_MAX there), so compare with ONNX's reference.
    inputs = [rand(*Q4), rand(*K4), rand(*V4), rand(3, 5)]
    attrs = {"qk_matmul_output_mode": 2, "is_causal": 1}
    out = check_op("Attention", inputs, attrs, opset=24, num_outputs=4,
                   expected=onnx_reference("Attention", inputs, attrs, opset=24, num_outputs=4), **TOL)
    assert np.isneginf(out[3][0, 0, 0, 1])


def test_attention_external_cache_and_windows():
    seqlen = np.array([3, 5], np.int64)
    check_op("Attention", [rand(*Q4), rand(*K4), rand(*V4), None, None, None, seqlen], {"is_causal": 1},
             opset=24, **TOL)
    check_op("Attention", [rand(*Q4), rand(*K4), rand(*V4), None, None, None, seqlen],
             {"left_window_size": 1, "right_window_size": 0}, opset=25, **TOL)
    check_op("Attention", [rand(*Q4), rand(*K4), rand(*V4)], {"left_window_size": 2, "is_causal": 1},
             opset=25, **TOL)


def test_attention_float16_and_softmax_precision():
    q, k, v = (rand(*s, dtype=np.float16) for s in (Q4, K4, V4))
    check_op("Attention", [q, k, v], {"is_causal": 1}, opset=23, **F16_TOL)
    check_op("Attention", [q, k, v], {"softmax_precision": 1}, opset=24, **F16_TOL)


def test_attention_symbolic_shapes():
    from frontends.onnx import ImportOptions, import_model
    model = one_node("Attention", {"q": rand(1, 3, 32), "k": rand(1, 5, 16), "v": rand(1, 5, 8)},
                     {"q_num_heads": 4, "kv_num_heads": 2}, 23, [("y", 0)],
                     {"q": ["B", "S", 32], "k": ["B", "T", 16], "v": ["B", "T", 8]})
    g = import_model(model, ImportOptions(onnx_shape_inference=False))
    assert g.outputs[0].type.shape == ("B", "S", 16)


def test_attention_rejects_bad_inputs():
    with pytest.raises(TypeInferenceError, match="need the q_num_heads and kv_num_heads"):
        compile_one("Attention", [rand(2, 3, 8), rand(2, 5, 8), rand(2, 5, 8)], opset=24)
    with pytest.raises(TypeInferenceError, match="must not be given for 4-D"):
        compile_one("Attention", [rand(*Q4), rand(*K4), rand(*V4)], {"q_num_heads": 4, "kv_num_heads": 4},
                    opset=25)
    with pytest.raises(TypeInferenceError, match="multiple of the key/value head count"):
        compile_one("Attention", [rand(2, 4, 3, 8), rand(2, 3, 5, 8), rand(2, 3, 5, 8)], opset=24)
    with pytest.raises(TypeInferenceError, match="same head size"):
        compile_one("Attention", [rand(2, 4, 3, 8), rand(2, 4, 5, 6), rand(2, 4, 5, 8)], opset=24)
    with pytest.raises(TypeInferenceError, match="given together"):
        compile_one("Attention", [rand(*Q4), rand(*K4), rand(*V4), None, rand(2, 4, 1, 8)], opset=24)


def test_attention_23_drops_redundant_head_counts_on_4d():
    # Opset 23/24 allowed q/kv_num_heads with 4-D inputs; the rule drops them.
    check_op("Attention", [rand(*Q4), rand(*K4), rand(*V4)], {"q_num_heads": 4, "kv_num_heads": 4},
             opset=23, **TOL)


# ------------------------------------------------------ CausalConvWithState
@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("activation", ["none", "silu"])
def test_causal_conv_with_state(k, with_state, activation):
    x, w, bias = rand(2, 3, 5), rand(3, 1, k), rand(3)
    state = rand(2, 3, k - 1) if with_state else None
    check_op("CausalConvWithState", [x, Const(w), bias, state], {"activation": activation}, opset=27,
             num_outputs=2, **TOL)


def test_causal_conv_rejects_bad_weight():
    with pytest.raises(TypeInferenceError, match="one kernel per channel"):
        compile_one("CausalConvWithState", [rand(2, 3, 5), rand(4, 1, 3)], opset=27, num_outputs=2)


# ---------------------------------------------------------- LinearAttention
def _linear_attention_ref(q, k, v, state, decay, beta, hq, hkv, scale):
    """Token-by-token loop straight from the operator's doc, for comparison."""
    b, t, _ = q.shape
    dk, dv = q.shape[2] // hq, v.shape[2] // hkv
    q4 = q.reshape(b, t, hq, dk)
    k4, v4 = k.reshape(b, t, hkv, dk), v.reshape(b, t, hkv, dv)
    s = np.zeros((b, hkv, dk, dv)) if state is None else state.astype(np.float64)
    out = np.zeros((b, t, hq, dv))
    for n in range(b):
        for i in range(t):
            for h in range(hkv):
                if decay is not None:
                    g = decay[n, i, h] if decay.shape[2] == hkv else decay[n, i, h * dk:(h + 1) * dk, None]
                    s[n, h] = np.exp(g) * s[n, h]
                vt = v4[n, i, h]
                if beta is not None:
                    vt = beta[n, i, h if beta.shape[2] > 1 else 0] * (vt - s[n, h].T @ k4[n, i, h])
                s[n, h] = s[n, h] + np.outer(k4[n, i, h], vt)
            for h in range(hq):
                out[n, i, h] = scale * q4[n, i, h] @ s[n, h // (hq // hkv)]
    return [out.reshape(b, t, -1).astype(q.dtype), s.astype(q.dtype if state is None else state.dtype)]


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2)])
def test_linear_attention(rule, heads):
    hq, hkv = heads
    b, t, dk, dv = 2, 4, 3, 5
    q, k, v = rand(b, t, hq * dk), rand(b, t, hkv * dk) * 0.5, rand(b, t, hkv * dv)
    decay = -np.abs(rand(b, t, hkv)) if rule in ("gated", "gated_delta") else None
    beta = 1 / (1 + np.exp(-rand(b, t, hkv))) if rule in ("delta", "gated_delta") else None
    state = rand(b, hkv, dk, dv)
    want = _linear_attention_ref(q, k, v, state, decay, beta, hq, hkv, 1 / np.sqrt(dk))
    check_op("LinearAttention", [q, k, v, state, decay, beta],
             {"q_num_heads": hq, "kv_num_heads": hkv, "update_rule": rule}, opset=27, num_outputs=2,
             expected=want, **TOL)


def test_linear_attention_per_key_decay_no_state_explicit_scale():
    b, t, h, dk, dv = 1, 3, 2, 4, 2
    q, k, v = rand(b, t, h * dk), rand(b, t, h * dk), rand(b, t, h * dv)
    decay = -np.abs(rand(b, t, h * dk))
    want = _linear_attention_ref(q, k, v, None, decay, None, h, h, 0.5)
    check_op("LinearAttention", [q, k, v, None, decay],
             {"q_num_heads": h, "kv_num_heads": h, "update_rule": "gated", "scale": 0.5}, opset=27,
             num_outputs=2, expected=want, **TOL)


def test_linear_attention_rejects_missing_gate():
    with pytest.raises(TypeInferenceError, match="needs decay input"):
        compile_one("LinearAttention", [rand(1, 2, 4), rand(1, 2, 4), rand(1, 2, 4)],
                    {"q_num_heads": 1, "kv_num_heads": 1, "update_rule": "gated"}, opset=27, num_outputs=2)


def test_every_family_op_is_registered():
    for op in ("Attention", "RotaryEmbedding", "SwiGLU", "Dropout", "CausalConvWithState", "LinearAttention"):
        assert has_schema(op)
