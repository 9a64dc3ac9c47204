"""Gemm, MatMul, Einsum and Det against onnxruntime (or NumPy where onnxruntime has no kernel)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from frontends.onnx import ImportOptions, import_model
from ir.dtypes import DType
from ir.errors import CompilerError, TypeInferenceError
from tests.ops.ortcheck import Const, check_op, make_model, run_ours

rng = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32):
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0 if np.dtype(dtype).kind == "u" else -5, 6, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def imported_types(op: str, inputs: list, attrs: dict | None = None, *, opset: int = 21,
                   num_outputs: int = 1) -> list:
    """Output types our own rules infer for a one-node model with ``inputs`` given as
    (onnx elem type, shape with symbolic dims) pairs."""
    names = [f"in{i}" for i in range(len(inputs))]
    vis = [helper.make_tensor_value_info(n, t, s) for n, (t, s) in zip(names, inputs)]
    outs = [f"out{i}" for i in range(num_outputs)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    graph = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info(o, 0, None) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    g = import_model(model, ImportOptions(onnx_shape_inference=False))
    return [v.type for v in g.outputs]


def compile_one(op: str, inputs: list, attrs: dict | None = None, *, opset: int = 21) -> None:
    import compiler
    compiler.compile(make_model(op, inputs, attrs, opset=opset))


# ---------------------------------------------------------------------- Gemm
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_shape", [None, (), (5,), (1, 5), (3, 1), (3, 5)])
def test_gemm_transposes_and_bias_shapes(trans_a, trans_b, c_shape):
    a = rand(4, 3) if trans_a else rand(3, 4)
    b = rand(5, 4) if trans_b else rand(4, 5)
    c = None if c_shape is None else rand(*c_shape)
    check_op("Gemm", [a, b, c], {"transA": trans_a, "transB": trans_b, "alpha": 0.5, "beta": 2.0},
             opset=13, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 9, 11, 13])
def test_gemm_opsets_with_constant_weights(opset):
    # The usual exported Linear layer: constant W (transB=1) and bias.
    check_op("Gemm", [rand(2, 6), Const(rand(4, 6)), Const(rand(4))], {"transB": 1}, opset=opset,
             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float16, 2e-3)])
def test_gemm_other_float_types(dtype, tol):
    check_op("Gemm", [rand(3, 8, dtype=dtype), rand(8, 2, dtype=dtype), rand(2, dtype=dtype)],
             {"alpha": 1.5}, opset=13, rtol=tol, atol=tol)


def test_gemm_beta_zero_ignores_c():
    c = np.full((3, 5), np.nan, np.float32)
    out = check_op("Gemm", [rand(3, 4), rand(4, 5), c], {"beta": 0.0}, opset=13, rtol=1e-5, atol=1e-5)
    assert not np.isnan(out[0]).any()


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_gemm_integers(dtype):
    # onnxruntime has no integer Gemm kernel: compare with NumPy.
    a, b, c = rand(3, 4, dtype=dtype), rand(4, 2, dtype=dtype), rand(2, dtype=dtype)
    check_op("Gemm", [a, b, c], {}, opset=13, expected=[(a @ b + c).astype(dtype)])


@pytest.mark.parametrize("broadcast,c_shape", [(1, (5,)), (1, (1, 5)), (0, (3, 5))])
def test_gemm_opset6_broadcast_attribute(broadcast, c_shape):
    # Gemm-6 (no onnxruntime kernel): `broadcast` is dropped by the import rule.
    a, b, c = rand(4, 3), rand(4, 5), rand(*c_shape)
    check_op("Gemm", [a, b, c], {"broadcast": broadcast, "transA": 1, "alpha": 2.0}, opset=6,
             expected=[2.0 * a.T @ b + c], rtol=1e-5, atol=1e-5)


def test_gemm_symbolic_dims_flow():
    t, = imported_types("Gemm", [(TensorProto.FLOAT, ["N", 8]), (TensorProto.FLOAT, [8, 4]),
                                 (TensorProto.FLOAT, [4])])
    assert t.dtype is DType.F32 and t.shape == ("N", 4)
    t, = imported_types("Gemm", [(TensorProto.FLOAT, [8, "N"]), (TensorProto.FLOAT, [3, 8])],
                        {"transA": 1, "transB": 1})
    assert t.shape == ("N", 3)


def test_gemm_rejects_inner_dim_mismatch():
    with pytest.raises(TypeInferenceError, match="inner dimensions of A and B differ"):
        compile_one("Gemm", [rand(3, 4), rand(5, 2)])


def test_gemm_rejects_non_matrix():
    with pytest.raises(TypeInferenceError, match="must be a matrix"):
        compile_one("Gemm", [rand(2, 3, 4), rand(4, 2)])


def test_gemm_rejects_bad_bias_and_mixed_types():
    with pytest.raises(TypeInferenceError, match="C must broadcast"):
        compile_one("Gemm", [rand(3, 4), rand(4, 5), rand(4)])
    with pytest.raises(TypeInferenceError, match="share one element type"):
        compile_one("Gemm", [rand(3, 4), rand(4, 5, dtype=np.float64)])


# -------------------------------------------------------------------- MatMul
@pytest.mark.parametrize("a_shape,b_shape", [
    ((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)),
    ((4,), (2, 4, 3)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 5)), ((2, 3, 4, 5), (5,)),
])
def test_matmul_shapes(a_shape, b_shape):
    check_op("MatMul", [rand(*a_shape), rand(*b_shape)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.uint32, np.uint64])
def test_matmul_dtypes(dtype):
    check_op("MatMul", [rand(2, 3, 4, dtype=dtype), rand(4, 2, dtype=dtype)], rtol=1e-12, atol=1e-12)


def test_matmul_float16_accumulates_in_float32():
    check_op("MatMul", [rand(4, 64, dtype=np.float16), rand(64, 3, dtype=np.float16)], rtol=2e-3, atol=2e-3)


def test_matmul_constant_weight_and_opset1():
    check_op("MatMul", [rand(2, 3, 4), Const(rand(4, 6))], opset=1, rtol=1e-5, atol=1e-5)
    check_op("MatMul", [Const(rand(5, 4)), Const(rand(4))], opset=13, rtol=1e-5, atol=1e-5)


def test_matmul_symbolic_dims_flow():
    t, = imported_types("MatMul", [(TensorProto.FLOAT, ["B", "S", 8]), (TensorProto.FLOAT, [8, 16])])
    assert t.shape == ("B", "S", 16)
    t, = imported_types("MatMul", [(TensorProto.FLOAT, [8]), (TensorProto.FLOAT, ["B", 8, "K"])])
    assert t.shape == ("B", "K")
    t, = imported_types("MatMul", [(TensorProto.FLOAT, None), (TensorProto.FLOAT, [8, 2])])
    assert t.shape is None


def test_matmul_rejects_bad_operands():
    with pytest.raises(TypeInferenceError, match="inner dimensions differ"):
        compile_one("MatMul", [rand(3, 4), rand(3, 4)])
    with pytest.raises(TypeInferenceError, match="batch dimensions do not broadcast"):
        compile_one("MatMul", [rand(2, 3, 4), rand(3, 4, 5)])
    with pytest.raises(TypeInferenceError, match="rank >= 1"):
        compile_one("MatMul", [np.float32(2.0), rand(3)])
    with pytest.raises(TypeInferenceError, match="unsupported element type"):
        compile_one("MatMul", [rand(2, 2) > 0, rand(2, 2) > 0])


# -------------------------------------------------------------------- Einsum
@pytest.mark.parametrize("equation,shapes", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk", [(2, 3), (3, 4)]),            # implicit output
    ("ii->i", [(4, 4)]),                     # diagonal
    ("ii", [(4, 4)]),                        # trace
    ("...ij->...ji", [(2, 3, 4)]),           # ellipsis
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->", [(3, 4)]),
    ("Ab,Ab->A", [(2, 3), (2, 3)]),          # upper-case letters
    ("...j,j", [(2, 3, 4), (4,)]),
    ("ijk, ikl -> ijl", [(2, 3, 4), (2, 4, 5)]),  # spaces are allowed
])
def test_einsum_equations(equation, shapes):
    check_op("Einsum", [rand(*s) for s in shapes], {"equation": equation}, rtol=1e-5, atol=1e-5)


def test_einsum_integers_and_constants():
    check_op("Einsum", [rand(2, 3, dtype=np.int32), Const(rand(3, 4, dtype=np.int32))],
             {"equation": "ij,jk->ik"})
    check_op("Einsum", [rand(3, 4, dtype=np.int64)], {"equation": "ij->j"})


def test_einsum_symbolic_shape():
    t, = imported_types("Einsum", [(TensorProto.FLOAT, ["B", 3, 4]), (TensorProto.FLOAT, ["B", 4, "K"])],
                        {"equation": "bij,bjk->bki"})
    assert t.shape == ("B", "K", 3)


def test_einsum_rejects_bad_equations():
    with pytest.raises(TypeInferenceError, match="bad einsum equation"):
        compile_one("Einsum", [rand(2, 3)], {"equation": "ijk->i"})
    with pytest.raises(TypeInferenceError, match="bad einsum equation"):
        compile_one("Einsum", [rand(2, 3), rand(4, 5)], {"equation": "ij,jk->ik"})
    with pytest.raises(TypeInferenceError, match="operand terms"):
        compile_one("Einsum", [rand(2, 3)], {"equation": "ij,jk->ik"})
    with pytest.raises(TypeInferenceError, match="in no input term"):
        compile_one("Einsum", [rand(2, 3)], {"equation": "ij->z"})


# ----------------------------------------------------------------------- Det
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (2, 1, 2, 2)])
def test_det_float32(shape):
    check_op("Det", [rand(*shape)], rtol=1e-4, atol=1e-5)


def test_det_float64_and_constant():
    # onnxruntime has no float64 Det: compare with NumPy.
    x = rand(2, 3, 3, dtype=np.float64)
    check_op("Det", [Const(x)], expected=[np.linalg.det(x)], rtol=1e-12)


def test_det_rejects_non_square():
    with pytest.raises(TypeInferenceError, match="square matrices"):
        compile_one("Det", [rand(2, 3)])


def test_errors_are_compiler_errors():
    with pytest.raises(CompilerError):
        compile_one("MatMul", [rand(3, 4), rand(5, 4)])


def test_matmul_runs_through_the_driver():
    model = make_model("MatMul", [rand(2, 3), rand(3, 2)])
    a, b = rand(2, 3), rand(3, 2)
    out, = run_ours(model, {"in0": a, "in1": b})
    np.testing.assert_allclose(out, a @ b, rtol=1e-6)
