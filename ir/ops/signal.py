"""Signal processing: DFT, STFT, the Hann/Hamming/Blackman windows, MelWeightMatrix.

Complex tensors are real tensors with a last dimension of 2 (real,
imaginary); a last dimension of 1 is a real signal.  Transforms run through
``numpy.fft`` in the input's precision (float16/bfloat16 in float32).

Inputs that decide an output shape (DFT's length and axis, STFT's frame
step and length, window sizes, mel bin counts) are ``static_inputs``; the type
rules read them when they are constants and leave the dims unknown otherwise.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import Dim, TensorType
from ._common import check_dtype

SIGNAL_FLOATS = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})
INDEX_TYPES = frozenset({DType.I32, DType.I64})
_OUTPUT_TYPES = frozenset({DType.U8, DType.U16, DType.U32, DType.U64, DType.I8, DType.I16, DType.I32,
                           DType.I64, DType.F16, DType.F32, DType.F64, DType.BF16})


def _scalar(ctx: InferContext, i: int, what: str) -> Optional[int]:
    """Value of scalar input ``i`` when it is a constant, else None."""
    if not ctx.has_input(i):
        return None
    check_dtype(ctx, i, INDEX_TYPES, what)
    if ctx.rank(i) not in (None, 0, 1) or (ctx.rank(i) == 1 and ctx.shape(i)[0] not in (1, None)):
        ctx.fail(f"{what} must be a scalar", found=str(ctx.input_type(i)))
    v = ctx.const(i)
    return None if v is None else int(np.asarray(v).reshape(-1)[0])


def _complex(x: np.ndarray) -> np.ndarray:
    """[..., 1] real or [..., 2] (re, im) -> complex array without the last dim.

    complex128 for float64 input, complex64 otherwise: numpy's FFT then works
    in the input's precision, as the ONNX test data (made with numpy) does.
    """
    ct = np.complex128 if x.dtype == np.float64 else np.complex64
    z = x[..., 0].astype(ct)
    if x.shape[-1] == 2:
        z += 1j * x[..., 1].astype(z.real.dtype)
    return z


def _pack(z: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Complex array -> [..., 2] real tensor of ``dtype``."""
    return np.stack([z.real, z.imag], axis=-1).astype(dtype)


def _output_datatype(ctx: InferContext) -> DType:
    code = ctx.attr("output_datatype")
    try:
        dt = DType.from_onnx(code)
    except Exception:
        ctx.fail("output_datatype is not an ONNX element type", found=str(code))
    if dt not in _OUTPUT_TYPES:
        ctx.fail("unsupported output_datatype", expected="an 8- to 64-bit integer or float16/32/64 "
                 "or bfloat16", found=dt.short)
    return dt


# ------------------------------------------------------------------------ DFT
dft = define("DFT", inputs=["input", "dft_length?", "axis?"], outputs=["output"], kind=OPAQUE,
             attrs={"inverse": Attr.int(0), "onesided": Attr.int(0)},
             static_inputs=("dft_length", "axis"),
             doc="Discrete Fourier transform along one axis (opset 20: axis is an input).")


def _dft_sizes(n_in: Dim, length: Optional[int], inverse: int, onesided: int,
               length_given: bool = False) -> tuple[Dim, int]:
    """(size along the axis, last dim) of the output, given the input's size n_in.

    ``length`` is dft_length's value when constant; ``length_given`` says the
    input exists even if its value is unknown.
    """
    if length is not None:
        n = length
    elif isinstance(n_in, int) and not length_given:
        n = 2 * (n_in - 1) if inverse and onesided else n_in
    else:
        n = None
    if onesided and not inverse:
        return (None if n is None else n // 2 + 1), 2
    return n, 1 if inverse and onesided else 2


@dft.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, SIGNAL_FLOATS, "input")
    shape = ctx.shape(0)
    length = _scalar(ctx, 1, "dft_length")
    if length is not None and length < 1:
        ctx.fail("dft_length must be positive", found=str(length))
    axis = -2
    if ctx.has_input(2):
        if ctx.dtype(2) != DType.I64:
            ctx.fail("axis must be an int64 scalar", found=str(ctx.input_type(2)))
        v = ctx.const(2)
        axis = None if v is None else int(np.asarray(v).reshape(-1)[0])
    inverse, onesided = ctx.attr("inverse"), ctx.attr("onesided")
    if shape is None:
        return [TensorType(dt, None)]
    r = len(shape)
    if r < 2:
        ctx.fail("input must be [..., signal dims..., 1 or 2]", found=str(ctx.input_type(0)))
    if isinstance(shape[-1], int) and shape[-1] not in (1, 2):
        ctx.fail("last dimension must be 1 (real) or 2 (complex)", found=str(ctx.input_type(0)))
    if axis is None:  # axis known only at run time: only the rank and last dim are sure
        _, last = _dft_sizes(None, None, inverse, onesided)
        same = not ctx.has_input(1) and not onesided
        return [TensorType(dt, tuple(shape[:-1]) + (last,) if same else (None,) * (r - 1) + (last,))]
    if not (-r <= axis <= -2 or 0 <= axis <= r - 2):
        ctx.fail("axis out of range (the last dimension holds complex parts)",
                 expected=f"in [{-r}, -2] or [0, {r - 2}]", found=str(axis))
    axis %= r
    n, last = _dft_sizes(shape[axis], length, inverse, onesided, ctx.has_input(1))
    out = list(shape)
    out[axis], out[-1] = n, last
    return [TensorType(dt, tuple(out))]


