"""layout-nhwc: golden IR tests on a systolic-array target and differential model tests.

Every golden case also runs the graph before and after the pass on random
inputs (``_run`` compares them), so the expected text is checked for meaning too.
"""

from __future__ import annotations

import textwrap

import pytest

from ir.target import TargetInfo
from ir import run_graph
from passes.manager import PassContext, PassManager
from backends.systolic import PIPELINE as SYSTOLIC_PIPELINE, SystolicPassTarget
from tests.model_zoo import light_input, randomized_light_model
from tests.passes.test_layout_nchwc import CPU16, _assert_unchanged, _run

ARRAY = TargetInfo(name="test-array", kind="systolic", array_rows=4, array_cols=4,
                   sram={"ifmap": 64 * 1024, "filter": 64 * 1024, "ofmap": 64 * 1024})


def test_conv_chain_stays_channels_last_with_packed_weights():
    got, ctx = _run("""
        graph @main(%x: f32[1,2,3,3]) {
          %w1: f32[4,2,1,1] = constant [1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 1.5, 1.0]
          %b1: f32[4] = constant [0.5, -0.5, 1.0, 0.0]
          %s: f32[4,1,1] = constant [1.0, 2.0, 3.0, 4.0]
          %w2: f32[2,4,1,1] = constant [1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -2.0, 0.5]
          %c1: f32[1,4,3,3] = Conv(%x, %w1, %b1)
          %m: f32[1,4,3,3] = Mul(%c1, %s)
          %r: f32[1,4,3,3] = Relu(%m)
          %c2: f32[1,2,3,3] = Conv(%r, %w2)
          %a: f32[1,2,3,3] = Add(%c2, %x)
          %p: f32[1,2,1,1] = MaxPool(%a) {kernel_shape=[3, 3]}
          return %p, %r
        }""", "layout-nhwc,dce", ARRAY)
    assert got == textwrap.dedent("""
        graph @main(%x: f32[1,2,3,3]) {
          %b1: f32[4] = constant [0.5, -0.5, 1.0, 0.0]
          %w1_hwio: f32[1,1,2,4]<layout=HWIO> = constant [1.0, -1.0, 0.25, 1.5, 0.5, 2.0, -0.5, 1.0]
          %s_nhwc: f32[1,1,1,4] = constant [1.0, 2.0, 3.0, 4.0]
          %w2_hwio: f32[1,1,4,2]<layout=HWIO> = constant [1.0, 0.0, -1.0, 1.0, 0.5, -2.0, 2.0, 0.5]
          %x_nhwc: f32[1,3,3,2]<layout=NHWC> = Transpose(%x) {perm=[0, 2, 3, 1]}
          %c1_nhwc: f32[1,3,3,4]<layout=NHWC> = nnc.ConvNHWC(%x_nhwc, %w1_hwio, %b1) {dilations=[1, 1], group=1, kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1]}
          %m_nhwc: f32[1,3,3,4]<layout=NHWC> = Mul(%c1_nhwc, %s_nhwc)
          %r_nhwc: f32[1,3,3,4]<layout=NHWC> = Relu(%m_nhwc)
          %r: f32[1,4,3,3] = Transpose(%r_nhwc) {perm=[0, 3, 1, 2]}
          %c2_nhwc: f32[1,3,3,2]<layout=NHWC> = nnc.ConvNHWC(%r_nhwc, %w2_hwio) {dilations=[1, 1], group=1, kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1]}
          %a_nhwc: f32[1,3,3,2]<layout=NHWC> = Add(%c2_nhwc, %x_nhwc)
          %a_nchw: f32[1,2,3,3] = Transpose(%a_nhwc) {perm=[0, 3, 1, 2]}
          %p: f32[1,2,1,1] = MaxPool(%a_nchw) {kernel_shape=[3, 3]}
          return %p, %r
        }""").strip()
    # x in, the graph output %r and MaxPool's input out: three conversions for two convs.
    assert ctx.stats["layout_conversions"] == 3


def test_grouped_padded_strided_conv():
    got, _ = _run("""
        graph @main(%x: f32[1,4,5,5]) {
          %w: f32[4,2,3,3] = constant [%s]
          %y: f32[1,4,3,3] = Conv(%x, %w) {group=2, pads=[1, 1, 1, 1], strides=[2, 2]}
          return %y
        }""".replace("%s", ", ".join(str((i % 7) - 3.0) for i in range(72))), "layout-nhwc,dce", ARRAY)
    assert "nnc.ConvNHWC" in got and "group=2" in got and "strides=[2, 2]" in got


NOT_FIRING = {
    "weight not constant": """
        graph @main(%x: f32[1,4,2,2], %w: f32[4,4,1,1]) {
          %y: f32[1,4,2,2] = Conv(%x, %w)
          return %y
        }""",
    "1-D conv": """
        graph @main(%x: f32[1,2,3]) {
          %w: f32[2,2,1] = constant [1.0, 0.0, 0.0, 1.0]
          %y: f32[1,2,3] = Conv(%x, %w)
          return %y
        }""",
}


@pytest.mark.parametrize("case", sorted(NOT_FIRING))
def test_does_not_fire_on_unsupported_convs(case):
    _assert_unchanged(NOT_FIRING[case], "layout-nhwc", ARRAY)


def test_does_not_fire_without_a_systolic_target():
    src = """
        graph @main(%x: f32[1,4,2,2]) {
          %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 4.0]
          %y: f32[1,4,2,2] = Conv(%x, %w)
          return %y
        }"""
    for target in (None, CPU16):
        _assert_unchanged(src, "layout-nhwc", target)


# Pools and ShuffleNet's channel shuffles read NCHW, hence the conversions around them.
@pytest.mark.parametrize("name,conversions", [("squeezenet", 8), ("shufflenet", 44)])
def test_systolic_pipeline_keeps_light_model_outputs(name, conversions):
    proto = randomized_light_model(name)
    from frontends.onnx import import_model
    g = import_model(proto)
    before = g.clone()
    ctx = PassManager(SYSTOLIC_PIPELINE).run(g, PassContext(target=ARRAY, backend=SystolicPassTarget()))
    assert ctx.stats["layout_conversions"] == conversions
    converted = [d for d in ctx.log if d["decision"] == "convert Conv to nnc.ConvNHWC"]
    assert len(converted) == before.op_counts()["Conv"]
    assert all(d.get("dataflow") in ("os", "ws", "is") for d in ctx.log if d["decision"] == "schedule")
    feeds = light_input(proto)
    for want, got in zip(run_graph(before, feeds), run_graph(g, feeds)):
        scale = float(abs(want).max())
        assert abs(want - got).max() <= 1e-5 * scale
