"""decompose-variadic: golden tests, numeric checks and differential tests on real models."""

from __future__ import annotations

import pytest

from tests.passes.golden import assert_pass
from tests.passes.differential import assert_same_outputs, run_differential


def test_sum_max_min_become_binary_chains():
    assert_pass("""
        graph @main(%a: f32[2,3], %b: f32[3], %c: f32[1,3]) {
          %s2: f32[2,3] = Sum(%a, %b)
          %s3: f32[2,3] = Sum(%a, %b, %c)
          %m3: f32[2,3] = Max(%a, %b, %c)
          %n3: f32[2,3] = Min(%a, %b, %c)
          return %s2, %s3, %m3, %n3
        }""", "decompose-variadic", """
        graph @main(%a: f32[2,3], %b: f32[3], %c: f32[1,3]) {
          %s2: f32[2,3] = Add(%a, %b)
          %s3_add1: f32[2,3] = Add(%a, %b)
          %s3: f32[2,3] = Add(%s3_add1, %c)
          %m3_max1: f32[2,3] = Max(%a, %b)
          %m3: f32[2,3] = Max(%m3_max1, %c)
          %n3_min1: f32[2,3] = Min(%a, %b)
          %n3: f32[2,3] = Min(%n3_min1, %c)
          return %s2, %s3, %m3, %n3
        }""")


def test_mean_becomes_adds_and_mul_by_reciprocal():
    src = """
        graph @main(%a: f16[2,2], %b: f16[2,2], %c: f16[2,2], %d: f16[2,2]) {
          %m: f16[2,2] = Mean(%a, %b, %c, %d)
          %y: f16[2,2] = Relu(%m)
          return %y
        }"""
    assert_pass(src, "decompose-variadic", """
        graph @main(%a: f16[2,2], %b: f16[2,2], %c: f16[2,2], %d: f16[2,2]) {
          %m_inv_n: f16[] = constant [0.25]
          %m_add1: f16[2,2] = Add(%a, %b)
          %m_add2: f16[2,2] = Add(%m_add1, %c)
          %m_add3: f16[2,2] = Add(%m_add2, %d)
          %m: f16[2,2] = Mul(%m_add3, %m_inv_n)
          %y: f16[2,2] = Relu(%m)
          return %y
        }""")
    assert_same_outputs(src.replace("f16", "f32"), "decompose-variadic")


def test_single_input_is_bypassed_or_becomes_identity():
    # %m would rename the output to the graph input %a: an Identity keeps the name.
    # %n is returned too, but %e may take over its name.
    assert_pass("""
        graph @main(%a: f32[2]) {
          %e: f32[2] = Exp(%a)
          %s: f32[2] = Sum(%e)
          %y: f32[2] = Neg(%s)
          %m: f32[2] = Max(%a)
          %n: f32[2] = Mean(%e)
          return %y, %m, %n
        }""", "decompose-variadic", """
        graph @main(%a: f32[2]) {
          %n: f32[2] = Exp(%a)
          %y: f32[2] = Neg(%n)
          %m: f32[2] = Identity(%a)
          return %y, %m, %n
        }""")


def test_leaves_binary_max_min_and_other_ops():
    src = """
        graph @main(%a: f32[2], %b: f32[2]) {
          %m: f32[2] = Max(%a, %b)
          %n: f32[2] = Min(%a, %b)
          %c: f32[4] = Concat(%a, %b) {axis=0}
          return %m, %n, %c
        }"""
    assert_pass(src, "decompose-variadic", src)


def test_chains_keep_numerics_with_broadcasting():
    assert_same_outputs("""
        graph @main(%a: f32[2,1,3], %b: f32[4,1], %c: f32[3], %d: f32[2,4,3]) {
          %s: f32[2,4,3] = Sum(%a, %b, %c, %d)
          %m: f32[2,4,3] = Max(%a, %b, %c, %d)
          %n: f32[2,4,3] = Min(%a, %b, %c)
          %e: f32[2,4,3] = Mean(%a, %b, %c)
          return %s, %m, %n, %e
        }""", "decompose-variadic")


@pytest.mark.parametrize("name", ["shufflenet", "squeezenet", "digits_cnn"])
def test_differential_small_models(name):
    run_differential(name, "decompose-variadic,dce")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_differential_large_models(name):
    run_differential(name, "decompose-variadic,dce")
