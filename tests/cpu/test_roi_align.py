"""cpu target: RoiAlign against the reference.

Both modes and coordinate transformations, fixed and adaptive sampling
ratios, regions partly or wholly outside the image, tiny and inverted boxes,
several images, float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)
ROIS = np.array([[0, 0, 9, 9], [2.5, 1.2, 7.7, 11.9], [-3, -2, 4, 5], [8, 8, 30, 25], [5, 5, 5.2, 5.1],
                 [6, 6, 2, 3], [1, 1, 13, 15]], np.float32)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ctm", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("ratio", [0, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roi_align(mode, ctm, ratio, dtype):
    x = RNG.standard_normal((2, 3, 12, 14)).astype(dtype)
    rois = ROIS.astype(dtype)
    idx = np.array([0, 1, 0, 1, 1, 0, 1], np.int64)
    ty = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = make_model([oh.make_node("RoiAlign", ["x", "r", "i"], ["y"], mode=mode,
                                     coordinate_transformation_mode=ctm, sampling_ratio=ratio, output_height=3,
                                     output_width=4, spatial_scale=0.9)],
                       {"x": (list(x.shape), ty), "r": (list(rois.shape), ty), "i": ([7], T.INT64)}, {"y": ty},
                       opset=16)
    feeds = {"x": x, "r": rois, "i": idx}
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert any("RoiAlign" in label for label in module.executable.description["kernels"])
    assert_close(got, want, 1e-5, 1e-5)
