"""The indexing, geometry and control-flow lowerings (TOPI and our TE) against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from .helpers import check, model, rand

H = helper.make_node
I64 = TensorProto.INT64


def test_gather_nd_with_negative_indices_and_batch_dims():
    idx = np.array([[[0, -1]], [[1, 0]]], dtype=np.int64)  # (2, 1, 2)
    p = model([H("GatherND", ["x", "i"], ["y"]), H("GatherND", ["x", "j"], ["z"], batch_dims=1)],
              {"x": (2, 3, 4)}, ["y", "z"], {"i": idx, "j": np.array([[2], [-3]], dtype=np.int64)})
    check(p, {"x": rand(2, 3, 4)})


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
def test_scatter_elements_and_scatter_nd(reduction):
    ie = np.array([[1, -1, 0], [2, 0, 1]], dtype=np.int64)
    ind = np.array([[0, 1], [2, -1]], dtype=np.int64)
    p = model([H("ScatterElements", ["x", "ie", "u"], ["y"], axis=1, reduction=reduction),
               H("ScatterND", ["x", "ind", "v"], ["z"], reduction=reduction)],
              {"x": (3, 4), "u": (2, 3), "v": (2,)}, ["y", "z"], {"ie": ie, "ind": ind})
    check(p, {"x": rand(3, 4), "u": rand(2, 3, seed=1), "v": rand(2, seed=2)})


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_values_and_indices(largest):
    p = model([H("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)], {"x": (3, 7)}, ["v", "i"],
              {"k": np.array([3], dtype=np.int64)})
    check(p, {"x": rand(3, 7)})


def test_reverse_sequence_and_einsum():
    p = model([H("ReverseSequence", ["x", "n"], ["r"], time_axis=0, batch_axis=1),
               H("Einsum", ["a", "b"], ["e"], equation="bij,bjk->bik")],
              {"x": (4, 3, 2), "a": (2, 3, 5), "b": (2, 5, 4)}, ["r", "e"],
              {"n": np.array([4, 1, 2], dtype=np.int64)})
    check(p, {"x": rand(4, 3, 2), "a": rand(2, 3, 5), "b": rand(2, 5, 4)})


@pytest.mark.parametrize("attrs,scales,sizes", [
    (dict(mode="linear"), [1, 1, 0.6, 1.7], None),
    (dict(mode="cubic", coordinate_transformation_mode="asymmetric", exclude_outside=1), [1, 1, 2, 2], None),
    (dict(mode="nearest", nearest_mode="round_prefer_ceil", coordinate_transformation_mode="half_pixel"),
     [1, 1, 1.5, 0.7], None),
    (dict(mode="linear", antialias=1), None, [1, 2, 3, 4]),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), None, [1, 2, 8, 9]),
    (dict(mode="cubic", coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=2.0),
     None, [1, 2, 5, 5]),
])
def test_resize_modes(attrs, scales, sizes):
    weights = {"roi": np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32)}
    if scales is not None:
        weights["scales"] = np.array(scales, np.float32)
    else:
        weights["sizes"] = np.array(sizes, np.int64)
    inputs = ["x", "roi", "scales" if scales is not None else "", "sizes" if sizes is not None else ""]
    p = model([H("Resize", inputs, ["y"], **attrs)], {"x": (1, 2, 6, 7)}, ["y"], weights)
    check(p, {"x": rand(1, 2, 6, 7)})


@pytest.mark.parametrize("mode,padding", [("linear", "zeros"), ("nearest", "border"), ("cubic", "reflection")])
def test_grid_sample(mode, padding):
    p = model([H("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding, align_corners=0)],
              {"x": (1, 2, 5, 6), "g": (1, 3, 4, 2)}, ["y"], opset=20)
    check(p, {"x": rand(1, 2, 5, 6), "g": rand(1, 3, 4, 2, scale=0.8)})


@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid_2d_and_3d(align):
    p = model([H("AffineGrid", ["t", "s"], ["g"], align_corners=align),
               H("AffineGrid", ["t3", "s3"], ["g3"], align_corners=align)],
              {"t": (2, 2, 3), "t3": (1, 3, 4)}, ["g", "g3"],
              {"s": np.array([2, 1, 4, 5], np.int64), "s3": np.array([1, 1, 3, 2, 4], np.int64)}, opset=20)
    check(p, {"t": rand(2, 2, 3), "t3": rand(1, 3, 4)})


def test_static_loop_is_unrolled():
    """A Loop with a constant trip count: unroll-control-flow turns it into Adds the target runs."""
    body = helper.make_graph(
        [H("Add", ["acc", "x"], ["acc_out"]), H("Identity", ["c"], ["c_out"])], "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [3])])
    p = model([H("Loop", ["m", "cond", "a0"], ["y"], body=body)], {"x": (3,), "a0": (3,)}, ["y"],
              {"m": np.array(4, np.int64), "cond": np.array(True)})
    check(p, {"x": rand(3), "a0": rand(3, seed=1)})


def test_bitcast_center_crop_pad_and_bool_reductions():
    p = model([H("BitCast", ["x"], ["b"], to=TensorProto.INT32),
               H("CenterCropPad", ["x", "s"], ["c"]),
               H("ReduceMax", ["m", "ax"], ["rmax"], keepdims=0),
               H("ReduceMin", ["m", "ax"], ["rmin"], keepdims=0)],
              {"x": (5, 4), "m": (3, 4)}, ["b", "c", "rmax", "rmin"],
              {"s": np.array([3, 7], np.int64), "ax": np.array([1], np.int64)}, opset=26,
              input_types={"m": TensorProto.BOOL})
    m = np.array([[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=bool)
    check(p, {"x": rand(5, 4), "m": m})


def test_narrow_integers_cast_and_quantize():
    """int4/uint4/int2 held as byte values: Cast wraps and truncates like ml_dtypes; QuantizeLinear
    saturates to int4's range; the outputs come back as the model's types."""
    import ml_dtypes
    p = model([H("Cast", ["x"], ["i4"], to=TensorProto.INT4),
               H("Cast", ["n"], ["u2"], to=TensorProto.UINT2),
               H("Cast", ["i4"], ["back"], to=TensorProto.FLOAT),
               H("QuantizeLinear", ["x", "s", "zp"], ["q"], axis=1),
               H("DequantizeLinear", ["q", "s", "zp"], ["dq"], axis=1)],
              {"x": (2, 6), "n": (2, 6)}, ["i4", "u2", "back", "q", "dq"],
              {"s": np.array([0.5, 0.25, 1, 2, 0.3, 0.7], np.float32),
               "zp": np.array([1, -2, 0, 3, -8, 7], ml_dtypes.int4)},
              opset=21, input_types={"n": TensorProto.INT32})
    x = np.array([[-9.5, -8.7, -1.2, 0.4, 7.9, 8.2], [np.nan, 3.5, -3.5, 2.0, 100.0, -0.9]], np.float32)
    n = np.array([[-5, -1, 0, 3, 4, 7], [9, 12, -2, 1, 2, 255]], np.int32)
    check(p, {"x": x, "n": n})


def test_col2im_with_strides_pads_and_dilations():
    # image 6x7, kernel 2x3, dilations (2, 1), strides (1, 2), pads 1 on every side: 6 x 4 blocks
    p = model([H("Col2Im", ["x", "img", "blk"], ["y"], dilations=[2, 1], strides=[1, 2], pads=[1, 1, 1, 1])],
              {"x": (1, 12, 24)}, ["y"],
              {"img": np.array([6, 7], np.int64), "blk": np.array([2, 3], np.int64)})
    check(p, {"x": rand(1, 12, 24)})


@pytest.mark.parametrize("mode,starts", [("linear", [0, 3]), ("circular", [4, 2])])
def test_tensor_scatter_kv_cache_update(mode, starts):
    p = model([H("TensorScatter", ["past", "upd", "w"], ["y"], axis=2, mode=mode)],
              {"past": (2, 3, 6, 4), "upd": (2, 3, 3, 4)}, ["y"], {"w": np.array(starts, np.int64)}, opset=24)
    check(p, {"past": rand(2, 3, 6, 4), "upd": rand(2, 3, 3, 4, seed=1)})


@pytest.mark.parametrize("attrs,length,shape", [
    (dict(), None, (2, 7, 1)),                      # real input, full spectrum
    (dict(onesided=1), 10, (2, 7, 2)),              # complex, zero-padded, one-sided
    (dict(inverse=1), 5, (1, 8, 2)),                # truncated inverse
    (dict(inverse=1, onesided=1), 9, (2, 5, 2)),    # IRFFT, odd length
])
def test_dft(attrs, length, shape):
    inputs = ["x", "n" if length else "", "ax"]
    weights = {"ax": np.array(1, np.int64)}
    if length:
        weights["n"] = np.array(length, np.int64)
    p = model([H("DFT", inputs, ["y"], **attrs)], {"x": shape}, ["y"], weights, opset=20)
    check(p, {"x": rand(*shape)}, rtol=1e-5)


def test_reductions_over_an_empty_axis_write_the_identity():
    """A zero-extent reduce axis never runs TIR's init: the rule writes the identity itself."""
    ax = {"ax": np.array([1], np.int64)}
    p = model([H("Mul", ["x", "x"], ["sq"]), H("ReduceSum", ["sq", "ax"], ["s"]),
               H("ReduceMax", ["x", "ax"], ["mx"]), H("ReduceProd", ["x", "ax"], ["pr"]),
               H("ReduceLogSumExp", ["x", "ax"], ["lse"])],
              {"x": (2, 0, 4)}, ["s", "mx", "pr", "lse"], ax)
    for _ in range(2):  # the same answer every call (it used to be whatever the arena held)
        check(p, {"x": np.zeros((2, 0, 4), np.float32)})
