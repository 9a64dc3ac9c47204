"""Whole light models on the systolic target (slow): simulation speed and outputs."""

from __future__ import annotations

import os
import time

import numpy as np
import onnx
import pytest

import compiler
from backends.systolic.api import build
from backends.systolic.config import ArrayConfig
from backends.systolic.model import simulate_gemm

pytestmark = pytest.mark.slow


def _light(name: str) -> str:
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")


def test_resnet50_on_a_32x32_array_simulates_in_seconds():
    t0 = time.perf_counter()
    exe = build(_light("resnet50"), {"preset": "32x32"})
    rep = exe.report()
    assert time.perf_counter() - t0 < 10.0
    gemm = [r for r in rep.layers if r.kind == "gemm"]
    assert len(gemm) == 54                           # 53 convolutions and the classifier
    assert rep.totals()["macs"] == sum(r.macs for r in gemm) > 3.8e9
    assert not [r for r in rep.layers if r.kind == "host"]
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = compiler.compile(_light("resnet50"), target="ref")
    want = list(ref.run({ref.input_names[0]: x}).values())[0]
    np.testing.assert_allclose(exe.run([x])[0], want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet", "inception_v1"])
def test_light_models_match_the_reference(name):
    path = _light(name)
    ref = compiler.compile(path, target="ref")
    exe = build(path)
    x = np.random.default_rng(1).standard_normal(exe.graph.inputs[0].type.shape).astype(np.float32)
    want = list(ref.run({ref.input_names[0]: x}).values())[0]
    got = exe.run([x])[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max() + 1e-30))


def test_a_512_cubed_gemm_simulates_in_milliseconds():
    cfg = ArrayConfig(rows=32, cols=32, dataflow="ws")
    t0 = time.perf_counter()
    st = simulate_gemm(512, 512, 512, 1, "ws", cfg)
    assert time.perf_counter() - t0 < 0.1            # SCALE-Sim 3.0.0 takes tens of seconds
    assert st.compute_cycles - 1 == 155135           # SCALE-Sim's own "Total Cycles" for this GEMM
