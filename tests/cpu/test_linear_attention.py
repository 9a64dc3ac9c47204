"""LinearAttention on the cpu (backends/cpu/kernels/linear_attention.py) against the reference.

Shapes go beyond the ONNX suite's: longer sequences, head sizes that are not
a multiple of the vector width, d_k != d_v, GQA groups of 3, per-key and
per-head decay, a scalar or per-head beta, a past state, float16 data.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import compiler
from backends.cpu.codegen import supported_dtype
from backends.cpu.scheduling import kernel_kind
from ir.dtypes import DType
from tests.cpu.helpers import compare_cpu

RNG = np.random.default_rng(7)
_TYPES = {np.float32: T.FLOAT, np.float16: T.FLOAT16}


def la_model(b, t, hq, hkv, dk, dv, rule, *, past=False, decay_per_head=False, beta_scalar=False,
             scale=0.0, dtype=np.float32):
    names = ["query", "key", "value", "past_state" if past else "", "", ""]
    shapes = {"query": [b, t, hq * dk], "key": [b, t, hkv * dk], "value": [b, t, hkv * dv],
              "past_state": [b, hkv, dk, dv]}
    if rule in ("gated", "gated_delta"):
        names[4] = "decay"
        shapes["decay"] = [b, t, hkv if decay_per_head else hkv * dk]
    if rule in ("delta", "gated_delta"):
        names[5] = "beta"
        shapes["beta"] = [b, t, 1 if beta_scalar else hkv]
    while names and names[-1] == "":
        names.pop()
    attrs = {"q_num_heads": hq, "kv_num_heads": hkv, "update_rule": rule}
    if scale:
        attrs["scale"] = scale
    node = h.make_node("LinearAttention", names, ["y", "state"], **attrs)
    et = _TYPES[dtype]
    ins = [h.make_tensor_value_info(n, et, shapes[n]) for n in names if n]
    outs = [h.make_tensor_value_info("y", et, [b, t, hq * dv]), h.make_tensor_value_info("state", et, [b, hkv, dk, dv])]
    m = h.make_model(h.make_graph([node], "la", ins, outs), opset_imports=[h.make_opsetid("", 27)])
    m.ir_version = 11
    feeds = {}
    for n in names:
        if not n:
            continue
        x = RNG.standard_normal(shapes[n]).astype(np.float32) * 0.5
        if n == "decay":
            x = -np.abs(x)  # log-space decay: exp(decay) in (0, 1]
        if n == "beta":
            x = 1 / (1 + np.exp(-x))
        feeds[n] = x.astype(dtype)
    return m, feeds


CASES = [
    dict(b=2, t=17, hq=6, hkv=2, dk=12, dv=20, rule="gated_delta"),
    dict(b=1, t=9, hq=3, hkv=3, dk=16, dv=16, rule="gated", decay_per_head=True, past=True),
    dict(b=3, t=5, hq=4, hkv=1, dk=7, dv=33, rule="delta", beta_scalar=True, scale=0.3),
    dict(b=2, t=31, hq=2, hkv=2, dk=32, dv=8, rule="linear", past=True),
    dict(b=1, t=1, hq=8, hkv=4, dk=64, dv=64, rule="gated_delta", past=True, decay_per_head=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['rule']}-{c['hq']}x{c['hkv']}-t{c['t']}")
def test_linear_attention_matches_reference(case):
    model, feeds = la_model(**case)
    compare_cpu(model, feeds, rtol=2e-4, atol=2e-5)


def test_linear_attention_float16():
    model, feeds = la_model(2, 6, 4, 2, 8, 12, "gated_delta", past=True, dtype=np.float16)
    compare_cpu(model, feeds, rtol=2e-3, atol=2e-3)


def test_linear_attention_kernel_kind():
    model, _ = la_model(1, 4, 2, 2, 8, 8, "gated")
    from frontends.onnx import import_onnx
    g = import_onnx(model)
    (node,) = g.find_nodes("LinearAttention")
    assert kernel_kind(node) == "linear_attention"
    from backends.base import get_backend
    assert get_backend("cpu").supports(node).ok


@pytest.mark.skipif(not supported_dtype(DType.BF16), reason="the cpu code generator has no bfloat16 type yet")
def test_linear_attention_bfloat16():
    import ml_dtypes
    model, feeds = la_model(2, 6, 4, 2, 8, 12, "gated_delta", past=True)
    for n in model.graph.input:
        n.type.tensor_type.elem_type = T.BFLOAT16
    for n in model.graph.output:
        n.type.tensor_type.elem_type = T.BFLOAT16
    feeds = {k: v.astype(ml_dtypes.bfloat16) for k, v in feeds.items()}
    ref = compiler.compile(model, target="ref").run(feeds)
    cpu = compiler.compile(model, target="cpu").run(feeds)
    for name in ref:
        np.testing.assert_allclose(cpu[name].astype(np.float32), ref[name].astype(np.float32), rtol=2e-2, atol=2e-2)
