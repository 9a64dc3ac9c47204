"""Torch-exported models with a symbolic batch: native code at build time, one artifact for every batch.

``build`` writes ``model.o`` and ``model.h`` for ResNet-18, MobileNetV2, a
small ViT and a BERT-style model (batch and sequence length symbolic; the
sequence length gets its value with ``--dim``), and ``runtime/c/example.c``
linked against that one artifact matches the reference interpreter at batch 1
and batch 4.  The Python module loaded from the same artifact gives the same
bits as the C program, and each row the same bits whatever the batch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import compiler
from tests.cpu.test_bundle import build_example
from tests.torch_models import torch_model, zoo

ROOT = Path(__file__).resolve().parents[2]
SEQ = 16


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vit_tiny", "bert_tiny"])
def test_c_example_runs_one_artifact_at_batch_1_and_4(name, tmp_path):
    path = torch_model(name)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "compiler", "build", str(path), "--target", "cpu", "-o", str(out),
           "--max-batch", "8"] + (["--dim", f"seq={SEQ}"] if name == "bert_tiny" else [])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "is a run-time argument of the native code" in proc.stderr
    assert (out / "model.o").is_file() and (out / "model.h").is_file()
    header = (out / "model.h").read_text()
    assert "#define MODEL_BATCHED 1" in header and "#define MODEL_MAX_BATCH 8" in header

    exe = build_example(out, "model", c_array=False)
    module = compiler.load(out)
    ref = compiler.compile(path, target="ref")
    feeds4 = zoo().example_inputs(name, batch=4, seed=3, seq=SEQ if name == "bert_tiny" else None)
    rows = {}
    for batch in (1, 4):
        feeds = {k: np.ascontiguousarray(v[:batch]) for k, v in feeds4.items()}
        files = []
        for spec in module.inputs:
            files.append(tmp_path / f"{spec.name}_{batch}.npy")
            np.save(files[-1], feeds[spec.name])
        outs = [tmp_path / f"{spec.name}_{batch}.bin" for spec in module.outputs]
        args = [str(exe), "-w", str(out / "model_weights.bin"), "-t", "2", "-b", str(batch)]
        for o in outs:
            args += ["-o", str(o)]
        run = subprocess.run(args + [str(f) for f in files], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        expected = ref.run(feeds)
        jit = module.run(feeds)
        for spec, o in zip(module.outputs, outs):
            want = expected[spec.name]
            got = np.fromfile(o, want.dtype).reshape(want.shape)
            scale = max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=3e-5 * scale, err_msg=f"{name} batch {batch}")
            np.testing.assert_array_equal(got, jit[spec.name])  # the same code from C and from Python
            rows.setdefault(spec.name, []).append(got)
    for name_, (one, four) in rows.items():
        np.testing.assert_array_equal(one[0], four[0])  # row 0 does not depend on the batch size


def test_bert_without_a_sequence_length_is_compiled_per_signature(tmp_path):
    path = torch_model("bert_tiny")
    result = compiler.build(path, "cpu")
    assert result.shapes is not None and result.shapes.per_sample is None
    assert "'seq'" in result.shapes.summary() and "--dim" in result.shapes.summary()
    feeds = zoo().example_inputs("bert_tiny", batch=2, seq=5)
    expected = compiler.compile(path, target="ref").run(feeds)
    got = result.module.run(feeds)
    for k, v in expected.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=3e-5 * max(1.0, float(np.abs(v).max())))
