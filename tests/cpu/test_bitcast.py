"""cpu target: BitCast between every pair of same-width element types, alone and fused; integer Pow."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import helper as oh

import compiler

from .test_reduction import make_model

WIDTHS = {
    8: [np.int8, np.uint8, np.bool_],
    16: [np.int16, np.uint16, np.float16],
    32: [np.int32, np.uint32, np.float32],
    64: [np.int64, np.uint64, np.float64],
}
PAIRS = [(s, d) for types in WIDTHS.values() for s, d in itertools.permutations(types, 2)
         if d is not np.bool_]  # not every byte is a valid bool


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.dtype.itemsize}") if a.dtype != np.bool_ else a.view(np.uint8)


def _data(dtype, shape=(5, 37)) -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype is np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min // 2, info.max // 2, shape, dtype=dtype)


@pytest.mark.parametrize("src,dst", PAIRS, ids=lambda t: np.dtype(t).name)
def test_bitcast_pairs(src, dst):
    x = _data(src)
    to = oh.np_dtype_to_tensor_dtype(np.dtype(dst))
    model = make_model([oh.make_node("BitCast", ["x"], ["y"], to=to)],
                       {"x": (list(x.shape), oh.np_dtype_to_tensor_dtype(x.dtype))}, {"y": to}, opset=26)
    want = compiler.compile(model, target="ref").run({"x": x})["y"]
    module = compiler.compile(model, target="cpu")
    got = module.run({"x": x})["y"]
    assert module.executable.description["kernels"]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_bitcast_fused_with_arithmetic():
    """float bits -> int, masked and shifted back (the exponent field), in one kernel."""
    x = _data(np.float32, (4, 53))
    from onnx import TensorProto as T
    from .test_reduction import const
    nodes = [oh.make_node("Abs", ["x"], ["a"]),
             oh.make_node("BitCast", ["a"], ["i"], to=T.UINT32),
             oh.make_node("BitShift", ["i", "s"], ["e"], direction="RIGHT"),
             oh.make_node("Add", ["e", "one"], ["y"])]
    model = make_model(nodes, {"x": (list(x.shape), T.FLOAT)}, {"y": T.UINT32},
                       [const("s", np.uint32(23)), const("one", np.uint32(1))], opset=26)
    want = compiler.compile(model, target="ref").run({"x": x})["y"]
    got = compiler.compile(model, target="cpu").run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xt,yt", [(np.int32, np.int32), (np.int64, np.int64), (np.int32, np.float32),
                                   (np.int64, np.float64), (np.uint8, np.int64), (np.int16, np.float32)])
def test_integer_pow(xt, yt):
    """Integer bases are raised in float64 and truncated back (the reference's rule); broadcast exponent."""
    rng = np.random.default_rng(2)
    # Negative bases only with integer exponents (a fractional power of one is NaN, not an integer).
    low = 0 if np.dtype(xt).kind == "u" or np.dtype(yt).kind == "f" else -6
    x = rng.integers(low, 7, (3, 41)).astype(xt)
    y = (rng.integers(0, 4, (41,)) + (0.5 if np.dtype(yt).kind == "f" else 0)).astype(yt)
    model = make_model([oh.make_node("Pow", ["x", "y"], ["z"])],
                       {"x": ([3, 41], oh.np_dtype_to_tensor_dtype(x.dtype)),
                        "y": ([41], oh.np_dtype_to_tensor_dtype(y.dtype))},
                       {"z": oh.np_dtype_to_tensor_dtype(x.dtype)}, opset=18)
    feeds = {"x": x, "y": y}
    want = compiler.compile(model, target="ref").run(feeds)["z"]
    got = compiler.compile(model, target="cpu").run(feeds)["z"]
    np.testing.assert_array_equal(got, want)
