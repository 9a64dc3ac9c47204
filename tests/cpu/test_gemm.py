"""cpu target: Gemm / MatMul kernels (blocked, direct, dot) against the reference interpreter.

Random operands, odd sizes (tails in M, N and K), transposes, alpha/beta,
every C broadcast, batched and 1-D MatMul, constant weights, fused
epilogues (Relu, bias Add, residual Add), and multi-block K.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from ir.errors import BackendError, CompilerError
from ir.memory import plan_of

FALLBACK_PIPELINE = ("fold-constants,remove-identity,cse,dce,layout-nchwc,fold-constants,dce,fuse,dce,"
                     "schedule,plan-memory")
RTOL, ATOL = 1e-4, 1e-5


def _passes() -> Optional[str]:
    """The cpu pipeline when every pass in it exists here, else the shorter one."""
    from passes.manager import parse_pipeline
    from backends.cpu import PIPELINE as CPU_PIPELINE
    try:
        parse_pipeline(CPU_PIPELINE)
        return None
    except CompilerError:
        return FALLBACK_PIPELINE


PASSES = _passes()


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def make_model(nodes, inputs: dict[str, np.ndarray], consts: dict[str, np.ndarray], outputs: list[str],
               dtype=None):
    if dtype is None:
        dtype = TensorProto.DOUBLE if next(iter(inputs.values())).dtype == np.float64 else TensorProto.FLOAT
    vis = [helper.make_tensor_value_info(n, dtype, list(a.shape)) for n, a in inputs.items()]
    outs = [helper.make_tensor_value_info(o, dtype, None) for o in outputs]
    inits = [numpy_helper.from_array(a, n) for n, a in consts.items()]
    graph = helper.make_graph(nodes, "g", vis, outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def check(nodes, inputs: dict[str, np.ndarray], consts: Optional[dict[str, np.ndarray]] = None,
          outputs: tuple[str, ...] = ("y",), rtol: float = RTOL, atol: float = ATOL):
    """Compile for cpu and ref, run both on ``inputs``, compare every output; returns the cpu module."""
    model = make_model(nodes, inputs, consts or {}, list(outputs))
    cpu = compiler.compile(model, target="cpu", passes=PASSES)
    ref = compiler.compile(model, target="ref")
    got, want = cpu.run(inputs), ref.run(inputs)
    for name in outputs:
        assert got[name].shape == want[name].shape, name
        # Sums of K products: scale the tolerance with sqrt(K)-sized magnitudes of the result.
        scale = max(1.0, float(np.abs(want[name]).max()))
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol * scale, err_msg=name)
    return cpu


# ----------------------------------------------------------------- MatMul 2-D
SHAPES = [(1, 7, 17), (7, 17, 1), (17, 100, 257), (100, 257, 17), (1, 1, 1), (3, 5, 16),
          (64, 64, 64), (33, 300, 65), (9, 1000, 40), (257, 17, 7), (2, 130, 300)]


@pytest.mark.parametrize("m,k,n,const_b", [(*s, False) for s in SHAPES] + [(*s, True) for s in SHAPES[2:6]])
def test_matmul_2d(m, k, n, const_b):
    rng = np.random.default_rng(m * 1000 + k + n)
    a, b = rand(rng, m, k), rand(rng, k, n)
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    if const_b:
        check([node], {"a": a}, {"b": b})
    else:
        check([node], {"a": a, "b": b})


# ----------------------------------------------------------------------- Gemm
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("m,k,n", [(1, 40, 33), (3, 17, 5), (17, 100, 70), (100, 257, 17)])
def test_gemm_transposes(trans_a, trans_b, m, k, n):
    rng = np.random.default_rng(7 + trans_a * 2 + trans_b + m)
    a = rand(rng, k, m) if trans_a else rand(rng, m, k)
    b = rand(rng, n, k) if trans_b else rand(rng, k, n)
    c = rand(rng, n)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=trans_a, transB=trans_b)
    check([node], {"a": a, "b": b}, {"c": c})


@pytest.mark.parametrize("c_shape,alpha,beta", [
    (None, 0.5, 1.0), ((), 0.5, 2.0), ((1,), 1.0, 1.0), ((33,), 0.5, 2.0), ((1, 33), 1.0, 1.0),
    ((19, 1), 0.5, 2.0), ((19, 33), 2.0, -1.0), ((19, 33), 1.0, 0.0)])
def test_gemm_alpha_beta_bias(c_shape, alpha, beta):
    rng = np.random.default_rng(11)
    a, b = rand(rng, 19, 70), rand(rng, 70, 33)
    inputs = {"a": a, "b": b}
    names = ["a", "b"]
    if c_shape is not None:
        inputs["c"] = rand(rng, *c_shape)
        names.append("c")
    node = helper.make_node("Gemm", names, ["y"], alpha=alpha, beta=beta)
    check([node], inputs)


@pytest.mark.parametrize("m", [1, 2, 5])
def test_gemm_fully_connected(m):
    """The exported Linear layer: constant W (N x K, transB=1) and bias, then Relu (dot kernel)."""
    rng = np.random.default_rng(m)
    k, n = 1000, 77
    nodes = [helper.make_node("Gemm", ["x", "w", "bias"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["y"])]
    check(nodes, {"x": rand(rng, m, k)}, {"w": rand(rng, n, k), "bias": rand(rng, n)})


# --------------------------------------------------------------- batched MatMul
BATCHED = [((2, 3, 5, 7), (2, 3, 7, 20)),   # same batch
           ((3, 17, 40), (40, 33)),         # batch folded into M
           ((2, 1, 4, 18), (1, 3, 18, 9)),  # both broadcast
           ((6, 9), (4, 9, 35)),            # A broadcast over B's batch
           ((1, 5, 19), (1, 19, 16)),       # batch of one
           ((40,), (40, 21)),               # 1-D A
           ((7, 40), (40,)),                # 1-D B
           ((2, 7, 40), (40,)),             # 1-D B, batched A
           ((40,), (3, 40, 21))]            # 1-D A, batched B


@pytest.mark.parametrize("a_shape,b_shape", BATCHED)
def test_matmul_batched(a_shape, b_shape):
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    check([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": rand(rng, *a_shape), "b": rand(rng, *b_shape)})


def test_matmul_vector_dot_vector():
    """1-D @ 1-D: a rank-0 result.  (The schedule pass's gemm model indexes out[-1] and crashes on
    it, so this compiles without that pass; the kernel itself needs no schedule here.)"""
    rng = np.random.default_rng(2)
    inputs = {"a": rand(rng, 30), "b": rand(rng, 30)}
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, {}, ["y"])
    cpu = compiler.compile(model, target="cpu", passes=FALLBACK_PIPELINE.replace("schedule,", ""))
    np.testing.assert_allclose(cpu.run(inputs)["y"], inputs["a"] @ inputs["b"], rtol=RTOL, atol=1e-4)


@pytest.mark.parametrize("m,k,n", [(5, 0, 7), (0, 4, 7), (5, 4, 0)])
def test_empty_dimensions(m, k, n):
    """K == 0 stores beta*C; an empty result compiles to a kernel doing nothing.  (The schedule
    pass's gemm model divides by M and N, so the empty results compile without it.)"""
    rng = np.random.default_rng(8)
    inputs = {"a": rand(rng, m, k), "b": rand(rng, k, n)}
    c = rand(rng, n)
    model = make_model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], beta=2.0)], inputs, {"c": c}, ["y"])
    passes = PASSES if m * n else FALLBACK_PIPELINE.replace("schedule,", "")
    got = compiler.compile(model, target="cpu", passes=passes).run(inputs)["y"]
    np.testing.assert_allclose(got, inputs["a"] @ inputs["b"] + 2.0 * c, rtol=RTOL, atol=ATOL)


