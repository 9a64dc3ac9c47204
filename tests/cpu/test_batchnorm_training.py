"""cpu target: training-mode BatchNormalization (batch statistics and running statistics) against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 6), (3, 2, 37), (1, 4, 3, 4, 5)])
@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_training_batchnorm(shape, outputs, dtype, tol):
    c = shape[1]
    feeds = {"x": RNG.standard_normal(shape) * 3 + 1, "s": RNG.standard_normal(c), "b": RNG.standard_normal(c),
             "m": RNG.standard_normal(c), "v": RNG.uniform(0.5, 2, c)}
    feeds = {k: v.astype(dtype) for k, v in feeds.items()}
    ty = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    outs = ["y", "rm", "rv"][:outputs]
    model = make_model([oh.make_node("BatchNormalization", list(feeds), outs, training_mode=1, momentum=0.8,
                                     epsilon=1e-3)],
                       {k: (list(v.shape), ty) for k, v in feeds.items()}, {o: ty for o in outs}, opset=15)
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert any("BatchNormalization" in label for label in module.executable.description["kernels"])
    assert_close(got, want, tol, tol)
