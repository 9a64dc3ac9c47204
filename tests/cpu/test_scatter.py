"""cpu target: ScatterElements, ScatterND and TensorScatter against the reference.

Every reduction (with duplicate indices, which the in-order walk must apply
one after the other), negative indices, each axis, slices of several sizes
for ScatterND, several element types, and TensorScatter's linear and
circular modes with per-batch offsets.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, const, make_model

RNG = np.random.default_rng(0)
REDUCTIONS = ["none", "add", "mul", "max", "min"]


def _ty(a: np.ndarray) -> int:
    return oh.np_dtype_to_tensor_dtype(a.dtype)


def run_both(model, feeds: dict, op: str) -> None:
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    labels = module.executable.description["kernels"]
    assert any(op in label for label in labels), labels
    assert_close(got, want, 1e-5, 1e-6)


def _data(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(-20, 20, shape).astype(dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float64])
def test_scatter_elements(reduction, axis, dtype):
    ds, us = (6, 7, 33), (4, 5, 20)
    data, upd = _data(ds, dtype), _data(us, dtype)
    dim = ds[axis]
    idx = RNG.integers(-dim, dim, us).astype(np.int64)  # duplicates guaranteed (4*5*20 draws)
    if reduction == "none":  # duplicate targets of "none" have no defined winner: make them unique
        idx = np.broadcast_to(np.arange(us[axis] if axis != -1 else us[2]).reshape(
            [-1 if a == axis % 3 else 1 for a in range(3)]), us).astype(np.int64) * 1
    model = make_model([oh.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis, reduction=reduction)],
                       {"x": (list(ds), _ty(data)), "i": (list(us), T.INT64), "u": (list(us), _ty(upd))},
                       {"y": _ty(data)})
    run_both(model, {"x": data, "i": idx, "u": upd}, "ScatterElements")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ds,qs", [((9, 5, 17), (4, 1)), ((9, 5, 17), (2, 3, 2)), ((9, 5, 17), (6, 3)),
                                   ((40,), (7, 1))])
def test_scatter_nd(reduction, ds, qs):
    k = qs[-1]
    data = _data(ds, np.float32)
    if reduction == "none":  # distinct rows
        flat = RNG.permutation(int(np.prod(ds[:k])))[:int(np.prod(qs[:-1]))]
        idx = np.stack(np.unravel_index(flat, ds[:k]), axis=-1).reshape(qs).astype(np.int64)
    else:
        idx = np.stack([RNG.integers(-ds[j], ds[j], qs[:-1]) for j in range(k)], axis=-1).astype(np.int64)
    us = tuple(qs[:-1]) + tuple(ds[k:])
    upd = _data(us, np.float32)
    model = make_model([oh.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)],
                       {"x": (list(ds), T.FLOAT), "i": (list(qs), T.INT64), "u": (list(us), T.FLOAT)},
                       {"y": T.FLOAT})
    run_both(model, {"x": data, "i": idx, "u": upd}, "ScatterND")


@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis", [-2, 1, 2])
def test_tensor_scatter(mode, axis):
    past_shape = [3, 10, 12, 19]
    upd_shape = list(past_shape)
    upd_shape[axis] = 5
    past, upd = _data(past_shape, np.float32), _data(upd_shape, np.float32)
    max_seq = past_shape[axis]
    starts = np.array([0, 3, max_seq - 5 if mode == "linear" else max_seq - 2], np.int64)
    model = make_model([oh.make_node("TensorScatter", ["p", "u", "w"], ["y"], axis=axis, mode=mode)],
                       {"p": (past_shape, T.FLOAT), "u": (upd_shape, T.FLOAT), "w": ([3], T.INT64)},
                       {"y": T.FLOAT}, opset=24)
    run_both(model, {"p": past, "u": upd, "w": starts}, "TensorScatter")


@pytest.mark.parametrize("with_shape", [False, True])
def test_max_unpool_inverts_max_pool(with_shape):
    """MaxPool's indices fed to MaxUnpool (ref computes the indices; cpu unpools them), with output_shape or not."""
    shape = [2, 3, 9, 11] if with_shape else [2, 3, 8, 10]  # the default output: what the pool covered
    x = RNG.standard_normal(shape).astype(np.float32)
    pool = make_model([oh.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2])],
                      {"x": (shape, T.FLOAT)}, {"p": T.FLOAT, "i": T.INT64})
    pooled = compiler.compile(pool, target="ref").run({"x": x})
    inputs = ["p", "i"] + (["shape"] if with_shape else [])
    inits = [const("shape", np.asarray(shape, np.int64))] if with_shape else []
    model = make_model([oh.make_node("MaxUnpool", inputs, ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                       {"p": ([2, 3, 4, 5], T.FLOAT), "i": ([2, 3, 4, 5], T.INT64)}, {"y": T.FLOAT}, inits)
    run_both(model, {"p": pooled["p"], "i": pooled["i"]}, "MaxUnpool")
