"""layout-nchwc: golden IR tests (block 4 on a 128-bit CPU target) and differential model tests.

Every golden case also runs the graph before and after the pass on random
inputs and compares, so the expected text is checked for meaning too.
"""

from __future__ import annotations

import os
import textwrap
import time

import numpy as np
import onnx
import pytest

from ir.target import TargetInfo
from frontends.onnx import import_onnx
from ir import parse_graph, print_graph, run_graph
from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from passes import run_pipeline
from passes.manager import PassContext, PassManager
from tests.passes.golden import assert_pass

CPU4 = TargetInfo(name="test-cpu", kind="cpu", vector_bits=128)  # 4 f32 lanes
CPU16 = TargetInfo(name="test-avx512", kind="cpu", isa="avx512", vector_bits=512)
LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
PIPELINE = "fold-constants,layout-nchwc,fold-constants,dce"


@pytest.fixture(scope="module")
def digits_dir():
    """The digits models in the shared data folder (``../shared/data`` from the project root)."""
    from tests.conftest import SHARED_DATA
    if os.path.isfile(os.path.join(SHARED_DATA, "digits_cnn.onnx")):
        return SHARED_DATA
    pytest.skip("digits models not found")


def _f32(*shape: int) -> TensorType:
    return TensorType(DType.F32, shape)


def _feeds(g: Graph, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal([d if isinstance(d, int) else batch for d in v.type.shape])
            .astype(np.float32) for v in g.inputs}


def _assert_same_outputs(before: Graph, after: Graph, rtol: float = 1e-4) -> None:
    feeds = _feeds(before)
    assert [v.name for v in before.outputs] == [v.name for v in after.outputs]
    for want, got in zip(run_graph(before, feeds), run_graph(after, feeds)):
        scale = float(np.abs(want).max()) or 1.0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def _run(source: str, pipeline: str = "layout-nchwc", target=CPU4) -> tuple[str, PassContext]:
    g = parse_graph(textwrap.dedent(source).strip())
    before = g.clone()
    ctx = PassManager(pipeline).run(g, PassContext(target=target))
    _assert_same_outputs(before, g)
    return print_graph(g), ctx


def _assert_unchanged(source: str, pipeline: str = "layout-nchwc", target=CPU4) -> None:
    """The pass must not fire: same text, no conversions counted."""
    got, ctx = _run(source, pipeline, target)
    assert got == textwrap.dedent(source).strip()
    assert "layout_conversions" not in ctx.stats


def _assert_layout(source: str, expected: str, pipeline: str = "layout-nchwc") -> PassContext:
    got, ctx = _run(source, pipeline)
    want = textwrap.dedent(expected).strip()
    assert got == want, f"\n--- got ---\n{got}\n--- expected ---\n{want}"
    return ctx