def test_without_schedule_pass():
    """No schedule on the node: the blocked kernel does not choose tiles itself, it names the pass."""
    rng = np.random.default_rng(4)
    inputs = {"a": rand(rng, 33, 300), "b": rand(rng, 300, 65)}
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, {}, ["y"])
    with pytest.raises(BackendError, match=r"MatMul node \(%y\): .*has no schedule.*run the `schedule` pass"):
        compiler.compile(model, target="cpu", passes=FALLBACK_PIPELINE.replace("schedule,", ""))
    cpu = compiler.compile(model, target="cpu", passes=FALLBACK_PIPELINE)
    want = inputs["a"].astype(np.float64) @ inputs["b"]
    np.testing.assert_allclose(cpu.run(inputs)["y"], want, rtol=RTOL, atol=1e-4)


def test_without_plan_memory_pass():
    """No memory plan: the backend does not plan, it names the pass."""
    rng = np.random.default_rng(4)
    inputs = {"a": rand(rng, 8, 64), "b": rand(rng, 64, 32)}
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["h"]), helper.make_node("Softmax", ["h"], ["y"])],
                       inputs, {}, ["y"])
    with pytest.raises(BackendError, match=r"no memory plan.*run the `plan-memory` pass"):
        compiler.compile(model, target="cpu", passes=FALLBACK_PIPELINE.replace(",plan-memory", ""))


