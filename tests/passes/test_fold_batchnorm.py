"""fold-batchnorm: golden tests, numeric checks and differential tests on real models.

The differential-test helpers live in ``tests/passes/differential.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from passes import run_pipeline
from tests.passes.differential import assert_same_outputs, model_path, run_differential
from tests.passes.golden import assert_pass, run_on_text

BN_PARAMS = """
          %scale: f32[2] = constant [4.0, 1.0]
          %bias: f32[2] = constant [0.5, 0.0]
          %mean: f32[2] = constant [1.0, 3.0]
          %var: f32[2] = constant [3.0, 0.0]"""


def test_folds_batchnorm_into_conv():
    # s = scale / sqrt(var + 1) = [2, 1], t = bias - mean * s = [-1.5, -3]
    assert_pass("""
        graph @main(%x: f32[1,1,2,2]) {
          %w: f32[2,1,1,1] = constant [1.0, 2.0]
          %b: f32[2] = constant [1.0, -1.0]""" + BN_PARAMS + """
          %c: f32[1,2,2,2] = Conv(%x, %w, %b)
          %y: f32[1,2,2,2] = BatchNormalization(%c, %scale, %bias, %mean, %var) {epsilon=1.0}
          return %y
        }""", "fold-batchnorm,dce", """
        graph @main(%x: f32[1,1,2,2]) {
          %w_fused: f32[2,1,1,1] = constant [2.0, 2.0]
          %b_fused: f32[2] = constant [0.5, -4.0]
          %y: f32[1,2,2,2] = Conv(%x, %w_fused, %b_fused)
          return %y
        }""")


def test_folds_batchnorm_and_scale_layer_chain_into_biasless_conv():
    # BN (s=[2,1], t=[-1.5,-3]) then *[1,3] then +[1,1]: s=[2,3], t=[-0.5,-8]
    assert_pass("""
        graph @main(%x: f32[1,1,2,2]) {
          %w: f32[2,1,1,1] = constant [1.0, 2.0]""" + BN_PARAMS + """
          %m: f32[2,1,1] = constant [1.0, 3.0]
          %a: f32[1,2,1,1] = constant [1.0, 1.0]
          %c: f32[1,2,2,2] = Conv(%x, %w)
          %n: f32[1,2,2,2] = BatchNormalization(%c, %scale, %bias, %mean, %var) {epsilon=1.0}
          %p: f32[1,2,2,2] = Mul(%n, %m)
          %q: f32[1,2,2,2] = Add(%a, %p)
          %y: f32[1,2,2,2] = Relu(%q)
          return %y
        }""", "fold-batchnorm,dce", """
        graph @main(%x: f32[1,1,2,2]) {
          %w_fused: f32[2,1,1,1] = constant [2.0, 6.0]
          %c_bias_fused: f32[2] = constant [-0.5, -8.0]
          %c: f32[1,2,2,2] = Conv(%x, %w_fused, %c_bias_fused)
          %y: f32[1,2,2,2] = Relu(%c)
          return %y
        }""")


def test_folds_batchnorm_into_gemm_with_transb_alpha_beta():
    # Y = 2 * A @ B^T + 0.5 * C; BN scales column n by s[n] and shifts by t[n].
    out = assert_same_outputs("""
        graph @main(%a: f32[3,2]) {
          %w: f32[2,2] = constant [1.0, 2.0, 3.0, 4.0]
          %c: f32[3,1] = constant [1.0, 2.0, 3.0]""" + BN_PARAMS + """
          %g: f32[3,2] = Gemm(%a, %w, %c) {alpha=2.0, beta=0.5, transB=1}
          %y: f32[3,2] = BatchNormalization(%g, %scale, %bias, %mean, %var) {epsilon=1.0}
          return %y
        }""", "fold-batchnorm,dce")
    assert "BatchNormalization" not in out and "beta" not in out
    assert "%c_fused: f32[3,2]" in out and "alpha=2.0" in out


def test_folds_batchnorm_into_gemm_without_c():
    out = assert_same_outputs("""
        graph @main(%a: f32[3,2]) {
          %w: f32[2,2] = constant [1.0, 2.0, 3.0, 4.0]""" + BN_PARAMS + """
          %g: f32[3,2] = Gemm(%a, %w)
          %y: f32[3,2] = BatchNormalization(%g, %scale, %bias, %mean, %var) {epsilon=1.0}
          return %y
        }""", "fold-batchnorm,dce")
    assert "= Gemm(%a, %w_fused, %g_bias_fused)" in out


def test_folds_batchnorm_into_grouped_conv_transpose():
    rng = np.random.default_rng(0)
    w = ", ".join(str(float(v)) for v in rng.standard_normal(16).astype(np.float32))
    out = assert_same_outputs(f"""
        graph @main(%x: f32[1,4,3,3]) {{
          %w: f32[4,2,1,2] = constant [{w}]
          %scale: f32[4] = constant [4.0, 1.0, 0.5, 2.0]
          %bias: f32[4] = constant [0.5, 0.0, 1.0, -1.0]
          %mean: f32[4] = constant [1.0, 3.0, 0.0, 2.0]
          %var: f32[4] = constant [3.0, 0.0, 1.0, 2.0]
          %c: f32[1,4,3,4] = ConvTranspose(%x, %w) {{group=2}}
          %y: f32[1,4,3,4] = BatchNormalization(%c, %scale, %bias, %mean, %var) {{epsilon=1.0}}
          return %y
        }}""", "fold-batchnorm,dce")
    assert "BatchNormalization" not in out and "Mul" not in out


def test_lowers_unfoldable_batchnorm_to_mul_add():
    # After a Relu there is no weight to fold into: Mul + Add by [C,1,1] constants.
    assert_pass("""
        graph @main(%x: f32[1,2,2,2]) {""" + BN_PARAMS + """
          %r: f32[1,2,2,2] = Relu(%x)
          %y: f32[1,2,2,2] = BatchNormalization(%r, %scale, %bias, %mean, %var) {epsilon=1.0}
          return %y
        }""", "fold-batchnorm,dce", """
        graph @main(%x: f32[1,2,2,2]) {
          %y_scale: f32[2,1,1] = constant [2.0, 1.0]
          %y_shift: f32[2,1,1] = constant [-1.5, -3.0]
          %r: f32[1,2,2,2] = Relu(%x)
          %y_mul: f32[1,2,2,2] = Mul(%r, %y_scale)
          %y: f32[1,2,2,2] = Add(%y_mul, %y_shift)
          return %y
        }""")


def test_merges_batchnorm_and_scale_layer_after_concat():
    # DenseNet: BN after Concat, then a Scale layer (*[1,3] +[1,1]): one Mul + one Add remain.
    assert_pass("""
        graph @main(%x: f32[1,1,2,2], %z: f32[1,1,2,2]) {""" + BN_PARAMS + """
          %m: f32[2,1,1] = constant [1.0, 3.0]
          %a: f32[2,1,1] = constant [1.0, 1.0]
          %cat: f32[1,2,2,2] = Concat(%x, %z) {axis=1}
          %n: f32[1,2,2,2] = BatchNormalization(%cat, %scale, %bias, %mean, %var) {epsilon=1.0}
          %p: f32[1,2,2,2] = Mul(%n, %m)
          %q: f32[1,2,2,2] = Add(%p, %a)
          %y: f32[1,2,2,2] = Relu(%q)
          return %y
        }""", "fold-batchnorm,dce", """
        graph @main(%x: f32[1,1,2,2], %z: f32[1,1,2,2]) {
          %q_scale: f32[2,1,1] = constant [2.0, 3.0]
          %q_shift: f32[2,1,1] = constant [-0.5, -8.0]
          %cat: f32[1,2,2,2] = Concat(%x, %z) {axis=1}
          %q_mul: f32[1,2,2,2] = Mul(%cat, %q_scale)
          %q: f32[1,2,2,2] = Add(%q_mul, %q_shift)
          %y: f32[1,2,2,2] = Relu(%q)
          return %y
        }""")


def test_conv_with_second_reader_keeps_weights():
    # %c is also returned: folding would change it, so BN is only lowered.
    out = run_on_text("""
        graph @main(%x: f32[1,1,2,2]) {
          %w: f32[2,1,1,1] = constant [1.0, 2.0]""" + BN_PARAMS + """
          %c: f32[1,2,2,2] = Conv(%x, %w)
          %y: f32[1,2,2,2] = BatchNormalization(%c, %scale, %bias, %mean, %var) {epsilon=1.0}
          return %y, %c
        }""", "fold-batchnorm,dce")
    assert "Conv(%x, %w)" in out and "Mul(%c, %y_scale)" in out


def test_does_not_fire_on_training_bn_dynamic_stats_or_last_axis_constants():
    src = """
        graph @main(%x: f32[1,2,2,2], %mean: f32[2]) {
          %w: f32[2,2,1,1] = constant [1.0, 2.0, 3.0, 4.0]
          %scale: f32[2] = constant [4.0, 1.0]
          %bias: f32[2] = constant [0.5, 0.0]
          %var: f32[2] = constant [3.0, 1.0]
          %v2: f32[2] = constant [1.0, 2.0]
          %c: f32[1,2,2,2] = Conv(%x, %w)
          %y: f32[1,2,2,2] = BatchNormalization(%c, %scale, %bias, %mean, %var)
          %c2: f32[1,2,2,2] = Conv(%x, %w)
          %y2: f32[1,2,2,2] = Mul(%c2, %v2)
          %y3: f32[1,2,2,2], %rm: f32[2], %rv: f32[2] = BatchNormalization(%x, %scale, %bias, %var, %var) {training_mode=1}
          return %y, %y2, %y3, %rm, %rv
        }"""
    assert_pass(src, "fold-batchnorm", src)


def test_keeps_int_affine_chains_and_single_mul_add():
    src = """
        graph @main(%x: i32[2,3], %f: f32[2,3]) {
          %one: i32[3] = constant [1, 2, 3]
          %h: f32[3] = constant [1.0, 2.0, 3.0]
          %a: i32[2,3] = Mul(%x, %one)
          %b: i32[2,3] = Add(%a, %one)
          %c: i32[2,3] = Mul(%b, %one)
          %d: f32[2,3] = Mul(%f, %h)
          %e: f32[2,3] = Add(%d, %h)
          return %c, %e
        }"""
    assert_pass(src, "fold-batchnorm", src)


# -------------------------------------------------------- differential tests
@pytest.mark.parametrize("name", ["shufflenet", "squeezenet", "inception_v1", "digits_cnn",
                                  "digits_mlp"])
def test_differential_small_models(name):
    run_differential(name, "fold-batchnorm,dce")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "densenet121", "inception_v2"])
def test_differential_large_models(name):
    pm = run_differential(name, "fold-batchnorm,dce")
    assert pm.records[0].nodes_after < pm.records[0].nodes_before


@pytest.mark.slow
def test_densenet_pipeline_is_fast():
    from frontends.onnx import import_onnx
    graph = import_onnx(model_path("densenet121"))
    run_pipeline(graph, "fold-constants")
    t0 = time.perf_counter()
    run_pipeline(graph, "fold-batchnorm,fuse-bias,decompose-variadic,simplify-reshapes,"
                        "simplify-algebra,fold-shape-arithmetic,cse,dce")
    assert time.perf_counter() - t0 < 5.0
    assert "BatchNormalization" not in graph.op_counts()

