"""cpu target: MaxPool / AveragePool / LpPool kernels against the reference.

Plain NCHW pools over a sweep of windows (pads, strides, dilations,
ceil_mode, auto_pad, count_include_pad; odd sizes so borders and vector
tails run), 1-D and 3-D pools, the blocked ``[N, C/b, H, W, b]`` form the
layout pass produces (window ``[kh, kw, 1]``), and fused prologues and
epilogues.  Helpers come from ``test_reduction``.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler
from ir.errors import CompilerError

from .test_reduction import const, cpu_pipeline, check, fused_check, make_model, rand

WINDOWS = [
    dict(kernel_shape=[3, 3], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 2, 1], ceil_mode=1),
    dict(kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 2, 2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[4, 4], strides=[3, 3], auto_pad="SAME_LOWER"),
    dict(kernel_shape=[3, 3], auto_pad="VALID"),
    dict(kernel_shape=[7, 7]),
    dict(kernel_shape=[9, 9], pads=[4, 4, 4, 4]),  # 81 taps: looped, not unrolled
]


def pool_model(op: str, shape, dtype=T.FLOAT, **attrs):
    # AveragePool takes dilations from opset 19 (an unknown attribute before, which the loader refuses).
    opset = 19 if op == "AveragePool" and "dilations" in attrs else 18
    return make_model([oh.make_node(op, ["x"], ["y"], **attrs)], {"x": (shape, dtype)}, {"y": dtype}, opset=opset)


def _variants(op: str, window: dict) -> list[dict]:
    if op == "AveragePool":
        return [dict(window, count_include_pad=0), dict(window, count_include_pad=1)]
    if op == "LpPool":
        return [dict(window, p=2)] if "dilations" not in window else []
    return [window]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("w", range(len(WINDOWS)))
def test_pool_nchw(op, w):
    shape = [(2, 3, 13, 17), (1, 2, 40, 70)][w % 2]
    rng = np.random.default_rng(w)
    for attrs in _variants(op, WINDOWS[w]):
        check(pool_model(op, shape, **attrs), {"x": rand(rng, shape)})


@pytest.mark.slow
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 13, 17), (1, 2, 40, 70), (1, 1, 7, 7), (1, 3, 112, 112)])
def test_pool_nchw_sweep(op, shape):
    rng = np.random.default_rng(1)
    for window in WINDOWS:
        for attrs in _variants(op, window):
            k = attrs["kernel_shape"][0] * attrs.get("dilations", [1, 1])[0]
            if shape[2] + sum(attrs.get("pads", [0] * 4)[::2]) >= k:
                check(pool_model(op, shape, **attrs), {"x": rand(rng, shape)})


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_1d_3d(op):
    rng = np.random.default_rng(3)
    check(pool_model(op, (2, 3, 50), kernel_shape=[3], strides=[2], pads=[1, 1]), {"x": rand(rng, (2, 3, 50))})
    attrs = dict(kernel_shape=[2, 3, 3], strides=[2, 1, 1], pads=[0, 1, 1, 1, 1, 1])
    check(pool_model(op, (1, 2, 6, 7, 40), **attrs), {"x": rand(rng, (1, 2, 6, 7, 40))})


def test_pool_other_types_and_nan():
    rng = np.random.default_rng(4)
    for dtype, npdt in ((T.FLOAT16, np.float16), (T.DOUBLE, np.float64)):
        tol = dict(rtol=2e-3, atol=2e-3) if dtype == T.FLOAT16 else {}
        for op in ("MaxPool", "AveragePool"):
            model = pool_model(op, (1, 3, 20, 20), dtype, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
            check(model, {"x": rand(rng, (1, 3, 20, 20), npdt)}, **tol)
    for dtype, npdt in ((T.INT8, np.int8), (T.UINT8, np.uint8)):
        model = pool_model("MaxPool", (1, 3, 20, 20), dtype, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
        check(model, {"x": rand(rng, (1, 3, 20, 20), npdt)})
    x = rand(rng, (1, 2, 20, 40))
    x[0, 0, 5, 5] = x[0, 1, 0, 0] = x[0, 1, 10, 39] = np.nan
    for attrs in (dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), dict(kernel_shape=[3, 3], strides=[2, 2])):
        check(pool_model("MaxPool", (1, 2, 20, 40), **attrs), {"x": x})


# --------------------------------------------------------------- blocked
BLOCKED = [dict(kernel_shape=[3, 3, 1], strides=[2, 2, 1]),
           dict(kernel_shape=[3, 3, 1], strides=[2, 2, 1], pads=[1, 1, 0, 1, 1, 0]),
           dict(kernel_shape=[2, 2, 1], strides=[2, 2, 1]),
           dict(kernel_shape=[3, 3, 1], pads=[1, 1, 0, 1, 1, 0]),
           dict(kernel_shape=[3, 3, 1], strides=[2, 2, 1], ceil_mode=1)]


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("w", range(len(BLOCKED)))
def test_pool_blocked(op, w, isa):
    """[N, C/b, H, W, b] pooled with window [kh, kw, 1]: one vector of b channels per tap."""
    lanes = 16 if isa == "avx512" else 8
    shape = [(1, 4, 14, 14, lanes), (2, 3, 9, 11, lanes)][w % 2]
    rng = np.random.default_rng(w)
    check(pool_model(op, shape, **BLOCKED[w]), {"x": rand(rng, shape)}, isa=isa)


def test_pool_blocked_from_layout_ops():
    """ToBlocked -> MaxPool [3, 3, 1] -> FromBlocked, as the layout pass writes it (channels padded)."""
    from backends.cpu.host import host_cpu
    from ir.dtypes import DType
    from ir.graph import Graph
    from ir.types import TensorType
    lanes = host_cpu().vector_lanes_f32
    g = Graph("blocked")
    x = g.add_input("x", TensorType(DType.F32, (2, lanes + 3, 15, 15)))
    xb = g.add("ToBlocked", x, domain="nnc", block=lanes)
    p = g.add("MaxPool", xb, kernel_shape=[3, 3, 1], strides=[2, 2, 1], pads=[1, 1, 0, 1, 1, 0])
    a = g.add("AveragePool", xb, kernel_shape=[3, 3, 1], strides=[2, 2, 1], pads=[1, 1, 0, 1, 1, 0])
    g.set_outputs([g.add("FromBlocked", p, domain="nnc", channels=lanes + 3),
                   g.add("FromBlocked", a, domain="nnc", channels=lanes + 3)])
    check(g, {"x": rand(np.random.default_rng(5), (2, lanes + 3, 15, 15))})


def test_conv_maxpool_uses_the_blocked_form():
    rng = np.random.default_rng(6)
    inits = [const("w", rand(rng, (32, 3, 3, 3)) * 0.2), const("b", rand(rng, (32,)))]
    nodes = [oh.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), oh.make_node("Relu", ["c"], ["r"]),
             oh.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": ((1, 3, 20, 20), T.FLOAT)}, {"y": T.FLOAT}, inits)
    from backends.base import get_backend
    from passes.manager import PassContext, PassManager
    cpu = get_backend("cpu")
    graph = compiler.build(model, target="ref", passes="fold-constants,dce").graph
    PassManager("layout-nchwc,dce").run(graph, PassContext(target=cpu.target_info, backend=cpu))
    pools = [n for n in graph.nodes if n.op == "MaxPool"]
    if not any(n.inputs[0].type.rank == 5 for n in pools):
        pytest.skip("the layout pass kept this MaxPool plain")
    try:
        check(model, {"x": rand(rng, (1, 3, 20, 20))})
    except CompilerError as e:
        if "Conv" in str(e) and "cannot" in str(e):
            pytest.skip(f"no cpu convolution kernel in this checkout: {e}")
        raise


# ---------------------------------------------------------------- fusion
@pytest.mark.parametrize("isa", ["avx512", "avx2"])
def test_pool_fused_prologue_epilogue(isa):
    rng = np.random.default_rng(7)
    lanes = 16 if isa == "avx512" else 8
    shape = (1, 4, 14, 14, lanes)
    nodes = [oh.make_node("Relu", ["x"], ["r"]), oh.make_node("MaxPool", ["r"], ["p"], **BLOCKED[1]),
             oh.make_node("Mul", ["p", "k"], ["y"])]
    model = make_model(nodes, {"x": (shape, T.FLOAT)}, {"y": T.FLOAT}, [const("k", rand(rng, (1, 4, 1, 1, lanes)))])
    fused_check(model, {"x": rand(rng, shape)}, isa=isa)
    for op, attrs in (("MaxPool", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
                      ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))):
        nodes = [oh.make_node("Relu", ["x"], ["r"]), oh.make_node(op, ["r"], ["y"], **attrs)]
        model = make_model(nodes, {"x": ((2, 3, 20, 71), T.FLOAT)}, {"y": T.FLOAT})
        fused_check(model, {"x": rand(rng, (2, 3, 20, 71))}, isa=isa)


def test_pool_epilogue_from_the_fuse_pass():
    """MaxPool + bias + Relu, and an epilogue reading another activation (a candidate for in-place)."""
    rng = np.random.default_rng(8)
    nodes = [oh.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             oh.make_node("Add", ["p", "b"], ["q"]), oh.make_node("Relu", ["q"], ["y"]),
             oh.make_node("Exp", ["z"], ["ez"]),
             oh.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             oh.make_node("Add", ["a", "ez"], ["w"])]
    shape = (1, 3, 20, 45)
    model = make_model(nodes, {"x": (shape, T.FLOAT), "z": (shape, T.FLOAT)}, {"y": T.FLOAT, "w": T.FLOAT},
                       [const("b", rand(rng, (3, 1, 1)))])
    graph = compiler.build(model, target="cpu", passes=cpu_pipeline()).graph
    assert any(n.op == "Fused" and n.attrs["pattern"].startswith("MaxPool") for n in graph.nodes)
    check(model, {"x": rand(rng, shape), "z": rand(rng, shape)})


def test_maxpool_indices_use_their_own_kernel():
    """This kernel computes values only; a used Indices output goes to kernels/pool_indices.py."""
    nodes = [oh.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])]
    model = make_model(nodes, {"x": ((1, 1, 4, 4), T.FLOAT)}, {"y": T.FLOAT, "i": T.INT64})
    check(model, {"x": rand(np.random.default_rng(0), (1, 1, 4, 4))})
