"""cpu target: Det against the reference (batches, orders 1 to 12, singular and permuted matrices)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)


def run_det(x: np.ndarray, tol: float) -> None:
    ty = oh.np_dtype_to_tensor_dtype(x.dtype)
    model = make_model([oh.make_node("Det", ["x"], ["y"])], {"x": (list(x.shape), ty)}, {"y": ty})
    want = compiler.compile(model, target="ref").run({"x": x})
    module = compiler.compile(model, target="cpu")
    got = module.run({"x": x})
    assert any("Det" in label for label in module.executable.description["kernels"])
    assert_close(got, want, tol, tol)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 5, 5), (2, 3, 12, 12), (7, 3, 3)])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-10)])
def test_det(shape, dtype, tol):
    run_det(RNG.standard_normal(shape).astype(dtype), tol)


def test_singular_and_pivoting():
    x = np.zeros((4, 3, 3), np.float32)
    x[0] = [[1, 2, 3], [2, 4, 6], [1, 0, 1]]            # singular
    x[1] = [[0, 1, 0], [1, 0, 0], [0, 0, 1]]            # a zero first pivot: needs a row swap
    x[2] = [[0, 0, 2], [0, 3, 0], [4, 0, 0]]            # an anti-diagonal
    x[3] = [[1e-6, 1, 1], [1, 1, 1], [0, 2, 5]]         # a tiny pivot: partial pivoting avoids it
    run_det(x, 1e-5)
