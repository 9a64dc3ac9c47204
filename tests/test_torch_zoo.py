"""The torch model zoo: real architectures exported by torch with a symbolic batch dim.

For each model (test size): the export passes ONNX's checker, keeps batch
(and BERT's sequence length) symbolic, onnxruntime reproduces torch's output
at batch 1 and 4, and our reference target reproduces onnxruntime's.  The
whole module is skipped when torch is not installed; torch is never needed by
the compiler itself (checked in a subprocess).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tests.torch_models import MODEL_NAMES, torch_model, zoo

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import compiler  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES = (1, 4)


def _close(actual: np.ndarray, expected: np.ndarray, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """allclose with ``atol`` scaled by the output's magnitude (summation order differs between runtimes)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * 3 * scale, err_msg=what)


def _dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _ort(path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_names_match_the_zoo():
    assert tuple(zoo().MODELS) == MODEL_NAMES


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_export_is_valid_with_symbolic_batch(name):
    path = torch_model(name)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    for vi in [*model.graph.input, *model.graph.output]:
        assert _dims(vi)[0] == "batch", f"{vi.name}: {_dims(vi)}"
    if name == "bert_tiny":
        assert [_dims(vi) for vi in model.graph.input] == [["batch", "seq"], ["batch", "seq"]]
        assert _dims(model.graph.output[0]) == ["batch", "seq", 64]
        assert {i.name: i.type.tensor_type.elem_type for i in model.graph.input} == \
            {"input_ids": onnx.TensorProto.INT64, "attention_mask": onnx.TensorProto.INT64}
    else:
        assert [_dims(vi)[1:] for vi in model.graph.input] == [[3, *([zoo().MODELS[name].sizes["test"]["image"]] * 2)]]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnxruntime_matches_torch(name):
    z = zoo()
    model = z.build_model(name)
    for batch in BATCHES:
        feeds = z.example_inputs(name, batch, seed=batch)
        for i, (got, want) in enumerate(zip(_ort(torch_model(name), feeds), z.run_torch(model, feeds))):
            _close(got, want, f"{name} output {i} at batch {batch}")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ref_matches_onnxruntime(name):
    z = zoo()
    path = torch_model(name)
    m = compiler.compile(str(path), target="ref")
    assert m.get_inputs()[0].shape[0] == "batch"
    for batch in BATCHES:
        feeds = z.example_inputs(name, batch, seed=batch)
        got = m.run(feeds)
        want = _ort(path, feeds)
        assert list(got) == m.output_names
        for out, expected in zip(m.output_names, want):
            _close(got[out], expected, f"{name} {out} at batch {batch}")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bench_size_torch_onnxruntime_and_ref_agree(name):
    """The benchmark configurations (ResNet-18 and MobileNetV2 at 224, ViT-Ti/16, BERT-tiny...), batch 2."""
    z = zoo()
    path = torch_model(name, "bench")
    feeds = z.example_inputs(name, 2, "bench", seed=7)
    want = z.run_torch(z.build_model(name, "bench"), feeds)
    got_ort = _ort(path, feeds)
    got_ref = compiler.compile(str(path), target="ref").run(None, feeds)
    for i, w in enumerate(want):
        _close(got_ort[i], w, f"{name} onnxruntime output {i}")
        _close(got_ref[i], got_ort[i], f"{name} ref output {i}")


@pytest.mark.parametrize("batch,seq", [(3, 5), (2, 37)])
def test_bert_other_sequence_lengths(batch, seq):
    """One export serves any sequence length up to max_pos: torch, onnxruntime and ref agree."""
    z = zoo()
    path = torch_model("bert_tiny")
    feeds = z.example_inputs("bert_tiny", batch, seed=seq, seq=seq)
    assert feeds["attention_mask"].min() == 0 or batch == 1  # some padding is masked
    want = z.run_torch(z.build_model("bert_tiny"), feeds)
    got_ort = _ort(path, feeds)
    got_ref = compiler.compile(str(path), target="ref").run(None, feeds)
    assert [r.shape for r in got_ref] == [(batch, seq, 64), (batch, 64)]
    for i, w in enumerate(want):
        _close(got_ort[i], w, f"onnxruntime output {i}")
        _close(got_ref[i], got_ort[i], f"ref output {i}")


def test_weights_and_inputs_depend_only_on_the_seed(tmp_path):
    z = zoo()
    a = z.export("vit_tiny", tmp_path / "a.onnx", seed=3)
    b = z.export("vit_tiny", tmp_path / "b.onnx", seed=3)
    c = z.export("vit_tiny", tmp_path / "c.onnx", seed=4)
    init = lambda p: [onnx.numpy_helper.to_array(t) for t in onnx.load(p).graph.initializer]  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(init(a), init(b)))
    assert not all(np.array_equal(x, y) for x, y in zip(init(a), init(c)))
    f1, f2 = z.example_inputs("bert_tiny", 4, seed=1), z.example_inputs("bert_tiny", 4, seed=1)
    assert all(np.array_equal(f1[k], f2[k]) for k in f1)


def test_script_exports_with_progress(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "models", "torch_zoo.py"),
                          "--out", str(tmp_path), "convnext_style", "unet_style"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["convnext_style", "unet_style"]
    for n in ("convnext_style", "unet_style"):
        onnx.checker.check_model(str(tmp_path / f"{n}.onnx"))


def test_compiler_runs_zoo_models_without_torch():
    """Neither this helper nor the compiler imports torch: running an exported model needs none."""
    path = torch_model("bert_tiny")
    code = ("import sys, numpy as np, compiler, tests.torch_models\n"
            f"m = compiler.compile({str(path)!r}, target='ref')\n"
            "ids = np.zeros((2, 4), np.int64)\n"
            "m.run({'input_ids': ids, 'attention_mask': np.ones_like(ids)})\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
