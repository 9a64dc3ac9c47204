"""Golden and differential tests for the fuse pass."""

import os

import numpy as np
import onnx
import pytest

from frontends.onnx import import_onnx
from ir import run_graph
from passes import run_pipeline
from passes.fuse import find_groups
from tests.passes.golden import assert_pass, run_on_text

W = "[" + ", ".join(["0.5"] * 8) + "]"  # an f32[2,1,2,2] weight


def test_conv_epilogue_with_residual_add_is_fused():
    assert_pass(f"""
        graph @main(%x: f32[1,1,4,4], %s: f32[1,2,3,3]) {{
          %w: f32[2,1,2,2] = constant {W}
          %c: f32[1,2,3,3] = Conv(%x, %w)
          %a: f32[1,2,3,3] = Add(%c, %s)
          %r: f32[1,2,3,3] = Relu(%a)
          return %r
        }}""", "fuse,dce", f"""
        graph @main(%x: f32[1,1,4,4], %s: f32[1,2,3,3]) {{
          %r: f32[1,2,3,3] = nnc.Fused(%x, %s) {{body=graph @fused_0_conv(%x: f32[1,1,4,4], %s: f32[1,2,3,3]) {{
            %w: f32[2,1,2,2] = constant {W}
            %c: f32[1,2,3,3] = Conv(%x, %w)
            %a: f32[1,2,3,3] = Add(%c, %s)
            %r: f32[1,2,3,3] = Relu(%a)
            return %r
          }}, pattern="Conv+Add+Relu"}}
          return %r
        }}""")


def test_conv_whose_output_feeds_another_conv_is_not_fused_with_it():
    src = f"""
        graph @main(%x: f32[1,1,4,4]) {{
          %w: f32[2,1,2,2] = constant {W}
          %w2: f32[1,2,1,1] = constant [1.0, 2.0]
          %c: f32[1,2,3,3] = Conv(%x, %w)
          %d: f32[1,1,3,3] = Conv(%c, %w2)
          return %d
        }}"""
    assert_pass(src, "fuse", src)


def test_branching_value_fuses_only_up_to_the_post_dominator():
    # %e is read by two elementwise branches that meet in %m: all three join one group;
    # the Conv reading %m starts a new one.
    text = run_on_text("""
        graph @main(%x: f32[1,2,3,3]) {
          %w2: f32[1,2,1,1] = constant [1.0, 2.0]
          %e: f32[1,2,3,3] = Exp(%x)
          %n: f32[1,2,3,3] = Neg(%e)
          %s: f32[1,2,3,3] = Sigmoid(%e)
          %m: f32[1,2,3,3] = Mul(%n, %s)
          %d: f32[1,1,3,3] = Conv(%m, %w2)
          return %d
        }""", "fuse")
    assert 'pattern="Exp+Neg+Sigmoid+Mul"' in text
    assert "%d: f32[1,1,3,3] = Conv(%m, %w2)" in text


def test_opaque_ops_are_never_fused():
    src = """
        graph @main(%x: f32[1,8]) {
          %k: i64[1] = constant [2]
          %e: f32[1,8] = Exp(%x)
          %v: f32[1,2], %i: i64[1,2] = TopK(%e, %k)
          %r: f32[1,2] = Relu(%v)
          return %r, %i
        }"""
    assert_pass(src, "fuse", src)


def test_graph_output_stops_the_epilogue():
    # %r is returned and read by Tanh: its post-dominator is the graph's end, so Tanh stays out.
    text = run_on_text(f"""
        graph @main(%x: f32[1,1,4,4]) {{
          %w: f32[2,1,2,2] = constant {W}
          %c: f32[1,2,3,3] = Conv(%x, %w)
          %r: f32[1,2,3,3] = Relu(%c)
          %t: f32[1,2,3,3] = Tanh(%r)
          return %t, %r
        }}""", "fuse")
    assert "%r: f32[1,2,3,3] = nnc.Fused(%x)" in text and 'pattern="Conv+Relu"' in text
    assert "%t: f32[1,2,3,3] = Tanh(%r)" in text


LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


@pytest.mark.parametrize("model", ["squeezenet", "shufflenet", "inception_v1",
                                   pytest.param("resnet50", marks=pytest.mark.slow),
                                   pytest.param("densenet121", marks=pytest.mark.slow)])
def test_fusion_keeps_outputs(model):
    g = import_onnx(os.path.join(LIGHT, f"light_{model}.onnx"))
    run_pipeline(g, "fold-constants,dce")
    before = g.clone()
    run_pipeline(g, "fuse,dce")
    assert any(n.op == "Fused" for n in g.nodes)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    feeds = {g.inputs[0].name: x}
    for a, b in zip(run_graph(before, feeds), run_graph(g, feeds)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_groups_are_convex_on_resnet():
    g = import_onnx(os.path.join(LIGHT, "light_resnet50.onnx"))
    run_pipeline(g, "fold-constants,dce")
    for group in find_groups(g):
        inside = {id(n) for n in group}
        # No value leaves the group and comes back: every external reader is outside for good.
        for n in group:
            for v in n.inputs:
                if v is not None and v.producer is not None and id(v.producer) not in inside:
                    upstream = {id(v.producer)}
                    assert not (upstream & inside)


def test_fused_graph_saves_and_loads(tmp_path):
    import compiler
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "models", "digits_cnn.onnx")
    m = compiler.compile(path, passes="fold-constants,fuse,dce")
    m.save(tmp_path / "art")
    m2 = compiler.load(tmp_path / "art")
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(m.run({"input": x})["logits"], m2.run({"input": x})["logits"])
    assert (tmp_path / "art" / "decisions.json").exists()
