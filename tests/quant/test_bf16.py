"""The bf16 path for float models (cpu ``--option precision=bf16``): nnc.BF16MatMul on AMX-BF16 tiles
or AVX512-BF16 dot products.

Checked against the float32 reference (bfloat16's 8-bit mantissa: about 3e-3
relative) and against nnc.BF16MatMul's own reference (float32 sums: 1e-5).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.cpu.host import host_features
from backends.cpu.kernels.bf16_amx import has_amx_bf16
from compiler.driver import build
from ir.errors import CompilerError
from ir.interpreter import run_graph
from ir.ops.bf16_nnc import from_bf16_bits, pack_bf16_weights, to_bf16_bits, unpack_bf16_weights

HOST_BF16 = has_amx_bf16(k for k, v in host_features().items() if v)


def _model(m, k, n, gemm=False, trans_b=False, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n, k) if trans_b else (k, n)) * 0.05).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    if gemm:
        inits.append(numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "c"))
        node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=int(trans_b))
    else:
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
    g = helper.make_graph([node], "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), \
        {"x": rng.standard_normal((m, k)).astype(np.float32)}


def _one(out):
    return list(out.values())[0] if isinstance(out, dict) else out[0]


def test_bf16_rounding_and_packing():
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32) * 100
    x[:3] = [np.nan, np.inf, -0.0]
    want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    got = from_bf16_bits(to_bf16_bits(x))
    assert np.array_equal(got[3:], want[3:]) and np.isnan(got[0]) and got[1] == np.inf
    w = np.random.default_rng(2).standard_normal((70, 33)).astype(np.float32)
    p = pack_bf16_weights(w)
    assert p.shape == (3, 48, 16, 2) and p.dtype == np.uint16
    assert np.array_equal(unpack_bf16_weights(p, 70, 33), from_bf16_bits(to_bf16_bits(w)))


@pytest.mark.skipif(not HOST_BF16, reason="this machine has no AMX-BF16")
@pytest.mark.parametrize("shape", [(5, 70, 33, False, False), (40, 128, 300, True, True), (33, 64, 16, True, False)])
def test_bf16_matmul_within_bfloat16_tolerance(shape):
    m, k, n, gemm, trans_b = shape
    model, feeds = _model(m, k, n, gemm, trans_b)
    res = build(model, target="cpu", options={"precision": "bf16"})
    assert res.graph.op_counts() == {"nnc.BF16MatMul": 1}
    got = _one(res.module.run(feeds))
    ref = _one(build(model, target="ref").module.run(feeds))
    assert np.abs(got - ref).max() <= 1e-2 * np.abs(ref).max()          # bfloat16 inputs
    assert np.abs(got - run_graph(res.graph, feeds)[0]).max() <= 1e-5 * np.abs(ref).max()  # float32 sums


def test_fp32_is_the_default():
    model, _ = _model(8, 64, 32)
    assert "nnc.BF16MatMul" not in build(model, target="cpu").graph.op_counts()


NO_AMX = tuple(sorted(k for k, v in host_features().items() if v and not k.startswith("amx")))


@pytest.mark.skipif("avx512bf16" not in NO_AMX, reason="this machine has no AVX512-BF16")
@pytest.mark.parametrize("shape", [(5, 70, 33, False, False), (40, 129, 300, True, True)])
def test_avx512_bf16_kernel_without_tiles(shape):
    """Without AMX-BF16 in the target the vdpbf16ps kernel runs (odd K: the last pair half empty)."""
    model, feeds = _model(*shape)
    res = build(model, target="cpu", options={"precision": "bf16", "features": NO_AMX})
    got = _one(res.module.run(feeds))
    ref = _one(build(model, target="ref").module.run(feeds))
    assert np.abs(got - ref).max() <= 1e-2 * np.abs(ref).max()
    assert np.abs(got - run_graph(res.graph, feeds)[0]).max() <= 1e-5 * np.abs(ref).max()


def test_bf16_without_bf16_dot_products_is_refused_by_name():
    model, _ = _model(8, 64, 32)
    plain = tuple(f for f in NO_AMX if f != "avx512bf16")
    with pytest.raises(CompilerError, match="avx512bf16"):
        build(model, target="cpu", options={"precision": "bf16", "features": plain})
