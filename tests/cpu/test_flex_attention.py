"""cpu target: FlexAttention through the expand-flex-attention pass, against the reference.

The ONNX suite's models (score_mod masks and biases, prob_mod, soft-capping,
relative positions, grouped heads, float64 and float16) re-run at larger,
odd shapes than the suite's, plus a score_mod that reads a captured outer
value.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler
from tests.onnx_suite import iter_cases

from .test_reduction import assert_close

RNG = np.random.default_rng(0)


@functools.lru_cache(maxsize=1)
def _suite_models() -> dict:
    return {c.name: c.model for c in iter_cases(("node",), "^test_flexattention")}


def _suite_model(name: str) -> onnx.ModelProto:
    return _suite_models()[name]


def _resized(model: onnx.ModelProto, shapes: dict) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        dims = vi.type.tensor_type.shape.dim
        for dim, size in zip(dims, shapes[vi.name]):
            dim.dim_value = size
    for vi in m.graph.output:
        vi.type.tensor_type.ClearField("shape")
    return m


def run_both(model, feeds, tol):
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert module.executable.description["kernels"]
    assert_close(got, want, tol, tol)


@pytest.mark.slow  # onnx builds its whole node suite in memory to hand us these models
@pytest.mark.parametrize("case,heads", [
    ("test_flexattention", (3, 3)), ("test_flexattention_causal_mask", (2, 2)),
    ("test_flexattention_relative_positional", (2, 2)), ("test_flexattention_soft_cap", (4, 4)),
    ("test_flexattention_prob_mod", (2, 2)), ("test_flexattention_gqa", (6, 2)),
    ("test_flexattention_scaled", (2, 2)), ("test_flexattention_diff_head_sizes", (2, 2)),
])
def test_suite_models_at_other_shapes(case, heads):
    model = _suite_model(case)
    hq, hk = heads
    dv = 24 if "diff_head" in case else 16
    shapes = {"Q": (2, hq, 13, 16), "K": (2, hk, 21, 16), "V": (2, hk, 21, dv)}
    if "causal" in case or "relative" in case:
        shapes["K"], shapes["V"] = (2, hk, 13, 16), (2, hk, 13, dv)
    feeds = {n: RNG.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    run_both(_resized(model, shapes), feeds, 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("case,dtype,tol", [("test_flexattention_double", np.float64, 1e-10),
                                            ("test_flexattention_fp16", np.float16, 2e-3)])
def test_other_float_types(case, dtype, tol):
    model = _suite_model(case)
    shapes = {"Q": (1, 2, 9, 16), "K": (1, 2, 11, 16), "V": (1, 2, 11, 16)}
    feeds = {n: RNG.standard_normal(s).astype(dtype) for n, s in shapes.items()}
    run_both(_resized(model, shapes), feeds, tol)


@pytest.mark.parametrize("hq,hk", [(2, 2), (6, 2)])
@pytest.mark.parametrize("prob_mod", [False, True])
def test_score_mod_with_a_captured_value(hq, hk, prob_mod):
    """score_mod adds a bias that lives in the outer graph (a capture); prob_mod scales; grouped heads."""
    sub = oh.make_graph([oh.make_node("Add", ["scores", "outer_bias"], ["out"])], "score_mod",
                        [oh.make_tensor_value_info("scores", T.FLOAT, None)],
                        [oh.make_tensor_value_info("out", T.FLOAT, None)])
    mods = {"score_mod": sub, "scale": 0.2}
    if prob_mod:
        mods["prob_mod"] = oh.make_graph(
            [oh.make_node("Mul", ["probs", "half"], ["out"])], "prob_mod",
            [oh.make_tensor_value_info("probs", T.FLOAT, None)], [oh.make_tensor_value_info("out", T.FLOAT, None)],
            [onnx.numpy_helper.from_array(np.float32(0.5), "half")])
    node = oh.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview", **mods)
    shapes = {"Q": [2, hq, 9, 8], "K": [2, hk, 11, 8], "V": [2, hk, 11, 12], "bias_in": [9, 11]}
    graph = oh.make_graph([oh.make_node("Mul", ["bias_in", "two"], ["outer_bias"]), node], "g",
                          [oh.make_tensor_value_info(n, T.FLOAT, s) for n, s in shapes.items()],
                          [oh.make_tensor_value_info("Y", T.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.float32(2.0), "two")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 24), oh.make_opsetid("ai.onnx.preview", 1)])
    feeds = {n: RNG.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    run_both(model, feeds, 1e-5)