# ------------------------------------------------------------------ golden
def test_conv_chain_stays_blocked_and_converts_once_per_value():
    ctx = _assert_layout("""
        graph @main(%x: f32[1,2,4,4]) {
          %w: f32[4,2,1,1] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
          %b: f32[4] = constant [0.5, -0.5, 1.5, -1.5]
          %s: f32[4,1,1] = constant [1.0, 2.0, 3.0, 4.0]
          %y: f32[1,4,4,4] = Conv(%x, %w, %b)
          %m: f32[1,4,4,4] = Mul(%y, %s)
          %r: f32[1,4,4,4] = Relu(%m)
          %p: f32[1,4,2,2] = MaxPool(%r) {kernel_shape=[2, 2], strides=[2, 2]}
          %f: f32[1,16] = Flatten(%p)
          %e: f32[1,16] = Exp(%f)
          return %e, %r, %p
        }""", """
        graph @main(%x: f32[1,2,4,4]) {
          %w: f32[4,2,1,1] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
          %b: f32[4] = constant [0.5, -0.5, 1.5, -1.5]
          %s: f32[4,1,1] = constant [1.0, 2.0, 3.0, 4.0]
          %shape_2x4x4x1: i64[5] = constant [0, 2, 4, 4, 1]
          %w_packed: f32[1,2,1,1,1,4]<layout=OIHW1i4o> = constant [1.0, 3.0, 5.0, 7.0, 2.0, 4.0, 6.0, 8.0]
          %s_4c: f32[1,1,1,1,4]<layout=NCHW4c> = constant [1.0, 2.0, 3.0, 4.0]
          %x_1c: f32[1,2,4,4,1] = Reshape(%x, %shape_2x4x4x1)
          %y_4c: f32[1,1,4,4,4]<layout=NCHW4c> = nnc.ConvNCHWc(%x_1c, %w_packed, %b) {channels_in=2, channels_out=4, dilations=[1, 1], group=1, ic_block=1, kernel_shape=[1, 1], oc_block=4, pads=[0, 0, 0, 0], strides=[1, 1]}
          %m_4c: f32[1,1,4,4,4]<layout=NCHW4c> = Mul(%y_4c, %s_4c)
          %r_4c: f32[1,1,4,4,4]<layout=NCHW4c> = Relu(%m_4c)
          %r: f32[1,4,4,4] = nnc.FromBlocked(%r_4c) {channels=4}
          %p_4c: f32[1,1,2,2,4]<layout=NCHW4c> = MaxPool(%r_4c) {dilations=[1, 1, 1], kernel_shape=[2, 2, 1], pads=[0, 0, 0, 0, 0, 0], strides=[2, 2, 1]}
          %p: f32[1,4,2,2] = nnc.FromBlocked(%p_4c) {channels=4}
          %f: f32[1,16] = Flatten(%p)
          %e: f32[1,16] = Exp(%f)
          return %e, %r, %p
        }""")
    # The 2-channel input is read as NCHW1c (a Reshape, no conversion); one FromBlocked per
    # plain-read value.
    assert ctx.stats["layout_conversions"] == 2
    summary = ctx.log[-1]
    assert summary["decision"] == "blocked layout NCHW4c"
    assert (summary["to_blocked"], summary["from_blocked"]) == (0, 2)
    assert any(d["decision"] == "read NCHW as NCHW1c" and d["value"] == "x" for d in ctx.log)


def test_batchnorm_becomes_blocked_mul_add():
    _assert_layout("""
        graph @main(%x: f32[1,4,4,4]) {
          %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %gamma: f32[4] = constant [1.0, 2.0, 0.5, 1.0]
          %beta: f32[4] = constant [0.0, 1.0, -1.0, 2.0]
          %mean: f32[4] = constant [0.5, 0.0, 1.0, -1.0]
          %var: f32[4] = constant [1.0, 4.0, 0.25, 1.0]
          %y: f32[1,4,4,4] = Conv(%x, %w)
          %n: f32[1,4,4,4] = BatchNormalization(%y, %gamma, %beta, %mean, %var) {epsilon=0.0}
          %r: f32[1,4,4,4] = Relu(%n)
          return %r
        }""", """
        graph @main(%x: f32[1,4,4,4]) {
          %w_packed: f32[1,1,1,1,4,4]<layout=OIHW4i4o> = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %n_scale_4c: f32[1,1,1,1,4]<layout=NCHW4c> = constant [1.0, 1.0, 1.0, 1.0]
          %n_shift_4c: f32[1,1,1,1,4]<layout=NCHW4c> = constant [-0.5, 1.0, -2.0, 3.0]
          %x_4c: f32[1,1,4,4,4]<layout=NCHW4c> = nnc.ToBlocked(%x) {block=4}
          %y_4c: f32[1,1,4,4,4]<layout=NCHW4c> = nnc.ConvNCHWc(%x_4c, %w_packed) {channels_in=4, channels_out=4, dilations=[1, 1], group=1, ic_block=4, kernel_shape=[1, 1], oc_block=4, pads=[0, 0, 0, 0], strides=[1, 1]}
          %n_mul_4c: f32[1,1,4,4,4]<layout=NCHW4c> = Mul(%y_4c, %n_scale_4c)
          %n_4c: f32[1,1,4,4,4]<layout=NCHW4c> = Add(%n_mul_4c, %n_shift_4c)
          %r_4c: f32[1,1,4,4,4]<layout=NCHW4c> = Relu(%n_4c)
          %r: f32[1,4,4,4] = nnc.FromBlocked(%r_4c) {channels=4}
          return %r
        }""", pipeline="layout-nchwc,dce")