# ------------------------------------------------------------------ epilogues
def test_gemm_relu_fused():
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["h"], alpha=0.5, beta=1.5),
             helper.make_node("Relu", ["h"], ["y"])]
    cpu = check(nodes, {"a": rand(rng, 50, 300)}, {"b": rand(rng, 300, 70), "c": rand(rng, 70)})
    kernels = cpu.executable.description["kernels"]
    assert len(kernels) == 1 and "Relu" in kernels[0], kernels


@pytest.mark.parametrize("m,k,n", [(37, 1000, 45), (4, 64, 48)])
def test_matmul_bias_residual_in_place(m, k, n):
    """MatMul + bias + residual Add + Relu whose result the memory plan puts over the residual."""
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("MatMul", ["r0", "wr"], ["r"]),
             helper.make_node("MatMul", ["a", "w"], ["h"]),
             helper.make_node("Add", ["h", "bias"], ["hb"]),
             helper.make_node("Add", ["hb", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["t"]),
             helper.make_node("MatMul", ["t", "w2"], ["y"])]
    consts = {"wr": rand(rng, k, n), "w": rand(rng, k, n), "bias": rand(rng, n), "w2": rand(rng, n, 8)}
    inputs = {"a": rand(rng, m, k), "r0": rand(rng, m, k)}
    plan = plan_of(compiler.build(make_model(nodes, inputs, consts, ["y"]), target="cpu",
                                  passes=PASSES).graph)
    assert plan.entries["t"].kind.startswith("inplace-of:"), plan.entries
    check(nodes, inputs, consts)


def test_epilogue_with_two_outputs():
    """The MatMul's own result is also a graph output: both are stored by the one kernel."""
    rng = np.random.default_rng(9)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["h"]),
             helper.make_node("Sigmoid", ["h"], ["y"])]
    check(nodes, {"a": rand(rng, 20, 130), "b": rand(rng, 130, 40)}, outputs=("h", "y"))


def test_epilogue_changes_type():
    """A Cast to float16 after the product: partial sums of the K blocks cannot live in the output."""
    rng = np.random.default_rng(21)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["h"]),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT16)]
    model = make_model(nodes, {"a": rand(rng, 30, 900)}, {"b": rand(rng, 900, 50)}, ["y"])
    inputs = {"a": rand(rng, 30, 900)}
    got = compiler.compile(model, target="cpu", passes=PASSES).run(inputs)["y"]
    want = compiler.compile(model, target="ref").run(inputs)["y"]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-2)


