"""DFT on the cpu target against the reference interpreter (numpy's FFT)."""

import numpy as np
import pytest

import compiler
from tests.cpu.helpers import compare_cpu, one_op
from tests.ops.ortcheck import Const

rng = np.random.default_rng(5)


def _dft(x, length=None, axis=None, opset=20, **attrs):
    inputs = [x, Const(np.array(length, np.int64)) if length is not None else None,
              Const(np.array(axis, np.int64)) if axis is not None else None]
    while inputs[-1] is None:
        inputs.pop()
    return one_op("DFT", inputs, attrs, opset=opset)


@pytest.mark.parametrize("last", [1, 2])
@pytest.mark.parametrize("axis", [1, 2, -2])
@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("length", [None, 6, 13])
def test_dft_axes_lengths(last, axis, inverse, length):
    x = rng.standard_normal((2, 9, 7, last)).astype(np.float32)
    compare_cpu(*_dft(x, length, axis, inverse=inverse), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("length", [None, 8, 11])
def test_onesided_and_irfft(length):
    x = rng.standard_normal((3, 10, 1)).astype(np.float32)
    compare_cpu(*_dft(x, length, onesided=1), rtol=1e-4, atol=1e-5)
    spec = rng.standard_normal((3, 6, 2)).astype(np.float32)
    compare_cpu(*_dft(spec, length, inverse=1, onesided=1), rtol=1e-4, atol=1e-5)


def test_float64_and_float16():
    x = rng.standard_normal((2, 12, 2))
    compare_cpu(*_dft(x), rtol=1e-10, atol=1e-10)
    compare_cpu(*_dft(x.astype(np.float16), inverse=1), rtol=3e-3, atol=3e-3)


def test_dft_runs_a_dft_kernel():
    model, feeds = _dft(rng.standard_normal((1, 16, 2)).astype(np.float32))
    labels = [label for label, _ in compiler.compile(model, target="cpu").profile(feeds)]
    assert any("DFT" in label for label in labels), labels


@pytest.mark.parametrize("last", [1, 2])
@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("window", [True, False])
def test_stft(last, onesided, window):
    x = rng.standard_normal((2, 40, last)).astype(np.float32)
    length = 12
    inputs = [x, Const(np.array(5, np.int64)),
              Const(np.hanning(length).astype(np.float32)) if window else None,
              Const(np.array(length, np.int64)) if not window else None]
    while inputs[-1] is None:
        inputs.pop()
    if onesided and last == 2:
        return  # ONNX: a one-sided STFT needs a real signal
    model, feeds = one_op("STFT", inputs, {"onesided": onesided}, opset=17)
    compare_cpu(model, feeds, rtol=1e-4, atol=1e-5)
    labels = [label for label, _ in compiler.compile(model, target="cpu").profile(feeds)]
    assert any("STFT" in label for label in labels), labels
