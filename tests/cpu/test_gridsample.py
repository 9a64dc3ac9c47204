"""cpu target: GridSample and AffineGrid against the reference.

Every mode x padding_mode x align_corners on 2-D and 3-D inputs whose grids
reach well outside [-1, 1] (so zero padding, border clamping and multiple
reflections all happen), float64 and float16, and a spatial transformer
(AffineGrid feeding GridSample).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, const, make_model

RNG = np.random.default_rng(0)


def run_both(model, feeds: dict, op: str, rtol=1e-5, atol=1e-5) -> None:
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    labels = module.executable.description["kernels"]
    assert any(op in label for label in labels), labels
    assert_close(got, want, rtol, atol)


def grid_model(xs, gs, dtype=T.FLOAT, **attrs):
    return make_model([oh.make_node("GridSample", ["x", "g"], ["y"], **attrs)],
                      {"x": (list(xs), dtype), "g": (list(gs), dtype)}, {"y": dtype}, opset=22)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_2d(mode, padding, align):
    xs, gs = (2, 3, 7, 9), (2, 5, 21, 2)
    x = RNG.standard_normal(xs).astype(np.float32)
    g = RNG.uniform(-2.6, 2.6, gs).astype(np.float32)
    g[0, 0, :5] = [[-1, -1], [1, 1], [0, 0], [-1, 1], [0.5, -0.5]]  # exact corners and centres
    run_both(grid_model(xs, gs, mode=mode, padding_mode=padding, align_corners=align), {"x": x, "g": g},
             "GridSample")


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample_3d(mode, padding):
    xs, gs = (1, 2, 4, 5, 6), (1, 3, 4, 17, 3)
    x = RNG.standard_normal(xs).astype(np.float32)
    g = RNG.uniform(-1.8, 1.8, gs).astype(np.float32)
    run_both(grid_model(xs, gs, mode=mode, padding_mode=padding), {"x": x, "g": g}, "GridSample")


@pytest.mark.parametrize("np_type,onnx_type,tol", [(np.float64, T.DOUBLE, 1e-10), (np.float16, T.FLOAT16, 2e-3)])
def test_grid_sample_other_floats(np_type, onnx_type, tol):
    xs, gs = (1, 2, 6, 7), (1, 4, 19, 2)
    x = RNG.standard_normal(xs).astype(np_type)
    g = RNG.uniform(-1.2, 1.2, gs).astype(np_type)
    run_both(grid_model(xs, gs, onnx_type, mode="linear"), {"x": x, "g": g}, "GridSample", tol, tol)


@pytest.mark.parametrize("size", [[2, 3, 5, 7], [2, 3, 4, 5, 6], [1, 1, 1, 9]])
@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid(size, align):
    d = len(size) - 2
    theta = RNG.standard_normal((size[0], d, d + 1)).astype(np.float32)
    model = make_model([oh.make_node("AffineGrid", ["t", "s"], ["y"], align_corners=align)],
                       {"t": (list(theta.shape), T.FLOAT)}, {"y": T.FLOAT},
                       [const("s", np.asarray(size, np.int64))], opset=20)
    run_both(model, {"t": theta}, "AffineGrid")


def test_spatial_transformer():
    """AffineGrid -> GridSample: rotate and scale a feature map."""
    x = RNG.standard_normal((2, 4, 16, 16)).astype(np.float32)
    a = np.deg2rad(25)
    theta = np.array([[[np.cos(a), -np.sin(a), 0.1], [np.sin(a), np.cos(a), -0.2]]] * 2, np.float32) * 0.9
    model = make_model([oh.make_node("AffineGrid", ["t", "s"], ["g"]),
                        oh.make_node("GridSample", ["x", "g"], ["y"], mode="linear")],
                       {"x": ([2, 4, 16, 16], T.FLOAT), "t": ([2, 2, 3], T.FLOAT)}, {"y": T.FLOAT},
                       [const("s", np.asarray([2, 4, 12, 20], np.int64))], opset=22)
    run_both(model, {"x": x, "t": theta}, "GridSample")
