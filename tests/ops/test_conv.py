"""Conv, ConvTranspose, DeformConv and Col2Im against onnxruntime, plus type rules and errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

import compiler
from ir.dtypes import DType
from ir.errors import CompilerError
from ir.graph import Graph
from ir.registry import get_schema
from ir.types import TensorType
from tests.ops.ortcheck import Const, check_op, make_model

RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def expect_error(op, inputs, attrs, match, opset=22):
    with pytest.raises(CompilerError, match=match):
        compiler.compile(make_model(op, inputs, attrs, opset=opset))


# ---------------------------------------------------------------------- Conv
CONV_CASES = [
    # (x shape, w shape, attrs)
    ((1, 3, 10, 9), (4, 3, 3, 3), {}),
    ((2, 4, 9, 8), (6, 2, 3, 3), {"group": 2, "pads": [1, 0, 2, 1], "strides": [2, 1],
                                  "dilations": [1, 2]}),
    ((2, 6, 8, 8), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),        # depthwise
    ((1, 4, 8, 8), (8, 1, 3, 3), {"group": 4, "strides": [2, 2]}),         # depthwise x2
    ((1, 3, 9, 7), (5, 3, 3, 2), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 9, 7), (5, 3, 3, 2), {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 3, 9, 7), (5, 3, 4, 2), {"auto_pad": "VALID", "strides": [1, 2]}),
    ((1, 3, 9, 7), (5, 3, 3, 3), {"kernel_shape": [3, 3], "pads": [2, 2, 2, 2]}),
    ((2, 3, 11), (4, 3, 3), {"dilations": [3], "pads": [1, 2]}),            # 1-D
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 2), {"strides": [1, 2, 2], "pads": [1, 0, 1, 0, 1, 1]}),  # 3-D
    ((1, 4, 5, 6, 7), (4, 2, 3, 1, 2), {"group": 2, "dilations": [1, 2, 3]}),
    ((1, 8, 6, 6), (16, 8, 1, 1), {}),                                      # 1x1 fast path
    ((1, 8, 6, 6), (16, 8, 1, 1), {"strides": [2, 2]}),
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES)
def test_conv(xs, ws, attrs, bias):
    inputs = [rand(*xs), Const(rand(*ws))]
    if bias:
        inputs.append(rand(ws[0]))
    check_op("Conv", inputs, attrs, opset=22, rtol=1e-4, atol=1e-5)


def test_conv_float16_and_float64():
    x, w, b = rand(1, 4, 7, 6), rand(6, 2, 3, 3), rand(6)
    attrs = {"group": 2, "pads": [1, 1, 1, 1]}
    half = [a.astype(np.float16) for a in (x, w, b)]
    check_op("Conv", [half[0], half[1], Const(half[2])], attrs, rtol=2e-2, atol=2e-2)
    # onnxruntime has no float64 Conv: compare with its float32 result.
    f32 = check_op("Conv", [x, w, b], attrs, rtol=1e-4, atol=1e-5)[0]
    check_op("Conv", [x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)], attrs,
             expected=[f32.astype(np.float64)], rtol=1e-4, atol=1e-5)


def test_conv_runtime_weights_and_old_opsets():
    x, w = rand(2, 3, 8, 8), rand(4, 3, 3, 3)
    for opset in (6, 11, 22):
        check_op("Conv", [x, w], {"pads": [1, 1, 0, 0], "strides": [2, 1]}, opset=opset,
                 rtol=1e-4, atol=1e-5)


def test_conv_bfloat16_matches_float32_rounded():
    x, w = rand(1, 2, 6, 6), rand(3, 2, 3, 3)
    import ml_dtypes
    xb, wb = x.astype(ml_dtypes.bfloat16), w.astype(ml_dtypes.bfloat16)
    ref = check_op("Conv", [xb.astype(np.float32), wb.astype(np.float32)], {}, rtol=1e-4, atol=1e-5)[0]
    ours = get_schema("Conv").reference_fn(xb, wb, None, auto_pad="NOTSET", dilations=None, group=1,
                                           kernel_shape=None, pads=None, strides=None)
    assert ours.dtype == xb.dtype
    np.testing.assert_allclose(ours.astype(np.float32), ref, rtol=2e-2, atol=2e-2)


def test_conv_keeps_symbolic_dims():
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, ("N", 3, "H", "W")))
    w = g.add_constant(rand(8, 3, 3, 3), "w")
    same = g.add("Conv", x, w, pads=[1, 1, 1, 1])
    assert same.type.shape == ("N", 8, "H", "W")
    strided = g.add("Conv", x, w, strides=[2, 2])
    assert strided.type.shape == ("N", 8, None, None)
    auto = g.add("Conv", x, w, auto_pad="SAME_UPPER")
    assert auto.type.shape == ("N", 8, "H", "W")
    unknown_rank = g.add("Conv", g.add_input("y", TensorType(DType.F32, None)), w)
    assert unknown_rank.type.shape == (None, 8, None, None)


def test_conv_errors():
    x = rand(1, 4, 8, 8)
    expect_error("Conv", [x, Const(rand(6, 3, 3, 3))], {}, "input channels must equal W.shape")
    expect_error("Conv", [x, Const(rand(6, 2, 3, 3))], {"group": 4}, "input channels must equal")
    expect_error("Conv", [x, Const(rand(5, 2, 3, 3))], {"group": 2}, "divisible by group")
    expect_error("Conv", [x, Const(rand(6, 4, 3, 3))], {"kernel_shape": [2, 2]},
                 "kernel_shape disagrees")
    expect_error("Conv", [x, Const(rand(6, 4, 3, 3)), Const(rand(5))], {}, "bias length")
    expect_error("Conv", [x, Const(rand(6, 4, 3, 3))], {"strides": [1, 1, 1]},
                 "strides has the wrong length")
    expect_error("Conv", [x, Const(rand(6, 4, 3, 3))], {"auto_pad": "SAME"}, "unknown auto_pad")
    expect_error("Conv", [x, Const(rand(6, 4, 9, 9))], {}, "kernel does not fit")
    expect_error("Conv", [rand(4, 8), Const(rand(6, 8))], {}, "rank >= 3")
    expect_error("Conv", [x, Const(rand(6, 4, 3, 3, dtype=np.float64))], {}, "share one element")
    expect_error("Conv", [x.astype(np.int32), Const(rand(6, 4, 3, 3).astype(np.int32))], {},
                 "unsupported element type")


def test_conv_resnet_layer_is_fast():
    """A 224x224 ResNet-50 stem and a 56x56 3x3 layer: im2col + matmul, well under a second."""
    ref = get_schema("Conv").reference_fn
    kw = dict(auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None)
    x, w = rand(1, 3, 224, 224), rand(64, 3, 7, 7)
    start = time.perf_counter()
    y = ref(x, w, None, pads=[3, 3, 3, 3], strides=[2, 2], **kw)
    y2 = ref(rand(1, 64, 56, 56), rand(64, 64, 3, 3), None, pads=[1, 1, 1, 1], strides=None, **kw)
    assert time.perf_counter() - start < 1.5
    assert y.shape == (1, 64, 112, 112) and y2.shape == (1, 64, 56, 56)


# -------------------------------------------------------------- ConvTranspose
CT_CASES = [
    ((1, 2, 4, 5), (2, 3, 3, 3), {}),
    ((2, 4, 9, 8), (4, 3, 3, 3), {"group": 2, "pads": [1, 0, 2, 1], "strides": [2, 1],
                                  "dilations": [1, 2], "output_padding": [1, 0]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [3, 2], "output_padding": [2, 1]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [2, 2], "output_shape": [8, 9]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [2, 3], "output_shape": [7, 12]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [2, 3], "output_shape": [6, 11],
                                  "auto_pad": "SAME_UPPER"}),
    ((1, 2, 5, 4), (2, 3, 3, 4), {"strides": [2, 3], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 5, 4), (2, 3, 3, 4), {"strides": [2, 3], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 5, 4), (2, 3, 3, 2), {"strides": [2, 1], "auto_pad": "VALID"}),
    ((1, 3, 7), (3, 2, 3), {"strides": [2], "pads": [1, 2]}),                   # 1-D
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": [2, 1, 2], "dilations": [1, 2, 1]}),  # 3-D
    ((1, 4, 3, 3), (4, 1, 3, 3), {"group": 4, "strides": [2, 2]}),              # depthwise
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("xs,ws,attrs", CT_CASES)
def test_conv_transpose(xs, ws, attrs, bias):
    inputs = [rand(*xs), Const(rand(*ws))]
    if bias:
        inputs.append(Const(rand(ws[1] * attrs.get("group", 1))))
    check_op("ConvTranspose", inputs, attrs, opset=22, rtol=1e-4, atol=1e-5)


def test_conv_transpose_same_with_kernel_smaller_than_stride():
    """auto_pad SAME gives in * stride (the spec); onnxruntime trims to the natural size
    there, but agrees when that shape is asked for explicitly."""
    x, w = rand(1, 2, 5, 4), Const(rand(2, 3, 3, 2))
    spelled_out = check_op("ConvTranspose", [x, w], {"strides": [2, 3], "output_shape": [10, 12],
                                                      "auto_pad": "SAME_UPPER"}, rtol=1e-4, atol=1e-5)
    check_op("ConvTranspose", [x, w], {"strides": [2, 3], "auto_pad": "SAME_UPPER"},
             expected=spelled_out, rtol=1e-4, atol=1e-5)
    full = check_op("ConvTranspose", [x, w], {"strides": [2, 3], "output_shape": [1, 2, 10, 12],
                                                 "auto_pad": "SAME_UPPER"},
                    expected=spelled_out, rtol=1e-4, atol=1e-5)[0]
    assert full.shape == (1, 3, 10, 12)


def test_conv_transpose_shapes_keep_symbolic_dims():
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, ("N", 2, "H", 5)))
    w = g.add_constant(rand(2, 3, 3, 3), "w")
    assert g.add("ConvTranspose", x, w, auto_pad="SAME_UPPER").type.shape == ("N", 3, "H", 5)
    y = g.add("ConvTranspose", x, w, strides=[2, 2], pads=[1, 1, 1, 1])
    assert y.type.shape == ("N", 3, None, 9)
    y = g.add("ConvTranspose", x, w, group=2, output_shape=[7, 8])
    assert y.type.shape == ("N", 6, 7, 8)


def test_conv_transpose_old_opset_and_runtime_weights():
    x, w = rand(1, 2, 4, 4), rand(2, 3, 3, 3)
    for opset in (6, 11):
        check_op("ConvTranspose", [x, w], {"strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=opset,
                 rtol=1e-4, atol=1e-5)


def test_conv_transpose_errors():
    x = rand(1, 4, 5, 5)
    expect_error("ConvTranspose", [x, Const(rand(3, 2, 3, 3))], {}, "must equal W.shape\\[0\\]")
    expect_error("ConvTranspose", [x, Const(rand(4, 2, 3, 3))], {"group": 3}, "divisible by group")
    expect_error("ConvTranspose", [x, Const(rand(4, 2, 3, 3))], {"output_padding": [1]},
                 "output_padding does not match")
    expect_error("ConvTranspose", [x, Const(rand(4, 2, 3, 3))], {"output_shape": [1, 2, 3]},
                 "output_shape does not match")
    expect_error("ConvTranspose", [x, Const(rand(4, 2, 3, 3))], {"pads": [4, 4, 4, 4]},
                 "output dims must be positive")


# ----------------------------------------------------------------- DeformConv
def _offsets(n, og, k, out):
    return RNG.uniform(-2, 2, (n, og * 2 * k) + out).astype(np.float32)


@pytest.mark.parametrize("with_mask,with_bias", [(False, False), (True, True), (True, False)])
def test_deform_conv(with_mask, with_bias):
    x, w = rand(2, 4, 7, 8), Const(rand(6, 2, 3, 3))
    attrs = {"group": 2, "offset_group": 2, "pads": [1, 0, 0, 1], "strides": [2, 1]}
    inputs = [x, w, _offsets(2, 2, 9, (3, 7)),
              rand(6) if with_bias else None,
              RNG.uniform(0, 1, (2, 2 * 9, 3, 7)).astype(np.float32) if with_mask else None]
    check_op("DeformConv", inputs, attrs, opset=19, rtol=1e-4, atol=1e-4)


def test_deform_conv_dilated_and_zero_offsets_equal_conv():
    x, w = rand(1, 3, 9, 9), rand(5, 3, 3, 3)
    attrs = {"dilations": [2, 2], "strides": [1, 2], "pads": [1, 1, 1, 1]}
    check_op("DeformConv", [x, Const(w), _offsets(1, 1, 9, (7, 4))], attrs, opset=22,
             rtol=1e-4, atol=1e-4)
    zero = np.zeros((1, 18, 7, 4), np.float32)
    plain = check_op("Conv", [x, w], attrs, rtol=1e-4, atol=1e-5)[0]
    check_op("DeformConv", [x, w, zero], attrs, opset=19, expected=[plain], rtol=1e-4, atol=1e-5)


def test_deform_conv_errors():
    x, w = rand(1, 4, 6, 6), Const(rand(4, 4, 3, 3))
    expect_error("DeformConv", [x, w, rand(1, 17, 4, 4)], {}, "offset must have")
    expect_error("DeformConv", [x, w, rand(1, 18, 5, 4)], {}, "offset's spatial dims")
    expect_error("DeformConv", [x, w, rand(1, 36, 4, 4)], {"offset_group": 3},
                 "divisible by offset_group")


# --------------------------------------------------------------------- Col2Im
@pytest.mark.parametrize("image,block,attrs,c", [
    ([5, 8], [2, 3], {"pads": [0, 1, 0, 0]}, 3),
    ([6, 7], [2, 2], {"strides": [2, 2], "pads": [1, 1, 1, 0], "dilations": [2, 1]}, 2),
    ([4, 5], [1, 1], {}, 2),
    ([3, 4, 5], [2, 2, 2], {"strides": [1, 2, 1]}, 1),
])
def test_col2im(image, block, attrs, c):
    d = len(image)
    strides = attrs.get("strides", [1] * d)
    dil = attrs.get("dilations", [1] * d)
    pads = attrs.get("pads", [0] * 2 * d)
    blocks = [(image[i] + pads[i] + pads[i + d] - (block[i] - 1) * dil[i] - 1) // strides[i] + 1
              for i in range(d)]
    cols = rand(2, c * int(np.prod(block)), int(np.prod(blocks)))
    shape_args = [Const(np.array(image, np.int64)), Const(np.array(block, np.int64))]
    if d == 2:
        check_op("Col2Im", [cols] + shape_args, attrs, opset=18, rtol=1e-5, atol=1e-5)
    else:  # onnxruntime implements 2-D only: check the N-D result against a direct loop
        ours = check_op("Col2Im", [cols] + shape_args, attrs, opset=18,
                        expected=[_col2im_loop(cols, image, block, blocks, strides, pads, dil)])
        assert ours[0].shape == (2, c, *image)


def _col2im_loop(cols, image, block, blocks, strides, pads, dil):
    n, ck, _ = cols.shape
    c = ck // int(np.prod(block))
    out = np.zeros((n, c, *image), np.float32)
    cols = cols.reshape(n, c, *block, *blocks)
    for k in np.ndindex(*block):
        for b in np.ndindex(*blocks):
            pos = [b[i] * strides[i] - pads[i] + k[i] * dil[i] for i in range(len(image))]
            if all(0 <= p < s for p, s in zip(pos, image)):
                out[(slice(None), slice(None)) + tuple(pos)] += cols[(slice(None), slice(None)) + k + b]
    return out


def test_col2im_errors():
    cols = rand(1, 12, 20)
    image, block = Const(np.array([5, 8], np.int64)), Const(np.array([2, 3], np.int64))
    expect_error("Col2Im", [rand(1, 12, 19), image, block], {}, "number of blocks")
    expect_error("Col2Im", [rand(1, 10, 28), image, block], {}, "multiple of prod")
    expect_error("Col2Im", [cols, image, Const(np.array([2, 3, 1], np.int64))], {},
                 "same length")
    expect_error("Col2Im", [rand(12, 20), image, block], {}, "must be 3-D")