@dft.reference
def _(x: np.ndarray, dft_length=None, axis=None, *, inverse: int, onesided: int) -> np.ndarray:
    ax = (-2 if axis is None else int(np.asarray(axis).reshape(-1)[0])) % x.ndim
    z = _complex(x)  # rank r-1: ax (< r-1) indexes the same dimension
    if dft_length is not None:
        n = int(np.asarray(dft_length).reshape(-1)[0])
    else:
        n = 2 * (z.shape[ax] - 1) if inverse and onesided else z.shape[ax]
    if inverse and onesided:  # one-sided spectrum -> real signal (IRFFT)
        return np.fft.irfft(z, n=n, axis=ax)[..., None].astype(x.dtype)
    y = np.fft.ifft(z, n=n, axis=ax) if inverse else np.fft.fft(z, n=n, axis=ax)
    if onesided:
        y = np.take(y, np.arange(n // 2 + 1), axis=ax)
    return _pack(y, x.dtype)


# ----------------------------------------------------------------------- STFT
stft = define("STFT", inputs=["signal", "frame_step", "window?", "frame_length?"], outputs=["output"],
              kind=OPAQUE, attrs={"onesided": Attr.int(1)},
              static_inputs=("frame_step", "frame_length"),
              doc="Short-time Fourier transform: [batch, length, 1|2] -> [batch, frames, bins, 2].")


@stft.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, SIGNAL_FLOATS, "signal")
    shape = ctx.shape(0)
    if shape is not None and (len(shape) != 3 or (isinstance(shape[2], int) and shape[2] not in (1, 2))):
        ctx.fail("signal must be [batch, length, 1 or 2]", found=str(ctx.input_type(0)))
    step = _scalar(ctx, 1, "frame_step")
    if step is not None and step < 1:
        ctx.fail("frame_step must be positive", found=str(step))
    length = _scalar(ctx, 3, "frame_length")
    if ctx.has_input(2):
        if ctx.dtype(2) != dt:
            ctx.fail("window must have the signal's element type", expected=dt.short,
                     found=ctx.dtype(2).short)
        if ctx.rank(2) not in (None, 1):
            ctx.fail("window must be 1-D", found=str(ctx.input_type(2)))
        w = ctx.shape(2)[0] if ctx.shape(2) is not None else None
        if isinstance(w, int) and length is not None and w != length:
            ctx.fail("window length must equal frame_length", expected=str(length), found=str(w))
        length = length if length is not None else (w if isinstance(w, int) else None)
    if length is None and not ctx.has_input(2) and not ctx.has_input(3):
        ctx.fail("needs a window or a frame_length")
    batch, sig = (shape[0], shape[1]) if shape is not None else (None, None)
    frames = None
    if isinstance(sig, int) and length is not None and step is not None:
        if length > sig:
            ctx.fail("frame_length exceeds the signal length", expected=f"<= {sig}", found=str(length))
        frames = 1 + (sig - length) // step
    bins = None if length is None else (length // 2 + 1 if ctx.attr("onesided") else length)
    return [TensorType(dt, (batch, frames, bins, 2))]


@stft.reference
def _(x: np.ndarray, frame_step, window=None, frame_length=None, *, onesided: int) -> np.ndarray:
    step = int(np.asarray(frame_step).reshape(-1)[0])
    length = int(np.asarray(frame_length).reshape(-1)[0]) if frame_length is not None else len(window)
    frames = 1 + (x.shape[1] - length) // step
    idx = np.arange(frames)[:, None] * step + np.arange(length)[None, :]
    z = _complex(x)[:, idx]  # [batch, frames, length]: every frame gathered at once
    if window is not None:
        z = z * window.astype(z.real.dtype)
    y = np.fft.fft(z, axis=-1)
    if onesided:
        y = y[..., :length // 2 + 1]
    return _pack(y, x.dtype)


# -------------------------------------------------------------------- windows
def _define_window(name: str, coeffs: tuple[float, ...], doc: str) -> None:
    """A cosine-sum window: w[n] = sum_k (-1)^k a_k cos(2 pi k n / N)."""
    schema = define(name, inputs=["size"], outputs=["output"], kind=OPAQUE, static_inputs=("size",),
                    attrs={"periodic": Attr.int(1), "output_datatype": Attr.int(1)}, doc=doc)

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        size = _scalar(ctx, 0, "size")
        if size is not None and size < 0:
            ctx.fail("size must be non-negative", found=str(size))
        return [TensorType(_output_datatype(ctx), (size,))]

    @schema.reference
    def _(size, *, periodic: int, output_datatype: int) -> np.ndarray:
        n_size = int(np.asarray(size).reshape(-1)[0])
        # A symmetric window of size 1 divides 0 by 0: NaN, as in onnxruntime.
        phase = 2 * np.pi * np.arange(n_size) / np.float64(n_size if periodic else n_size - 1)
        y = sum((-1) ** k * a * np.cos(k * phase) for k, a in enumerate(coeffs))
        return np.asarray(y, np.float64).reshape(n_size).astype(DType.from_onnx(output_datatype).np)


# Coefficients are rounded to float32 and the sum done in double, as in onnxruntime:
# that decides which integer a truncating output type gets (Blackman's centre is
# 1.0000000149, so 1).  Blackman's come from alpha = 0.16: a0 = (1 - alpha) / 2, a2 = alpha / 2.
_F = np.float32
_HAMMING_A0 = _F(25 / 46)
_BLACKMAN_ALPHA = _F(0.16)
_define_window("HannWindow", (0.5, 0.5), "0.5 - 0.5 cos(2 pi n / N).")
_define_window("HammingWindow", (float(_HAMMING_A0), float(_F(1) - _HAMMING_A0)),
               "25/46 - 21/46 cos(2 pi n / N).")
_define_window("BlackmanWindow", (float((_F(1) - _BLACKMAN_ALPHA) / _F(2)), 0.5,
                                  float(_BLACKMAN_ALPHA / _F(2))),
               "0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N).")

# ------------------------------------------------------------ MelWeightMatrix
mel = define("MelWeightMatrix",
             inputs=["num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz"],
             outputs=["output"], kind=OPAQUE, attrs={"output_datatype": Attr.int(1)},
             static_inputs=("num_mel_bins", "dft_length"),
             doc="Triangular mel filter bank, [dft_length // 2 + 1, num_mel_bins].")


@mel.infer
def _(ctx: InferContext) -> list[TensorType]:
    bins = _scalar(ctx, 0, "num_mel_bins")
    length = _scalar(ctx, 1, "dft_length")
    _scalar(ctx, 2, "sample_rate")
    for i, what in ((3, "lower_edge_hertz"), (4, "upper_edge_hertz")):
        check_dtype(ctx, i, SIGNAL_FLOATS, what)
    if bins is not None and bins < 1:
        ctx.fail("num_mel_bins must be positive", found=str(bins))
    if length is not None and length < 1:
        ctx.fail("dft_length must be positive", found=str(length))
    return [TensorType(_output_datatype(ctx), (None if length is None else length // 2 + 1, bins))]


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@mel.reference
def _(num_mel_bins, dft_length, sample_rate, lower, upper, *, output_datatype: int) -> np.ndarray:
    bins, n_fft = int(np.asarray(num_mel_bins).reshape(-1)[0]), int(np.asarray(dft_length).reshape(-1)[0])
    rate = float(np.asarray(sample_rate).reshape(-1)[0])
    lo = _hz_to_mel(float(np.asarray(lower, np.float64).reshape(-1)[0]))
    hi = _hz_to_mel(float(np.asarray(upper, np.float64).reshape(-1)[0]))
    # bins + 2 edges, evenly spaced in mel; note the step divides by the number of
    # edges (not edges - 1), as the ONNX reference and onnxruntime do.
    mels = lo + (hi - lo) / (bins + 2) * np.arange(bins + 2)
    edges = np.floor((n_fft + 1) * _mel_to_hz(mels) / rate).astype(np.int64)
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    j = np.arange(n_fft // 2 + 1)[:, None]
    rise = np.where((j >= left) & (j <= center),
                    (j - left) / np.maximum(center - left, 1), 0.0)
    rise = np.where(center == left, (j == center).astype(np.float64), rise)
    fall = (right - j) / np.maximum(right - center, 1)
    y = np.where((j >= center) & (j < right), fall, rise)
    dt = DType.from_onnx(output_datatype).np
    # onnxruntime divides in the output type: integer outputs keep only the 1 at each center.
    return (np.floor(y) if dt.kind in "iu" else y).astype(dt)
