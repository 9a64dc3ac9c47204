"""Whole models on the cpu target: light ImageNet models (random weights) and the digits models."""

import os

import numpy as np
import onnx
import pytest

import compiler
from tests.model_zoo import LIGHT, light_input, randomized_light_model
from tests.ops.ortcheck import run_ort

FAST = ("squeezenet", "shufflenet")


@pytest.mark.parametrize("name", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in LIGHT])
def test_light_model_matches_reference(name):
    proto = randomized_light_model(name)
    feeds = light_input(proto)
    cpu = list(compiler.compile(proto, target="cpu").run(feeds).values())[0]
    ref = list(compiler.compile(proto, target="ref").run(feeds).values())[0]
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(cpu, ref, rtol=0, atol=1e-5 * scale)


@pytest.fixture(scope="module")
def digits(shared_data):
    d = np.load(os.path.join(shared_data, "digits_test.npz"))
    return d["x_test"].astype(np.float32), d["y_test"]


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_digits_fp32(digits, shared_data, name, tmp_path):
    x, y = digits
    if name == "mlp":
        x = x.reshape(len(x), -1)
    path = os.path.join(shared_data, f"digits_{name}.onnx")
    m = compiler.compile(path, target="cpu")
    logits = m.run({"input": x})["logits"]
    expected = np.load(os.path.join(shared_data, f"digits_{name}_fp32_logits.npy"))
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, run_ort(onnx.load(path), {"input": x})[0], atol=1e-4, rtol=0)
    if name == "cnn":
        assert round(float(np.mean(np.argmax(logits, 1) == y)) * 100, 2) == 99.33
    # The batch dim is symbolic: a second batch size compiles a second specialization.
    one = m.run({"input": x[:1]})["logits"]
    np.testing.assert_allclose(one, logits[:1], atol=1e-5)
    m.save(tmp_path / "art")
    again = compiler.load(tmp_path / "art").run({"input": x[:7]})["logits"]
    np.testing.assert_allclose(again, logits[:7], atol=1e-5)


def test_static_artifact_round_trip_and_profile(tmp_path):
    proto = randomized_light_model("squeezenet")
    feeds = light_input(proto)
    m = compiler.compile(proto, target="cpu", options={"threads": 2})
    out = m.run(feeds)
    m.save(tmp_path / "sq")
    loaded = compiler.load(tmp_path / "sq")
    np.testing.assert_array_equal(list(loaded.run(feeds).values())[0], list(out.values())[0])
    rows = loaded.profile(feeds)
    assert rows and all(secs >= 0 for _, secs in rows)
    assert any("ConvNCHWc" in label for label, _ in rows)
    bench = loaded.benchmark(feeds, warmup=1, repeat=5, threads=1)
    assert bench.repeat == 5 and bench.median_ms > 0


def test_isa_option_selects_avx2(tmp_path):
    proto = randomized_light_model("squeezenet")
    feeds = light_input(proto)
    m = compiler.compile(proto, target="cpu", options={"isa": "avx2"})
    ref = list(compiler.compile(proto, target="ref").run(feeds).values())[0]
    got = list(m.run(feeds).values())[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * float(np.abs(ref).max()))
    assert m.executable.description["isa"] == "avx2"
