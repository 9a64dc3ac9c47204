"""fold-qdq and the integer cpu kernels against onnxruntime and the reference.

For each small quantized model: onnxruntime's output, our reference on the
folded graph (must fold, and match onnxruntime within one output step: in
practice exactly), and the cpu build (bit-identical with the reference), with
VNNI and with the generic (AVX2) dot product.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from compiler.driver import build
from frontends.onnx import import_onnx
from ir.interpreter import run_graph
from passes.manager import run_pipeline

from . import qmodels


def _ort(model, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def _ref_folded(model, feeds):
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq")
    counts = g.op_counts()
    assert counts.get("nnc.QConv", 0) + counts.get("nnc.QMatMul", 0) >= 1, f"fold-qdq did not fire: {counts}"
    return run_graph(g, feeds)[0], counts


def _cpu(model, feeds, **options):
    res = build(model, target="cpu", options=options or None)
    y = res.module.run(feeds)
    return (list(y.values())[0] if isinstance(y, dict) else y[0]), res.graph.op_counts()


def _check(model, feeds, step: float, isa: str = "auto") -> None:
    want = _ort(model, feeds)
    ref, _ = _ref_folded(model, feeds)
    diff = np.abs(ref.astype(np.float64) - want.astype(np.float64))
    assert diff.max() <= step * 1.001, f"ref vs onnxruntime: {diff.max()} > one step {step}"
    # In practice the integer arithmetic is onnxruntime's exactly.
    assert np.array_equal(ref, want), f"{np.count_nonzero(diff)} of {diff.size} values differ from onnxruntime"
    got, counts = _cpu(model, feeds, **({} if isa == "auto" else {"isa": isa}))
    assert counts.get("nnc.QConv", 0) + counts.get("nnc.QMatMul", 0) >= 1
    assert got.dtype == ref.dtype and np.array_equal(got, ref), \
        f"cpu vs ref: max diff {np.abs(got.astype(np.float64) - ref).max()}"


CONV_CASES = [
    dict(),
    dict(act="u8", relu="relu"),
    dict(stride=2, pad=0, k=3, relu="clip"),
    dict(wtype="u8", per_channel=False, act="u8"),    # uint8 weights: nonzero weight zero points
    dict(group=8, c=8, m=8, hw=(7, 19)),               # depthwise
    dict(group=2, c=8, m=6, k=1, pad=0, bias=False),   # grouped 1x1
    dict(dilation=2, pad=2, hw=(12, 40), m=40),        # 3 pixel vectors, 40 channels
    dict(k=5, pad=2, c=3, m=7, hw=(5, 5), batch=1),    # K = 75: not a multiple of 4
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_qdq_conv(case):
    model, feeds = qmodels.qdq_conv(seed=len(str(case)), **case)
    _check(model, feeds, 0.05)


MATMUL_CASES = [
    dict(),
    dict(k=64, n=16, m=1),
    dict(gemm=True, trans_b=True, act="s8", m=5, n=70),
    dict(gemm=True, bias=False, wtype="u8", per_channel=False),
    dict(rank3=True, act="s8", k=9, n=3),
    dict(m=20, k=130, n=33, act="s8", wtype="u8"),
]


@pytest.mark.parametrize("case", MATMUL_CASES, ids=[str(i) for i in range(len(MATMUL_CASES))])
def test_qdq_matmul(case):
    model, feeds = qmodels.qdq_matmul(seed=len(str(case)), **case)
    _check(model, feeds, 0.2)


@pytest.mark.parametrize("act,wtype", [("u8", "s8"), ("s8", "s8"), ("u8", "u8")])
def test_qlinear_conv(act, wtype):
    model, feeds = qmodels.qlinear_conv(act=act, wtype=wtype)
    _check(model, feeds, 1.0)


def test_integer_ops():
    for model, feeds in (qmodels.matmul_integer(), qmodels.conv_integer()):
        _check(model, feeds, 0.0)


@pytest.mark.parametrize("builder,kw", [(qmodels.qdq_conv, dict(wtype="u8", act="u8", relu="relu")),
                                        (qmodels.qdq_conv, dict(stride=2, pad=0, act="s8", hw=(13, 21))),
                                        (qmodels.qdq_matmul, dict(act="s8", wtype="u8", m=6))])
def test_generic_dot_product_matches(builder, kw):
    """The non-VNNI (AVX2) dot product gives the same integers."""
    model, feeds = builder(seed=3, **kw)
    _check(model, feeds, 0.2, isa="avx2")


def test_fold_must_not_fire_on_float_weights():
    """A DQ -> Conv whose weights are plain floats stays a float Conv."""
    model, feeds = qmodels.qdq_conv()
    g = import_onnx(model)
    # Turn the weights' DequantizeLinear into a float constant: no integer weights to fold.
    run_pipeline(g, "fold-constants")
    run_pipeline(g, "fold-qdq")
    assert "nnc.QConv" not in g.op_counts() and "Conv" in g.op_counts()


def test_fold_must_not_fire_when_intermediate_is_shared():
    from onnx import helper
    model, feeds = qmodels.qdq_matmul()
    model.graph.output.append(helper.make_tensor_value_info("c", 1, None))  # the float matmul is an output
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq")
    assert "nnc.QMatMul" not in g.op_counts()


def test_fused_relu_becomes_saturation_bounds():
    model, _ = qmodels.qdq_conv(act="u8", relu="relu")
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq")
    (node,) = [n for n in g.nodes if n.op == "QConv"]
    assert "Relu" not in g.op_counts()
    assert node.attr("act_min") == 128 and node.attr("act_max") == 255  # zero point 128: Relu clips below it


def test_cpu_runs_integer_matmul_with_runtime_weights():
    """A MatMulInteger whose weights are a run-time input is not folded into nnc.QMatMul (no
    packing at build time): it runs on its own kernel (kernels/qmatmul_runtime.py), exactly."""
    from onnx import TensorProto, helper
    node = helper.make_node("MatMulInteger", ["x", "b"], ["y"])
    g = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, 8]),
                                        helper.make_tensor_value_info("b", TensorProto.UINT8, [8, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    res = build(m, target="cpu")
    assert "nnc.QMatMul" not in res.graph.op_counts()
    rng = np.random.default_rng(0)
    feeds = {"x": rng.integers(0, 256, (2, 8), dtype=np.uint8), "b": rng.integers(0, 256, (8, 4), dtype=np.uint8)}
    want = feeds["x"].astype(np.int32) @ feeds["b"].astype(np.int32)
    np.testing.assert_array_equal(res.module.run(feeds)["y"], want)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_qlinear_add_on_cpu_matches_reference(dtype):
    """com.microsoft.QLinearAdd (QOperator models' residual add) as a cpu elementwise op."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    ty = TensorProto.INT8 if dtype == np.int8 else TensorProto.UINT8
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in (
        ("as", np.float32(0.03)), ("azp", dtype(3)), ("bs", np.float32(0.011)), ("bzp", dtype(-2 if dtype == np.int8 else 130)),
        ("cs", np.float32(0.04)), ("czp", dtype(1)))]
    node = helper.make_node("QLinearAdd", ["a", "as", "azp", "b", "bs", "bzp", "cs", "czp"], ["y"],
                            domain="com.microsoft")
    g = helper.make_graph([node], "qa", [helper.make_tensor_value_info("a", ty, [2, 5, 37]),
                                         helper.make_tensor_value_info("b", ty, [1, 5, 37])],
                          [helper.make_tensor_value_info("y", ty, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    feeds = {"a": rng.integers(info.min, info.max + 1, (2, 5, 37)).astype(dtype),
             "b": rng.integers(info.min, info.max + 1, (1, 5, 37)).astype(dtype)}
    ref = run_graph(import_onnx(m), feeds)[0]
    got, _ = _cpu(m, feeds)
    assert np.array_equal(got, ref)
    want = _ort(m, feeds)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
