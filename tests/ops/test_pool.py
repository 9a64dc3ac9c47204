"""Pooling ops against onnxruntime, plus type rules, old opsets and errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

import compiler
from ir.dtypes import DType
from ir.errors import CompilerError
from ir.graph import Graph
from ir.registry import get_schema
from ir.types import TensorType
from tests.ops.ortcheck import Const, check_op, make_model

RNG = np.random.default_rng(7)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def expect_error(op, inputs, attrs, match, opset=22, num_outputs=1):
    with pytest.raises(CompilerError, match=match):
        compiler.compile(make_model(op, inputs, attrs, opset=opset, num_outputs=num_outputs))


WINDOWS = [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1, "pads": [1, 0, 1, 1]},
    {"kernel_shape": [2, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [1, 2], "dilations": [2, 2], "pads": [1, 1, 2, 1]},
    {"kernel_shape": [3, 2], "strides": [2, 1], "dilations": [2, 3], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [4, 3], "strides": [2, 3], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [3, 2], "strides": [2, 3], "auto_pad": "VALID"},
]


# -------------------------------------------------------------------- MaxPool
@pytest.mark.parametrize("attrs", WINDOWS)
def test_maxpool(attrs):
    check_op("MaxPool", [rand(2, 3, 9, 8)], attrs, opset=22)


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("attrs", [WINDOWS[1], WINDOWS[2], WINDOWS[4], WINDOWS[6]])
def test_maxpool_indices(attrs, storage_order):
    check_op("MaxPool", [rand(2, 3, 9, 8)], dict(attrs, storage_order=storage_order),
             num_outputs=2)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.float16, np.float64])
def test_maxpool_dtypes(dtype):
    x = (rand(1, 2, 7, 7) * 40).astype(dtype)
    check_op("MaxPool", [x], {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0], "strides": [2, 2]})


@pytest.mark.parametrize("xs,attrs", [
    ((2, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1], "dilations": [2]}),
    ((1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 2, 1], "pads": [1, 1, 0, 0, 1, 1]}),
    ((1, 2, 5, 6, 7), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2], "ceil_mode": 1}),
])
def test_maxpool_1d_3d(xs, attrs):
    check_op("MaxPool", [rand(*xs)], attrs, num_outputs=2)


@pytest.mark.parametrize("opset", [1, 8, 10, 11, 12])
def test_maxpool_old_opsets(opset):
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    check_op("MaxPool", [rand(1, 3, 8, 9)], attrs, opset=opset,
             num_outputs=2 if opset >= 8 else 1)


def test_maxpool_same_with_dilation_follows_spec():
    """auto_pad SAME gives ceil(in / stride) even with dilations (onnxruntime's pool does
    not); the same windows spelled out as explicit pads agree with onnxruntime."""
    x = rand(1, 2, 9, 8)
    explicit = check_op("MaxPool", [x], {"kernel_shape": [3, 2], "strides": [2, 3],
                                         "dilations": [2, 2], "pads": [2, 0, 2, 1]})
    check_op("MaxPool", [x], {"kernel_shape": [3, 2], "strides": [2, 3], "dilations": [2, 2],
                              "auto_pad": "SAME_UPPER"}, expected=explicit)


def test_maxpool_is_fast():
    ref = get_schema("MaxPool").reference_fn
    x = rand(1, 64, 112, 112)
    start = time.perf_counter()
    y = ref(x, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=[3, 3],
            pads=[1, 1, 1, 1], storage_order=0, strides=[2, 2], num_outputs=1)
    assert time.perf_counter() - start < 0.5
    assert y.shape == (1, 64, 56, 56)


# ---------------------------------------------------------------- AveragePool
@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("attrs", WINDOWS)
def test_averagepool(attrs, include_pad):
    check_op("AveragePool", [rand(2, 3, 9, 8)], dict(attrs, count_include_pad=include_pad),
             opset=22, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("xs,attrs", [
    ((2, 3, 11), {"kernel_shape": [4], "strides": [3], "pads": [2, 1], "count_include_pad": 1}),
    ((1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 2, 1], "pads": [1, 1, 0, 0, 1, 1]}),
])
def test_averagepool_1d_3d(xs, attrs):
    check_op("AveragePool", [rand(*xs)], attrs)


@pytest.mark.parametrize("opset", [1, 7, 10, 11, 19])
def test_averagepool_old_opsets(opset):
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    if opset >= 7:
        attrs["count_include_pad"] = 1
    x = rand(1, 3, 8, 9)
    if opset == 1:  # onnxruntime starts at AveragePool-7; opset 1 must mean count_include_pad=0
        expected = check_op("AveragePool", [x], attrs, opset=7)
        check_op("AveragePool", [x], attrs, opset=1, expected=expected)
    else:
        check_op("AveragePool", [x], attrs, opset=opset)


def test_averagepool_float16():
    check_op("AveragePool", [rand(1, 2, 6, 6, dtype=np.float16)], {"kernel_shape": [3, 3]},
             rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------- LpPool
@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("attrs", [WINDOWS[0], WINDOWS[1], WINDOWS[4], WINDOWS[6]])
def test_lppool(attrs, p):
    check_op("LpPool", [rand(2, 3, 9, 8)], dict(attrs, p=p), opset=22, rtol=1e-5, atol=1e-5)


def test_lppool_old_opsets():
    x = rand(1, 2, 7, 7)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 0, 0]}
    new = check_op("LpPool", [x], dict(attrs, p=3), opset=18, rtol=1e-5, atol=1e-5)
    check_op("LpPool", [x], dict(attrs, p=3), opset=2, expected=new, rtol=1e-5, atol=1e-5)
    check_op("LpPool", [x], dict(attrs, p=3.0), opset=1, expected=new, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------- Global pools
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("xs", [(2, 3, 7), (2, 3, 5, 6), (1, 2, 3, 4, 5)])
def test_global_pools(op, xs):
    check_op(op, [rand(*xs)], {}, rtol=1e-5, atol=1e-6)


def test_global_pools_dtypes_and_p():
    check_op("GlobalAveragePool", [rand(1, 3, 5, 5, dtype=np.float16)], {}, rtol=1e-3, atol=1e-3)
    check_op("GlobalMaxPool", [Const(rand(1, 3, 5, 5))], {})
    x = rand(2, 3, 4, 4)
    new = check_op("GlobalLpPool", [x], {"p": 3}, rtol=1e-5, atol=1e-5)
    check_op("GlobalLpPool", [x], {"p": 3.0}, opset=1, expected=new, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ MaxUnpool
def test_maxunpool_roundtrip_with_maxpool_indices():
    even = rand(1, 2, 4, 6)
    y, idx = check_op("MaxPool", [even], {"kernel_shape": [2, 2], "strides": [2, 2]}, num_outputs=2)
    check_op("MaxUnpool", [y, idx], {"kernel_shape": [2, 2], "strides": [2, 2]})
    x = rand(1, 2, 5, 7)
    y, idx = check_op("MaxPool", [x], {"kernel_shape": [2, 2], "strides": [2, 2]}, num_outputs=2)
    # With output_shape the indices address X itself (5 x 7), as in onnxruntime and PyTorch.
    out = check_op("MaxUnpool", [y, idx, Const(np.array([1, 2, 5, 7], np.int64))],
                   {"kernel_shape": [2, 2], "strides": [2, 2]})[0]
    assert out.shape == x.shape
    np.testing.assert_array_equal(out.reshape(-1)[idx.reshape(-1)], y.reshape(-1))


def test_maxunpool_pads_and_runtime_shape():
    y = rand(1, 1, 3, 3)
    idx = np.array([0, 2, 4, 6, 8, 10, 12, 14, 15], np.int64).reshape(1, 1, 3, 3)
    check_op("MaxUnpool", [y, idx], {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]},
             opset=11)
    check_op("MaxUnpool", [y, idx, np.array([1, 1, 6, 7], np.int64)],
             {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=9)


# ----------------------------------------------------------------- MaxRoiPool
@pytest.mark.parametrize("pooled,scale", [([2, 3], 1.0), ([4, 4], 0.5), ([1, 1], 0.25)])
def test_maxroipool(pooled, scale):
    x = rand(2, 3, 10, 12)
    rois = np.array([[0, 0, 0, 9, 9], [1, 1.5, 2.3, 7.7, 8.1], [1, 0, 0, 4, 4],
                     [0, -2, -1, 13, 11], [1, 3, 3, 3.2, 3.4]], np.float32)
    check_op("MaxRoiPool", [x, rois], {"pooled_shape": pooled, "spatial_scale": scale})


# ---------------------------------------------------------- types and errors
def test_pool_shapes_keep_symbolic_dims():
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, ("N", 3, "H", 8)))
    y = g.add("AveragePool", x, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert y.type.shape == ("N", 3, "H", 8)
    y = g.add("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    assert y.type.shape == ("N", 3, None, 4)
    assert g.add("GlobalAveragePool", x).type.shape == ("N", 3, 1, 1)
    node = g.create_node("MaxPool", [x], {"kernel_shape": [3, 3]}, num_outputs=2)
    assert node.outputs[1].type == TensorType(DType.I64, ("N", 3, None, 6))


def test_pool_errors():
    x = rand(1, 2, 6, 6)
    expect_error("MaxPool", [x], {}, "Required attribute 'kernel_shape' is missing")  # ONNX's checker
    expect_error("MaxPool", [x], {"kernel_shape": [3]}, "kernel_shape does not match")
    expect_error("MaxPool", [x], {"kernel_shape": [2, 2], "pads": [2, 0, 0, 0]},
                 "pads must be smaller")
    expect_error("MaxPool", [x], {"kernel_shape": [7, 7]}, "does not fit")
    expect_error("MaxPool", [x], {"kernel_shape": [2, 2], "storage_order": 2}, "storage_order",
                 num_outputs=2)
    expect_error("MaxPool", [rand(2, 6)], {"kernel_shape": [2]}, "rank >= 3")
    expect_error("AveragePool", [x.astype(np.int32)], {"kernel_shape": [2, 2]},
                 "unsupported element type")
    expect_error("LpPool", [x], {"kernel_shape": [2, 2], "p": 0}, "p must be a positive")
    expect_error("LpPool", [x], {"kernel_shape": [2, 2], "p": 2.5}, "integral p", opset=1)
    expect_error("MaxUnpool", [x, x.astype(np.int32)], {"kernel_shape": [2, 2]}, "int64")
    expect_error("MaxRoiPool", [x, rand(3, 4)], {"pooled_shape": [2, 2]}, "num_rois, 5")
    expect_error("MaxRoiPool", [x, rand(3, 5)], {"pooled_shape": [2]}, "two positive ints")
