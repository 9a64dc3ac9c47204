"""Post-training quantization (compiler/quantize.py) on the digits models, checked with onnxruntime."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from compiler.cli import main as cli_main
from compiler.driver import build
from compiler.quantize import (QuantizeOptions, activation_qparams, entropy_threshold, load_calibration,
                               mixed_precision, quantize_model, sqnr_db, weight_qparams)
from ir import quant
from ir.dtypes import DType

# onnxruntime's logits SQNR for the same settings (../shared/data/quant_results.json, per-channel int8).
ORT_SQNR = {"digits_cnn": 37.776, "digits_mlp": 34.970}


def _data(shared_data, name):
    model = onnx.load(os.path.join(shared_data, f"{name}.onnx"))
    test = np.load(os.path.join(shared_data, "digits_test.npz"))
    x = test["x_test"].astype(np.float32)
    x = x.reshape(-1, 1, 8, 8) if name == "digits_cnn" else x.reshape(len(x), -1)
    calib = load_calibration(os.path.join(shared_data, "digits_calib.npz"), model, 32)
    if name == "digits_mlp":
        calib = [{k: v.reshape(len(v), -1) for k, v in b.items()} for b in calib]
    return model, x, test["y_test"], calib


def _ort(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp"])
def test_minmax_per_channel_matches_onnxruntime_quality(shared_data, name):
    model, x, y, calib = _data(shared_data, name)
    res = quantize_model(model, calib, QuantizeOptions(per_channel=True, progress=False))
    fp = _ort(model, x)
    q = _ort(res.model, x)  # onnxruntime runs our QDQ model
    assert (q.argmax(1) == y).mean() >= (fp.argmax(1) == y).mean()
    assert sqnr_db(fp, q) >= ORT_SQNR[name] - 0.01
    ops = {n.op_type for n in res.model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "Relu" not in ops  # Relus absorbed


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_other_methods_keep_accuracy(shared_data, method):
    model, x, y, calib = _data(shared_data, "digits_cnn")
    res = quantize_model(model, calib, QuantizeOptions(method=method, progress=False))
    q = _ort(res.model, x)
    assert (q.argmax(1) == y).mean() >= (_ort(model, x).argmax(1) == y).mean()  # 99.33%, as fp32
    assert sqnr_db(_ort(model, x), q) > 35.0


def test_symmetric_uint8_and_float_output(shared_data):
    model, x, y, calib = _data(shared_data, "digits_cnn")
    res = quantize_model(model, calib, QuantizeOptions(symmetric=True, activation_type="uint8",
                                                       float_outputs=True, progress=False))
    q = _ort(res.model, x)
    assert (q.argmax(1) == y).mean() >= 0.99
    assert res.model.graph.node[-1].op_type == "Gemm"  # the last layer stays float


def test_quantized_model_runs_on_cpu_like_onnxruntime(shared_data):
    model, x, _, calib = _data(shared_data, "digits_cnn")
    res = quantize_model(model, calib, QuantizeOptions(per_channel=True, progress=False))
    want = _ort(res.model, x[:50])
    built = build(res.model, target="cpu")
    assert built.graph.op_counts().get("nnc.QConv") == 3
    got = built.module.run({"input": x[:50]})
    got = list(got.values())[0] if isinstance(got, dict) else got[0]
    assert np.array_equal(got, want)


def test_qparams_formulas():
    s, z = activation_qparams(0.0, 4.0, DType.I8, symmetric=False)
    assert z == -128 and np.isclose(s, 4.0 / 255)
    s, z = activation_qparams(-1.0, 3.0, DType.U8, symmetric=True)
    assert z == 128 and np.isclose(s, 6.0 / 255)
    w = np.array([[0.5, -1.0], [0.25, 0.1]], np.float32)
    q, ws, wz = weight_qparams(w, axis=0)
    assert q.dtype == np.int8 and np.all(np.abs(q) <= 127) and q[0, 1] == -127 and q[1, 0] == 127
    assert np.allclose(quant.dequantize(q, ws, wz, axis=0), w, atol=ws.max() / 2 + 1e-7)


def test_entropy_threshold_clips_a_long_tail():
    hist = np.zeros(2048, np.int64)
    hist[:200] = 1000
    hist[2000] = 1  # one outlier far out
    assert entropy_threshold(hist) < 1000


def test_mixed_precision_front(shared_data):
    model, x, _, calib = _data(shared_data, "digits_mlp")
    res, front = mixed_precision(model, calib[:2], QuantizeOptions(progress=False), target_sqnr=60.0)
    assert front[0]["float_layers"] == [] and len(front) >= 2
    assert front[-1]["sqnr_db"] >= front[0]["sqnr_db"]
    assert front[-1]["weight_bytes"] >= front[0]["weight_bytes"]  # float layers cost bytes
    kept_float = [n for n in res.model.graph.node if n.op_type == "Gemm"]
    assert len(front[-1]["float_layers"]) >= 1 and kept_float


def test_cli_quantize_and_build(shared_data, tmp_path):
    out = tmp_path / "cnn.int8.onnx"
    rc = cli_main(["quantize", os.path.join(shared_data, "digits_cnn.onnx"), "--calib",
                   os.path.join(shared_data, "digits_calib.npz"), "--per-channel", "-o", str(out), "-q"])
    assert rc == 0 and out.exists()
    report = json.loads((tmp_path / "cnn.int8.onnx.report.json").read_text())
    rows = {r["tensor"]: r for r in report["tensors"]}
    assert rows["logits (output, integer ops)"]["sqnr_db"] > 35
    assert report["size_bytes"]["after"]["total"] < report["size_bytes"]["before"]["total"] / 3
    rc = cli_main(["build", os.path.join(shared_data, "digits_cnn.onnx"), "--quantize", "int8", "--calib",
                   os.path.join(shared_data, "digits_calib.npz"), "-t", "cpu", "-o", str(tmp_path / "art"), "-q"])
    assert rc == 0
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    q = manifest["quantization"]
    assert len(q["calibration"]["sha256"]) == 64 and q["layers"] == 5
    assert q["weight_bytes"]["after"]["total"] < q["weight_bytes"]["before"]["total"]


def test_cli_build_quantize_needs_calib(shared_data, tmp_path, capsys):
    rc = cli_main(["build", os.path.join(shared_data, "digits_cnn.onnx"), "--quantize", "int8", "-o",
                   str(tmp_path / "a")])
    assert rc == 1 and "--calib" in capsys.readouterr().err


def test_mixed_precision_recovers_accuracy_where_int8_fails(shared_data):
    """examples/mixed_precision_digits.py: an outlier unit ruins full int8; the front recovers fp32."""
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "mixed_precision_digits.py")
    spec = importlib.util.spec_from_file_location("mixed_precision_digits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.outlier_mlp()
    test = np.load(os.path.join(shared_data, "digits_test.npz"))
    x, y = test["x_test"].reshape(-1, 64).astype(np.float32), test["y_test"]
    calib = np.load(os.path.join(shared_data, "digits_calib.npz"))["x_calib"].reshape(-1, 64).astype(np.float32)
    batches = [{"input": calib[i:i + 50]} for i in range(0, 100, 50)]
    fp = (_ort(model, x).argmax(1) == y).mean()
    full = quantize_model(model, batches, QuantizeOptions(progress=False))
    assert (_ort(full.model, x).argmax(1) == y).mean() < fp - 0.2  # full int8 breaks
    best, front = mixed_precision(model, batches, QuantizeOptions(progress=False), target_sqnr=30.0)
    assert front[-1]["sqnr_db"] >= 30.0 and len(front[-1]["float_layers"]) >= 1
    assert [p["sqnr_db"] for p in front] == sorted(p["sqnr_db"] for p in front)
    assert (_ort(best.model, x).argmax(1) == y).mean() >= fp - 0.005


def test_int4_weights_run_on_onnxruntime_and_cpu(shared_data, tmp_path):
    """--weights int4: opset 21 int4 DequantizeLinear (onnxruntime runs it), half the weight bytes,
    the cpu target unpacks them into its int8 kernels (bit-identical with ref; onnxruntime runs these
    convs in float, so within one output step of it)."""
    from compiler.quantize import model_bytes
    from frontends.onnx import import_onnx
    from ir.interpreter import run_graph
    from passes.manager import run_pipeline
    model, x, y, calib = _data(shared_data, "digits_cnn")
    q8 = quantize_model(model, calib, QuantizeOptions(per_channel=True, progress=False)).model
    q4 = quantize_model(model, calib, QuantizeOptions(per_channel=True, progress=False, weights="int4")).model
    kinds = {onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in q4.graph.initializer}
    assert "int4" in kinds and max(o.version for o in q4.opset_import if o.domain in ("", "ai.onnx")) >= 21
    b8, b4 = model_bytes(q8), model_bytes(q4)
    assert b4["int4"] <= b8["int8"] / 2 + 8 and b4["total"] < 0.6 * b8["total"]  # 4 bits a weight
    want = _ort(q4, x)
    assert (want.argmax(1) == y).mean() >= 0.99
    res = build(q4, target="cpu")
    assert res.graph.op_counts().get("nnc.QConv", 0) == 3
    got = res.module.run({"input": x})
    got = list(got.values())[0] if isinstance(got, dict) else got[0]
    g = import_onnx(q4)
    run_pipeline(g, "fold-qdq")
    assert np.array_equal(got, run_graph(g, {"input": x})[0])
    step = float(next(onnx.numpy_helper.to_array(t) for t in q4.graph.initializer
                      if t.name == q4.graph.output[0].name + "_scale"))
    assert np.abs(got - want).max() <= step * 1.001
    assert (got.argmax(1) == y).mean() >= 0.99
    out = tmp_path / "cnn.int4.onnx"
    rc = cli_main(["quantize", os.path.join(shared_data, "digits_cnn.onnx"), "--calib",
                   os.path.join(shared_data, "digits_calib.npz"), "--per-channel", "--weights", "int4",
                   "-o", str(out), "-q"])
    report = json.loads((tmp_path / "cnn.int4.onnx.report.json").read_text())
    assert rc == 0 and report["size_bytes"]["after"]["int4"] > 0


def test_mixed_precision_with_int4_falls_back_to_int8_weights(shared_data):
    """--weights int4 --target-sqnr: the most sensitive layers get int8 weights (not float)."""
    from compiler.quantize import model_bytes
    model, x, y, calib = _data(shared_data, "digits_cnn")
    best, front = mixed_precision(model, calib, QuantizeOptions(progress=False, weights="int4"), 22.0)
    assert front[0]["int8_layers"] == [] and front[0]["sqnr_db"] < 22.0   # per-tensor int4: ~18 dB
    assert front[-1]["sqnr_db"] >= 22.0 and 1 <= len(front[-1]["int8_layers"]) < 5
    kinds = model_bytes(best.model)
    assert kinds.get("int4", 0) > 0 and kinds.get("int8", 0) > 0        # both kinds of weights
    assert all(p["weight_bytes"] <= front[-1]["weight_bytes"] for p in front)
    dq_out = {n.output[0] for n in best.model.graph.node if n.op_type == "DequantizeLinear"}
    assert all(n.input[1] in dq_out for n in best.model.graph.node if n.op_type in ("Conv", "Gemm"))  # none float
    assert (_ort(best.model, x).argmax(1) == y).mean() >= 0.98
