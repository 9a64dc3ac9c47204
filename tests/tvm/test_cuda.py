"""device=cuda without a GPU: every kernel gets CUDA source, which nvcc compiles to PTX.

With a GPU (``gpu`` marker) the same builds run and match the reference.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import compiler
from backends.tvm.devices import gpu_present

from .helpers import static_executable, transformer_block

needs_gpu = pytest.mark.skipif(not gpu_present(), reason="needs a CUDA GPU")


def _cnn(shared_data) -> tuple:
    path = os.path.join(shared_data, "digits_cnn.onnx")
    x = np.load(os.path.join(shared_data, "digits_test.npz"))["x_test"][:2].astype(np.float32)
    return path, {"input": x}


def _build_cuda(source, feeds):
    shapes = {k: v.shape for k, v in feeds.items()}
    return compiler.compile(source, target="tvm", options={"device": "cuda", "arch": "sm_80"},
                            input_shapes=shapes)


@pytest.mark.parametrize("which", ["cnn", "block"])
def test_cuda_build_writes_source_that_nvcc_compiles(which, shared_data, tmp_path):
    source, feeds = _cnn(shared_data) if which == "cnn" else transformer_block()
    m = _build_cuda(source, feeds)
    exe = static_executable(m, feeds)
    cu = exe.sources["cuda"]
    kernels = set(re.findall(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(', cu))
    # every kernel of ours has at least one CUDA kernel (a multi-stage function may launch several)
    for symbol in {c.symbol for c in exe.program.calls}:
        assert any(k.startswith(symbol) for k in kernels), symbol
    m.save(tmp_path / "art")
    assert (tmp_path / "art" / "kernels.cu").read_text() == cu
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    ptx = tmp_path / "k.ptx"
    proc = subprocess.run([nvcc, "-ptx", "-arch=sm_80", "-w", str(tmp_path / "art" / "kernels.cu"), "-o", str(ptx)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entries = set(re.findall(r"\.entry (\w+)\(", ptx.read_text()))
    assert entries == kernels


def test_cuda_artifact_without_a_gpu_says_so(shared_data, tmp_path):
    if gpu_present():
        pytest.skip("a GPU is present")
    source, feeds = _cnn(shared_data)
    _build_cuda(source, feeds).save(tmp_path / "art")
    with pytest.raises(Exception, match="no cuda device is present"):
        compiler.load(tmp_path / "art")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("which", ["cnn", "block"])
def test_cuda_runs_and_matches_the_reference(which, shared_data, tmp_path):
    source, feeds = _cnn(shared_data) if which == "cnn" else transformer_block()
    m = compiler.compile(source, target="tvm", options={"device": "cuda"})
    got = m.run(feeds)
    want = compiler.compile(source, target="ref").run(feeds)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=0, atol=1e-4 * max(1.0, float(np.abs(v).max())))
    m.save(tmp_path / "art")
    again = compiler.load(tmp_path / "art").run(feeds)
    for k, v in got.items():
        np.testing.assert_array_equal(again[k], v)
    assert len(m.profile(feeds)) >= 1
