"""Every int8 variant of the digits models in ../shared/data/int8 on the cpu target.

QDQ (MinMax, Entropy, Percentile, u8s8, float output), QOperator and dynamic
quantization, all written by onnxruntime's quantizer: the cpu build must use
our integer kernels and give onnxruntime's outputs exactly (batch 40).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import onnxruntime as ort
import pytest

from compiler.driver import build

from ..conftest import SHARED_DATA

MODELS = sorted(glob.glob(os.path.join(SHARED_DATA, "int8", "*.onnx")))


@pytest.mark.skipif(not MODELS, reason="shared int8 models not found")
@pytest.mark.parametrize("path", MODELS, ids=[os.path.basename(p)[:-5] for p in MODELS])
def test_int8_variant_on_cpu(shared_data, path):
    x = np.load(os.path.join(shared_data, "digits_test.npz"))["x_test"][:40].astype(np.float32)
    x = x.reshape(-1, 1, 8, 8) if "cnn" in path else x.reshape(len(x), -1)
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    want = s.run(None, {name: x})[0]
    res = build(path, target="cpu")
    ops = res.graph.op_counts()
    assert ops.get("nnc.QConv", 0) + ops.get("nnc.QMatMul", 0) >= 2, ops
    got = res.module.run({name: x})
    got = list(got.values())[0] if isinstance(got, dict) else got[0]
    # Bit-exact; the float-output variants end in a float Gemm (1e-5 relative).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    if "fp32out" not in path:
        assert np.array_equal(got, want)