def test_depthwise_pools_binary_concat_and_global_pool_stay_blocked():
    # %col is [W]-shaped: ONNX broadcasts it along W (not C), and so does its blocked form.
    _assert_layout("""
        graph @main(%x: f32[1,4,6,6]) {
          %w1: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %w2: f32[4,1,2,2] = constant [1.0, 0.0, -1.0, 2.0, 0.0, -2.0, 1.0, 0.0, -1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
          %half: f32[] = constant [0.5]
          %col: f32[6] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
          %a: f32[1,4,6,6] = Conv(%x, %w1)
          %d: f32[1,4,3,3] = Conv(%a, %w2) {group=4, strides=[2, 2]}
          %ap: f32[1,4,3,3] = AveragePool(%a) {kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]}
          %s: f32[1,4,3,3] = Add(%d, %ap)
          %m: f32[1,4,3,3] = Mul(%s, %half)
          %c: f32[1,8,3,3] = Concat(%m, %d) {axis=1}
          %g: f32[1,8,1,1] = GlobalAveragePool(%c)
          %wcol: f32[1,4,6,6] = Mul(%a, %col)
          return %g, %wcol
        }""", """
        graph @main(%x: f32[1,4,6,6]) {
          %half: f32[] = constant [0.5]
          %w1_packed: f32[1,1,1,1,4,4]<layout=OIHW4i4o> = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %w2_packed: f32[1,1,2,2,1,4]<layout=OIHW1i4o> = constant [1.0, 0.0, -1.0, 0.5, 0.0, -2.0, 0.5, 0.5, -1.0, 1.0, 0.5, 0.5, 2.0, 0.0, 0.5, 0.5]
          %axes_hw: i64[2] = constant [2, 3]
          %col_4c: f32[1,1,1,6,1]<layout=NCHW4c> = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
          %x_4c: f32[1,1,6,6,4]<layout=NCHW4c> = nnc.ToBlocked(%x) {block=4}
          %a_4c: f32[1,1,6,6,4]<layout=NCHW4c> = nnc.ConvNCHWc(%x_4c, %w1_packed) {channels_in=4, channels_out=4, dilations=[1, 1], group=1, ic_block=4, kernel_shape=[1, 1], oc_block=4, pads=[0, 0, 0, 0], strides=[1, 1]}
          %d_4c: f32[1,1,3,3,4]<layout=NCHW4c> = nnc.ConvNCHWc(%a_4c, %w2_packed) {channels_in=4, channels_out=4, dilations=[1, 1], group=4, ic_block=4, kernel_shape=[2, 2], oc_block=4, pads=[0, 0, 0, 0], strides=[2, 2]}
          %ap_4c: f32[1,1,3,3,4]<layout=NCHW4c> = AveragePool(%a_4c) {dilations=[1, 1, 1], kernel_shape=[3, 3, 1], pads=[1, 1, 0, 1, 1, 0], strides=[2, 2, 1]}
          %s_4c: f32[1,1,3,3,4]<layout=NCHW4c> = Add(%d_4c, %ap_4c)
          %m_4c: f32[1,1,3,3,4]<layout=NCHW4c> = Mul(%s_4c, %half)
          %c_4c: f32[1,2,3,3,4]<layout=NCHW4c> = Concat(%m_4c, %d_4c) {axis=1}
          %g_4c: f32[1,2,1,1,4]<layout=NCHW4c> = ReduceMean(%c_4c, %axes_hw) {keepdims=1}
          %g: f32[1,8,1,1] = nnc.FromBlocked(%g_4c) {channels=8}
          %wcol_4c: f32[1,1,6,6,4]<layout=NCHW4c> = Mul(%a_4c, %col_4c)
          %wcol: f32[1,4,6,6] = nnc.FromBlocked(%wcol_4c) {channels=4}
          return %g, %wcol
        }""", pipeline="layout-nchwc,dce")


