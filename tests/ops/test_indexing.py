"""Gather/scatter, OneHot, Compress, NonZero, ReverseSequence, Unique against onnxruntime."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import compiler
from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op, make_model

RNG = np.random.default_rng(1)


def _x(shape, dtype=np.float32) -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(0, 50, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def _compile(op, inputs, attrs=None, opset=21, num_outputs=1):
    return compiler.compile(make_model(op, inputs, attrs, opset=opset, num_outputs=num_outputs))


def _both(x):
    """The same input as a graph input and as an initializer."""
    return [x, Const(x)]


# --------------------------------------------------------------------- Gather
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_shape", [(), (2,), (2, 3)])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather(axis, idx_shape, idx_dtype):
    data = _x((3, 4, 5))
    n = data.shape[axis]
    idx = RNG.integers(-n, n, size=idx_shape).astype(idx_dtype)  # negatives count from the end
    for i in _both(idx):
        out = check_op("Gather", [data, i], {"axis": axis})
        assert out[0].ndim == 3 + len(idx_shape) - 1


@pytest.mark.parametrize("dtype", [np.int8, np.float16, np.bool_, np.uint64])
def test_gather_dtypes(dtype):
    data = _x((4, 3)).astype(dtype)
    check_op("Gather", [Const(data), np.array([3, 0, 0], np.int64)], {"axis": 0})


def test_gather_strings_and_opset1():
    data = np.array([["a", "b"], ["c", "d"]], dtype=object)
    check_op("Gather", [data, np.array([1, 0, 1], np.int64)], {"axis": 1})
    check_op("Gather", [_x((5, 2)), np.array([4, 0], np.int64)], opset=1)


def test_gather_errors():
    with pytest.raises(CompilerError, match="axis is out of range.*found 2"):
        _compile("Gather", [_x((2, 3)), np.array([0], np.int64)], {"axis": 2})
    with pytest.raises(CompilerError, match="indices.*unsupported element type.*found f32"):
        _compile("Gather", [_x((2, 3)), np.array([0.0], np.float32)])
    m = _compile("Gather", [_x((2, 3)), np.array([0], np.int64)])
    with pytest.raises(CompilerError, match="Gather: index out of range.*found 7"):
        m.run({"in0": _x((2, 3)), "in1": np.array([7], np.int64)})


# ------------------------------------------------------------- GatherElements
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    data = _x((3, 4, 5))
    shape = [2, 3, 4]  # smaller than data in every dim
    n = data.shape[axis]
    idx = RNG.integers(-n, n, size=shape).astype(np.int64)
    for i in _both(idx):
        check_op("GatherElements", [data, i], {"axis": axis})
    check_op("GatherElements", [data, idx.astype(np.int32)], {"axis": axis}, opset=11)


def test_gather_elements_errors():
    with pytest.raises(CompilerError, match="indices must have the rank of data.*found i64"):
        _compile("GatherElements", [_x((2, 3)), np.zeros((2,), np.int64)])
    m = _compile("GatherElements", [_x((2, 3)), np.zeros((2, 3), np.int64)])
    with pytest.raises(CompilerError, match="GatherElements: index out of range"):
        m.run({"in0": _x((2, 3)), "in1": np.full((2, 3), -3, np.int64)})


# ------------------------------------------------------------------- GatherND
@pytest.mark.parametrize("data_shape,idx_shape,batch_dims", [
    ((4, 5, 6), (3, 1), 0), ((4, 5, 6), (2, 3, 2), 0), ((4, 5, 6), (7, 3), 0),
    ((2, 5, 6), (2, 3, 1), 1), ((2, 3, 6, 4), (2, 3, 2, 2), 2), ((2, 5), (2, 1), 1),
])
def test_gather_nd(data_shape, idx_shape, batch_dims):
    data = _x(data_shape, np.int32)
    m = idx_shape[-1]
    dims = np.array(data_shape[batch_dims:batch_dims + m])
    idx = (RNG.integers(0, 1 << 30, size=idx_shape) % dims).astype(np.int64)
    idx[..., 0] -= dims[0] * (RNG.random(idx_shape[:-1]) < 0.3)  # some negative indices
    for i in _both(idx):
        check_op("GatherND", [data, i], {"batch_dims": batch_dims})
    if batch_dims == 0:
        check_op("GatherND", [data, idx], opset=11)


def test_gather_nd_errors():
    with pytest.raises(CompilerError, match="indices address more dimensions than data has"):
        _compile("GatherND", [_x((2, 3)), np.zeros((1, 3), np.int64)])
    with pytest.raises(CompilerError, match="batch_dims must be smaller"):
        _compile("GatherND", [_x((2, 3)), np.zeros((2, 1), np.int64)], {"batch_dims": 2})
    with pytest.raises(CompilerError, match="batch dimensions of data and indices differ"):
        _compile("GatherND", [_x((2, 3)), np.zeros((3, 1), np.int64)], {"batch_dims": 1})


# ------------------------------------------------------------ ScatterElements
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis):
    data = _x((4, 5))
    n = data.shape[axis]
    shape = (4, 3) if axis else (3, 5)
    if reduction == "none":  # distinct targets per line: duplicates are order-dependent
        perm = np.argsort(RNG.random((shape[1 - axis % 2], n)), axis=1)[:, :3]
        idx = (perm if axis else perm.T).astype(np.int64)
    else:
        idx = RNG.integers(-n, n, size=shape).astype(np.int64)
    upd = _x(shape)
    for i in _both(idx):
        check_op("ScatterElements", [data, i, upd], {"axis": axis, "reduction": reduction}, opset=18)


def test_scatter_elements_old_forms_and_int():
    data = _x((3, 3), np.int64)
    idx = np.array([[1, 0, 2], [0, 2, 1]], np.int64)
    upd = _x((2, 3), np.int64)
    check_op("ScatterElements", [data, idx, upd], {"axis": 0}, opset=11)
    check_op("ScatterElements", [data, idx, upd], {"axis": 1, "reduction": "add"}, opset=16)
    # Deprecated Scatter (opsets 9-10) becomes ScatterElements.
    check_op("Scatter", [data, idx, upd], {"axis": 1}, opset=9)
    check_op("Scatter", [data.astype(np.float32), Const(idx), upd.astype(np.float32)], opset=10)


def test_scatter_elements_errors():
    data, idx = _x((3, 3)), np.zeros((2, 3), np.int64)
    with pytest.raises(CompilerError, match="updates must have the element type of data"):
        _compile("ScatterElements", [data, idx, np.zeros((2, 3), np.float64)])
    with pytest.raises(CompilerError, match="indices and updates must have the same shape"):
        _compile("ScatterElements", [data, idx, np.zeros((2, 2), np.float32)])
    with pytest.raises(CompilerError, match="unknown reduction.*found 'avg'"):
        _compile("ScatterElements", [data, idx, np.zeros((2, 3), np.float32)],
                 {"reduction": "avg"}, opset=18)


# ------------------------------------------------------------------ ScatterND
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("idx_shape", [(2, 1), (3, 2), (2, 2, 3)])
def test_scatter_nd(reduction, idx_shape):
    data = _x((4, 5, 6))
    m = idx_shape[-1]
    rows = int(np.prod(idx_shape[:-1]))
    # Distinct rows so reduction "none" does not depend on write order.
    flat = RNG.choice(int(np.prod(data.shape[:m])), size=rows, replace=False)
    idx = np.stack(np.unravel_index(flat, data.shape[:m]), -1).reshape(idx_shape).astype(np.int64)
    upd = _x(idx_shape[:-1] + data.shape[m:])
    for i in _both(idx):
        check_op("ScatterND", [data, i, upd], {"reduction": reduction}, opset=18)


def test_scatter_nd_duplicates_add_and_opset11():
    data = _x((5,), np.int32)
    idx = np.array([[1], [1], [3]], np.int64)
    upd = np.array([10, 20, 30], np.int32)
    out = check_op("ScatterND", [data, idx, upd], {"reduction": "add"}, opset=16)
    assert out[0][1] == data[1] + 30
    check_op("ScatterND", [data, Const(np.array([[4], [0]], np.int64)), upd[:2]], opset=11)


def test_scatter_nd_errors():
    data = _x((3, 4))
    with pytest.raises(CompilerError, match="updates has the wrong shape.*expected f32\\[2,4\\]"):
        _compile("ScatterND", [data, np.zeros((2, 1), np.int64), np.zeros((2, 3), np.float32)])
    with pytest.raises(CompilerError, match="indices address more dimensions"):
        _compile("ScatterND", [data, np.zeros((2, 3), np.int64), np.zeros((2,), np.float32)])
    m = _compile("ScatterND", [data, np.zeros((1, 1), np.int64), np.zeros((1, 4), np.float32)])
    with pytest.raises(CompilerError, match="ScatterND: index out of range"):
        m.run({"in0": data, "in1": np.array([[3]], np.int64), "in2": np.zeros((1, 4), np.float32)})


# -------------------------------------------------------------- TensorScatter
def _tensor_scatter_expected(past, update, write_indices, axis, mode):
    """The pseudocode of the ONNX spec, loop for loop."""
    out = past.copy()
    axis %= past.ndim
    seq, max_seq = update.shape[axis], past.shape[axis]
    for prefix in np.ndindex(past.shape[:axis]):
        for s in range(seq):
            pos = (0 if write_indices is None else write_indices[prefix[0]]) + s
            if mode == "circular":
                pos %= max_seq
            out[prefix + (pos,)] = update[prefix + (s,)]
    return out


@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis", [-2, 1, 2])
def test_tensor_scatter(mode, axis):
    past = _x((2, 3, 8, 4))
    ushape = list(past.shape)
    ushape[axis] = 3
    update = _x(tuple(ushape))
    max_seq = past.shape[axis]
    wi = np.array([0, max_seq - 3 if mode == "linear" else max_seq - 1], np.int64)
    for w in (wi, Const(wi), None):
        wv = None if w is None else wi
        expected = [_tensor_scatter_expected(past, update, wv, axis, mode)]
        check_op("TensorScatter", [past, update, w], {"axis": axis, "mode": mode}, opset=24,
                 expected=expected)


def test_tensor_scatter_errors():
    past = _x((2, 8, 4))
    with pytest.raises(CompilerError, match="update differs from past_cache outside"):
        _compile("TensorScatter", [past, _x((2, 3, 5))], opset=24)
    with pytest.raises(CompilerError, match="unknown mode"):
        _compile("TensorScatter", [past, _x((2, 3, 4))], {"mode": "ring"}, opset=24)
    m = _compile("TensorScatter", [past, _x((2, 3, 4)), np.zeros(2, np.int64)], opset=24)
    with pytest.raises(CompilerError, match="write position past the cache"):
        m.run({"in0": past, "in1": _x((2, 3, 4)), "in2": np.array([0, 6], np.int64)})


# --------------------------------------------------------------------- OneHot
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
def test_one_hot(axis):
    idx = np.array([[0, 3, -1], [9, -11, 2]], np.int64)  # negative and out-of-range
    depth = np.array(10, np.int64)
    values = np.array([-1.0, 5.0], np.float32)
    for d in (Const(depth), depth):
        out = check_op("OneHot", [idx, d, values], {"axis": axis}, opset=11)
        assert out[0].shape[axis] == 10


@pytest.mark.parametrize("idx_dtype,depth_dtype,val_dtype",
                         [(np.float32, np.float32, np.float32), (np.int64, np.int64, np.int64),
                          (np.int32, np.float32, np.float32), (np.int64, np.float32, np.int32)])
def test_one_hot_dtypes(idx_dtype, depth_dtype, val_dtype):
    idx = np.array([1.0, 4.0, 0.0], idx_dtype)
    check_op("OneHot", [idx, Const(np.array([5], depth_dtype)), np.array([0, 1], val_dtype)], opset=9)


def test_one_hot_bfloat16_values():
    idx = np.array([0, 2], np.int64)
    values = np.array([0, 3], ml_dtypes.bfloat16)
    expected = np.array([[3, 0, 0], [0, 0, 3]], ml_dtypes.bfloat16)
    check_op("OneHot", [idx, Const(np.array(3, np.int64)), values], expected=[expected])


def test_one_hot_errors():
    with pytest.raises(CompilerError, match="values must be a 1-D tensor"):
        _compile("OneHot", [np.zeros(2, np.int64), Const(np.array(3)), np.zeros(3, np.float32)])
    with pytest.raises(CompilerError, match="depth must be positive"):
        _compile("OneHot", [np.zeros(2, np.int64), Const(np.array(0)), np.zeros(2, np.float32)])
    with pytest.raises(CompilerError, match="axis is out of range.*found 2"):
        _compile("OneHot", [np.zeros(2, np.int64), Const(np.array(3)), np.zeros(2, np.float32)],
                 {"axis": 2})


# ------------------------------------------------------------------- Compress
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(axis):
    x = _x((3, 4))
    n = x.size if axis is None else x.shape[axis]
    cond = RNG.random(n - 1) < 0.6  # shorter than the axis: the rest is dropped
    attrs = {} if axis is None else {"axis": axis}
    check_op("Compress", [x, cond], attrs, opset=11)
    out = check_op("Compress", [x, Const(cond)], attrs, opset=11)
    assert out[0].shape[0 if axis is None else axis] == np.count_nonzero(cond)


def test_compress_strings_opset9():
    x = np.array(["a", "b", "c"], dtype=object)
    check_op("Compress", [x, np.array([True, False, True])], {"axis": 0}, opset=9)


def test_compress_errors():
    with pytest.raises(CompilerError, match="condition.*unsupported element type.*found i64"):
        _compile("Compress", [_x((3,)), np.array([1, 0, 1], np.int64)])
    with pytest.raises(CompilerError, match="axis is out of range"):
        _compile("Compress", [_x((3,)), np.array([True])], {"axis": 1})


# -------------------------------------------------------------------- NonZero
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 2), (0, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_nonzero(shape, dtype):
    x = (RNG.integers(0, 3, size=shape) * (RNG.random(shape) < 0.5)).astype(dtype)
    out = check_op("NonZero", [x], opset=13)
    assert out[0].shape[0] == max(len(shape), 1)
    check_op("NonZero", [Const(x)], opset=9)


# ------------------------------------------------------------ ReverseSequence
@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(batch_axis, time_axis):
    shape = [0, 0, 3]
    shape[batch_axis], shape[time_axis] = 4, 5
    x = _x(tuple(shape))
    lens = np.array([5, 0, 1, 3], np.int64)
    for l_ in _both(lens):
        check_op("ReverseSequence", [x, l_], {"batch_axis": batch_axis, "time_axis": time_axis},
                 opset=10)
    check_op("ReverseSequence", [x.astype(np.int32)[..., 0], lens],
             {"batch_axis": batch_axis, "time_axis": time_axis}, opset=10)


def test_reverse_sequence_errors():
    with pytest.raises(CompilerError, match="batch_axis and time_axis must be 0 and 1"):
        _compile("ReverseSequence", [_x((2, 3)), np.array([1, 1], np.int64)],
                 {"batch_axis": 0, "time_axis": 0})
    with pytest.raises(CompilerError, match="one length per batch entry"):
        _compile("ReverseSequence", [_x((2, 3)), np.array([1, 1], np.int64)])
    m = _compile("ReverseSequence", [_x((2, 3)), np.array([1, 1], np.int64)],
                 {"batch_axis": 0, "time_axis": 1})
    with pytest.raises(CompilerError, match="sequence length out of range"):
        m.run({"in0": _x((2, 3)), "in1": np.array([4, 1], np.int64)})


# --------------------------------------------------------------------- Unique
@pytest.mark.parametrize("sorted_", [1, 0])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_unique(sorted_, axis):
    x = RNG.integers(0, 3, size=(4, 6)).astype(np.float32)
    x[2] = x[0]  # repeated rows
    x[:, 4] = x[:, 1]  # repeated columns
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    out = check_op("Unique", [x], attrs, opset=11, num_outputs=4)
    assert [o.dtype for o in out[1:]] == [np.int64] * 3


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.float64])
def test_unique_dtypes_and_fewer_outputs(dtype):
    x = RNG.integers(-3, 3, size=(10,)).astype(dtype)
    check_op("Unique", [x], {"sorted": 0}, opset=11, num_outputs=4)
    check_op("Unique", [Const(x)], opset=11, num_outputs=2)
    check_op("Unique", [x], opset=11, num_outputs=1)


def test_unique_strings():
    x = np.array(["b", "a", "b", "c"], dtype=object)
    check_op("Unique", [x], {"sorted": 0}, opset=11, num_outputs=4)


def test_unique_bfloat16():
    x = np.array([2.5, 1.0, 2.5, -3.0], ml_dtypes.bfloat16)
    expected = [np.array([-3.0, 1.0, 2.5], ml_dtypes.bfloat16), np.array([3, 1, 0]),
                np.array([2, 1, 2, 0]), np.array([1, 1, 2])]
    check_op("Unique", [x], opset=11, num_outputs=4, expected=expected)


def test_unique_errors():
    with pytest.raises(CompilerError, match="axis is out of range.*found 2"):
        _compile("Unique", [_x((2, 3))], {"axis": 2}, opset=11)


# ------------------------------------------------------------ type inference
def test_types_keep_symbolic_dims():
    """Shapes stay as precise as the inputs allow, constant inputs giving exact dims."""
    from ir.dtypes import DType
    from ir.graph import Graph
    from ir.types import TensorType
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, ("N", 4, "C")))
    i = g.add_input("i", TensorType(DType.I64, ("K",)))
    assert g.add("Gather", x, i, axis=1).type.shape == ("N", "K", "C")
    ii = g.add_input("ii", TensorType(DType.I64, ("N", 5, 1)))
    assert g.add("GatherND", x, ii, batch_dims=1).type.shape == ("N", 5, "C")
    cond = g.add_constant(np.array([True, False, True]), "cond")
    assert g.add("Compress", x, cond, axis=1).type.shape == ("N", 2, "C")
    assert g.add("NonZero", x).type == TensorType(DType.I64, (3, None))
    depth = g.add_constant(np.array(7), "depth")
    vals = g.add_constant(np.array([0, 1], np.float32), "vals")
    assert g.add("OneHot", i, depth, vals, axis=0).type.shape == (7, "K")
    node = g.create_node("Unique", [x], {"axis": 2}, num_outputs=4)
    assert [o.type.shape for o in node.outputs] == [("N", 4, None), (None,), ("C",), (None,)]
