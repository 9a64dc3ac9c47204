"""cpu target: Col2Im against the reference (1-D to 3-D, strides, dilations, asymmetric pads)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler
from ir.ops._window import window_output_dims

from .test_reduction import assert_close, const, make_model

RNG = np.random.default_rng(0)

CASES = [
    ([9, 11], [3, 3], {}),
    ([9, 11], [3, 2], {"strides": [2, 3]}),
    ([10, 12], [3, 3], {"dilations": [2, 1], "pads": [1, 2, 0, 1]}),
    ([8, 40], [2, 5], {"strides": [1, 2], "pads": [0, 2, 1, 2]}),
    ([37], [4], {"strides": [3], "pads": [2, 1]}),
    ([4, 5, 6], [2, 2, 3], {"strides": [1, 2, 1]}),
]


@pytest.mark.parametrize("image,block,attrs", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_col2im(image, block, attrs, dtype):
    d = len(image)
    blocks = window_output_dims(image, block, attrs.get("strides", [1] * d), attrs.get("dilations", [1] * d),
                                attrs.get("pads", [0] * (2 * d)))
    shape = [2, 3 * math.prod(block), math.prod(blocks)]
    x = (RNG.standard_normal(shape) * 4).astype(dtype)
    ty = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = make_model([oh.make_node("Col2Im", ["x", "img", "blk"], ["y"], **attrs)], {"x": (shape, ty)},
                       {"y": ty}, [const("img", np.asarray(image, np.int64)), const("blk", np.asarray(block, np.int64))])
    want = compiler.compile(model, target="ref").run({"x": x})
    module = compiler.compile(model, target="cpu")
    got = module.run({"x": x})
    assert any("Col2Im" in label for label in module.executable.description["kernels"])
    assert_close(got, want, 1e-5, 1e-5)