def test_plain_operands_and_unhandled_ops_read_one_from_blocked():
    # Add with a plain non-constant operand and Softmax both read the plain %y: one FromBlocked.
    _assert_layout("""
        graph @main(%x: f32[1,4,2,2], %z: f32[1,4,2,2]) {
          %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %y: f32[1,4,2,2] = Conv(%x, %w)
          %a: f32[1,4,2,2] = Add(%y, %z)
          %s: f32[1,4,2,2] = Softmax(%y) {axis=1}
          return %a, %s
        }""", """
        graph @main(%x: f32[1,4,2,2], %z: f32[1,4,2,2]) {
          %w_packed: f32[1,1,1,1,4,4]<layout=OIHW4i4o> = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %x_4c: f32[1,1,2,2,4]<layout=NCHW4c> = nnc.ToBlocked(%x) {block=4}
          %y_4c: f32[1,1,2,2,4]<layout=NCHW4c> = nnc.ConvNCHWc(%x_4c, %w_packed) {channels_in=4, channels_out=4, dilations=[1, 1], group=1, ic_block=4, kernel_shape=[1, 1], oc_block=4, pads=[0, 0, 0, 0], strides=[1, 1]}
          %y_nchw: f32[1,4,2,2] = nnc.FromBlocked(%y_4c) {channels=4}
          %a: f32[1,4,2,2] = Add(%y_nchw, %z)
          %s: f32[1,4,2,2] = Softmax(%y_nchw) {axis=1}
          return %a, %s
        }""", pipeline="layout-nchwc,dce")


def test_depthwise_on_plain_input_is_blocked_when_it_feeds_a_blockable_conv():
    _assert_layout("""
        graph @main(%x: f32[1,4,3,3]) {
          %wd: f32[4,1,2,2] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.0, 0.5, 0.25, 2.0, -1.0, 1.0, -2.0, 3.0]
          %d: f32[1,4,2,2] = Conv(%x, %wd) {group=4}
          %r: f32[1,4,2,2] = Relu(%d)
          %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %y: f32[1,4,2,2] = Conv(%r, %w)
          return %y
        }""", """
        graph @main(%x: f32[1,4,3,3]) {
          %wd: f32[4,1,2,2] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.0, 0.5, 0.25, 2.0, -1.0, 1.0, -2.0, 3.0]
          %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %wd_packed: f32[1,1,2,2,1,4]<layout=OIHW1i4o> = constant [1.0, 5.0, 1.0, -1.0, 2.0, 6.0, 0.5, 1.0, 3.0, 7.0, 0.25, -2.0, 4.0, 8.0, 2.0, 3.0]
          %w_packed: f32[1,1,1,1,4,4]<layout=OIHW4i4o> = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %x_4c: f32[1,1,3,3,4]<layout=NCHW4c> = nnc.ToBlocked(%x) {block=4}
          %d_4c: f32[1,1,2,2,4]<layout=NCHW4c> = nnc.ConvNCHWc(%x_4c, %wd_packed) {channels_in=4, channels_out=4, dilations=[1, 1], group=4, ic_block=4, kernel_shape=[2, 2], oc_block=4, pads=[0, 0, 0, 0], strides=[1, 1]}
          %r_4c: f32[1,1,2,2,4]<layout=NCHW4c> = Relu(%d_4c)
          %y_4c: f32[1,1,2,2,4]<layout=NCHW4c> = nnc.ConvNCHWc(%r_4c, %w_packed) {channels_in=4, channels_out=4, dilations=[1, 1], group=1, ic_block=4, kernel_shape=[1, 1], oc_block=4, pads=[0, 0, 0, 0], strides=[1, 1]}
          %y: f32[1,4,2,2] = nnc.FromBlocked(%y_4c) {channels=4}
          return %y
        }""")


