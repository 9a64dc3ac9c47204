"""Whole models through the reference target: digits (fp32 and every int8 variant), light ImageNet models.

The digits models have trained weights, so they check numerics (against the
logits onnxruntime produced and against onnxruntime run here).  The light
models' weights are all one constant: they prove op coverage, and are also
checked against onnxruntime on random inputs.
"""

import glob
import os

import numpy as np
import onnx
import pytest

import compiler
from frontends.onnx import import_onnx
from ir import parse_graph, print_graph
from tests.ops.ortcheck import run_ort

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
LIGHT = sorted(os.path.basename(p)[len("light_"):-len(".onnx")]
               for p in glob.glob(os.path.join(LIGHT_DIR, "light_*.onnx")))
INT8_VARIANTS = ["qdq_minmax", "qdq_entropy", "qdq_entropy_2048bins", "qdq_percentile",
                 "qdq_minmax_fp32out", "qdq_minmax_u8s8", "qop_minmax", "dynamic", "dynamic_perchannel"]


def _output_step(model_path: str) -> float:
    """One quantization step of the model's output, in output units.

    A quantized output (a final DequantizeLinear) steps by its scale.  A float
    output computed by a last Gemm from a quantized activation steps by that
    activation's scale times the largest L1 norm of a weight row: the most one
    step of every input element can move an output.
    """
    m = onnx.load(model_path)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    last = producer[m.graph.output[0].name]
    if last.op_type == "DequantizeLinear":
        return float(np.max(inits[last.input[1]]))
    if last.op_type in ("Gemm", "MatMul"):
        act, weight = producer.get(last.input[0]), producer.get(last.input[1])
        if act is not None and act.op_type == "DequantizeLinear" and weight is not None:
            q = inits[weight.input[0]].astype(np.float64)
            axis = next((a.i for a in weight.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            scale, zero = inits[weight.input[1]], inits[weight.input[2]].astype(np.float64)
            if scale.size > 1:  # per-channel along `axis`
                shape[axis] = -1
            w = (q - zero.reshape(shape)) * scale.reshape(shape)
            rows = w if last.op_type == "Gemm" and any(a.name == "transB" and a.i for a in last.attribute) else w.T
            return float(np.max(inits[act.input[1]]) * np.abs(rows).sum(axis=1).max())
    return 0.0


@pytest.fixture(scope="module")
def digits(shared_data):
    d = np.load(os.path.join(shared_data, "digits_test.npz"))
    return d["x_test"].astype(np.float32), d["y_test"]


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_digits_fp32_matches_onnxruntime(shared_data, digits, name):
    x, y = digits
    if name == "mlp":
        x = x.reshape(len(x), -1)
    path = os.path.join(shared_data, f"digits_{name}.onnx")
    logits = compiler.compile(path).run({"input": x})["logits"]
    expected = np.load(os.path.join(shared_data, f"digits_{name}_fp32_logits.npy"))
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, run_ort(onnx.load(path), {"input": x})[0], atol=1e-4, rtol=0)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
    if name == "cnn":
        assert round(accuracy * 100, 2) == 99.33
    else:
        assert accuracy > 0.96


@pytest.mark.parametrize("variant", INT8_VARIANTS)
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_digits_int8_within_one_quantization_step(shared_data, digits, name, variant):
    x, _ = digits
    if name == "mlp":
        x = x.reshape(len(x), -1)
    path = os.path.join(shared_data, "int8", f"digits_{name}.{variant}.onnx")
    logits = compiler.compile(path).run({"input": x})["logits"]
    step = _output_step(path)
    # Dynamic quantization has float outputs from exact integer accumulators: float rounding only.
    tol = step * 1.0001 if step else 1e-4 * max(1.0, float(np.abs(logits).max()))
    # onnxruntime unoptimized runs the model's ops as written (our semantics); optimized, it
    # fuses QDQ groups into integer kernels that may round an intermediate one step apart.
    for optimize in (False, True):
        ort_logits = run_ort(onnx.load(path), {"input": x}, optimize=optimize)[0]
        assert np.abs(logits - ort_logits).max() <= tol, f"onnxruntime optimize={optimize}"
    saved = np.load(os.path.join(shared_data, f"digits_{name}_int8_logits.npz"))[variant + "__noopt"]
    assert np.abs(logits - saved).max() <= tol


@pytest.mark.parametrize("model", LIGHT)
def test_light_model_matches_onnxruntime(model):
    path = os.path.join(LIGHT_DIR, f"light_{model}.onnx")
    m = compiler.compile(path)
    feeds = m.random_inputs(seed=1)
    ours = m.run(feeds)
    theirs = run_ort(onnx.load(path), feeds)
    for name, ref in zip(m.output_names, theirs):
        np.testing.assert_allclose(ours[name], ref, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("model", [m if m in ("squeezenet", "shufflenet") else
                                   pytest.param(m, marks=pytest.mark.slow) for m in LIGHT])
def test_light_model_with_random_weights_matches_onnxruntime(model):
    """Random weights make the check sharp (the shipped weights are one constant)."""
    from tests.model_zoo import light_input, randomized_light_model
    proto = randomized_light_model(model)
    feeds = light_input(proto)
    ours = list(compiler.compile(proto).run(feeds).values())[0]
    theirs = run_ort(proto, feeds)[0]
    scale = float(np.abs(theirs).max())
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * scale)


def _all_model_paths():
    paths = [os.path.join(LIGHT_DIR, f"light_{m}.onnx") for m in LIGHT]
    shared = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    paths += sorted(glob.glob(os.path.join(shared, "*.onnx"))) + sorted(glob.glob(os.path.join(shared, "int8", "*.onnx")))
    return paths


@pytest.mark.parametrize("path", _all_model_paths(), ids=os.path.basename)
def test_text_ir_round_trips(path):
    g = import_onnx(path)
    text = print_graph(g)
    weights = {c.name: c.const for c in g.constants.values()}
    again = print_graph(parse_graph(text, weights=weights))
    assert again == text
    inline = print_graph(g, constants="inline")
    assert print_graph(parse_graph(inline), constants="inline") == inline
