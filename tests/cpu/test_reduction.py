"""cpu target: reduction, softmax/normalization, LRN and CumSum kernels against the reference.

Each test builds a small ONNX model with random data (several shapes, axes,
keepdims, odd sizes so the vector tails run), compiles it for ``cpu`` and
``ref`` and compares (rtol 1e-4, atol 1e-5 for f32: the kernels sum in f32
vectors, the reference with NumPy's pairwise sums).  Fused prologues and
epilogues are built two ways: by the cpu pipeline's fuse pass, and by hand
(``fused_check``) for the patterns the pass does not form yet.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler
from ir.errors import CompilerError

RTOL, ATOL = 1e-4, 1e-5
_NP = {T.FLOAT: np.float32, T.DOUBLE: np.float64, T.FLOAT16: np.float16, T.INT32: np.int32,
       T.INT64: np.int64, T.INT8: np.int8, T.UINT8: np.uint8}


def cpu_pipeline() -> str:
    """The cpu pipeline, minus passes this checkout does not register yet."""
    from passes.manager import all_passes
    from backends.cpu import PIPELINE as CPU_PIPELINE
    known = {p.name for p in all_passes()}
    return ",".join(p for p in CPU_PIPELINE.split(",") if p in known)


def make_model(nodes: list, inputs: dict, outputs: dict, inits: Sequence = (), opset: int = 18) -> onnx.ModelProto:
    """``inputs``: name -> (shape, elem type); ``outputs``: name -> elem type."""
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info(n, t, list(s)) for n, (s, t) in inputs.items()],
                      [oh.make_tensor_value_info(n, t, None) for n, t in outputs.items()], list(inits))
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])


def const(name: str, value) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(value), name)


def assert_close(got: dict, want: dict, rtol: float, atol: float) -> None:
    for k, w in want.items():
        g = got[k]
        assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
        if w.dtype.kind in "iub":
            np.testing.assert_array_equal(g, w, err_msg=k)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=k)


def check(model, feeds: dict, rtol: float = RTOL, atol: float = ATOL, isa: Optional[str] = None) -> None:
    """Compile ``model`` (ONNX or IR graph) for cpu and ref and compare the outputs."""
    want = compiler.compile(model, target="ref").run(feeds)
    options = {"isa": isa} if isa else None
    got = compiler.compile(model, target="cpu", passes=cpu_pipeline(), options=options).run(feeds)
    assert_close(got, want, rtol, atol)


def fused_check(model: onnx.ModelProto, feeds: dict, rtol: float = RTOL, atol: float = ATOL,
                isa: Optional[str] = None) -> None:
    """Fuse every node of ``model`` into one nnc.Fused group by hand, compile it on cpu, compare."""
    from passes.fuse import materialize
    want = compiler.compile(model, target="ref").run(feeds)
    g = compiler.build(model, target="ref", passes="fold-constants,dce").graph
    materialize(g, list(g.nodes), "fused_0")
    g.topological_sort()
    options = {"isa": isa} if isa else None
    got = compiler.compile(g, target="cpu", passes="schedule,plan-memory", options=options).run(feeds)
    assert_close(got, want, rtol, atol)


def rand(rng, shape, dtype=np.float32):
    if np.dtype(dtype).kind in "iu":
        lo = 0 if np.dtype(dtype).kind == "u" else -20
        return rng.integers(lo, 20, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def reduce_model(op: str, shape, axes: Optional[list], keepdims: int, dtype=T.FLOAT, **attrs):
    inits, ins = [], ["x"]
    if axes is not None:
        inits.append(oh.make_tensor("axes", T.INT64, [len(axes)], axes))
        ins.append("axes")
    node = oh.make_node(op, ins, ["y"], keepdims=keepdims, **attrs)
    return make_model([node], {"x": (shape, dtype)}, {"y": dtype}, inits)


# ------------------------------------------------------------- Reduce*
REDUCE_CASES = [((2, 5, 7), [1]), ((3, 40), [-1]), ((4, 33, 19), [0, 2]), ((3, 40), [0]),
                ((2, 3, 5, 17), [2, 3]), ((2, 3, 5, 17), None), ((1, 4, 5, 5, 16), [2, 3]), ((5, 150), [0])]
REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("case", range(len(REDUCE_CASES)))
def test_reduce_f32(op, case):
    shape, axes = REDUCE_CASES[case]
    rng = np.random.default_rng(case)
    x = rand(rng, shape)
    if op == "ReduceLogSum":
        x = np.abs(x) + 0.1
    if op == "ReduceProd":
        x = (1 + 0.05 * x).astype(np.float32)
    check(reduce_model(op, shape, axes, keepdims=case % 2), {"x": x})


@pytest.mark.parametrize("dtype", [T.INT32, T.INT64, T.INT8, T.UINT8])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceMean", "ReduceProd"])
def test_reduce_integers(op, dtype):
    rng = np.random.default_rng(7)
    x = rand(rng, (3, 21, 5), _NP[dtype])
    if op == "ReduceProd":
        x = np.clip(x, -2, 2).astype(_NP[dtype])
    check(reduce_model(op, (3, 21, 5), [1], 0, dtype), {"x": x})


@pytest.mark.parametrize("dtype", [T.FLOAT16, T.DOUBLE])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceLogSumExp"])
def test_reduce_other_floats(op, dtype):
    x = rand(np.random.default_rng(3), (3, 40, 5), _NP[dtype])
    tol = dict(rtol=2e-3, atol=2e-3) if dtype == T.FLOAT16 else {}
    check(reduce_model(op, (3, 40, 5), [1], 1, dtype), {"x": x}, **tol)


def test_reduce_noop_with_empty_axes():
    x = rand(np.random.default_rng(0), (3, 17))
    check(reduce_model("ReduceSumSquare", (3, 17), None, 1, noop_with_empty_axes=1), {"x": x})


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceSum"])
def test_reduce_nan_propagates(op):
    x = rand(np.random.default_rng(1), (4, 40))
    x[1, 7] = x[2, 30] = x[2, 3] = np.nan
    check(reduce_model(op, (4, 40), [1], 1), {"x": x})
    check(reduce_model(op, (4, 40), [0], 1), {"x": x})


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
def test_reduce_blocked_hw(op, isa):
    """What the layout pass makes of a global pool: [N, C/b, H, W, b] reduced over H, W."""
    lanes = 16 if isa == "avx512" else 8
    shape = (2, 3, 7, 7, lanes)
    check(reduce_model(op, shape, [2, 3], 1), {"x": rand(np.random.default_rng(2), shape)}, isa=isa)


# ----------------------------------------------------- global pools, ArgMax
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 20, 5), (1, 2, 3, 4, 5), (1, 8, 13, 13)])
def test_global_pools(op, shape):
    x = rand(np.random.default_rng(4), shape)
    check(make_model([oh.make_node(op, ["x"], ["y"])], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}), {"x": x})


ARG_CASES = [((2, 5, 7), 1, 0, 0), ((3, 40), -1, 1, 0), ((3, 40), 0, 0, 1), ((2, 33, 18), 1, 1, 1),
             ((4, 100), 1, 0, 1)]


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("case", ARG_CASES)
def test_argmax_argmin(op, case):
    shape, axis, keepdims, last = case
    x = np.random.default_rng(5).integers(-3, 3, shape).astype(np.float32)  # ties
    node = oh.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims, select_last_index=last)
    check(make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.INT64}), {"x": x})


def test_argmax_nan_and_ints():
    x = rand(np.random.default_rng(6), (4, 40))
    x[1, 7] = x[2, 30] = x[2, 3] = np.nan
    node = oh.make_node("ArgMax", ["x"], ["y"], axis=1)
    check(make_model([node], {"x": ((4, 40), T.FLOAT)}, {"y": T.INT64}), {"x": x})
    xi = rand(np.random.default_rng(6), (3, 40, 5), np.int32)
    node = oh.make_node("ArgMin", ["x"], ["y"], axis=1, keepdims=0)
    check(make_model([node], {"x": ((3, 40, 5), T.INT32)}, {"y": T.INT64}), {"x": xi})


# ------------------------------------------------------- softmax family
SOFTMAX_CASES = [((2, 5, 7), 1), ((3, 40), -1), ((3, 40), 0), ((2, 33, 18), 1), ((2, 3, 17, 5), 1),
                 ((1, 1000), 1), ((2, 70, 3), -2), ((3, 150), 0)]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("case", SOFTMAX_CASES)
def test_softmax_family(op, case):
    shape, axis = case
    rng = np.random.default_rng(8)
    x = rng.integers(-3, 3, shape).astype(np.float32) if op == "Hardmax" else 4 * rand(rng, shape)
    node = oh.make_node(op, ["x"], ["y"], axis=axis)
    check(make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}), {"x": x})


def test_softmax_large_values_and_nan():
    x = np.array([[1e4, 1e4 - 1, -1e4, 0.0], [np.nan, 1.0, 2.0, 3.0], [-np.inf, 0.0, 1.0, 2.0]], np.float32)
    x = np.repeat(x, 9, axis=1)
    for op in ("Softmax", "LogSoftmax"):
        node = oh.make_node(op, ["x"], ["y"], axis=1)
        check(make_model([node], {"x": (x.shape, T.FLOAT)}, {"y": T.FLOAT}), {"x": x})


@pytest.mark.parametrize("dtype", [T.FLOAT16, T.DOUBLE])
def test_softmax_other_floats(dtype):
    x = rand(np.random.default_rng(9), (3, 40, 5), _NP[dtype])
    tol = dict(rtol=2e-3, atol=2e-3) if dtype == T.FLOAT16 else {}
    for axis in (1, 2):
        node = oh.make_node("Softmax", ["x"], ["y"], axis=axis)
        check(make_model([node], {"x": ((3, 40, 5), dtype)}, {"y": dtype}), {"x": x}, **tol)


# -------------------------------------------------------- normalizations
@pytest.mark.parametrize("shape,axis", [((2, 5, 7), -1), ((3, 40), 1), ((2, 3, 17, 5), 2), ((2, 6, 64), -1),
                                        ((2, 3, 4, 5), 1)])
def test_layer_norm(shape, axis):
    rng = np.random.default_rng(10)
    pshape = shape[axis % len(shape):]
    inits = [const("s", rand(rng, pshape)), const("b", rand(rng, pshape))]
    node = oh.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=axis, epsilon=1e-3)
    check(make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}, inits), {"x": rand(rng, shape)})


def test_layer_norm_optional_outputs_and_broadcast_scale():
    rng = np.random.default_rng(11)
    shape = (3, 5, 24)
    inits = [const("s", rand(rng, (24,)))]
    node = oh.make_node("LayerNormalization", ["x", "s"], ["y", "m", "i"], axis=1)
    model = make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT, "m": T.FLOAT, "i": T.FLOAT}, inits)
    check(model, {"x": rand(rng, shape)})


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 20, 5), (2, 3, 4, 5, 6), (1, 8, 33, 13)])
def test_instance_norm_and_lrn(shape):
    rng = np.random.default_rng(12)
    c = shape[1]
    x = rand(rng, shape)
    inits = [const("s", rand(rng, (c,))), const("b", rand(rng, (c,)))]
    node = oh.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4)
    check(make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}, inits), {"x": x})
    for size, beta, bias in ((5, 0.75, 1.0), (4, 0.6, 2.0), (3, 0.5, 1.0)):
        node = oh.make_node("LRN", ["x"], ["y"], size=size, alpha=1e-2, beta=beta, bias=bias)
        check(make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}), {"x": x})


@pytest.mark.parametrize("shape,axis,p", [((2, 5, 7), 1, 2), ((3, 40), -1, 1), ((3, 40), 0, 2), ((2, 3, 17, 5), 1, 1)])
def test_lp_normalization(shape, axis, p):
    x = rand(np.random.default_rng(13), shape)
    x[(0,) * len(shape)] = 0.0
    node = oh.make_node("LpNormalization", ["x"], ["y"], axis=axis, p=p)
    check(make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}), {"x": x})


@pytest.mark.parametrize("shape,axes", [((2, 3, 5, 7), [0, 2, 3]), ((3, 40), [1]), ((2, 33, 18), [0, 1])])
def test_mean_variance_normalization(shape, axes):
    node = oh.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=axes)
    check(make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}), {"x": rand(np.random.default_rng(18), shape)},
          atol=1e-4)


@pytest.mark.parametrize("shape,axis", [((2, 5, 7), -1), ((3, 40), 0), ((2, 6, 64), 1)])
def test_rms_normalization(shape, axis):
    rng = np.random.default_rng(19)
    node = oh.make_node("RMSNormalization", ["x", "s"], ["y"], axis=axis)
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", T.FLOAT, list(shape))],
                      [oh.make_tensor_value_info("y", T.FLOAT, None)], [const("s", rand(rng, shape[-1:]))])
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 23)])
    check(model, {"x": rand(rng, shape)})


@pytest.mark.parametrize("shape,axis", [((2, 5, 7), 1), ((3, 40), -1), ((3, 40), 0)])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
def test_cumulative(op, shape, axis, exclusive, reverse):
    x = rand(np.random.default_rng(14), shape)
    if op == "CumProd":
        x = (1 + 0.05 * x).astype(np.float32)
    node = oh.make_node(op, ["x", "ax"], ["y"], exclusive=exclusive, reverse=reverse)
    model = make_model([node], {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}, [oh.make_tensor("ax", T.INT64, [], [axis])],
                       opset=26 if op == "CumProd" else 18)  # ONNX added CumProd in opset 26
    check(model, {"x": x})


# ----------------------------------------------------------------- fusion
def test_fuse_pass_epilogues():
    """Groups the fuse pass forms today: Softmax+Mul, ReduceMean+Sub (x - mean), a decomposed LayerNorm."""
    rng = np.random.default_rng(15)
    d = 40
    inits = [oh.make_tensor("axes", T.INT64, [1], [-1]), const("two", np.float32(2.0)),
             const("eps", np.float32(1e-5)), const("g", rand(rng, (d,))), const("bb", rand(rng, (d,)))]
    nodes = [oh.make_node("ReduceMean", ["x", "axes"], ["m"]), oh.make_node("Sub", ["x", "m"], ["d"]),
             oh.make_node("Pow", ["d", "two"], ["p"]), oh.make_node("ReduceMean", ["p", "axes"], ["v"]),
             oh.make_node("Add", ["v", "eps"], ["ve"]), oh.make_node("Sqrt", ["ve"], ["s"]),
             oh.make_node("Div", ["d", "s"], ["n"]), oh.make_node("Mul", ["n", "g"], ["ng"]),
             oh.make_node("Add", ["ng", "bb"], ["y"]),
             oh.make_node("Softmax", ["x"], ["sm"], axis=1), oh.make_node("Mul", ["sm", "g"], ["z"])]
    model = make_model(nodes, {"x": ((2, 7, d), T.FLOAT)}, {"y": T.FLOAT, "z": T.FLOAT}, inits)
    graph = compiler.build(model, target="cpu", passes=cpu_pipeline()).graph
    patterns = {n.attrs.get("pattern") for n in graph.nodes if n.op == "Fused"}
    assert {"ReduceMean+Sub", "Softmax+Mul"} <= patterns, patterns
    check(model, {"x": rand(rng, (2, 7, d))})


FUSED = {
    "exp-reducesum": lambda r, s, a: ([oh.make_node("Exp", ["x"], ["e"]),
                                       oh.make_node("ReduceSum", ["e", "axes"], ["y"], keepdims=1)], []),
    "x-mean": lambda r, s, a: ([oh.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1),
                                oh.make_node("Sub", ["x", "m"], ["y"])], []),
    "mean-keep0-add": lambda r, s, a: ([oh.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
                                        oh.make_node("Add", ["m", "k"], ["y"])], [const("k", np.float32(1.5))]),
    "softmax-mul": lambda r, s, a: ([oh.make_node("Softmax", ["x"], ["t"], axis=a[0]),
                                     oh.make_node("Mul", ["t", "k"], ["y"])], [const("k", rand(r, s[-1:]))]),
    "sub-softmax": lambda r, s, a: ([oh.make_node("Sub", ["x", "k"], ["t"]),
                                     oh.make_node("Softmax", ["t"], ["y"], axis=a[0])], [const("k", rand(r, s[-1:]))]),
    "softmax-broadcast-up": lambda r, s, a: ([oh.make_node("Softmax", ["x"], ["t"], axis=a[0]),
                                              oh.make_node("Mul", ["t", "k"], ["y"])], [const("k", rand(r, (2,) + s))]),
    "layernorm-relu": lambda r, s, a: ([oh.make_node("LayerNormalization", ["x", "g"], ["t"], axis=-1),
                                        oh.make_node("Relu", ["t"], ["y"])], [const("g", rand(r, s[-1:]))]),
    "lrn-relu": lambda r, s, a: ([oh.make_node("LRN", ["x"], ["t"], size=5),
                                  oh.make_node("Relu", ["t"], ["y"])], []),
}


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize("shape,axes", [((3, 50), [1]), ((2, 30, 20), [1]), ((2, 3, 7, 7), [2, 3])])
@pytest.mark.parametrize("pattern", sorted(FUSED))
def test_fused_patterns(pattern, shape, axes, isa):
    if pattern.startswith("lrn") and len(shape) < 3:
        pytest.skip("LRN needs spatial axes")
    rng = np.random.default_rng(16)
    nodes, inits = FUSED[pattern](rng, shape, axes)
    inits.append(oh.make_tensor("axes", T.INT64, [len(axes)], axes))
    model = make_model(nodes, {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}, inits)
    fused_check(model, {"x": rand(rng, shape)}, isa=isa)


def test_fused_injective_prologue_and_int_epilogue():
    rng = np.random.default_rng(17)
    nodes = [oh.make_node("Exp", ["x"], ["e"]), oh.make_node("Transpose", ["e"], ["t"], perm=[1, 0]),
             oh.make_node("ReduceSum", ["t", "axes"], ["y"], keepdims=0)]
    model = make_model(nodes, {"x": ((20, 30), T.FLOAT)}, {"y": T.FLOAT},
                       [oh.make_tensor("axes", T.INT64, [1], [1])])
    fused_check(model, {"x": rand(rng, (20, 30))})
    # A Transpose in the prologue: H, W must not be walked as one flat axis.
    nodes = [oh.make_node("Exp", ["x"], ["e"]), oh.make_node("Transpose", ["e"], ["t"], perm=[0, 1, 3, 2]),
             oh.make_node("ReduceMax", ["t", "axes"], ["y"], keepdims=1)]
    model = make_model(nodes, {"x": ((2, 5, 4, 4), T.FLOAT)}, {"y": T.FLOAT},
                       [oh.make_tensor("axes", T.INT64, [2], [2, 3])])
    fused_check(model, {"x": rand(rng, (2, 5, 4, 4))})
    nodes = [oh.make_node("ArgMax", ["x"], ["a"], axis=1), oh.make_node("Cast", ["a"], ["y"], to=T.FLOAT)]
    fused_check(make_model(nodes, {"x": ((3, 40), T.FLOAT)}, {"y": T.FLOAT}), {"x": rand(rng, (3, 40))})


# ------------------------------------------------------------- refusals
def test_refusals_have_reasons():
    from backends.base import get_backend
    model = reduce_model("ReduceL2", (3, 4), [1], 1, T.INT32)
    graph = compiler.build(model, target="ref").graph
    why = get_backend("cpu").supports(graph.nodes[0])
    assert not why.ok and "ReduceL2" in why.reason and "i32" in why.reason
    with pytest.raises(CompilerError, match="ReduceL2"):
        compiler.compile(model, target="cpu", passes=cpu_pipeline())


# ------------------------------------------------------------------ exp
@pytest.mark.parametrize("isa", ["avx512", "avx2"])
def test_vector_exp_accuracy(isa):
    """vecmath.vexp within 1 ulp of exp over the f32 range, and exact on the special values."""
    import ctypes

    import llvmlite.binding as llvm
    import llvmlite.ir as ir

    from backends.cpu.codegen import F32, KernelBuilder, const_int, load_vector, store_vector
    from backends.cpu.executable import optimize, target_machine
    from backends.cpu.kernels.vecmath import vexp
    from backends.cpu.host import host_cpu

    rng = np.random.default_rng(0)
    special = [0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, -87.3, -103.9, -104.5, 1e-8, -1e-8, 50, -50, 1, -1]
    x = np.concatenate([special, rng.uniform(-110, 90, 512 - len(special))]).astype(np.float32)
    target = host_cpu(isa)
    kb = KernelBuilder(target)
    fn = ir.Function(kb.module, ir.FunctionType(ir.VoidType(), [F32.as_pointer()] * 2), "e")
    b = ir.IRBuilder(fn.append_basic_block())
    for i in range(0, len(x), kb.lanes):
        store_vector(b, vexp(kb, b, load_vector(b, fn.args[0], const_int(i), kb.lanes)), fn.args[1], const_int(i))
    for i in range(len(special)):  # the scalar form too
        v = vexp(kb, b, b.load(b.gep(fn.args[0], [const_int(i)])))
        b.store(v, b.gep(fn.args[1], [const_int(len(x) + i)]))
    b.ret_void()
    tm = target_machine(target)
    engine = llvm.create_mcjit_compiler(optimize(str(kb.module), tm), tm)
    engine.finalize_object()
    out = np.zeros(len(x) + len(special), np.float32)
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(engine.get_function_address("e"))(
        x.ctypes.data, out.ctypes.data)
    want = np.exp(x.astype(np.float64))
    normal = (want > 1.2e-38) & (want < 3.4e38)
    ulp = np.abs(out[:len(x)][normal] - want[normal]) / np.spacing(want[normal].astype(np.float32))
    assert ulp.max() <= 1.0
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(out[:len(x)][~normal], want[~normal].astype(np.float32), rtol=0, atol=1e-44)
    np.testing.assert_array_equal(out[len(x):], out[:len(special)])


@pytest.mark.parametrize("axes", [[0, 2, 3], [2, 3], [3]])
def test_reduced_axes_of_size_one(axes):
    """A collapsed axis group may end in a size-1 axis (the position then sits on it)."""
    from tests.cpu.helpers import compare_cpu, one_op
    from tests.ops.ortcheck import Const
    x = np.random.default_rng(0).standard_normal((3, 3, 3, 1)).astype(np.float32)
    compare_cpu(*one_op("ReduceMean", [x, Const(np.array(axes, np.int64))], {"keepdims": 1}, opset=18))