NOT_FIRING = {
    # ShuffleNet's pattern: blocking would add a ToBlocked and a FromBlocked around a cheap conv.
    "isolated depthwise conv on plain input": """
        graph @main(%x: f32[1,4,3,3]) {
          %wd: f32[4,1,2,2] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.0, 0.5, 0.25, 2.0, -1.0, 1.0, -2.0, 3.0]
          %w: f32[4,2,1,1] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
          %d: f32[1,4,2,2] = Conv(%x, %wd) {group=4}
          %r: f32[1,4,2,2] = Relu(%d)
          %y: f32[1,4,2,2] = Conv(%r, %w) {group=2}
          return %y
        }""",
    "grouped conv": """
        graph @main(%x: f32[1,4,2,2]) {
          %w: f32[4,2,1,1] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
          %y: f32[1,4,2,2] = Conv(%x, %w) {group=2}
          return %y
        }""",
    "output channels not a multiple of the block, bias not constant": """
        graph @main(%x: f32[1,2,2,2], %b: f32[2]) {
          %w: f32[2,2,1,1] = constant [1.0, 2.0, 3.0, 4.0]
          %y: f32[1,2,2,2] = Conv(%x, %w, %b)
          %r: f32[1,2,2,2] = Relu(%y)
          return %r
        }""",
    "weight not constant": """
        graph @main(%x: f32[1,4,2,2], %w: f32[4,4,1,1]) {
          %y: f32[1,4,2,2] = Conv(%x, %w)
          return %y
        }""",
    "1-D conv": """
        graph @main(%x: f32[1,4,3]) {
          %w: f32[4,4,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %y: f32[1,4,3] = Conv(%x, %w)
          return %y
        }""",
}


def _conv_padding_chain() -> Graph:
    """6 -> 6 channels (padded to 8 with block 4), then Sigmoid, Mul by a per-channel constant, MaxPool, a
    depthwise and a plain conv reading the padded data, and plain readers of the padded values."""
    rng = np.random.default_rng(3)
    g = Graph()
    x = g.add_input("x", _f32(1, 3, 6, 6))
    c = lambda *shape: g.add_constant(rng.standard_normal(shape).astype(np.float32), f"c{len(g.nodes)}")  # noqa: E731
    y = g.add("Conv", x, c(6, 3, 3, 3), c(6), pads=[1, 1, 1, 1])
    s = g.add("Mul", g.add("Sigmoid", y), c(6, 1, 1))
    p = g.add("MaxPool", s, kernel_shape=[2, 2], strides=[2, 2])
    d = g.add("Conv", p, c(6, 1, 3, 3), c(6), pads=[1, 1, 1, 1], group=6)
    z = g.add("Conv", g.add("Relu", d), c(8, 6, 1, 1), c(8))
    g.set_outputs([z, g.add("Softmax", d, axis=1), y])
    return g


def test_output_channels_are_padded_to_whole_blocks():
    g = _conv_padding_chain()
    before = g.clone()
    ctx = PassManager("layout-nchwc,dce").run(g, PassContext(target=CPU4))
    _assert_same_outputs(before, g)
    convs = g.find_nodes("ConvNCHWc", "nnc")
    assert [(n.attr("channels_in"), n.attr("channels_out"), n.attr("group")) for n in convs] == \
        [(3, 8, 1), (8, 8, 8), (6, 8, 1)]
    assert [d["padded_channels"] for d in ctx.log if "padded_channels" in d] == ["6 -> 8", "6 -> 8"]
    # Plain readers (Softmax over channels, the graph output) get the six real channels back.
    assert sorted(n.attr("channels") for n in g.find_nodes("FromBlocked", "nnc")) == [6, 6, 8]


