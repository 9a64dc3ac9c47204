"""cpu target: LinearAttention against the reference.

Every update rule (linear, gated, delta, gated_delta), decay per head and per
key dim, beta per head and shared, grouped query heads, with and without a
past state, an explicit scale, float16, and sizes beyond the ONNX suite's.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)


def la_case(rule, b=2, t=7, hq=4, hkv=2, dk=8, dv=12, past=True, decay_per_key=False, beta_shared=False,
            dtype=np.float32, scale=0.0):
    ty = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    feeds = {"q": RNG.standard_normal((b, t, hq * dk)) * 0.5, "k": RNG.standard_normal((b, t, hkv * dk)) * 0.5,
             "v": RNG.standard_normal((b, t, hkv * dv))}
    names = ["q", "k", "v"]
    if past:
        feeds["s"] = RNG.standard_normal((b, hkv, dk, dv)) * 0.3
    names.append("s" if past else "")
    if rule in ("gated", "gated_delta"):
        feeds["g"] = -RNG.uniform(0.01, 0.5, (b, t, hkv * dk if decay_per_key else hkv))
        names.append("g")
    else:
        names.append("")
    if rule in ("delta", "gated_delta"):
        feeds["beta"] = RNG.uniform(0.1, 0.9, (b, t, 1 if beta_shared else hkv))
        names.append("beta")
    while names[-1] == "":
        names.pop()
    feeds = {k: v.astype(dtype) for k, v in feeds.items()}
    node = oh.make_node("LinearAttention", names, ["y", "state"], q_num_heads=hq, kv_num_heads=hkv,
                        update_rule=rule, scale=scale)
    model = make_model([node], {n: (list(feeds[n].shape), ty) for n in names if n}, {"y": ty, "state": ty},
                       opset=27)
    return model, feeds


def run_both(model, feeds, tol=1e-4):
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert any("LinearAttention" in label for label in module.executable.description["kernels"])
    assert_close(got, want, tol, tol)


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
@pytest.mark.parametrize("past", [True, False])
def test_rules(rule, past):
    run_both(*la_case(rule, past=past))


@pytest.mark.parametrize("rule", ["gated", "gated_delta"])
def test_decay_per_key_dim(rule):
    run_both(*la_case(rule, decay_per_key=True))


def test_shared_beta_mqa_and_scale():
    run_both(*la_case("gated_delta", hq=6, hkv=1, beta_shared=True, scale=0.3))


def test_longer_and_wider():
    run_both(*la_case("gated_delta", b=1, t=33, hq=2, hkv=2, dk=32, dv=40), tol=2e-4)


def test_float16():
    run_both(*la_case("gated_delta", dtype=np.float16), tol=3e-3)
