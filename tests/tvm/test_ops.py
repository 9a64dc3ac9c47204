"""Each op family lowered to TE, built for the host (device=llvm) and checked against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from .helpers import check, model, rand, static_executable, transformer_block

H = helper.make_node


def test_conv_add_relu_is_one_kernel():
    """Conv+bias+Add+Relu: our fuse pass makes one group, which becomes one TVM function."""
    w, b = rand(8, 4, 3, 3, scale=0.3), rand(8)
    proto = model([H("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), H("Add", ["c", "r"], ["a"]),
                   H("Relu", ["a"], ["y"])], {"x": (1, 4, 9, 9), "r": (1, 8, 9, 9)}, ["y"], {"w": w, "b": b})
    m = check(proto, {"x": rand(1, 4, 9, 9), "r": rand(1, 8, 9, 9, seed=1)})
    exe = static_executable(m)
    assert [c.label.split(" ")[0] for c in exe.program.calls] == ["Conv+Add+Relu"]
    assert exe.description["distinct_kernels"] == 1


@pytest.mark.parametrize("attrs,shape", [
    (dict(strides=[2, 2], pads=[1, 0, 2, 1]), (2, 4, 11, 10)),
    (dict(group=2, dilations=[2, 1], pads=[2, 1, 2, 1]), (1, 4, 9, 8)),
    (dict(group=4, auto_pad="SAME_UPPER", strides=[2, 2]), (1, 4, 7, 7)),  # depthwise
])
def test_conv2d_variants(attrs, shape):
    groups = attrs.get("group", 1)
    w = rand(4, shape[1] // groups, 3, 3, scale=0.3)
    proto = model([H("Conv", ["x", "w"], ["y"], **attrs)], {"x": shape}, ["y"], {"w": w})
    check(proto, {"x": rand(*shape)})


def test_conv1d_and_3d():
    p1 = model([H("Conv", ["x", "w"], ["y"], pads=[1, 1])], {"x": (1, 3, 10)}, ["y"], {"w": rand(5, 3, 3)})
    check(p1, {"x": rand(1, 3, 10)})
    p3 = model([H("Conv", ["x", "w"], ["y"], strides=[1, 2, 2])], {"x": (1, 2, 4, 6, 6)}, ["y"],
               {"w": rand(3, 2, 2, 3, 3)})
    check(p3, {"x": rand(1, 2, 4, 6, 6)})


def test_gemm_and_matmul():
    proto = model([H("Gemm", ["a", "w", "c"], ["g"], transB=1, alpha=0.5, beta=2.0),
                   H("Sigmoid", ["g"], ["y"]),
                   H("MatMul", ["p", "q"], ["z"])],
                  {"a": (3, 16), "p": (2, 1, 5, 8), "q": (3, 8, 4)}, ["y", "z"],
                  {"w": rand(6, 16), "c": rand(6)})
    check(proto, {"a": rand(3, 16), "p": rand(2, 1, 5, 8), "q": rand(3, 8, 4)})


def test_matmul_vector_operands():
    proto = model([H("MatMul", ["v", "m"], ["a"]), H("MatMul", ["m2", "v2"], ["b"])],
                  {"v": (8,), "m": (8, 3), "m2": (4, 6), "v2": (6,)}, ["a", "b"])
    check(proto, {"v": rand(8), "m": rand(8, 3), "m2": rand(4, 6), "v2": rand(6)})


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1,
                         ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 2], auto_pad="SAME_LOWER")),
])
def test_pooling(op, attrs):
    proto = model([H(op, ["x"], ["y"], **attrs)], {"x": (1, 3, 9, 10)}, ["y"])
    check(proto, {"x": rand(1, 3, 9, 10)})


def test_global_pools_lrn_and_batchnorm():
    c = 6
    proto = model([H("LRN", ["x"], ["l"], size=3, alpha=1e-3, beta=0.75, bias=1.5),
                   H("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"]),
                   H("GlobalAveragePool", ["n"], ["ga"]), H("GlobalMaxPool", ["l"], ["gm"])],
                  {"x": (2, c, 5, 5)}, ["ga", "gm", "l"],
                  {"s": rand(c) + 2, "b": rand(c), "m": rand(c), "v": np.abs(rand(c)) + 0.5})
    check(proto, {"x": rand(2, c, 5, 5)})


@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_and_log_softmax(axis):
    proto = model([H("Softmax", ["x"], ["s"], axis=axis), H("LogSoftmax", ["x"], ["l"], axis=axis)],
                  {"x": (2, 5, 7)}, ["s", "l"])
    check(proto, {"x": rand(2, 5, 7, scale=3.0)})


def test_layer_normalization_and_reductions():
    proto = model([H("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1, epsilon=1e-5),
                   H("ReduceMean", ["x", "ax"], ["rm"], keepdims=1),
                   H("ReduceSum", ["x", "ax0"], ["rs"], keepdims=0),
                   H("ReduceMax", ["x"], ["rx"], keepdims=0)],
                  {"x": (2, 4, 16)}, ["ln", "rm", "rs", "rx"],
                  {"g": rand(16), "b": rand(16), "ax": np.array([-1], np.int64), "ax0": np.array([0, 2], np.int64)})
    check(proto, {"x": rand(2, 4, 16)})


def test_elementwise_chain_is_one_kernel():
    proto = model([H("Mul", ["x", "y"], ["a"]), H("Sigmoid", ["a"], ["b"]), H("Sub", ["b", "k"], ["c"]),
                   H("Tanh", ["c"], ["d"]), H("Div", ["d", "y"], ["e"]), H("Clip", ["e", "lo", "hi"], ["f"]),
                   H("LeakyRelu", ["f"], ["g"], alpha=0.2), H("Pow", ["g", "two"], ["h"]),
                   H("Erf", ["h"], ["o"])],
                  {"x": (3, 1, 8), "y": (4, 8)}, ["o"],
                  {"k": np.float32(0.5), "lo": np.float32(-0.7), "hi": np.float32(0.9), "two": np.float32(2.0)})
    m = check(proto, {"x": rand(3, 1, 8), "y": rand(4, 8, seed=3) + 3.0})
    assert len(static_executable(m).program.calls) == 1


def test_index_maps():
    proto = model([H("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
                   H("Concat", ["t", "t"], ["c"], axis=1),
                   H("Slice", ["c", "st", "en", "axs", "stp"], ["s"]),
                   H("Pad", ["s", "pads", "pv"], ["p"], mode="constant"),
                   H("Gather", ["x", "idx"], ["g"], axis=1),
                   H("Split", ["x"], ["s1", "s2"], axis=2, num_outputs=2),
                   H("Reshape", ["x", "shape"], ["r"]),
                   H("Expand", ["row", "eshape"], ["e"])],
                  {"x": (2, 3, 4), "row": (1, 4)}, ["p", "g", "s1", "s2", "r", "e"],
                  {"st": np.array([1, 3], np.int64), "en": np.array([-1, 0], np.int64),
                   "axs": np.array([1, 2], np.int64), "stp": np.array([2, -1], np.int64),
                   "pads": np.array([0, 1, 0, 0, 2, 1], np.int64), "pv": np.float32(-1.5),
                   "idx": np.array([[2, 0], [-1, 1]], np.int64), "shape": np.array([4, 6], np.int64),
                   "eshape": np.array([3, 1, 4], np.int64)})
    check(proto, {"x": rand(2, 3, 4), "row": rand(1, 4)})


def test_edge_and_reflect_pad_and_depth_to_space():
    proto = model([H("Pad", ["x", "pads"], ["e"], mode="edge"), H("Pad", ["x", "pads"], ["r"], mode="reflect"),
                   H("DepthToSpace", ["x"], ["d"], blocksize=2, mode="CRD")],
                  {"x": (1, 4, 3, 3)}, ["e", "r", "d"], {"pads": np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64)})
    check(proto, {"x": rand(1, 4, 3, 3)})


def test_integer_and_boolean_ops():
    proto = model([H("Greater", ["a", "b"], ["gt"]), H("Where", ["gt", "a", "b"], ["w"]),
                   H("Cast", ["ia"], ["f"], to=TensorProto.FLOAT), H("Add", ["f", "w"], ["s"]),
                   H("Div", ["ia", "ib"], ["q"])],
                  {"a": (2, 5), "b": (2, 5), "ia": (2, 5), "ib": (2, 5)}, ["gt", "s", "q"],
                  input_types={"ia": TensorProto.INT32, "ib": TensorProto.INT32})
    rng = np.random.default_rng(0)
    ia = rng.integers(-20, 20, (2, 5)).astype(np.int32)
    ib = rng.integers(1, 6, (2, 5)).astype(np.int32) * rng.choice([-1, 1], (2, 5)).astype(np.int32)
    check(proto, {"a": rand(2, 5), "b": rand(2, 5, seed=2), "ia": ia, "ib": ib})


def test_transformer_block():
    proto, feeds = transformer_block()
    m = check(proto, feeds)
    patterns = [c.label.split(" ")[0] for c in static_executable(m).program.calls]
    assert "MatMul+Add" in patterns and any(p.startswith("MatMul+Gelu") or "Gelu" in p for p in patterns)


def test_less_common_ops():
    proto = model([H("Hardmax", ["x"], ["hm"], axis=1), H("CumSum", ["x", "ax"], ["cs"], reverse=1),
                   H("LpNormalization", ["x"], ["lp"], axis=-1, p=2),
                   H("GatherElements", ["x", "gi"], ["ge"], axis=1), H("Dropout", ["x"], ["d"]),
                   H("ReduceMax", ["m", "ax"], ["rm"], keepdims=0), H("IsInf", ["rm"], ["inf"])],
                  {"x": (3, 4), "m": (2, 3)}, ["hm", "cs", "lp", "ge", "d", "rm", "inf"],
                  {"ax": np.array([1], np.int64), "gi": np.array([[0, 3], [1, -1], [2, 2]], np.int64)})
    m = np.array([[-np.inf] * 3, [1, -np.inf, 2]], np.float32)
    check(proto, {"x": rand(3, 4), "m": m})


def test_integer_bit_ops():
    proto = model([H("BitShift", ["a", "b"], ["s"], direction="LEFT"), H("BitwiseNot", ["a"], ["n"])],
                  {"a": (5,), "b": (5,)}, ["s", "n"],
                  input_types={"a": TensorProto.INT32, "b": TensorProto.INT32})
    check(proto, {"a": np.arange(5, dtype=np.int32), "b": np.array([0, 1, 2, 3, 1], np.int32)})


def test_a_graph_without_kernels_saves_and_loads(tmp_path):
    import compiler
    proto = model([H("Identity", ["x"], ["y"])], {"x": (2, 3)}, ["y"])
    m = compiler.compile(proto, target="tvm", options={"device": "llvm"})
    x = rand(2, 3)
    np.testing.assert_array_equal(m.run({"x": x})["y"], x)
    m.save(tmp_path / "a")
    np.testing.assert_array_equal(compiler.load(tmp_path / "a").run({"x": x})["y"], x)


def test_one_hot_and_variadic_sum():
    proto = model([H("OneHot", ["i", "depth", "vals"], ["oh"], axis=1), H("Sum", ["a", "b", "c"], ["s"]),
                   H("Mean", ["a", "b"], ["m"])],
                  {"i": (2, 3), "a": (2, 3), "b": (3,), "c": (2, 1)}, ["oh", "s", "m"],
                  {"depth": np.array(4, np.int64), "vals": np.array([-1.0, 2.0], np.float32)},
                  input_types={"i": TensorProto.INT64})
    check(proto, {"i": np.array([[0, 3, -1], [5, -5, 2]], np.int64), "a": rand(2, 3), "b": rand(3),
                  "c": rand(2, 1)})


def test_mean_variance_normalization_and_dropout_mask():
    proto = model([H("MeanVarianceNormalization", ["x"], ["y"]), H("Dropout", ["x"], ["d", "mask"])],
                  {"x": (2, 3, 4, 5)}, ["y", "d", "mask"])
    check(proto, {"x": rand(2, 3, 4, 5)})


def test_quantize_dequantize_and_dynamic_quantize():
    """Per-tensor and per-axis QuantizeLinear/DequantizeLinear (saturation, ties to even, NaN) and
    DynamicQuantizeLinear, bit for bit with the reference."""
    proto = model([H("QuantizeLinear", ["x", "s", "z"], ["q"]), H("DequantizeLinear", ["q", "s", "z"], ["d"]),
                   H("QuantizeLinear", ["x", "sa", "za"], ["qa"], axis=1),
                   H("DequantizeLinear", ["qa", "sa", "za"], ["da"], axis=1),
                   H("DynamicQuantizeLinear", ["x2"], ["y", "ys", "yz"])],
                  {"x": (2, 3, 8), "x2": (2, 3, 8)}, ["q", "d", "qa", "da", "y", "ys", "yz"],
                  {"s": np.float32(0.05), "z": np.int8(3), "sa": np.array([0.02, 0.5, 0.1], np.float32),
                   "za": np.array([0, 128, 250], np.uint8)})
    x = rand(2, 3, 8, scale=4.0)
    x[0, 0, :4] = [0.125, 0.175, -0.125, np.nan]  # halfway cases at scale 0.05, and NaN
    x[1, 2, :2] = [1e6, -1e6]                     # saturation
    check(proto, {"x": x, "x2": rand(2, 3, 8, seed=5, scale=3.0)}, rtol=0)


def test_float_mod_with_infinite_and_zero_divisors():
    proto = model([H("Mod", ["a", "b"], ["m"], fmod=0), H("Mod", ["a", "b"], ["f"], fmod=1)],
                  {"a": (8,), "b": (8,)}, ["m", "f"])
    a = np.array([5.0, -5.0, 3.0, np.inf, -7.5, 7.5, 0.0, np.nan], np.float32)
    b = np.array([np.inf, np.inf, -np.inf, 3.0, 2.0, -2.0, 0.0, 1.0], np.float32)
    m = check(proto, {"a": a, "b": b}, rtol=0)
    got = m.run({"a": a, "b": b})
    np.testing.assert_array_equal(got["m"], np.mod(a, b))
    np.testing.assert_array_equal(got["f"], np.fmod(a, b))


def test_bfloat16_computes_in_float32():
    import ml_dtypes
    # One op: a fused chain rounds to bfloat16 once at its end, the reference after every op.
    proto = model([H("Mul", ["a", "b"], ["y"])], {"a": (4, 8), "b": (4, 8)}, ["y"],
                  input_types={"a": TensorProto.BFLOAT16, "b": TensorProto.BFLOAT16})
    a, b = rand(4, 8).astype(ml_dtypes.bfloat16), rand(4, 8, seed=3).astype(ml_dtypes.bfloat16)
    m = check(proto, {"a": a, "b": b}, rtol=1e-2)
    assert m.run({"a": a, "b": b})["y"].dtype == ml_dtypes.bfloat16
