"""float16/bfloat16 MatMul, Gemm, Softmax, ReduceMax and fused chains on the cpu target vs the reference.

Products accumulate in float32 and round once per op, as the reference does, so results agree to
float32 rounding noise (one half-precision ulp where that noise crosses a rounding tie).
"""

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper

import compiler
from tests.cpu.helpers import one_op
from tests.ops.ortcheck import Const

rng = np.random.default_rng(13)
HALF = [np.float16, ml_dtypes.bfloat16]
IDS = ["f16", "bf16"]


def _compare(model, feeds, ulps=1):
    ref = compiler.compile(model, target="ref").run(feeds)
    exe = compiler.compile(model, target="cpu")
    cpu = exe.run(feeds)
    for name in ref:
        a, r = cpu[name], ref[name]
        assert a.dtype == r.dtype and a.shape == r.shape
        a32, r32 = a.astype(np.float32), r.astype(np.float32)
        ulp = np.abs(r32) * (2.0 ** -10 if r.dtype == np.float16 else 2.0 ** -7) + 1e-6
        assert np.all(np.abs(a32 - r32) <= ulps * ulp), (name, np.abs(a32 - r32).max())
        # Most elements agree exactly.
        assert np.mean(a32 == r32) > 0.97, name
    return exe


@pytest.mark.parametrize("dt", HALF, ids=IDS)
@pytest.mark.parametrize("shapes", [((5, 17), (17, 9)), ((2, 3, 8, 16), (2, 3, 16, 7)), ((4, 6, 10), (10,)),
                                    ((10,), (3, 10, 5))])
def test_matmul(dt, shapes):
    a, b = (rng.standard_normal(s).astype(dt) for s in shapes)
    exe = _compare(*one_op("MatMul", [a, b]))
    assert any("MatMul" in label for label, _ in exe.profile({"in0": a, "in1": b}))


@pytest.mark.parametrize("dt", HALF, ids=IDS)
def test_gemm_alpha_beta_trans(dt):
    a = rng.standard_normal((12, 7)).astype(dt)
    b = rng.standard_normal((9, 12)).astype(dt)
    c = Const(rng.standard_normal((9,)).astype(dt))
    _compare(*one_op("Gemm", [a, b, c], {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}))


@pytest.mark.parametrize("dt", HALF, ids=IDS)
def test_matmul_with_fused_epilogue_rounds_per_op(dt):
    """MatMul + Add + Relu in one kernel: the product and the sum are rounded as separate ops would be."""
    code = onnx.TensorProto.FLOAT16 if dt is np.float16 else onnx.TensorProto.BFLOAT16
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Add", ["m", "bias"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    bias = rng.standard_normal((11,)).astype(dt)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", code, [6, 13]),
                                           helper.make_tensor_value_info("b", code, [13, 11])],
                              [helper.make_tensor_value_info("y", code, [6, 11])],
                              initializer=[onnx.numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    _compare(model, {"a": rng.standard_normal((6, 13)).astype(dt), "b": rng.standard_normal((13, 11)).astype(dt)})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [-1, 1])
def test_bf16_softmax(op, axis):
    x = (rng.standard_normal((3, 8, 19)) * 3).astype(ml_dtypes.bfloat16)
    _compare(*one_op(op, [x], {"axis": axis}), ulps=2)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_bf16_extreme_reductions_are_exact(op):
    x = rng.standard_normal((4, 9, 21)).astype(ml_dtypes.bfloat16)
    model, feeds = one_op(op, [x, Const(np.array([1], np.int64))], {"keepdims": 0}, opset=18)
    ref = compiler.compile(model, target="ref").run(feeds)["out0"]
    cpu = compiler.compile(model, target="cpu").run(feeds)["out0"]
    np.testing.assert_array_equal(cpu.view(np.uint16), ref.view(np.uint16))


def test_bf16_sum_is_refused_with_the_reason():
    x = rng.standard_normal((4, 9)).astype(ml_dtypes.bfloat16)
    model, _ = one_op("ReduceSum", [x, Const(np.array([1], np.int64))], opset=18)
    with pytest.raises(Exception, match="ReduceSum on bf16"):
        compiler.compile(model, target="cpu")
