"""cpu target: TopK against the reference.

Every axis of a 3-D input, largest and smallest, k from 1 to the whole axis,
ties (the lower index first), NaN (the largest value), integer and float
types, a fused elementwise prologue, and a model that uses the indices only.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, const, make_model

RNG = np.random.default_rng(0)


def _ty(a: np.ndarray) -> int:
    return oh.np_dtype_to_tensor_dtype(a.dtype)


def run_both(model, feeds: dict) -> None:
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    labels = module.executable.description["kernels"]
    assert any("TopK" in label for label in labels), labels
    assert_close(got, want, 0, 0)


def topk_model(shape, dtype, k, axis, largest, sorted_=1, prologue=None):
    nodes = [oh.make_node("TopK", ["t" if prologue else "x", "k"], ["v", "i"], axis=axis, largest=largest,
                          sorted=sorted_)]
    if prologue:
        nodes.insert(0, oh.make_node(prologue, ["x"], ["t"]))
    return make_model(nodes, {"x": (list(shape), dtype)}, {"v": dtype, "i": T.INT64},
                      [const("k", np.asarray([k], np.int64))], opset=18)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("kfrac", [0.0, 0.5, 1.0])
def test_axes_and_k(axis, largest, kfrac):
    shape = (6, 9, 37)
    x = RNG.standard_normal(shape).astype(np.float32)
    k = max(1, int(round(kfrac * shape[axis])))
    run_both(topk_model(shape, T.FLOAT, k, axis, largest), {"x": x})


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.uint64, np.int8, np.float64, np.float16])
@pytest.mark.parametrize("largest", [1, 0])
def test_ties_and_types(dtype, largest):
    x = RNG.integers(0, 5, (4, 50)).astype(dtype)  # many equal values: the lower index comes first
    run_both(topk_model(x.shape, _ty(x), 17, -1, largest), {"x": x})


@pytest.mark.parametrize("largest", [1, 0])
def test_nan_is_the_largest(largest):
    x = RNG.standard_normal((3, 41)).astype(np.float32)
    x[0, [3, 7]] = np.nan
    x[2, :] = np.nan
    run_both(topk_model(x.shape, T.FLOAT, 9, 1, largest), {"x": x})


def test_fused_prologue():
    x = RNG.standard_normal((5, 64)).astype(np.float32)
    run_both(topk_model(x.shape, T.FLOAT, 10, 1, 1, prologue="Neg"), {"x": x})


def test_indices_only():
    x = RNG.standard_normal((8, 100)).astype(np.float32)
    model = make_model([oh.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)], {"x": ([8, 100], T.FLOAT)},
                       {"i": T.INT64}, [const("k", np.asarray([5], np.int64))])
    run_both(model, {"x": x})