def test_padded_channels_stay_out_of_unsafe_ops_and_concat():
    g = Graph()
    x = g.add_input("x", _f32(1, 4, 3, 3))
    w = g.add_constant(np.ones((6, 4, 1, 1), np.float32), "w")
    y = g.add("Conv", x, w)
    g.set_outputs([g.add("Reciprocal", y), g.add("Concat", y, y, axis=1)])
    before = g.clone()
    PassManager("layout-nchwc,dce").run(g, PassContext(target=CPU4))
    _assert_same_outputs(before, g)
    assert g.find_nodes("Reciprocal")[0].inputs[0].producer.op == "FromBlocked"
    assert all(v.type.layout is None for v in g.find_nodes("Concat")[0].inputs)


@pytest.mark.parametrize("case", sorted(NOT_FIRING))
def test_does_not_fire_on_unsupported_convs(case):
    _assert_unchanged(NOT_FIRING[case])


def test_does_not_fire_without_a_cpu_target():
    src = """
        graph @main(%x: f32[1,4,2,2]) {
          %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %y: f32[1,4,2,2] = Conv(%x, %w)
          return %y
        }"""
    assert_pass(src, "layout-nchwc", src)  # no target at all
    got, ctx = _run(src, target=TargetInfo(name="sa", kind="systolic"))
    assert got == textwrap.dedent(src).strip()
    assert ctx.log[-1]["decision"] == "skip layout-nchwc"


def test_wide_input_channels_are_zero_padded_to_the_block():
    rng = np.random.default_rng(1)
    g = Graph()
    x = g.add_input("x", _f32(1, 6, 5, 5))
    w = g.add_constant(rng.standard_normal((8, 6, 3, 3)).astype(np.float32), "w")
    g.set_outputs([g.add("Relu", g.add("Conv", x, w, pads=[1, 1, 1, 1]))])
    before = g.clone()
    PassManager("layout-nchwc,dce").run(g, PassContext(target=CPU4))
    _assert_same_outputs(before, g)
    to_b = g.find_nodes("ToBlocked", "nnc")[0]
    assert to_b.attrs == {"block": 4} and to_b.output.type.shape == (1, 2, 5, 5, 4)
    conv = g.find_nodes("ConvNCHWc", "nnc")[0]
    assert conv.inputs[1].type.shape == (2, 2, 3, 3, 4, 4)


def test_second_run_changes_nothing():
    src = """
        graph @main(%x: f32[1,4,2,2]) {
          %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %y: f32[1,4,2,2] = Conv(%x, %w)
          return %y
        }"""
    once, _ = _run(src, "layout-nchwc,dce")
    twice, _ = _run(src, "layout-nchwc,dce,layout-nchwc")
    assert once == twice


# ------------------------------------------------------------- differential
def _randomize_weights(g: Graph, seed: int = 0) -> None:
    """Give Conv/Gemm weights and BatchNormalization params random values.

    The light models' weights are one repeated constant, under which a channel
    permutation bug would go unseen.
    """
    rng = np.random.default_rng(seed)
    for node in list(g.nodes):
        for i, v in enumerate(node.inputs):
            if v is None or v.const is None or v.const.dtype != np.float32 or v.const.size < 2:
                continue
            shape = v.const.shape
            if node.op in ("Conv", "Gemm") and i == 1:
                fan_in = int(np.prod(shape[1:])) if node.op == "Conv" else shape[-1]
                arr = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            elif node.op == "BatchNormalization" and i in (1, 4):
                arr = rng.uniform(0.5, 1.5, shape)
            elif node.op == "BatchNormalization":
                arr = rng.standard_normal(shape) * 0.1
            else:
                continue
            c = g.add_constant(arr.astype(np.float32), v.name + "_rand")
            g.set_input(node, i, c)
            if not v.uses:
                g.remove_constant(v)


def _load(path: str) -> Graph:
    g = import_onnx(path)
    run_pipeline(g, "fold-constants,dce")
    _randomize_weights(g)
    # Softmax saturates with random weights: compare the logits too.
    g.set_outputs(list(g.outputs) + [n.inputs[0] for n in g.nodes if n.op == "Softmax"])
    return g


