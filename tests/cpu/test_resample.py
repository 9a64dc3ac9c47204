"""cpu target: Resize against the reference interpreter.

Every mode (nearest, linear, cubic), every coordinate_transformation_mode and
nearest_mode, antialias, exclude_outside, cubic_coeff_a, tf_crop_and_resize
with extrapolation, resized axis subsets, sizes with keep_aspect_ratio_policy,
up- and downsampling on odd shapes larger than the ONNX suite's (so vector
rows, tails and gathered last axes all run), integer and float16/float64
nearest, and a U-Net-style decoder block (ConvTranspose, bilinear Resize,
Concat skip, Conv).  Each case asserts the Resize ran as a cpu kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import const, make_model

COORD_MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 1.7, 2.35], [1.0, 1.0, 0.6, 0.45]]


def kernel_labels(module) -> list[str]:
    return list(module.executable.description["kernels"])


def check_resize(x: np.ndarray, attrs: dict, scales=None, sizes=None, roi=None, rtol=1e-4, atol=1e-5):
    inputs = ["x", "roi" if roi is not None else "", "scales" if scales is not None else ""]
    inits = []
    if roi is not None:
        inits.append(const("roi", np.asarray(roi, np.float32)))
    if scales is not None:
        inits.append(const("scales", np.asarray(scales, np.float32)))
    if sizes is not None:
        inputs.append("sizes")
        inits.append(const("sizes", np.asarray(sizes, np.int64)))
    dtype = oh.np_dtype_to_tensor_dtype(x.dtype)
    model = make_model([oh.make_node("Resize", inputs, ["y"], **attrs)], {"x": (list(x.shape), dtype)},
                       {"y": dtype}, inits, opset=19)
    want = compiler.compile(model, target="ref").run({"x": x})["y"]
    module = compiler.compile(model, target="cpu")
    got = module.run({"x": x})["y"]
    assert any("Resize" in label for label in kernel_labels(module)), kernel_labels(module)
    assert got.dtype == want.dtype and got.shape == want.shape
    if x.dtype.kind == "f":
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, want)


def _x(shape=(2, 3, 7, 9), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("cmode", COORD_MODES + ["tf_half_pixel_for_nn"])
@pytest.mark.parametrize("nmode", NEAREST_MODES)
def test_nearest(scales, cmode, nmode):
    check_resize(_x(), dict(mode="nearest", coordinate_transformation_mode=cmode, nearest_mode=nmode), scales)


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("cmode", COORD_MODES)
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_linear_and_cubic(scales, cmode, mode):
    check_resize(_x(), dict(mode=mode, coordinate_transformation_mode=cmode), scales)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("scales", [[1.0, 1.0, 0.6, 0.45], [1.0, 1.0, 0.3, 0.8], [1.0, 1.0, 1.5, 0.7]])
def test_antialias(mode, scales):
    check_resize(_x((1, 2, 19, 23)), dict(mode=mode, antialias=1), scales)


@pytest.mark.parametrize("a", [-0.5, -0.75])
@pytest.mark.parametrize("scales", [[1.0, 1.0, 1.7, 2.35], [1.0, 1.0, 0.6, 0.45]])
def test_cubic_exclude_outside(a, scales):
    check_resize(_x(), dict(mode="cubic", cubic_coeff_a=a, exclude_outside=1), scales)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_tf_crop_and_resize_extrapolates(mode):
    roi = [0, 0, -0.2, 0.4, 1, 1, 0.7, 1.3]  # partly outside the image: extrapolation_value there
    check_resize(_x(), dict(mode=mode, coordinate_transformation_mode="tf_crop_and_resize",
                            extrapolation_value=2.5), sizes=[2, 3, 11, 6], roi=roi)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("axes", [[2, 3], [3, 2], [3]])
def test_sizes_and_axes(policy, axes):
    sizes = {2: 13, 3: 5}
    check_resize(_x(), dict(mode="linear", axes=axes, keep_aspect_ratio_policy=policy),
                 sizes=[sizes[a] for a in axes])


def test_last_axis_only_and_wide_rows():
    check_resize(_x((3, 40)), dict(mode="linear"), scales=[1.0, 1.6])
    check_resize(_x((2, 4, 5, 37)), dict(mode="cubic"), scales=[1.0, 1.0, 2.0, 1.3])


def test_volumes():
    check_resize(_x((1, 2, 4, 5, 6)), dict(mode="linear"), scales=[1.0, 1.0, 2.0, 1.5, 0.5])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.bool_])
def test_nearest_any_element_type(dtype):
    x = (np.random.default_rng(1).integers(0, 100, (2, 3, 7, 9)) % (2 if dtype is np.bool_ else 100)).astype(dtype)
    check_resize(x, dict(mode="nearest"), scales=[1.0, 1.0, 1.7, 2.35])


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_other_float_types(dtype, mode):
    check_resize(_x(dtype=dtype), dict(mode=mode), scales=[1.0, 1.0, 1.7, 0.6], rtol=2e-3, atol=2e-3)


def test_integer_linear_is_refused_with_its_reason():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    model = make_model([oh.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")],
                       {"x": ([2, 3, 4, 4], T.UINT8)}, {"y": T.UINT8},
                       [const("scales", np.asarray([1, 1, 2, 2], np.float32))], opset=19)
    with pytest.raises(Exception, match="Resize linear on u8"):
        compiler.compile(model, target="cpu").run({"x": x})


def test_unet_decoder_block():
    """ConvTranspose up, bilinear Resize up of a deeper map, Concat with the skip, Conv: cpu == ref."""
    rng = np.random.default_rng(3)
    w_up = rng.standard_normal((8, 4, 2, 2)).astype(np.float32) * 0.3
    w = rng.standard_normal((6, 12, 3, 3)).astype(np.float32) * 0.2
    nodes = [
        oh.make_node("ConvTranspose", ["deep", "w_up"], ["up"], strides=[2, 2]),
        oh.make_node("Resize", ["deeper", "", "scales"], ["up2"], mode="linear",
                     coordinate_transformation_mode="half_pixel"),
        oh.make_node("Concat", ["up", "up2", "skip"], ["cat"], axis=1),
        oh.make_node("Conv", ["cat", "w"], ["conv"], pads=[1, 1, 1, 1]),
        oh.make_node("Relu", ["conv"], ["y"]),
    ]
    model = make_model(nodes, {"deep": ([1, 8, 8, 8], T.FLOAT), "deeper": ([1, 4, 4, 4], T.FLOAT),
                               "skip": ([1, 4, 16, 16], T.FLOAT)}, {"y": T.FLOAT},
                       [const("w_up", w_up), const("w", w), const("scales", np.asarray([1, 1, 4, 4], np.float32))],
                       opset=19)
    feeds = {"deep": rng.standard_normal((1, 8, 8, 8)).astype(np.float32),
             "deeper": rng.standard_normal((1, 4, 4, 4)).astype(np.float32),
             "skip": rng.standard_normal((1, 4, 16, 16)).astype(np.float32)}
    want = compiler.compile(model, target="ref").run(feeds)["y"]
    module = compiler.compile(model, target="cpu")
    np.testing.assert_allclose(module.run(feeds)["y"], want, rtol=1e-4, atol=1e-4)
    assert any("Resize" in label for label in kernel_labels(module))
