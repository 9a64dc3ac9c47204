"""The cpu target's elementwise and injective kernels against the reference interpreter."""

import numpy as np
import pytest

from tests.cpu.helpers import compare_cpu, one_op
from tests.ops.ortcheck import Const

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 5, 37)).astype(np.float32)
Y = rng.standard_normal((5, 37)).astype(np.float32)
POS = np.abs(X) + 0.1

UNARY = ["Relu", "Neg", "Abs", "Sigmoid", "Tanh", "Exp", "Floor", "Ceil", "Round", "Sign", "Softsign",
         "Softplus", "Erf", "Sin", "Cos", "Atan", "HardSwish", "Mish", "Gelu", "Reciprocal"]


@pytest.mark.parametrize("op", UNARY)
def test_unary_float(op):
    compare_cpu(*one_op(op, [X]), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("op", ["Log", "Sqrt"])
def test_unary_positive(op):
    compare_cpu(*one_op(op, [POS]))


@pytest.mark.parametrize("op, attrs", [("LeakyRelu", {"alpha": 0.3}), ("Elu", {"alpha": 0.7}),
                                       ("Selu", {}), ("Celu", {"alpha": 1.5}), ("HardSigmoid", {}),
                                       ("ThresholdedRelu", {"alpha": 0.2}), ("Shrink", {"lambd": 0.4, "bias": 0.1})])
def test_unary_with_attributes(op, attrs):
    compare_cpu(*one_op(op, [X], attrs))


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"])
def test_binary_broadcast_float(op):
    a = POS if op == "Pow" else X
    compare_cpu(*one_op(op, [a, Y]), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.int8])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Mod", "Max", "Min"])
def test_binary_int(op, dtype):
    a = rng.integers(-50 if np.dtype(dtype).kind == "i" else 0, 50, (4, 19)).astype(dtype)
    b = rng.integers(1, 9, (19,)).astype(dtype)
    compare_cpu(*one_op(op, [a, b]))


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons(op):
    compare_cpu(*one_op(op, [np.round(X), np.round(Y)]))


def test_logic_and_where():
    c = X > 0
    d = Y < 0.3
    compare_cpu(*one_op("And", [c, d]))
    compare_cpu(*one_op("Not", [c]))
    compare_cpu(*one_op("Where", [c, X, Y]))


@pytest.mark.parametrize("to", [1, 6, 7, 9, 11])
def test_cast(to):
    compare_cpu(*one_op("Cast", [X * 10], {"to": to}))


def test_clip_with_constant_bounds():
    compare_cpu(*one_op("Clip", [X, Const(np.float32(-0.5)), Const(np.float32(0.25))]))


def test_variadic_sum_and_mean():
    compare_cpu(*one_op("Sum", [X, Y, X]))
    compare_cpu(*one_op("Mean", [X, Y]))


@pytest.mark.parametrize("op, inputs, attrs", [
    ("Transpose", [X], {"perm": [2, 0, 1]}),
    ("Reshape", [X, Const(np.array([15, 37], np.int64))], {}),
    ("Flatten", [X], {"axis": 2}),
    ("Squeeze", [X[:, :1], Const(np.array([1], np.int64))], {}),
    ("Unsqueeze", [Y, Const(np.array([0, 3], np.int64))], {}),
    ("Expand", [Y[:, :1], Const(np.array([2, 5, 9], np.int64))], {}),
    ("Tile", [Y, Const(np.array([2, 3], np.int64))], {}),
    ("Slice", [X, Const(np.array([1, -30], np.int64)), Const(np.array([3, 100], np.int64)),
               Const(np.array([0, 2], np.int64)), Const(np.array([1, 3], np.int64))], {}),
    ("Concat", [X, X[:, :2], X[:, 3:]], {"axis": 1}),
    ("Pad", [Y, Const(np.array([1, 2, 0, 3], np.int64)), Const(np.float32(0.5))], {"mode": "constant"}),
    ("Pad", [Y, Const(np.array([1, 2, 2, 3], np.int64))], {"mode": "reflect"}),
    ("Pad", [Y, Const(np.array([1, 2, 0, 3], np.int64))], {"mode": "edge"}),
    ("Gather", [X, Const(np.array([[2, 0], [-1, 1]], np.int64))], {"axis": 1}),
    ("DepthToSpace", [rng.standard_normal((1, 8, 3, 2)).astype(np.float32)], {"blocksize": 2}),
    ("SpaceToDepth", [rng.standard_normal((1, 2, 4, 6)).astype(np.float32)], {"blocksize": 2}),
])
def test_injective(op, inputs, attrs):
    compare_cpu(*one_op(op, inputs, attrs), rtol=0, atol=0)


