"""Reductions, ArgMax/ArgMin, TopK, CumSum/CumProd against onnxruntime."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import compiler
from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op, make_model

RNG = np.random.default_rng(0)

REDUCTIONS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
# Inputs keep LogSum's argument positive and products small.
_POSITIVE = {"ReduceLogSum"}


def _data(op: str, shape, dtype=np.float32) -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        lo = 1 if op in _POSITIVE or np.dtype(dtype).kind == "u" else -4
        return RNG.integers(lo, 5, size=shape).astype(dtype)
    x = RNG.uniform(0.5, 2.0, size=shape) if op in _POSITIVE else RNG.standard_normal(shape)
    return x.astype(dtype)


def _compile_error(op, inputs, attrs=None, opset=21):
    return compiler.compile(make_model(op, inputs, attrs, opset=opset))


# ---------------------------------------------------------------- reductions
@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), ([-1], 1), (None, 0), (None, 1)])
def test_reduce_const_axes(op, axes, keepdims):
    x = _data(op, (3, 4, 5))
    inputs = [x] if axes is None else [x, Const(np.array(axes, np.int64))]
    out = check_op(op, inputs, {"keepdims": keepdims}, opset=18, rtol=1e-5, atol=1e-5)
    assert out[0].ndim == (3 if keepdims else 3 - (3 if axes is None else len(axes)))


@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduce_runtime_axes(op):
    """Axes as a graph input: only the rank is known at compile time."""
    x = _data(op, (2, 3, 4))
    check_op(op, [x, np.array([0, -1], np.int64)], {"keepdims": 0}, opset=18, atol=1e-5)
    check_op(op, [x, np.array([1], np.int64)], {"keepdims": 1}, opset=18, atol=1e-5)


@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduce_noop_with_empty_axes(op):
    """Empty axes and noop: the reduction is skipped, its elementwise part is not."""
    x = _data(op, (2, 3))
    check_op(op, [x, Const(np.array([], np.int64))], {"noop_with_empty_axes": 1}, opset=18)
    check_op(op, [x], {"noop_with_empty_axes": 1}, opset=18)
    check_op(op, [x, Const(np.array([], np.int64))], {"noop_with_empty_axes": 0}, opset=18)


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_int(op, dtype):
    x = _data(op, (3, 4), dtype)
    check_op(op, [x, Const(np.array([1], np.int64))], {"keepdims": 0}, opset=18)


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_reduce_empty_set(op, dtype):
    """Reducing over a zero-sized axis gives the identity of the reduction."""
    x = np.zeros((2, 0, 3), dtype)
    out = check_op(op, [x, Const(np.array([1], np.int64))], opset=18)
    assert out[0].shape == (2, 1, 3)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2"])
def test_reduce_float16_float64(op):
    check_op(op, [_data(op, (4, 8), np.float16), Const(np.array([1], np.int64))], opset=18,
             rtol=2e-3, atol=2e-3)
    check_op(op, [_data(op, (4, 8), np.float64), Const(np.array([0], np.int64))], opset=18)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_max_min_bool_and_int8(op):
    b = RNG.integers(0, 2, size=(3, 4)).astype(bool)
    check_op(op, [b, Const(np.array([1], np.int64))], opset=20)
    check_op(op, [_data(op, (3, 4), np.int8), Const(np.array([0], np.int64))], opset=20)


def test_reduce_bfloat16():
    x = RNG.standard_normal((3, 5)).astype(ml_dtypes.bfloat16)
    out = check_op("ReduceSum", [x, Const(np.array([1], np.int64))], opset=18,
                   expected=[x.astype(np.float32).sum(1, keepdims=True).astype(ml_dtypes.bfloat16)])
    assert out[0].dtype == ml_dtypes.bfloat16


def test_reduce_scalar_input():
    check_op("ReduceSum", [np.array(3.5, np.float32)], opset=18)
    check_op("ReduceMax", [np.array(3.5, np.float32)], {"keepdims": 0}, opset=18)


@pytest.mark.parametrize("op,opset", [(op, 13) for op in REDUCTIONS if op != "ReduceSum"]
                         + [(op, 11) for op in REDUCTIONS] + [("ReduceSum", 6), ("ReduceMean", 1)])
def test_reduce_axes_attribute_forms(op, opset):
    """Older opsets give axes as an attribute; the import rule makes it an input."""
    x = _data(op, (2, 3, 4))
    check_op(op, [x], {"axes": [1, -1], "keepdims": 0}, opset=opset, atol=1e-5)
    check_op(op, [x], {"keepdims": 1}, opset=opset, atol=1e-5)


def test_reduce_type_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(CompilerError, match="reduction axis is out of range.*found 2"):
        _compile_error("ReduceSum", [x, Const(np.array([2], np.int64))])
    with pytest.raises(CompilerError, match="reduction axes repeat"):
        _compile_error("ReduceMean", [x, Const(np.array([1, -1], np.int64))])
    with pytest.raises(CompilerError, match="axes.*unsupported element type"):
        _compile_error("ReduceMean", [x, Const(np.array([1.0], np.float32))])
    with pytest.raises(CompilerError, match="unsupported element type.*found str"):
        _compile_error("ReduceSum", [Const(np.array(["a", "b"], dtype=object))])


def test_reduce_runtime_axis_out_of_range():
    x = np.zeros((2, 3), np.float32)
    m = compiler.compile(make_model("ReduceSum", [x, np.array([5], np.int64)]))
    with pytest.raises(CompilerError, match="axis out of range"):
        m.run({"in0": x, "in1": np.array([5], np.int64)})


# ------------------------------------------------------------ ArgMax/ArgMin
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(0, 1, 0), (1, 0, 0), (-1, 1, 1), (2, 0, 1)])
def test_argmax_argmin(op, axis, keepdims, last):
    # Few distinct values, so ties (and select_last_index) matter.
    x = RNG.integers(0, 3, size=(3, 4, 5)).astype(np.float32)
    out = check_op(op, [x], {"axis": axis, "keepdims": keepdims, "select_last_index": last},
                   opset=13)
    assert out[0].dtype == np.int64


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64, np.uint8])
def test_argmax_dtypes(op, dtype):
    check_op(op, [_data(op, (4, 6), dtype)], {"axis": 1}, opset=13)
    check_op(op, [Const(_data(op, (4, 6), dtype))], {"axis": 0}, opset=13)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_argmax_opset1(op):
    check_op(op, [_data(op, (3, 4))], {"axis": 1, "keepdims": 0}, opset=1)


def test_argmax_errors():
    with pytest.raises(CompilerError, match="axis is out of range.*found 3"):
        _compile_error("ArgMax", [np.zeros((2, 3), np.float32)], {"axis": 3})
    with pytest.raises(CompilerError, match="rank >= 1"):
        _compile_error("ArgMin", [np.zeros((), np.float32)])


# ----------------------------------------------------------------------- TopK
@pytest.mark.parametrize("largest,sorted_", [(1, 1), (0, 1)])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_topk(largest, sorted_, axis):
    x = RNG.integers(0, 4, size=(4, 5, 6)).astype(np.float32)  # many ties
    k = np.array([3], np.int64)
    for K in (k, Const(k)):
        out = check_op("TopK", [x, K], {"axis": axis, "largest": largest, "sorted": sorted_},
                       num_outputs=2)
        assert out[0].shape[axis] == 3


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64, np.float16])
def test_topk_dtypes(dtype):
    x = _data("TopK", (3, 7), dtype)
    check_op("TopK", [x, Const(np.array([7], np.int64))], num_outputs=2)
    check_op("TopK", [x, Const(np.array([0], np.int64))], {"largest": 0}, num_outputs=2)


def test_topk_uint64_large_values():
    """onnxruntime has no uint64 TopK: compare with a NumPy expectation (ties by index)."""
    x = np.array([[2**63 + 5, 1, 2**63 + 5, 7]], np.uint64)
    idx = np.array([[0, 2, 3]], np.int64)
    check_op("TopK", [x, Const(np.array([3], np.int64))], num_outputs=2,
             expected=[np.take_along_axis(x, idx, 1), idx])


def test_topk_attribute_k_opset1_and_opset10():
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    check_op("TopK", [x], {"k": 2}, opset=1, num_outputs=2)
    check_op("TopK", [x, Const(np.array([2], np.int64))], {"axis": 0}, opset=10, num_outputs=2)


def test_topk_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(CompilerError, match="K is larger than the axis.*expected K <= 3, found 4"):
        compiler.compile(make_model("TopK", [x, Const(np.array([4], np.int64))], opset=21, num_outputs=2))
    with pytest.raises(CompilerError, match="K.*unsupported element type"):
        compiler.compile(make_model("TopK", [x, Const(np.array([1.0], np.float32))], opset=21, num_outputs=2))
    m = compiler.compile(make_model("TopK", [x, np.array([5], np.int64)], num_outputs=2))
    with pytest.raises(CompilerError, match="TopK: K out of range"):
        m.run({"in0": x, "in1": np.array([5], np.int64)})


# -------------------------------------------------------------- CumSum/CumProd
@pytest.mark.parametrize("op,opset", [("CumSum", 14), ("CumProd", 26)])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumulative(op, opset, exclusive, reverse, axis):
    x = RNG.uniform(0.5, 1.5, size=(3, 4)).astype(np.float32)
    attrs = {"exclusive": exclusive, "reverse": reverse}
    ax = np.array(axis, np.int64)
    expected = _numpy_cumulative(op, x, axis, exclusive, reverse) if opset > 21 else None
    check_op(op, [x, Const(ax)], attrs, opset=opset, expected=expected)
    check_op(op, [x, ax], attrs, opset=opset, expected=expected)


def _numpy_cumulative(op, x, axis, exclusive, reverse):
    """An independent expectation, for opsets onnxruntime does not run yet."""
    f = np.cumsum if op == "CumSum" else np.cumprod
    y = np.flip(x, axis) if reverse else x
    z = f(y, axis=axis)
    if exclusive:
        ident = np.zeros_like if op == "CumSum" else np.ones_like
        z = np.concatenate([ident(np.take(z, [0], axis)), np.delete(z, -1, axis)], axis)
    return [(np.flip(z, axis) if reverse else z).astype(x.dtype)]


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_cumsum_dtypes(dtype):
    x = _data("CumSum", (2, 5), dtype)
    check_op("CumSum", [x, Const(np.array([1], np.int32))], {"exclusive": 1}, opset=11)


def test_cumsum_errors():
    with pytest.raises(CompilerError, match="axis is out of range.*found 2"):
        _compile_error("CumSum", [np.zeros((2, 3), np.float32), Const(np.array(2, np.int64))])
    with pytest.raises(CompilerError, match="axis.*unsupported element type"):
        _compile_error("CumSum", [np.zeros((2, 3), np.float32), Const(np.array(1.0, np.float32))])


# ------------------------------------------------------------ type inference
def test_types_keep_symbolic_dims():
    """Shapes stay as precise as the inputs allow: symbolic dims flow, runtime axes keep the rank."""
    from ir.dtypes import DType
    from ir.graph import Graph
    from ir.types import TensorType
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, ("N", 4, "C")))
    axes = g.add_constant(np.array([1], np.int64), "axes")
    assert g.add("ReduceSum", x, axes, keepdims=0).type.shape == ("N", "C")
    assert g.add("ReduceMax", x, axes).type.shape == ("N", 1, "C")
    assert g.add("ReduceMean", x, keepdims=0).type.shape == ()
    runtime = g.add_input("axes_rt", TensorType(DType.I64, (2,)))
    assert g.add("ReduceL2", x, runtime, keepdims=0).type.shape == (None,)
    assert g.add("ReduceL2", x, runtime).type.shape == (None, None, None)
    k = g.add_constant(np.array([2], np.int64), "k")
    node = g.create_node("TopK", [x, k], {"axis": 1}, num_outputs=2)
    assert [o.type.shape for o in node.outputs] == [("N", 2, "C")] * 2
    assert node.outputs[1].type.dtype is DType.I64
    assert g.add("ArgMin", x, axis=-1, keepdims=0).type == TensorType(DType.I64, ("N", 4))
    assert g.add("CumSum", x, g.add_constant(np.array(0), "a")).type.shape == ("N", 4, "C")
