"""cpu target: MaxPool with its Indices output against the reference.

Row- and column-major indices, pads, strides, dilations, ceil_mode overhang,
auto_pad, 1-D to 3-D, integer and float types, NaN, ties (the first maximum
wins), and a Relu prologue fused into the kernel by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, fused_check, make_model

RNG = np.random.default_rng(0)

WINDOWS = [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 2, 1], ceil_mode=1),
    dict(kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 2, 2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
]


def pool_model(shape, dtype=T.FLOAT, **attrs):
    return make_model([oh.make_node("MaxPool", ["x"], ["y", "i"], **attrs)], {"x": (list(shape), dtype)},
                      {"y": dtype, "i": T.INT64})


def run_both(model, feeds):
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert any("MaxPool" in label for label in module.executable.description["kernels"])
    assert_close(got, want, 0, 0)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("order", [0, 1])
def test_windows(window, order):
    x = RNG.standard_normal((2, 3, 11, 13)).astype(np.float32)
    run_both(pool_model(x.shape, storage_order=order, **window), {"x": x})


@pytest.mark.parametrize("shape,kernel", [((2, 3, 40), [3]), ((1, 2, 5, 6, 7), [2, 3, 2])])
def test_other_ranks(shape, kernel):
    x = RNG.standard_normal(shape).astype(np.float32)
    run_both(pool_model(shape, kernel_shape=kernel, strides=[2] * len(kernel)), {"x": x})


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float16, np.float64])
def test_types_and_ties(dtype):
    x = RNG.integers(0, 4, (2, 3, 9, 10)).astype(dtype)  # many equal values: the first one wins
    run_both(pool_model(x.shape, oh.np_dtype_to_tensor_dtype(np.dtype(dtype)), kernel_shape=[3, 3],
                        strides=[2, 2], pads=[1, 1, 1, 1]), {"x": x})


def test_nan_wins():
    x = RNG.standard_normal((1, 2, 8, 8)).astype(np.float32)
    x[0, 0, 1, 1] = x[0, 1, 5, 6] = np.nan
    run_both(pool_model(x.shape, kernel_shape=[2, 2], strides=[2, 2]), {"x": x})


def test_fused_relu_prologue():
    x = RNG.standard_normal((2, 4, 10, 12)).astype(np.float32)
    model = make_model([oh.make_node("Relu", ["x"], ["r"]),
                        oh.make_node("MaxPool", ["r"], ["y", "i"], kernel_shape=[2, 2], strides=[2, 2])],
                       {"x": ([2, 4, 10, 12], T.FLOAT)}, {"y": T.FLOAT, "i": T.INT64})
    fused_check(model, {"x": x}, 0, 0)
    run_both(model, {"x": x})
