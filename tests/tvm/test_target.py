"""The tvm target through the contract: options, refusals, the digits models, artifacts, threads, profiles."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from onnx import helper

import compiler
from backends.base import Coverage, get_backend
from ir.errors import BackendError, UnsupportedOpError
from ir.registry import get_schema

from .helpers import model, rand, static_executable

H = helper.make_node


def test_options_and_unknown_device():
    b = get_backend("tvm")
    assert b.config["device"] == "cuda" and b.target_info.kind == "gpu"
    assert get_backend("tvm", {"device": "llvm"}).target_info.kind == "cpu"
    with pytest.raises(BackendError, match="device"):
        get_backend("tvm", {"device": "tpu"})


def test_devices_tvm_cannot_build_here_are_refused_clearly():
    proto = model([H("Relu", ["x"], ["y"])], {"x": (2, 3)}, ["y"])
    with pytest.raises(BackendError, match="cannot generate vulkan code here"):
        compiler.compile(proto, target="tvm", options={"device": "vulkan"})


def test_op_coverage():
    b = get_backend("tvm")
    for op in ("Conv", "Gemm", "MatMul", "MaxPool", "Softmax", "LayerNormalization", "Relu", "Concat"):
        assert b.op_coverage(get_schema(op)) is Coverage.KERNEL, op
    assert b.op_coverage(get_schema("Fused", "nnc")) is Coverage.KERNEL
    assert b.op_coverage(get_schema("NonMaxSuppression")) is Coverage.NONE


def test_unsupported_nodes_are_named_with_the_reason():
    proto = model([H("Relu", ["x"], ["r"]), H("Det", ["r"], ["d"])], {"x": (2, 3, 3)}, ["d"])
    with pytest.raises(UnsupportedOpError) as err:
        compiler.compile(proto, target="tvm", options={"device": "llvm"})
    text = str(err.value)
    assert "Det" in text and "no TE lowering rule" in text and "target 'tvm'" in text


def _digits(shared_data, name):
    d = np.load(os.path.join(shared_data, "digits_test.npz"))
    x = d["x_test"].astype(np.float32)
    return (x.reshape(len(x), -1) if name == "mlp" else x), d["y_test"]


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_digits_models_on_the_host(shared_data, name):
    x, y = _digits(shared_data, name)
    path = os.path.join(shared_data, f"digits_{name}.onnx")
    m = compiler.compile(path, target="tvm", options={"device": "llvm"})
    logits = m.run({"input": x})["logits"]
    expected = np.load(os.path.join(shared_data, f"digits_{name}_fp32_logits.npy"))
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    ref = compiler.compile(path, target="ref").run({"input": x})["logits"]
    np.testing.assert_allclose(logits, ref, rtol=0, atol=2e-5)
    assert (logits.argmax(1) == y).mean() > (0.99 if name == "cnn" else 0.96)


def test_save_load_profile_and_threads(shared_data, tmp_path):
    path = os.path.join(shared_data, "digits_cnn.onnx")
    x = _digits(shared_data, "cnn")[0][:4]
    m = compiler.compile(path, target="tvm", options={"device": "llvm", "threads": 1},
                         input_shapes={"input": (4, 1, 8, 8)})
    want = m.run({"input": x})["logits"]
    exe = static_executable(m)
    assert exe.description["kernels"] == 7  # 3 Conv+Relu, 2 MaxPool, Gemm+Relu, Gemm; the Flatten is a view
    prof = m.profile({"input": x})
    assert len(prof) == 7 and any(label.startswith("Conv+Relu") for label, _ in prof)
    assert all(0 < seconds < 1 for _, seconds in prof)  # TVM's time evaluator, per kernel
    m.benchmark({"input": x}, repeat=2, warmup=1, threads=2)
    assert exe.threads == 2
    m.save(tmp_path / "art")
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    names = {f["name"] for f in manifest["files"]}
    assert {"kernels.so", "program.json", "weights.bin"} <= names
    assert all(f["sha256"].startswith("sha256:") for f in manifest["files"])
    again = compiler.load(tmp_path / "art")
    np.testing.assert_array_equal(again.run({"input": x})["logits"], want)


def test_corrupt_artifact_is_an_error(shared_data, tmp_path):
    path = os.path.join(shared_data, "digits_mlp.onnx")
    m = compiler.compile(path, target="tvm", options={"device": "llvm"}, input_shapes={"input": (1, 64)})
    m.save(tmp_path / "art")
    with open(tmp_path / "art" / "weights.bin", "r+b") as f:
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(Exception, match="corrupt"):
        compiler.load(tmp_path / "art")


def test_weights_computed_by_a_kernel_and_an_output_that_is_an_input():
    proto = model([H("Relu", ["x"], ["r"]), H("Identity", ["x"], ["same"])], {"x": (3, 4)}, ["r", "same"])
    x = rand(3, 4)
    m = compiler.compile(proto, target="tvm", options={"device": "llvm"})
    out = m.run({"x": x})
    np.testing.assert_array_equal(out["same"], x)
    np.testing.assert_array_equal(out["r"], np.maximum(x, 0))