def test_epilogue_broadcast_along_rows():
    """A bias per row (shape M x 1) makes the epilogue load one scalar per row."""
    rng = np.random.default_rng(13)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["h"]),
             helper.make_node("Mul", ["h", "s"], ["y"])]
    check(nodes, {"a": rand(rng, 3, 9, 64)}, {"b": rand(rng, 64, 50), "s": rand(rng, 9, 1)})


# -------------------------------------------------------------------- refusals
def test_unsupported_dtype_is_refused_with_reason():
    a = np.ones((4, 4), np.int32)
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": a, "b": a}, {}, ["y"],
                       dtype=TensorProto.INT32)
    with pytest.raises(CompilerError, match="float32 and float64 only"):
        compiler.compile(model, target="cpu", passes=PASSES)


# --------------------------------------------------------------------- float64
@pytest.mark.parametrize("m,k,n,trans_b", [(1, 300, 37, 0), (5, 70, 9, 0), (33, 700, 41, 0), (70, 33, 100, 0),
                                           (1, 300, 37, 1), (33, 700, 41, 1)])
def test_float64(m, k, n, trans_b):
    """Doubles: half as many lanes per vector; blocked (both B layouts), direct and dot kernels."""
    rng = np.random.default_rng(m + k)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((n, k) if trans_b else (k, n))
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["h"], transB=trans_b, alpha=0.5),
             helper.make_node("Relu", ["h"], ["y"])]
    check(nodes, {"a": a}, {"b": b, "c": rng.standard_normal(n)}, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ heavy ones
@pytest.mark.slow
@pytest.mark.parametrize("m,k,n", [(512, 512, 512), (1, 25088, 512), (300, 2048, 1000), (1000, 37, 1500)])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_large(m, k, n, trans_b):
    rng = np.random.default_rng(m + n)
    b = rand(rng, n, k) if trans_b else rand(rng, k, n)
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["h"], transB=trans_b),
             helper.make_node("Relu", ["h"], ["y"])]
    check(nodes, {"a": rand(rng, m, k)}, {"b": b, "c": rand(rng, n)}, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------- model parts
def _fc_head(rng, dims: list[int]):
    """Flatten -> (Gemm transB=1 + bias -> Relu -> Dropout) x n, the classifier of VGG/AlexNet/ZFNet."""
    nodes, consts, x = [], {}, "x"
    nodes.append(helper.make_node("Flatten", ["x"], ["f"]))
    x = "f"
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        consts[f"w{i}"] = rand(rng, n, k) * np.float32(1.0 / np.sqrt(k))
        consts[f"b{i}"] = rand(rng, n)
        last = i == len(dims) - 2
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], ["y" if last else f"g{i}"], transB=1))
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [f"r{i}"]))
            nodes.append(helper.make_node("Dropout", [f"r{i}"], [f"d{i}"]))
            x = f"d{i}"
    return nodes, consts


def test_classifier_head():
    """A VGG-style classifier (batch 1) at a tenth of the size: fused Gemm+Relu kernels, Dropout removed."""
    rng = np.random.default_rng(19)
    nodes, consts = _fc_head(rng, [512 * 7, 409, 409, 100])
    x = rand(rng, 1, 512, 7, 1)
    cpu = check(nodes, {"x": x}, consts)
    kernels = [k for k in cpu.executable.description["kernels"] if k.startswith("Gemm")]
    assert kernels == ["Gemm+Relu %r0", "Gemm+Relu %r1", "Gemm %y"], kernels


@pytest.mark.slow
def test_vgg19_classifier_full_size():
    """VGG-19's fc6/fc7/fc8 at full size (25088 -> 4096 -> 4096 -> 1000), batch 1."""
    rng = np.random.default_rng(6)
    nodes, consts = _fc_head(rng, [25088, 4096, 4096, 1000])
    check(nodes, {"x": rand(rng, 1, 512, 7, 7)}, consts, rtol=1e-3, atol=1e-4)
