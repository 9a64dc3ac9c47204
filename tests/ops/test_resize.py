"""Resize / Upsample, GridSample, AffineGrid and RoiAlign against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
from frontends.onnx.importer import import_model
from ir.dtypes import DType
from ir.errors import CompilerError
from ir.graph import Graph
from ir.types import TensorType
from tests.ops.ortcheck import Const, check_op, make_model, run_ort, run_ours

RNG = np.random.default_rng(99)

COORD_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
               "asymmetric", "tf_crop_and_resize"]
ROI = np.array([0, 0, 0.1, -0.2, 1, 1, 0.8, 1.3], np.float32)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def f32(*v):
    return Const(np.array(v, np.float32))


def i64(*v):
    return Const(np.array(v, np.int64))


def expect_error(op, inputs, attrs, match, opset=22):
    with pytest.raises(CompilerError, match=match):
        compiler.compile(make_model(op, inputs, attrs, opset=opset))


def resize(x, attrs, scales=None, sizes=None, opset=19, **kw):
    roi = Const(ROI) if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize" else None
    return check_op("Resize", [x, roi, scales, sizes], attrs, opset=opset,
                    rtol=kw.pop("rtol", 1e-4), atol=kw.pop("atol", 1e-5), **kw)


# ---------------------------------------------------------------- Resize
@pytest.mark.parametrize("scales", [(2.0, 1.5), (0.6, 0.5), (1.3, 0.7), (0.34, 3.1)])
@pytest.mark.parametrize("cmode", COORD_MODES)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_scales(mode, cmode, scales):
    resize(rand(1, 2, 5, 7), {"mode": mode, "coordinate_transformation_mode": cmode},
           scales=f32(1, 1, *scales))


# (onnxruntime allows exclude_outside for linear only with antialias)
@pytest.mark.parametrize("mode,extra", [
    ("linear", {"antialias": 1}), ("linear", {"antialias": 1, "exclude_outside": 1}),
    ("cubic", {"antialias": 1}), ("cubic", {"antialias": 1, "exclude_outside": 1}),
    ("cubic", {"exclude_outside": 1, "cubic_coeff_a": -0.5}),
])
@pytest.mark.parametrize("scales", [(0.6, 0.45), (1.7, 0.3)])
def test_resize_antialias_exclude_outside(mode, scales, extra):
    resize(rand(2, 1, 9, 8), dict(mode=mode, **extra), scales=f32(1, 1, *scales))


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
@pytest.mark.parametrize("cmode", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
def test_resize_nearest_modes_with_sizes(nearest_mode, cmode):
    x = rand(1, 2, 5, 7)
    for sizes in ((1, 2, 8, 3), (1, 1, 3, 11)):
        resize(x, {"nearest_mode": nearest_mode, "coordinate_transformation_mode": cmode},
               sizes=i64(*sizes))


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("axes", [[2, 3], [3, 2]])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_axes_and_aspect_policy(mode, axes, policy):
    x = rand(1, 2, 5, 7)
    resize(x, {"mode": mode, "keep_aspect_ratio_policy": policy, "axes": axes}, sizes=i64(9, 4))
    resize(x, {"mode": mode, "axes": axes}, scales=f32(1.5, 0.5))


def test_resize_negative_axes():
    x = rand(1, 2, 5, 7)
    resize(x, {"mode": "linear", "axes": [-1, -2]}, sizes=i64(9, 4))
    resize(x, {"mode": "nearest", "axes": [3, -2]}, scales=f32(1.5, 0.6))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.float16, np.float64])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_dtypes(mode, dtype):
    x = (rand(1, 2, 5, 7) * 50).astype(dtype)
    scales = f32(1, 1, 1.7, 0.6)
    if dtype == np.float64 or (mode == "nearest" and dtype == np.int32):
        # No such onnxruntime kernel: compare with its float32 result.
        want = resize(x.astype(np.float32), {"mode": mode}, scales=scales)[0]
        resize(x, {"mode": mode}, scales=scales, expected=[want.astype(dtype)])
        return
    if mode == "linear" and dtype != np.float16:
        # Integers truncate, so a float rounding difference near an integer is worth one.
        model = make_model("Resize", [x, None, scales], {"mode": mode}, opset=19)
        ours, = run_ours(model, {"in0": x})
        theirs, = run_ort(model, {"in0": x})
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.05
        return
    tol = 2e-2 if dtype == np.float16 else 1e-4
    resize(x, {"mode": mode}, scales=scales, rtol=tol, atol=tol)


def test_resize_integer_antialias_rounds():
    """Antialiased integer results round (ONNX's reference); onnxruntime's fixed-point
    uint8 path agrees to within one unit."""
    x = (RNG.uniform(0, 255, (1, 2, 9, 8))).astype(np.uint8)
    ours = resize(x.astype(np.float32), {"mode": "linear", "antialias": 1},
                  scales=f32(1, 1, 0.5, 0.6))[0]
    m = make_model("Resize", [x, None, f32(1, 1, 0.5, 0.6)], {"mode": "linear", "antialias": 1},
                   opset=19)
    got = compiler.compile(m).run({"in0": x})
    out = next(iter(got.values()))
    np.testing.assert_array_equal(out, np.clip(np.round(ours), 0, 255).astype(np.uint8))


def test_resize_runtime_scales_and_sizes():
    x = rand(1, 2, 5, 7)
    check_op("Resize", [x, None, np.array([1, 1, 2, 0.5], np.float32)], {"mode": "linear"},
             rtol=1e-4, atol=1e-5)
    check_op("Resize", [x, None, None, np.array([1, 2, 3, 9], np.int64)], {"mode": "cubic"},
             rtol=1e-4, atol=1e-5)


def test_resize_extrapolation_value():
    resize(rand(1, 1, 6, 6), {"mode": "linear", "coordinate_transformation_mode":
                              "tf_crop_and_resize", "extrapolation_value": 7.5},
           sizes=i64(1, 1, 4, 5))


def test_resize_opset_11_and_13_forms():
    x = rand(1, 2, 5, 7)
    empty = Const(np.zeros(0, np.float32))
    for cmode in ("tf_half_pixel_for_nn", "half_pixel", "align_corners"):
        check_op("Resize", [x, empty, empty, i64(1, 2, 8, 3)],
                 {"mode": "nearest", "coordinate_transformation_mode": cmode}, opset=11)
    check_op("Resize", [x, empty, f32(1, 1, 2, 1.5)], {"mode": "cubic"}, opset=11,
             rtol=1e-4, atol=1e-5)
    runtime_empty = np.zeros(0, np.float32)  # known empty from its shape alone
    check_op("Resize", [x, runtime_empty, runtime_empty, i64(1, 2, 3, 9)], {"mode": "linear"},
             opset=11, rtol=1e-4, atol=1e-5)
    check_op("Resize", [x, None, f32(1, 1, 0.6, 1.5)], {"mode": "linear"}, opset=13,
             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scales", [(1, 1, 2, 3), (1, 1, 0.6, 0.5), (1, 1, 1.5, 2.2), (1, 1, 0.5, 2)])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_10(mode, scales):
    """Resize-10: asymmetric coordinates; nearest floors up and ceils down (onnxruntime)."""
    x = rand(1, 2, 5, 7)
    check_op("Resize", [x, f32(*scales)], {"mode": mode}, opset=10, rtol=1e-4, atol=1e-5)
    check_op("Resize", [x, np.array(scales, np.float32)], {"mode": mode}, opset=10,
             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(mode):
    x = rand(1, 2, 3, 4)
    expected = check_op("Upsample", [x, f32(1, 1, 2, 3)], {"mode": mode}, opset=9)
    check_op("Upsample", [x, np.array([1, 1, 2, 3], np.float32)], {"mode": mode}, opset=9)
    check_op("Upsample", [x], {"mode": mode, "scales": [1.0, 1.0, 2.0, 3.0]}, opset=7,
             expected=expected)
    old_mode = "bilinear" if mode == "linear" else mode
    check_op("Upsample", [x], {"mode": old_mode, "height_scale": 2.0, "width_scale": 3.0},
             opset=1, expected=expected)


def test_upsample_is_imported_as_resize():
    m = make_model("Upsample", [rand(1, 1, 2, 2), f32(1, 1, 2, 2)], {}, opset=9)
    g = import_model(m)
    (node,) = g.nodes
    assert node.op == "Resize"
    assert node.attrs["coordinate_transformation_mode"] == "asymmetric"
    assert node.attrs["nearest_mode"] == "floor"
    assert node.outputs[0].type.shape == (1, 1, 4, 4)


def test_resize_type_rule():
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, ("N", 3, "H", 10)))
    scales = g.add_constant(np.array([1, 1, 2, 0.5], np.float32), "s")
    out = g.create_node("Resize", [x, None, scales], {}).output
    assert out.type.shape == ("N", 3, None, 5)
    runtime = g.add_input("rs", TensorType(DType.F32, (2,)))
    out = g.create_node("Resize", [x, None, runtime], {"axes": [2, 3]}).output
    assert out.type.shape == ("N", 3, None, None)
    sizes = g.add_constant(np.array([7], np.int64), "z")
    out = g.create_node("Resize", [x, None, None, sizes], {"axes": [-1]}).output
    assert out.type.shape == ("N", 3, "H", 7)


def test_resize_errors():
    x = rand(1, 2, 4, 4)
    expect_error("Resize", [x, None, f32(1, 1, 2, 2), i64(1, 2, 8, 8)], {}, "exactly one of")
    expect_error("Resize", [x], {}, "exactly one of")
    expect_error("Resize", [x, None, f32(2, 2)], {}, "one value per resized axis")
    expect_error("Resize", [x, None, f32(1, 1, 0, 2)], {}, "scales must be positive")
    expect_error("Resize", [x, None, f32(1, 1, 2, 2)], {"mode": "bilinear"}, "unknown mode")
    expect_error("Resize", [x, None, f32(1, 1, 2, 2)], {"nearest_mode": "up"}, "unknown nearest_mode")
    expect_error("Resize", [x, None, f32(1, 1, 2, 2)],
                 {"coordinate_transformation_mode": "tf_crop_and_resize"}, "needs the roi")
    expect_error("Resize", [x, None, f32(2, 2)], {"axes": [2, 2]}, "must not repeat")
    expect_error("Resize", [x, None, f32(2, 2)], {"axes": [2, 4]}, "axes out of range")
    expect_error("Resize", [x, None, None, Const(np.array([1, 2, 8, 8], np.int32))], {},
                 "sizes must be int64")


# ------------------------------------------------------------- GridSample
def _grid(*shape, lo=-1.3, hi=1.3):
    g = RNG.uniform(lo, hi, shape).astype(np.float32)
    g.reshape(-1, shape[-1])[:3] = [[1] * shape[-1], [-1] * shape[-1], [0] * shape[-1]]
    return g


@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
def test_grid_sample_2d(mode, padding, align):
    check_op("GridSample", [rand(2, 3, 5, 6), _grid(2, 4, 7, 2)],
             {"mode": mode, "padding_mode": padding, "align_corners": align},
             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_grid_sample_3d(mode, padding):
    check_op("GridSample", [rand(1, 2, 4, 5, 6), _grid(1, 3, 2, 4, 3)],
             {"mode": mode, "padding_mode": padding, "align_corners": 1}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_16(mode):
    check_op("GridSample", [rand(1, 2, 5, 6), _grid(1, 3, 4, 2)], {"mode": mode}, opset=16,
             rtol=1e-4, atol=1e-5)


def test_grid_sample_errors():
    x = rand(1, 2, 5, 6)
    expect_error("GridSample", [x, _grid(1, 3, 4, 3)], {}, "last dim must equal")
    expect_error("GridSample", [x, _grid(1, 3, 4, 2)], {"padding_mode": "wrap"}, "padding_mode")
    expect_error("GridSample", [x, _grid(1, 3, 2)], {}, "grid must have X's rank")


# ------------------------------------------------------------- AffineGrid
@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("size", [(2, 3, 5, 7), (2, 1, 1, 4), (2, 3, 4, 5, 6), (2, 1, 4, 1, 3)])
def test_affine_grid(size, align):
    d = len(size) - 2
    theta = rand(2, d, d + 1)
    check_op("AffineGrid", [theta, i64(*size)], {"align_corners": align}, opset=20,
             rtol=1e-5, atol=1e-6)
    check_op("AffineGrid", [Const(theta), np.array(size, np.int64)], {"align_corners": align},
             opset=20, rtol=1e-5, atol=1e-6)


def test_affine_grid_errors():
    expect_error("AffineGrid", [rand(2, 2, 4), i64(2, 3, 5, 7)], {}, "theta must be", opset=20)
    expect_error("AffineGrid", [rand(2, 2, 3), i64(2, 3, 5)], {}, "size must be", opset=20)
    expect_error("AffineGrid", [rand(2, 2, 3), i64(2, 3, 4, 5, 6)], {}, "disagree", opset=20)


# --------------------------------------------------------------- RoiAlign
ROIS = np.array([[0, 0, 9, 9], [1.5, 2.3, 7.7, 8.1], [0, 0, 4, 4], [-2, -1, 13, 11],
                 [3, 3, 3.2, 3.4]], np.float32)
BATCH = np.array([0, 1, 1, 0, 1], np.int64)


@pytest.mark.parametrize("ratio", [0, 2])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("cmode", ["half_pixel", "output_half_pixel"])
def test_roi_align(cmode, mode, ratio):
    check_op("RoiAlign", [rand(2, 3, 10, 12), ROIS, BATCH],
             {"coordinate_transformation_mode": cmode, "mode": mode, "sampling_ratio": ratio,
              "output_height": 3, "output_width": 4, "spatial_scale": 0.9},
             opset=16, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_roi_align_10_means_output_half_pixel(mode):
    x = rand(2, 3, 10, 12)
    attrs = {"mode": mode, "output_height": 3, "output_width": 2}
    old = check_op("RoiAlign", [x, ROIS, BATCH], attrs, opset=10, rtol=1e-4, atol=1e-5)
    check_op("RoiAlign", [x, ROIS, BATCH], dict(attrs, coordinate_transformation_mode=
                                                "output_half_pixel"), opset=16, expected=old,
             rtol=1e-5, atol=1e-6)


def test_roi_align_errors():
    x = rand(1, 2, 6, 6)
    expect_error("RoiAlign", [x, rand(2, 5), np.zeros(2, np.int64)], {}, "num_rois, 4")
    expect_error("RoiAlign", [x, rand(2, 4), np.zeros(2, np.int32)], {}, "batch_indices must be")
    expect_error("RoiAlign", [x, rand(2, 4), np.zeros(2, np.int64)], {"mode": "sum"}, "unknown mode")
