"""Random ops: dtype, shape, determinism with a seed, statistics, and no folding/CSE.

onnxruntime uses another generator, so its values are never compared; its
output dtype and shape are, and its statistics agree with ours.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import compiler
from ir.errors import CompilerError
from tests.ops.ortcheck import Const, make_model, run_ort, run_ours

N = 20000  # samples for the statistical checks


def run(op, inputs=(), attrs=None, opset=21, compare_ort=True):
    """Our result; when asked, assert onnxruntime gives the same dtype and shape.

    Opset 21 by default: onnxruntime has no kernels for the opset-22 forms (bfloat16 added).
    """
    model = make_model(op, list(inputs), attrs, opset=opset)
    feeds = {f"in{i}": np.asarray(x) for i, x in enumerate(inputs) if not isinstance(x, Const)}
    ours = run_ours(model, feeds)[0]
    if compare_ort:
        theirs = run_ort(model, feeds)[0]
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    return ours


@pytest.mark.parametrize("dtype,np_dtype", [(TensorProto.FLOAT, np.float32),
                                            (TensorProto.DOUBLE, np.float64),
                                            (TensorProto.FLOAT16, np.float16)])
def test_random_normal(dtype, np_dtype):
    attrs = {"shape": [100, 200], "mean": 2.0, "scale": 3.0, "dtype": dtype, "seed": 7.0}
    a = run("RandomNormal", attrs=attrs, compare_ort=np_dtype != np.float16)
    b = run("RandomNormal", attrs=attrs, compare_ort=False)
    assert a.dtype == np_dtype and a.shape == (100, 200)
    np.testing.assert_array_equal(a, b)  # same seed, same values
    assert abs(a.astype(np.float64).mean() - 2.0) < 0.1
    assert abs(a.astype(np.float64).std() - 3.0) < 0.1


def test_random_uniform_bfloat16_and_bounds():
    import ml_dtypes
    a = run("RandomUniform", attrs={"shape": [N], "low": -1.0, "high": 3.0, "seed": 1.0,
                                    "dtype": TensorProto.BFLOAT16}, compare_ort=False)
    assert a.dtype == ml_dtypes.bfloat16
    f = a.astype(np.float32)
    assert f.min() >= -1.0 and f.max() <= 3.0 and abs(f.mean() - 1.0) < 0.05


def test_random_uniform_matches_ort_statistics():
    attrs = {"shape": [N], "low": 5.0, "high": 6.0}
    model = make_model("RandomUniform", [], attrs, opset=21)
    ours, theirs = run_ours(model, {})[0], run_ort(model, {})[0]
    assert ours.dtype == theirs.dtype == np.float32
    assert abs(ours.mean() - theirs.mean()) < 0.02 and abs(ours.std() - theirs.std()) < 0.02


def test_seeds_differ_and_unseeded_runs_differ():
    a = run("RandomNormal", attrs={"shape": [50], "seed": 1.0}, compare_ort=False)
    b = run("RandomNormal", attrs={"shape": [50], "seed": 2.0}, compare_ort=False)
    assert not np.array_equal(a, b)
    m = compiler.compile(make_model("RandomNormal", [], {"shape": [50]}, opset=22))
    r1, r2 = m.run({}), m.run({})
    # Not folded into a constant: each run draws again.
    assert not np.array_equal(list(r1.values())[0], list(r2.values())[0])


@pytest.mark.parametrize("op,params", [("RandomNormalLike", {"mean": 1.0, "scale": 0.5}),
                                       ("RandomUniformLike", {"low": 0.0, "high": 2.0})])
def test_like_ops(op, params):
    x = np.zeros((30, 40, 20), np.float64)
    out = run(op, [x], {**params, "seed": 3.0})
    assert out.dtype == np.float64 and out.shape == x.shape
    assert abs(out.mean() - 1.0) < 0.03
    again = run(op, [Const(x)], {**params, "seed": 3.0}, compare_ort=False)
    np.testing.assert_array_equal(out, again)
    # dtype attribute overrides the input's type (and non-float inputs need it).
    ints = np.zeros((4, 5), np.int64)
    out = run(op, [ints], {"dtype": TensorProto.FLOAT})
    assert out.dtype == np.float32 and out.shape == (4, 5)
    out = run(op, [ints], {"dtype": TensorProto.FLOAT16}, compare_ort=False)  # no f16 kernel there
    assert out.dtype == np.float16 and out.shape == (4, 5)


def test_like_op_needs_float_dtype():
    with pytest.raises(CompilerError, match="set the dtype attribute"):
        run("RandomNormalLike", [np.zeros((2, 3), np.int32)], compare_ort=False)


@pytest.mark.parametrize("dtype,np_dtype", [(None, np.float32), (TensorProto.BOOL, np.bool_),
                                            (TensorProto.INT64, np.int64)])
def test_bernoulli(dtype, np_dtype):
    p = np.full((N,), 0.3, np.float32)
    attrs = {"seed": 0.0} if dtype is None else {"seed": 0.0, "dtype": dtype}
    out = run("Bernoulli", [p], attrs)
    assert out.dtype == np_dtype and set(np.unique(out).tolist()) <= {0, 1}
    assert abs(out.astype(np.float64).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(out, run("Bernoulli", [p], attrs, compare_ort=False))
    edges = run("Bernoulli", [np.array([0.0, 1.0, 0.0, 1.0])], {"seed": 5.0})
    np.testing.assert_array_equal(edges, [0.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype,np_dtype", [(TensorProto.INT32, np.int32), (TensorProto.INT64, np.int64)])
def test_multinomial(dtype, np_dtype):
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]], np.float32)
    logits = np.log(np.maximum(probs, 1e-30)).astype(np.float32)
    out = run("Multinomial", [logits], {"sample_size": N, "dtype": dtype, "seed": 4.0})
    assert out.dtype == np_dtype and out.shape == (2, N)
    for row, p in zip(out, probs):
        freq = np.bincount(row, minlength=3) / N
        np.testing.assert_allclose(freq, p, atol=0.02)
    again = run("Multinomial", [logits], {"sample_size": N, "dtype": dtype, "seed": 4.0},
                compare_ort=False)
    np.testing.assert_array_equal(out, again)


def test_identical_unseeded_nodes_not_merged():
    """CSE must not merge two identical random nodes: they draw different values."""
    nodes = [helper.make_node("RandomUniform", [], [n], shape=[64]) for n in ("a", "b")]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info(n, TensorProto.FLOAT, [64])
                                               for n in ("a", "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    out = compiler.compile(model).run({})
    assert not np.array_equal(out["a"], out["b"])


def test_old_opset_forms():
    out = run("RandomNormal", attrs={"shape": [3, 4], "seed": 1.0}, opset=13)
    assert out.shape == (3, 4) and out.dtype == np.float32
    out = run("Bernoulli", [np.full((5,), 0.5, np.float64)], {"seed": 1.0}, opset=15)
    assert out.dtype == np.float64


# ------------------------------------------------------------------ errors
def test_bad_dtype_attribute():
    with pytest.raises(CompilerError, match="unsupported output dtype"):
        run("RandomNormal", attrs={"shape": [2], "dtype": TensorProto.INT32}, compare_ort=False)


def test_multinomial_needs_rank_2():
    with pytest.raises(CompilerError, match=r"batch_size, class_size"):
        run("Multinomial", [np.zeros((2, 3, 4), np.float32)], compare_ort=False)


def test_bernoulli_rejects_int_probabilities():
    with pytest.raises(CompilerError, match="unsupported element type"):
        run("Bernoulli", [np.zeros((2,), np.int32)], compare_ort=False)


def test_model_is_valid_onnx():
    onnx.checker.check_model(make_model("RandomNormal", [], {"shape": [2]}, opset=22))
