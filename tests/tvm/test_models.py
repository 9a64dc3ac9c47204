"""Whole models on the tvm target (slow): the light ImageNet models and torch-exported ones, with
random weights, on the host against the reference; and each built for CUDA, its source through nvcc."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import compiler
from tests.model_zoo import LIGHT, light_input, randomized_light_model

from .helpers import static_executable
from tests.torch_models import torch_model, zoo

pytestmark = pytest.mark.slow

# Models from the shared torch zoo (benchmarks/models/torch_zoo.py), symbolic batch.
MODELS = ("resnet18", "mobilenet_v2", "vit_tiny", "bert_tiny")


def _source(name: str):
    if name in MODELS:
        return str(torch_model(name)), zoo().example_inputs(name, batch=1)
    proto = randomized_light_model(name)
    return proto, light_input(proto)


def _close(got: dict, want: dict, tol: float) -> None:
    for k, v in want.items():
        scale = float(np.abs(v).max())
        np.testing.assert_allclose(got[k], v, rtol=0, atol=tol * scale, err_msg=k)


@pytest.mark.parametrize("name", list(LIGHT) + list(MODELS))
def test_model_on_the_host_matches_the_reference(name):
    source, feeds = _source(name)
    got = compiler.compile(source, target="tvm", options={"device": "llvm"}).run(feeds)
    _close(got, compiler.compile(source, target="ref").run(feeds), 1e-5)


@pytest.mark.parametrize("name", list(LIGHT) + list(MODELS))
def test_model_builds_for_cuda_and_nvcc_compiles_it(name, tmp_path):
    source, feeds = _source(name)
    m = compiler.compile(source, target="tvm", options={"device": "cuda", "arch": "sm_80"},
                         input_shapes={k: v.shape for k, v in feeds.items()})
    exe = static_executable(m, feeds)
    cu = exe.sources["cuda"]
    assert exe.description["kernels"] == len(exe.program.calls) > 0
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    src = tmp_path / "k.cu"
    src.write_text(cu)
    proc = subprocess.run([nvcc, "-ptx", "-arch=sm_80", "-w", str(src), "-o", str(tmp_path / "k.ptx")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entries = re.findall(r"\.entry (\w+)\(", (tmp_path / "k.ptx").read_text())
    assert {c.symbol for c in exe.program.calls} <= {re.sub(r"_kernel(_\d+)?$", "", e) for e in entries}