def test_gather_with_runtime_indices():
    idx = np.array([4, 0, -2], np.int64)
    compare_cpu(*one_op("Gather", [X, idx], {"axis": 2}), rtol=0, atol=0)


def test_float16_and_float64():
    compare_cpu(*one_op("Add", [X.astype(np.float16), Y.astype(np.float16)]), rtol=1e-3)
    compare_cpu(*one_op("Tanh", [X.astype(np.float64)]))


def test_batchnorm_with_runtime_parameters():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    params = [rng.standard_normal(3).astype(np.float32) for _ in range(3)] + [rng.random(3).astype(np.float32) + 0.5]
    compare_cpu(*one_op("BatchNormalization", [x, *params], {"epsilon": 1e-3}))


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int8])
def test_bitshift_out_of_range_amounts(direction, dtype):
    x = np.array([5, 100, 7, 1], dtype)
    s = np.array([1, 8, 40, 3], dtype)
    compare_cpu(*one_op("BitShift", [x, s], {"direction": direction}))


@pytest.mark.parametrize("op, inputs, attrs", [
    ("Trilu", [X, Const(np.array(1, np.int64))], {"upper": 1}),
    ("Trilu", [X, Const(np.array(-2, np.int64))], {"upper": 0}),
    ("OneHot", [np.array([[1, 4], [-1, 0]], np.int64), Const(np.array(5, np.int64)),
                Const(np.array([0.5, 2.0], np.float32))], {"axis": 1}),
    ("EyeLike", [Y], {"k": 2}),
])
def test_index_computed_ops(op, inputs, attrs):
    compare_cpu(*one_op(op, inputs, attrs), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(3, 3, 3, 1), (2, 9), (5, 1, 7)])
def test_short_last_axis_runs_flat(shape):
    x = rng.standard_normal(shape).astype(np.float32)
    compare_cpu(*one_op("Celu", [x], {"alpha": 2.0}))
    compare_cpu(*one_op("Add", [x, Const(np.float32(0.5))]))


def test_split_outputs():
    model, feeds = one_op("Split", [X, Const(np.array([2, 3], np.int64))], {"axis": 1}, num_outputs=2)
    compare_cpu(model, feeds, rtol=0, atol=0)


def test_gather_elements():
    idx = rng.integers(-5, 5, size=(3, 4, 37)).astype(np.int64)
    compare_cpu(*one_op("GatherElements", [X, idx], {"axis": 1}), rtol=0, atol=0)


def _channel_shuffle_model(shape, groups):
    """ShuffleNet's channel shuffle (Reshape, Transpose, Reshape) followed by a Relu."""
    from onnx import TensorProto, helper, numpy_helper
    n, c, h, w = shape
    nodes = [helper.make_node("Reshape", ["x", "s5"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s4"], ["u"]),
             helper.make_node("Relu", ["u"], ["y"])]
    inits = [numpy_helper.from_array(np.array([n, groups, c // groups, h, w], np.int64), "s5"),
             numpy_helper.from_array(np.array(shape, np.int64), "s4")]
    graph = helper.make_graph(nodes, "shuffle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# Rows shorter than a vector register: 8 lanes (14, 9), 4 lanes (7, 5), scalar code (3).
@pytest.mark.parametrize("side", [14, 9, 7, 5, 3])
def test_short_rows_through_index_maps(side):
    shape = (1, 12, side, side)
    x = rng.standard_normal(shape).astype(np.float32)
    out = compare_cpu(_channel_shuffle_model(shape, 3), {"x": x})
    want = np.maximum(x.reshape(1, 3, 4, side, side).transpose(0, 2, 1, 3, 4).reshape(shape), 0)
    np.testing.assert_array_equal(out["y"], want)
