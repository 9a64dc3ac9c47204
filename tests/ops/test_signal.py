"""DFT, STFT, windows and MelWeightMatrix against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op

rng = np.random.default_rng(0)


def signal(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------ DFT
@pytest.mark.parametrize("shape,axis", [((2, 16, 1), 1), ((2, 16, 2), -2), ((3, 8, 5, 2), 1),
                                        ((3, 8, 5, 1), 2), ((4, 6, 1), 0)])
@pytest.mark.parametrize("inverse", [0, 1])
def test_dft_axes(shape, axis, inverse):
    x = signal(*shape)
    check_op("DFT", [x, None, Const(np.array(axis, np.int64))], {"inverse": inverse}, opset=20,
             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("length", [5, 16, 24])
@pytest.mark.parametrize("onesided", [0, 1])
def test_dft_length_and_onesided(length, onesided):
    x = signal(2, 16, 1)
    check_op("DFT", [x, Const(np.array(length, np.int64))], {"onesided": onesided}, opset=20,
             rtol=1e-4, atol=1e-4)


def test_dft_length_as_runtime_input_int32():
    x = signal(2, 10, 2)
    out = check_op("DFT", [x, np.array(12, np.int32)], {}, opset=20, rtol=1e-4, atol=1e-4)
    assert out[0].shape == (2, 12, 2)


def test_dft_axis_runtime_input():
    x = signal(3, 8, 5, 2)
    check_op("DFT", [x, None, np.array(2, np.int64)], {}, opset=20, rtol=1e-4, atol=1e-4)


def test_dft_irfft():
    spectrum = np.fft.rfft(signal(3, 10), axis=1).astype(np.complex64)
    x = np.stack([spectrum.real, spectrum.imag], -1).astype(np.float32)  # [3, 6, 2]
    out = check_op("DFT", [x], {"inverse": 1, "onesided": 1}, opset=20, rtol=1e-4, atol=1e-4)
    assert out[0].shape == (3, 10, 1)


def test_dft_float64_matches_numpy():
    x = signal(2, 32, 1, dtype=np.float64)
    expected = np.fft.fft(x[..., 0], axis=1)
    check_op("DFT", [x], {}, opset=20, rtol=1e-12, atol=1e-12,
             expected=[np.stack([expected.real, expected.imag], -1)])


@pytest.mark.parametrize("axis", [1, 2, -2])
def test_dft17_axis_attribute(axis):
    x = signal(2, 8, 6, 2)
    check_op("DFT", [x], {"axis": axis, "inverse": 1}, opset=17, rtol=1e-4, atol=1e-4)


def test_dft17_default_axis_is_1():
    x = signal(2, 8, 6, 1)
    out = check_op("DFT", [x], {"onesided": 1}, opset=17, rtol=1e-4, atol=1e-4)
    assert out[0].shape == (2, 5, 6, 2)


# ----------------------------------------------------------------------- STFT
# (a one-sided spectrum of a complex signal is not defined)
@pytest.mark.parametrize("onesided,channels", [(0, 1), (1, 1), (0, 2)])
def test_stft_with_window(onesided, channels):
    x = signal(2, 64, channels)
    window = np.hanning(16).astype(np.float32)
    check_op("STFT", [x, Const(np.array(8, np.int64)), window, Const(np.array(16, np.int64))],
             {"onesided": onesided}, opset=17, rtol=1e-4, atol=1e-4)


def test_stft_frame_length_only_and_runtime_step():
    x = signal(1, 50, 1)
    out = check_op("STFT", [x, np.array(7, np.int64), None, Const(np.array(12, np.int64))], {},
                   opset=17, rtol=1e-4, atol=1e-4)
    assert out[0].shape == (1, 6, 7, 2)


def test_stft_window_length_gives_frame_length():
    x = signal(3, 40, 1, dtype=np.float64)
    window = np.hamming(10)
    out = check_op("STFT", [x, Const(np.array(5, np.int32)), Const(window)], {"onesided": 1},
                   opset=17, rtol=1e-9, atol=1e-9)
    assert out[0].shape == (3, 7, 6, 2)


# -------------------------------------------------------------------- windows
@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("size", [1, 10, 33])
def test_windows(op, periodic, size):
    out = check_op(op, [Const(np.array(size, np.int64))], {"periodic": periodic}, opset=17,
                   atol=1e-6)
    assert out[0].shape == (size,)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("dtype", [TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT32,
                                   TensorProto.UINT8])
def test_window_output_types(op, dtype):
    check_op(op, [np.array(12, np.int32)], {"output_datatype": dtype}, opset=17, atol=1e-3)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
def test_window_double_precision(op):
    check_op(op, [Const(np.array(37, np.int64))], {"output_datatype": TensorProto.DOUBLE, "periodic": 0},
             opset=17, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------ MelWeightMatrix
@pytest.mark.parametrize("bins,length,rate,lo,hi", [(8, 16, 8192, 0.0, 4096.0),
                                                    (20, 512, 16000, 20.0, 8000.0),
                                                    (5, 33, 22050, 100.0, 5000.0)])
def test_mel_weight_matrix(bins, length, rate, lo, hi):
    inputs = [np.array(bins, np.int64), np.array(length, np.int64), np.array(rate, np.int64),
              np.array(lo, np.float32), np.array(hi, np.float32)]
    out = check_op("MelWeightMatrix", inputs, {}, opset=17, atol=1e-6)
    assert out[0].shape == (length // 2 + 1, bins)
    consts = [Const(a) for a in inputs]
    check_op("MelWeightMatrix", consts, {"output_datatype": TensorProto.DOUBLE}, opset=17)


def test_mel_weight_matrix_integer_output():
    inputs = [Const(np.array(8, np.int32)), Const(np.array(64, np.int32)), np.array(8000, np.int32),
              np.array(0.0, np.float32), np.array(4000.0, np.float32)]
    check_op("MelWeightMatrix", inputs, {"output_datatype": TensorProto.INT64}, opset=17)


# ------------------------------------------------------------------ errors
def test_dft_bad_last_dim():
    with pytest.raises(CompilerError, match="last dimension must be 1"):
        check_op("DFT", [signal(2, 8, 3)], {}, opset=20, expected=[np.zeros(1)])


def test_dft_axis_on_complex_dim():
    with pytest.raises(CompilerError, match="axis out of range"):
        check_op("DFT", [signal(2, 8, 2), None, Const(np.array(-1, np.int64))], {}, opset=20,
                 expected=[np.zeros(1)])


def test_dft_integer_input():
    with pytest.raises(CompilerError, match="unsupported element type"):
        check_op("DFT", [np.zeros((2, 8, 1), np.int32)], {}, opset=20, expected=[np.zeros(1)])


def test_stft_frame_longer_than_signal():
    with pytest.raises(CompilerError, match="exceeds the signal length"):
        check_op("STFT", [signal(1, 10, 1), Const(np.array(2, np.int64)), None,
                          Const(np.array(16, np.int64))], {}, opset=17, expected=[np.zeros(1)])


def test_window_float_size_rejected():
    with pytest.raises(CompilerError, match="size"):
        check_op("HannWindow", [np.array(4.0, np.float32)], {}, opset=17, expected=[np.zeros(1)])


def test_window_bad_output_datatype():
    with pytest.raises(CompilerError, match="unsupported output_datatype"):
        check_op("HannWindow", [Const(np.array(4, np.int64))], {"output_datatype": TensorProto.STRING},
                 opset=17, expected=[np.zeros(1)])
