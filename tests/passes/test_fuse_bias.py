"""fuse-bias: golden tests, numeric checks and differential tests on real models."""

from __future__ import annotations

import pytest

from tests.passes.golden import assert_pass
from tests.passes.differential import assert_same_outputs, run_differential


def test_merges_channel_add_into_conv_bias():
    assert_pass("""
        graph @main(%x: f32[1,1,2,2]) {
          %w: f32[2,1,1,1] = constant [1.0, 2.0]
          %b: f32[2] = constant [1.0, -1.0]
          %d: f32[1,2,1,1] = constant [0.5, 0.25]
          %c: f32[1,2,2,2] = Conv(%x, %w, %b)
          %y: f32[1,2,2,2] = Add(%d, %c)
          return %y
        }""", "fuse-bias,dce", """
        graph @main(%x: f32[1,1,2,2]) {
          %w: f32[2,1,1,1] = constant [1.0, 2.0]
          %b_fused: f32[2] = constant [1.5, -0.75]
          %y: f32[1,2,2,2] = Conv(%x, %w, %b_fused)
          return %y
        }""")


def test_adds_bias_to_biasless_conv_transpose():
    assert_pass("""
        graph @main(%x: f32[1,1,2,2]) {
          %w: f32[1,2,1,1] = constant [1.0, 2.0]
          %d: f32[2,1,1] = constant [0.5, 0.25]
          %c: f32[1,2,2,2] = ConvTranspose(%x, %w)
          %y: f32[1,2,2,2] = Add(%c, %d)
          %z: f32[1,2,2,2] = Relu(%y)
          return %z
        }""", "fuse-bias,dce", """
        graph @main(%x: f32[1,1,2,2]) {
          %w: f32[1,2,1,1] = constant [1.0, 2.0]
          %c_bias_fused: f32[2] = constant [0.5, 0.25]
          %c: f32[1,2,2,2] = ConvTranspose(%x, %w, %c_bias_fused)
          %z: f32[1,2,2,2] = Relu(%c)
          return %z
        }""")


def test_merges_add_into_gemm_c_with_beta_and_broadcast():
    # beta * C + d = 2 * [1,2,3,4] + [[1],[2],[3]], broadcast to [3,4]; beta becomes 1.
    assert_pass("""
        graph @main(%a: f32[3,2]) {
          %w: f32[2,4] = constant [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
          %c: f32[4] = constant [1.0, 2.0, 3.0, 4.0]
          %d: f32[3,1] = constant [1.0, 2.0, 3.0]
          %g: f32[3,4] = Gemm(%a, %w, %c) {beta=2.0}
          %y: f32[3,4] = Add(%g, %d)
          return %y
        }""", "fuse-bias,dce", """
        graph @main(%a: f32[3,2]) {
          %w: f32[2,4] = constant [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
          %c_fused: f32[3,4] = constant [3.0, 5.0, 7.0, 9.0, 4.0, 6.0, 8.0, 10.0, 5.0, 7.0, 9.0, 11.0]
          %y: f32[3,4] = Gemm(%a, %w, %c_fused)
          return %y
        }""")


def test_matmul_add_becomes_gemm():
    src = """
        graph @main(%a: f32[3,2]) {
          %w: f32[2,4] = constant [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
          %b: f32[4] = constant [1.0, 2.0, 3.0, 4.0]
          %m: f32[3,4] = MatMul(%a, %w)
          %y: f32[3,4] = Add(%m, %b)
          %z: f32[3,4] = Relu(%y)
          return %z
        }"""
    assert_pass(src, "fuse-bias", """
        graph @main(%a: f32[3,2]) {
          %w: f32[2,4] = constant [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
          %b: f32[4] = constant [1.0, 2.0, 3.0, 4.0]
          %m: f32[3,4] = Gemm(%a, %w, %b)
          %z: f32[3,4] = Relu(%m)
          return %z
        }""")
    assert_same_outputs(src, "fuse-bias")


def test_matmul_add_returned_keeps_output_name():
    out = assert_same_outputs("""
        graph @main(%a: f32[N,2]) {
          %w: f32[2,4] = constant [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
          %b: f32[1,4] = constant [1.0, 2.0, 3.0, 4.0]
          %m: f32[N,4] = MatMul(%a, %w)
          %y: f32[N,4] = Add(%b, %m)
          return %y
        }""", "fuse-bias")
    assert "%y: f32[N,4] = Gemm(%a, %w, %b)" in out and "return %y" in out


def test_does_not_fire():
    # [2] after a 4-D Conv scales the last axis; %c2 has two readers; batched and
    # non-constant MatMuls; an Add that enlarges the Gemm result; a non-constant bias.
    src = """
        graph @main(%x: f32[1,1,2,2], %a3: f32[5,3,2], %a: f32[3,2], %wd: f32[2,4], %bd: f32[4]) {
          %w: f32[2,1,1,1] = constant [1.0, 2.0]
          %v: f32[2] = constant [0.5, 0.25]
          %mw: f32[2,4] = constant [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
          %b: f32[4] = constant [1.0, 2.0, 3.0, 4.0]
          %big: f32[2,1,4] = constant [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
          %c: f32[1,2,2,2] = Conv(%x, %w)
          %y: f32[1,2,2,2] = Add(%c, %v)
          %c2: f32[1,2,2,2] = Conv(%x, %w)
          %y2: f32[1,2,2,2] = Add(%c2, %c2)
          %m3: f32[5,3,4] = MatMul(%a3, %mw)
          %y3: f32[5,3,4] = Add(%m3, %b)
          %m4: f32[3,4] = MatMul(%a, %wd)
          %y4: f32[3,4] = Add(%m4, %b)
          %g: f32[3,4] = Gemm(%a, %mw)
          %y5: f32[2,3,4] = Add(%g, %big)
          %m6: f32[3,4] = MatMul(%a, %mw)
          %y6: f32[3,4] = Add(%m6, %bd)
          return %y, %y2, %y3, %y4, %y5, %y6
        }"""
    assert_pass(src, "fuse-bias", src)


@pytest.mark.parametrize("name", ["squeezenet", "inception_v1", "shufflenet", "digits_cnn",
                                  "digits_mlp"])
def test_differential_small_models(name):
    run_differential(name, "fold-batchnorm,fuse-bias,dce")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "densenet121", "vgg19"])
def test_differential_large_models(name):
    run_differential(name, "fold-batchnorm,fuse-bias,dce")
