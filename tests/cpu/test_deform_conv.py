"""cpu target: DeformConv against the reference.

Groups, offset groups, strides, dilations, pads, masks and biases, offsets
large enough to leave the image (zero corners), 1-D and 2-D, wide outputs
so the vectorized path (gathered offsets and samples) runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler
from ir.ops._window import window_output_dims

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)

CASES = [
    dict(x=(1, 4, 7, 9), k=(3, 3), m=6),
    dict(x=(2, 4, 8, 37), k=(2, 3), m=4, group=2, offset_group=2, mask=True, bias=True),
    dict(x=(1, 6, 9, 10), k=(3, 3), m=3, strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 2], offset_group=3),
    dict(x=(1, 2, 40), k=(3,), m=5, pads=[1, 1], mask=True),
]


@pytest.mark.parametrize("case", CASES)
def test_deform_conv(case):
    xs, k, m = case["x"], case["k"], case["m"]
    d = len(k)
    group, og = case.get("group", 1), case.get("offset_group", 1)
    strides = case.get("strides", [1] * d)
    dilations = case.get("dilations", [1] * d)
    pads = case.get("pads", [0] * 2 * d)
    out = window_output_dims(list(xs[2:]), list(k), strides, dilations, pads)
    feeds = {"x": RNG.standard_normal(xs).astype(np.float32),
             "w": RNG.standard_normal((m, xs[1] // group, *k)).astype(np.float32),
             "off": (RNG.standard_normal((xs[0], og * d * math.prod(k), *out)) * 2.5).astype(np.float32)}
    names = ["x", "w", "off"]
    if case.get("bias") or case.get("mask"):
        names.append("b" if case.get("bias") else "")
        if case.get("bias"):
            feeds["b"] = RNG.standard_normal((m,)).astype(np.float32)
    if case.get("mask"):
        names.append("mask")
        feeds["mask"] = RNG.uniform(0, 1, (xs[0], og * math.prod(k), *out)).astype(np.float32)
    attrs = {"kernel_shape": list(k), "group": group, "offset_group": og, "strides": strides,
             "dilations": dilations, "pads": pads}
    model = make_model([oh.make_node("DeformConv", names, ["y"], **attrs)],
                       {n: (list(feeds[n].shape), T.FLOAT) for n in names if n}, {"y": T.FLOAT}, opset=19)
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert any("DeformConv" in label for label in module.executable.description["kernels"])
    assert_close(got, want, 1e-4, 1e-4)
