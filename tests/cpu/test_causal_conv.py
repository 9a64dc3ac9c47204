"""cpu target: CausalConvWithState against the reference (kernel sizes, state, bias, SiLU, float16)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("past,bias", [(True, True), (False, False)])
@pytest.mark.parametrize("activation", ["none", "silu"])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 2e-3)])
def test_causal_conv(k, past, bias, activation, dtype, tol):
    b, c, length = 2, 6, 37
    feeds = {"x": RNG.standard_normal((b, c, length)), "w": RNG.standard_normal((c, 1, k))}
    names = ["x", "w", "b" if bias else ""]
    if bias:
        feeds["b"] = RNG.standard_normal((c,))
    if past:
        names.append("s")
        feeds["s"] = RNG.standard_normal((b, c, k - 1))
    while names[-1] == "":
        names.pop()
    feeds = {n: v.astype(dtype) for n, v in feeds.items()}
    ty = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = make_model([oh.make_node("CausalConvWithState", names, ["y", "state"], activation=activation)],
                       {n: (list(feeds[n].shape), ty) for n in names if n}, {"y": ty, "state": ty}, opset=27)
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert any("CausalConv" in label for label in module.executable.description["kernels"])
    assert_close(got, want, tol, tol)
