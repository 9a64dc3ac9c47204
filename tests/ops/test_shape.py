"""Shape family against onnxruntime: reshapes, transposes, concat/split, slice/pad, generators.

Each op is checked with runtime and constant (initializer) index inputs, so
both the "shape known at compile time" and the "shape known at run time"
paths of the type rules run.  Older opset forms go through the import rules;
where onnxruntime has no kernel for them we compare with NumPy.  Symbolic
dims are checked on imported graphs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from frontends.onnx import ImportOptions, import_model
from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op, make_model

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-50, 50, shape).astype(dtype)
    if np.dtype(dtype) == bool:
        return RNG.random(shape) > 0.5
    return RNG.standard_normal(shape).astype(dtype)


def i64(*values):
    return np.array(values, dtype=np.int64)


def both(x):
    """An index input both ways: as a runtime input and as an initializer."""
    return [x, Const(x)]


def symbolic_type(op, inputs, attrs=None, dims=None, opset=21, num_outputs=1):
    """Output shapes our rules give when input 0 has the (symbolic) ``dims``."""
    model = make_model(op, inputs, attrs, opset=opset, num_outputs=num_outputs)
    inp = model.graph.input[0]
    inp.type.tensor_type.ClearField("shape")
    for d in dims:
        dim = inp.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        elif d is not None:
            dim.dim_value = d
    for out in model.graph.output:  # drop the shapes make_model inferred for the static input
        out.type.tensor_type.ClearField("shape")
    graph = import_model(model, ImportOptions(onnx_shape_inference=False))
    shapes = [v.type.shape for v in graph.outputs]
    return shapes if num_outputs > 1 else shapes[0]


# ------------------------------------------------------------------ Identity
@pytest.mark.parametrize("dtype", [np.float32, np.int64, bool])
def test_identity(dtype):
    check_op("Identity", [rand(2, 3, dtype=dtype)])
    check_op("Identity", [rand(3, dtype=dtype)], opset=1)


def test_identity_strings():
    check_op("Identity", [np.array(["a", "bc"], dtype=object)])


# ------------------------------------------------------------------- Reshape
@pytest.mark.parametrize("shape", [(6, 4), (0, -1), (-1,), (2, 0, 2, 2), (4, 3, 2), (-1, 1, 4)])
@pytest.mark.parametrize("const", [False, True])
def test_reshape(shape, const):
    x = rand(2, 3, 4)
    s = i64(*shape)
    out = check_op("Reshape", [x, Const(s) if const else s])
    assert out[0].size == 24


@pytest.mark.parametrize("dtype", [np.float16, np.int32, bool])
def test_reshape_dtypes(dtype):
    check_op("Reshape", [rand(4, 3, dtype=dtype), Const(i64(3, -1))], opset=13)


def test_reshape_allowzero():
    # allowzero=1: a 0 in shape is a real 0-sized dim, not "copy the input dim".
    check_op("Reshape", [rand(0, 3, 4), Const(i64(3, 4, 0))], {"allowzero": 1}, opset=14)
    check_op("Reshape", [rand(0, 3, 4), i64(3, 4, 0)], {"allowzero": 1}, opset=14)


@pytest.mark.parametrize("opset", [1, 4])
def test_reshape_v1_attribute(opset):
    check_op("Reshape", [rand(2, 3, 4)], {"shape": [4, -1]}, opset=opset)


@pytest.mark.parametrize("shape, const, expected", [
    ((0, -1), True, ("N", 12)),
    ((-1, 12), True, ("N", 12)),      # -1 solved over symbols: N*3*4 / 12
    ((-1, 6), True, (None, 6)),       # 2*N is not one dim
    ((0, 3, 2, 2), True, ("N", 3, 2, 2)),
    ((3, 8), False, (None, None)),    # runtime shape: only the rank is known
])
def test_reshape_symbolic(shape, const, expected):
    s = i64(*shape)
    assert symbolic_type("Reshape", [rand(2, 3, 4), Const(s) if const else s],
                         dims=("N", 3, 4)) == expected


@pytest.mark.parametrize("shape, match", [
    ((-1, -1), "at most one -1"),
    ((5, 5), "element counts differ"),
    ((5, -1), "not divisible"),
    ((0, 0, 0, 0), "input has rank 3"),
    ((-2, 12), ">= -1"),
])
def test_reshape_errors(shape, match):
    with pytest.raises(CompilerError, match=match):
        check_op("Reshape", [rand(2, 3, 4), Const(i64(*shape))])


def test_reshape_allowzero_with_minus_one_fails():
    with pytest.raises(CompilerError, match="both 0 and -1"):
        check_op("Reshape", [rand(2, 3, 4), Const(i64(0, -1))], {"allowzero": 1}, opset=14)


# ------------------------------------------------------------------- Flatten
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis):
    check_op("Flatten", [rand(2, 3, 4)], {"axis": axis})


def test_flatten_old_opset_and_symbolic():
    check_op("Flatten", [rand(2, 3, 4)], {"axis": 2}, opset=1)
    assert symbolic_type("Flatten", [rand(2, 3, 4)], dims=("N", 3, 4)) == ("N", 12)
    assert symbolic_type("Flatten", [rand(2, 3, 4)], {"axis": 2}, dims=("N", 3, 4)) == (None, 4)


def test_flatten_bad_axis():
    with pytest.raises(CompilerError, match="axis is out of range"):
        check_op("Flatten", [rand(2, 3)], {"axis": 3})


# ----------------------------------------------------------- Squeeze/Unsqueeze
@pytest.mark.parametrize("axes", [(0,), (0, -1), (-1, 2)])
def test_squeeze(axes):
    for a in both(i64(*axes)):
        check_op("Squeeze", [rand(1, 3, 1, 1), a])


def test_squeeze_all_and_old_forms():
    check_op("Squeeze", [rand(1, 3, 1, 2)])
    check_op("Squeeze", [rand(1, 3, 1, 2)], {"axes": [0, 2]}, opset=11)
    check_op("Squeeze", [rand(1, 3, 1, 2)], opset=1)
    assert symbolic_type("Squeeze", [rand(1, 3), Const(i64(0))], dims=(1, "T")) == ("T",)
    assert symbolic_type("Squeeze", [rand(1, 3)], dims=(1, "T")) is None


def test_squeeze_not_one():
    with pytest.raises(CompilerError, match="size is not 1"):
        check_op("Squeeze", [rand(2, 3), Const(i64(0))])


@pytest.mark.parametrize("axes", [(0,), (1, 0), (-1,), (4, 0, -3)])
def test_unsqueeze(axes):
    for a in both(i64(*axes)):
        check_op("Unsqueeze", [rand(2, 3), a])


def test_unsqueeze_old_forms_and_errors():
    check_op("Unsqueeze", [rand(2, 3)], {"axes": [0, 3]}, opset=1)
    check_op("Unsqueeze", [rand(2, 3)], {"axes": [-1]}, opset=11)
    for a in both(np.array(1, np.int64)):  # onnxruntime also takes scalar axes
        check_op("Unsqueeze", [rand(2, 3), a])
    assert symbolic_type("Unsqueeze", [rand(2), Const(i64(0))], dims=("B",)) == (1, "B")
    with pytest.raises(CompilerError, match="must not repeat"):
        check_op("Unsqueeze", [rand(2, 3), Const(i64(0, 0))])


# ----------------------------------------------------------------- Transpose
@pytest.mark.parametrize("perm", [None, (0, 2, 1), (2, 0, 1), (1, 0, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.int8])
def test_transpose(perm, dtype):
    attrs = {} if perm is None else {"perm": list(perm)}
    check_op("Transpose", [rand(2, 3, 4, dtype=dtype)], attrs)


def test_transpose_symbolic_and_errors():
    assert symbolic_type("Transpose", [rand(2, 3)], {"perm": [1, 0]}, dims=("N", 3)) == (3, "N")
    with pytest.raises(CompilerError, match="permutation"):
        check_op("Transpose", [rand(2, 3)], {"perm": [0, 0]})
    with pytest.raises(CompilerError, match="one entry per input dim"):
        check_op("Transpose", [rand(2, 3)], {"perm": [0, 2, 1]})


# -------------------------------------------------------------------- Concat
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shapes = {0: [(1, 3), (2, 3), (0, 3)], 1: [(2, 1), (2, 4)], -1: [(2, 2), (2, 1), (2, 3)]}[axis]
    check_op("Concat", [rand(*s) for s in shapes], {"axis": axis})
    check_op("Concat", [Const(rand(*s)) for s in shapes[:1]] + [rand(*s) for s in shapes[1:]],
             {"axis": axis})


def test_concat_v1_default_axis_and_symbolic():
    a, b = rand(2, 3), rand(2, 4)
    check_op("Concat", [a, b], {}, opset=1, expected=[np.concatenate([a, b], 1)])
    # The constant operand pins N to 2; along the axis a symbol survives only next to zeros.
    assert symbolic_type("Concat", [a, Const(b)], {"axis": 1}, dims=("N", 3)) == (2, 7)
    assert symbolic_type("Concat", [b, Const(b)], {"axis": 0}, dims=("N", 4)) == (None, 4)
    assert symbolic_type("Concat", [a, Const(b[:, :0])], {"axis": 1}, dims=(2, "T")) == (2, "T")


@pytest.mark.parametrize("inputs, match", [
    ([rand(2, 3), rand(3, 3)], "differ in dim 0"),
    ([rand(2, 3), rand(2, 3, 1)], "same rank"),
    ([rand(2, 3), rand(2, 3, dtype=np.int32)], "one element type"),
])
def test_concat_errors(inputs, match):
    with pytest.raises(CompilerError, match=match):
        check_op("Concat", inputs, {"axis": 1})


# --------------------------------------------------------------------- Split
@pytest.mark.parametrize("sizes", [(2, 4), (1, 1, 4), (0, 6), (3, 3)])
def test_split_sizes(sizes):
    for s in both(i64(*sizes)):
        check_op("Split", [rand(3, 6), s], {"axis": 1}, num_outputs=len(sizes))


@pytest.mark.parametrize("dim, n", [(6, 3), (7, 3), (5, 2), (4, 1)])
def test_split_num_outputs(dim, n):
    check_op("Split", [rand(dim, 2)], {"num_outputs": n}, opset=18, num_outputs=n)


@pytest.mark.parametrize("opset", [2, 11, 13])
def test_split_old_forms(opset):
    x = rand(2, 6)
    check_op("Split", [x], {"axis": 1}, opset=opset, num_outputs=3)
    if opset < 13:
        check_op("Split", [x], {"axis": 1, "split": [1, 5]}, opset=opset, num_outputs=2)
    else:
        check_op("Split", [x, Const(i64(1, 5))], {"axis": 1}, opset=opset, num_outputs=2)


def test_split_symbolic_and_errors():
    assert symbolic_type("Split", [rand(2, 6), Const(i64(2, 4))], {"axis": 1}, dims=("N", 6),
                         num_outputs=2) == [("N", 2), ("N", 4)]
    with pytest.raises(CompilerError, match="add up to"):
        check_op("Split", [rand(2, 6), Const(i64(2, 3))], {"axis": 1}, num_outputs=2)
    with pytest.raises(CompilerError, match="one size per output"):
        check_op("Split", [rand(2, 6), Const(i64(2, 4))], {"axis": 1}, num_outputs=3)
    with pytest.raises(CompilerError, match="num_outputs must equal"):
        check_op("Split", [rand(2, 6)], {"num_outputs": 3}, opset=18, num_outputs=2)


# --------------------------------------------------------------------- Slice
SLICES = [  # starts, ends, axes, steps
    ((1,), (3,), None, None),
    ((0, 1), (2, -1), (0, 2), None),
    ((-1,), (-10 ** 9,), (1,), (-1,)),
    ((10,), (20,), (2,), None),            # start past the end: empty
    ((-100, 0), (100, 10 ** 18), (-1, 0), (2, 1)),
    ((3, 2), (0, -5), (2, 1), (-2, -1)),
]


@pytest.mark.parametrize("starts, ends, axes, steps", SLICES)
@pytest.mark.parametrize("const", [False, True])
def test_slice(starts, ends, axes, steps, const):
    wrap = Const if const else (lambda v: v)
    inputs = [rand(3, 4, 5), wrap(i64(*starts)), wrap(i64(*ends))]
    if axes is not None or steps is not None:
        inputs.append(None if axes is None else wrap(i64(*axes)))
    if steps is not None:
        inputs.append(wrap(i64(*steps)))
    check_op("Slice", inputs)


def test_slice_int32_indices_and_old_form():
    x = rand(3, 4, 5)
    check_op("Slice", [x, Const(np.array([1], np.int32)), Const(np.array([-1], np.int32))])
    check_op("Slice", [x], {"starts": [0, 1], "ends": [2, 10], "axes": [0, 2]}, opset=1)
    check_op("Slice", [x], {"starts": [1], "ends": [3]}, opset=9)


def test_slice_symbolic_and_errors():
    big = 2 ** 63 - 1
    assert symbolic_type("Slice", [rand(2, 6), Const(i64(0, 1)), Const(i64(big, 3))],
                         dims=("N", 6)) == ("N", 2)
    assert symbolic_type("Slice", [rand(2, 6), i64(0), i64(1), Const(i64(1))],
                         dims=("N", 6)) == ("N", None)
    with pytest.raises(CompilerError, match="steps must not be 0"):
        check_op("Slice", [rand(4), Const(i64(0)), Const(i64(3)), None, Const(i64(0))])
    with pytest.raises(CompilerError, match="one entry per sliced axis"):
        check_op("Slice", [rand(4, 4), Const(i64(0, 1)), Const(i64(3)), Const(i64(0, 1))])


# ----------------------------------------------------------------------- Pad
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(1, 0, 2, 2), (0, 2, 0, 1), (1, -1, -2, 2)])
def test_pad_modes(mode, pads):
    for p in both(i64(*pads)):
        check_op("Pad", [rand(4, 5), p], {"mode": mode})


def test_pad_constant_value_and_axes():
    x = rand(2, 3, 4)
    check_op("Pad", [x, Const(i64(1, 2, 3, 4, 5, 6)), Const(np.array(1.5, np.float32))])
    check_op("Pad", [x, i64(1, 1, 2, 0), np.array(-2.0, np.float32), Const(i64(0, -1))])
    check_op("Pad", [x, Const(i64(2, 1)), None, Const(i64(1))], {"mode": "reflect"})
    xi = rand(3, 3, dtype=np.int32)
    check_op("Pad", [xi, i64(1, 1, 1, 1), Const(np.array(7, np.int32))])


@pytest.mark.parametrize("opset, key", [(2, "pads"), (1, "paddings")])
def test_pad_old_forms(opset, key):
    x = rand(2, 3)
    exp = np.pad(x, ((1, 0), (2, 1)), constant_values=0.5)
    check_op("Pad", [x], {key: [1, 2, 0, 1], "value": 0.5}, opset=opset, expected=[exp])
    exp = np.pad(x, ((0, 1), (1, 1)), mode="edge")
    check_op("Pad", [x], {key: [0, 1, 1, 1], "mode": "edge"}, opset=opset, expected=[exp])


def test_pad_symbolic_and_errors():
    assert symbolic_type("Pad", [rand(2, 3), Const(i64(0, 1, 0, 1))], dims=("N", 3)) == ("N", 5)
    with pytest.raises(CompilerError, match="unknown mode"):
        check_op("Pad", [rand(2, 3), Const(i64(0, 1, 0, 1))], {"mode": "mirror"})
    with pytest.raises(CompilerError, match="begin and an end value"):
        check_op("Pad", [rand(2, 3), Const(i64(0, 1, 0))])
    with pytest.raises(CompilerError, match="data's element type"):
        check_op("Pad", [rand(2, 3), Const(i64(0, 1, 0, 1)), Const(np.array(1.0))])
    with pytest.raises(CompilerError, match="remove more than"):
        check_op("Pad", [rand(2, 3), Const(i64(0, -4, 0, 0))])


# ---------------------------------------------------------- Expand and Tile
@pytest.mark.parametrize("in_shape, shape", [
    ((3, 1), (2, 3, 4)), ((1,), (5,)), ((2, 3), (1, 1)), ((4, 1, 2), (3, 1)), ((1, 3), (0, 3)),
])
def test_expand(in_shape, shape):
    for s in both(i64(*shape)):
        check_op("Expand", [rand(*in_shape), s], opset=13)


def test_expand_symbolic_and_errors():
    assert symbolic_type("Expand", [rand(1, 3), Const(i64(2, 1, 1))], dims=(1, "T")) == (2, 1, "T")
    assert symbolic_type("Expand", [rand(5, 3), i64(1, 1)], dims=(5, 1)) == (5, None)
    with pytest.raises(CompilerError, match="does not broadcast"):
        check_op("Expand", [rand(2, 3), Const(i64(4, 3))])


@pytest.mark.parametrize("repeats", [(1, 1), (2, 3), (0, 2), (3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, bool])
def test_tile(repeats, dtype):
    for r in both(i64(*repeats)):
        check_op("Tile", [rand(2, 3, dtype=dtype), r])


def test_tile_v1_and_errors():
    x = rand(2, 3)
    check_op("Tile", [x, Const(np.array(3.0, np.float32)), Const(np.array(1.0, np.float32))],
             opset=1, expected=[np.tile(x, (1, 3))])
    assert symbolic_type("Tile", [x, Const(i64(1, 2))], dims=("N", 3)) == ("N", 6)
    with pytest.raises(CompilerError, match="one entry per input dim"):
        check_op("Tile", [x, Const(i64(2))])


# ------------------------------------------------------ DepthToSpace & back
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("b", [1, 2, 3])
def test_depth_to_space(mode, b):
    check_op("DepthToSpace", [rand(2, 2 * b * b, 3, 2)], {"blocksize": b, "mode": mode})


@pytest.mark.parametrize("b", [1, 2])
def test_space_to_depth(b):
    x = rand(2, 3, 4, 6)
    check_op("SpaceToDepth", [x], {"blocksize": b})
    # CRD (opset 28, no onnxruntime kernel) is the inverse of DepthToSpace CRD.
    y = check_op("SpaceToDepth", [x], {"blocksize": b, "mode": "CRD"}, opset=28,
                 expected=[_space_to_depth_crd(x, b)])[0]
    back = check_op("DepthToSpace", [y], {"blocksize": b, "mode": "CRD"})[0]
    np.testing.assert_array_equal(back, x)


def _space_to_depth_crd(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).transpose(0, 1, 3, 5, 2, 4).reshape(
        n, c * b * b, h // b, w // b)


def test_depth_space_errors():
    with pytest.raises(CompilerError, match="divisible by 4"):
        check_op("DepthToSpace", [rand(1, 6, 2, 2)], {"blocksize": 2})
    with pytest.raises(CompilerError, match="4-D"):
        check_op("SpaceToDepth", [rand(4, 4, 4)], {"blocksize": 2})
    assert symbolic_type("DepthToSpace", [rand(1, 8, 2, 2)], {"blocksize": 2},
                         dims=("N", 8, 2, "W")) == ("N", 2, 4, None)


# ------------------------------------------------------------- CenterCropPad
@pytest.mark.parametrize("in_shape, shape, axes", [
    ((5, 6, 3), (3, 4, 3), None),        # crop, odd and even differences
    ((3, 4, 2), (6, 7, 2), None),        # pad
    ((5, 2, 3), (2, 5), (0, 1)),         # crop one axis, pad the other
    ((4, 5, 6), (3, 8), (-1, 1)),
])
def test_center_crop_pad(in_shape, shape, axes):
    attrs = {} if axes is None else {"axes": list(axes)}
    for s in both(i64(*shape)):
        check_op("CenterCropPad", [rand(*in_shape), s], attrs, opset=18)


def test_center_crop_pad_symbolic_and_errors():
    assert symbolic_type("CenterCropPad", [rand(2, 5), Const(i64(3))], {"axes": [1]},
                         dims=("N", 5), opset=18) == ("N", 3)
    with pytest.raises(CompilerError, match="one entry per axis"):
        check_op("CenterCropPad", [rand(2, 5), Const(i64(3))], opset=18)


# -------------------------------------------------------------- Shape & Size
@pytest.mark.parametrize("start, end", [(0, None), (1, None), (-1, None), (0, -1), (1, 2),
                                        (-10, 10), (2, 1)])
def test_shape(start, end):
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    check_op("Shape", [rand(2, 3, 4, 5)], attrs)


def test_shape_size_of_runtime_and_symbolic_inputs():
    check_op("Shape", [rand(2, 3, dtype=np.int8)], opset=13)
    check_op("Size", [rand(2, 3, 4)])
    check_op("Size", [rand(0, 3, dtype=bool)])
    assert symbolic_type("Shape", [rand(2, 3)], dims=("N", 3)) == (2,)
    assert symbolic_type("Size", [rand(2, 3)], dims=("N", 3)) == ()


# ----------------------------------------------------------- ConstantOfShape
@pytest.mark.parametrize("value", [None, np.array([2.5], np.float32), np.array([7], np.int32),
                                   np.array([True]), np.array([1.5], np.float16)])
@pytest.mark.parametrize("shape", [(2, 3), (0, 4), (5,)])
def test_constant_of_shape(value, shape):
    attrs = {} if value is None else {"value": onnx.numpy_helper.from_array(value)}
    for s in both(i64(*shape)):
        check_op("ConstantOfShape", [s], attrs)


def test_constant_of_shape_errors():
    two = onnx.numpy_helper.from_array(np.array([1.0, 2.0], np.float32))
    with pytest.raises(CompilerError, match="exactly one element"):
        check_op("ConstantOfShape", [Const(i64(2))], {"value": two})
    with pytest.raises(CompilerError, match=">= 0"):
        check_op("ConstantOfShape", [Const(i64(2, -1))])


# --------------------------------------------------------------------- Range
INT_RANGES = [(0, 10, 3), (10, 4, -2), (3, 3, 1), (5, 1, 1), (-7, 8, 5)]
FLOAT_RANGES = [(1.0, 2.0, 0.25), (-1.5, 3.2, 0.7), (2.0, -1.0, -0.3), (0.0, 1.0, 3.0)]


@pytest.mark.parametrize("dtype, values", [(dt, v) for dt in (np.int16, np.int32, np.int64)
                                           for v in INT_RANGES] +
                         [(dt, v) for dt in (np.float32, np.float64) for v in FLOAT_RANGES])
def test_range(dtype, values):
    args = [np.array(v, dtype) for v in values]
    check_op("Range", args, opset=11)
    check_op("Range", [Const(a) for a in args], opset=11)


def test_range_float16_and_errors():
    args = [np.array(v, np.float16) for v in (0.0, 3.0, 0.5)]
    check_op("Range", args, opset=27, expected=[np.arange(0, 3, 0.5).astype(np.float16)])
    with pytest.raises(CompilerError, match="delta must not be 0"):
        check_op("Range", [Const(np.array(v, np.int64)) for v in (0, 3, 0)], opset=11)
    with pytest.raises(CompilerError, match="share one element type"):
        check_op("Range", [np.array(0, np.int64), np.array(3, np.int32), np.array(1, np.int64)],
                 opset=11)


# ------------------------------------------------------------------- EyeLike
@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (4, 2)])
@pytest.mark.parametrize("k", [0, 1, -2, 7])
def test_eye_like(shape, k):
    check_op("EyeLike", [rand(*shape)], {"k": k})


@pytest.mark.parametrize("dtype", [onnx.TensorProto.INT32, onnx.TensorProto.DOUBLE])
def test_eye_like_dtype(dtype):
    check_op("EyeLike", [rand(3, 4, dtype=np.int64)], {"dtype": dtype, "k": 1})
    # onnxruntime has no bool EyeLike kernel
    check_op("EyeLike", [rand(3, 4)], {"dtype": onnx.TensorProto.BOOL, "k": -1},
             expected=[np.eye(3, 4, -1, dtype=bool)])


def test_eye_like_not_2d():
    with pytest.raises(CompilerError, match="must be 2-D"):
        check_op("EyeLike", [rand(3)])


# --------------------------------------------------------------------- Trilu
@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 1, -1, 5, -7])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 5, 3)])
def test_trilu(upper, k, shape):
    inputs = [rand(*shape)]
    if k is not None:
        inputs.append(Const(np.array(k, np.int64)))
    check_op("Trilu", inputs, {"upper": upper})


def test_trilu_runtime_k_dtypes_and_errors():
    check_op("Trilu", [rand(3, 4, dtype=np.int64), np.array(1, np.int64)], {"upper": 0})
    check_op("Trilu", [rand(3, 3, dtype=bool)])
    with pytest.raises(CompilerError, match="rank >= 2"):
        check_op("Trilu", [rand(4)])