def _differential(path: str, expected_conversions: int) -> PassContext:
    g = _load(path)
    before = g.clone()
    ctx = PassManager(PIPELINE).run(g, PassContext(target=CPU16))
    assert ctx.stats.get("layout_conversions", 0) == expected_conversions
    counts = g.op_counts()
    assert counts.get("nnc.ToBlocked", 0) + counts.get("nnc.FromBlocked", 0) == expected_conversions
    _assert_same_outputs(before, g)
    return ctx


# Conversions left (the RGB input is read as NCHW1c, a view: none counted for it).
# Channel counts that are not a multiple of the block are padded (more convs blocked: SqueezeNet's
# 1000-class conv, ShuffleNet's first conv, Inception-v1's 208/224-channel branches).
LIGHT_FAST = {"squeezenet": 3, "shufflenet": 2, "inception_v1": 6}
LIGHT_SLOW = {"resnet50": 1, "densenet121": 1, "inception_v2": 1}


@pytest.mark.parametrize("model", sorted(LIGHT_FAST))
def test_light_models_keep_their_outputs(model):
    _differential(os.path.join(LIGHT_DIR, f"light_{model}.onnx"), LIGHT_FAST[model])


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(LIGHT_SLOW))
def test_big_light_models_keep_their_outputs(model):
    _differential(os.path.join(LIGHT_DIR, f"light_{model}.onnx"), LIGHT_SLOW[model])


def test_digits_cnn_with_symbolic_batch(digits_dir):
    g = import_onnx(os.path.join(digits_dir, "digits_cnn.onnx"))
    before = g.clone()
    ctx = PassManager(PIPELINE).run(g, PassContext(target=CPU16))
    assert g.op_counts()["nnc.ConvNCHWc"] == 3
    assert ctx.stats["layout_conversions"] == 1  # before Flatten (the 1-channel input is a view)
    _assert_same_outputs(before, g, rtol=1e-5)


def test_digits_mlp_has_nothing_to_block(digits_dir):
    g = import_onnx(os.path.join(digits_dir, "digits_mlp.onnx"))
    run_pipeline(g, "fold-constants")
    text = print_graph(g)
    PassManager("layout-nchwc").run(g, PassContext(target=CPU16))
    assert print_graph(g) == text


@pytest.mark.slow
def test_densenet_pipeline_is_fast():
    g = import_onnx(os.path.join(LIGHT_DIR, "light_densenet121.onnx"))
    run_pipeline(g, "fold-constants,dce")
    pm = PassManager(PIPELINE)
    t0 = time.perf_counter()
    pm.run(g, PassContext(target=CPU16))
    assert time.perf_counter() - t0 < 5.0
    layout = next(r for r in pm.records if r.name == "layout-nchwc")
    assert layout.seconds < 1.0


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(auto_pad="SAME_UPPER", kernel_shape=[3, 3], strides=[2, 2])),
    ("MaxPool", dict(ceil_mode=1, kernel_shape=[2, 2], pads=[0, 1, 1, 0], strides=[2, 2])),
    ("AveragePool", dict(count_include_pad=1, kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(auto_pad="SAME_LOWER", kernel_shape=[2, 2], strides=[2, 2])),
    ("MaxPool", dict(dilations=[2, 1], kernel_shape=[2, 2])),
    ("GlobalMaxPool", {}),
    ("GlobalAveragePool", {}),
])
def test_pool_variants_stay_blocked_and_exact(op, attrs):
    rng = np.random.default_rng(2)
    g = Graph()
    x = g.add_input("x", _f32(2, 4, 7, 7))
    w = g.add_constant(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), "w")
    g.set_outputs([g.add(op, g.add("Conv", x, w), **attrs)])
    before = g.clone()
    PassManager("layout-nchwc,dce").run(g, PassContext(target=CPU4))
    ops = g.op_counts()
    assert ops.get(op, 0) + ops.get("ReduceMax", 0) + ops.get("ReduceMean", 0) == 1
    assert ops["nnc.FromBlocked"] == 1 and g.outputs[0].producer.op == "FromBlocked"
    _assert_same_outputs(before, g, rtol=1e-6)
