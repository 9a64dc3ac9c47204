"""cpu target: reductions at the edges: empty sets, empty ``axes`` inputs, bool ReduceMax/Min.

A reduction over an empty set stores its identity (0 for sums, 1 for
ReduceProd, -inf/+inf for ReduceMax/Min, -inf for the log forms); an empty
``axes`` tensor means every axis, or nothing with ``noop_with_empty_axes``;
an empty output is a kernel with nothing to do.  Compared with the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, const, make_model

OPS = ["ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
       "ReduceMean", "ReduceProd", "ReduceMax", "ReduceMin"]


def run_both(model, feeds: dict) -> None:
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert module.executable.description["kernels"], "no cpu kernel ran"
    with np.errstate(invalid="ignore"):
        assert_close(got, want, 1e-5, 1e-6)


def reduce_model(op: str, shape, axes, dtype=T.FLOAT, **attrs):
    inits = [const("axes", np.asarray(axes, np.int64))]
    return make_model([oh.make_node(op, ["x", "axes"], ["y"], **attrs)], {"x": (shape, dtype)}, {"y": dtype},
                      inits, opset=18)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_empty_set_stores_the_identity(op, keepdims):
    # Mean of nothing is NaN (0/0) on both targets; the others have a proper identity.
    shape = [3, 0, 5, 17]
    run_both(reduce_model(op, shape, [1], keepdims=keepdims), {"x": np.zeros(shape, np.float32)})


@pytest.mark.parametrize("op", OPS)
def test_empty_axes_input_reduces_everything_or_nothing(op):
    x = np.random.default_rng(0).uniform(0.5, 2.0, (3, 4, 19)).astype(np.float32)
    run_both(reduce_model(op, list(x.shape), [], keepdims=1), {"x": x})
    run_both(reduce_model(op, list(x.shape), [], keepdims=0), {"x": x})
    run_both(reduce_model(op, list(x.shape), [], keepdims=1, noop_with_empty_axes=1), {"x": x})


def test_empty_output():
    shape = [0, 6, 5]
    model = reduce_model("ReduceSum", shape, [1], keepdims=1)
    got = compiler.compile(model, target="cpu").run({"x": np.zeros(shape, np.float32)})["y"]
    assert got.shape == (0, 1, 5)


def test_fused_prologue_over_an_empty_set():
    shape = [2, 0, 33]
    model = make_model([oh.make_node("Abs", ["x"], ["a"]), oh.make_node("ReduceSum", ["a", "axes"], ["y"])],
                       {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}, [const("axes", np.asarray([1], np.int64))])
    run_both(model, {"x": np.zeros(shape, np.float32)})


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axes", [[1], [2], [0, 2]])
def test_bool_max_min(op, axes):
    x = np.random.default_rng(1).random((4, 5, 37)) < 0.3
    run_both(reduce_model(op, list(x.shape), axes, dtype=T.BOOL, keepdims=0), {"x": x})
    empty = np.zeros((4, 0, 37), bool)
    run_both(reduce_model(op, [4, 0, 37], [1], dtype=T.BOOL, keepdims=1), {"x": empty})
