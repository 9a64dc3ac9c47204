"""Sliding-window helpers shared by convolution and pooling ops.

Two halves:

* shape arithmetic for type rules (``window_attrs``, ``window_output_dims``),
  aware of symbolic dims;
* NumPy kernels for references: ``pad_spatial``, ``sliding_windows`` (a
  strided view, no copy), ``im2col`` (the copy a convolution multiplies) and
  ``col2im`` (its adjoint, a scatter-add, for ConvTranspose and Col2Im).

Every kernel works for any dtype; callers pick the compute type.
Spatial axes are the trailing ones: arrays are ``(N, C, *spatial)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..registry import InferContext
from ..shapes import conv_output_dim
from ..types import Dim

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


# ------------------------------------------------------------ attributes
def window_attrs(ctx: InferContext, spatial: int, kernel: Sequence[int],
                 *, pads_name: str = "pads") -> tuple[list[int], list[int], list[int]]:
    """Validated ``strides``, ``dilations`` and ``pads`` (ONNX defaults filled in)."""
    strides = _attr_list(ctx, "strides", spatial, 1)
    dilations = _attr_list(ctx, "dilations", spatial, 1)
    pads = _attr_list(ctx, pads_name, 2 * spatial, 0)
    if any(s < 1 for s in strides):
        ctx.fail("strides must be positive", found=str(strides))
    if any(d < 1 for d in dilations):
        ctx.fail("dilations must be positive", found=str(dilations))
    if any(k < 1 for k in kernel):
        ctx.fail("kernel dims must be positive", found=str(list(kernel)))
    auto_pad = ctx.attr("auto_pad")
    if auto_pad is not None and auto_pad not in AUTO_PADS:
        ctx.fail("unknown auto_pad", expected=" or ".join(AUTO_PADS), found=repr(auto_pad))
    return strides, dilations, pads


def _attr_list(ctx: InferContext, name: str, n: int, default: int) -> list[int]:
    value = ctx.attr(name)
    if value is None or len(value) == 0:
        return [default] * n
    if len(value) != n:
        ctx.fail(f"attribute {name} has the wrong length", expected=f"{n} values",
                 found=str(list(value)))
    return [int(v) for v in value]


def kernel_from_attr(ctx: InferContext, spatial: int) -> list[int]:
    """The required ``kernel_shape`` attribute of a pooling op, checked against the rank."""
    kernel = ctx.attr("kernel_shape")
    if kernel is None:
        ctx.fail("attribute kernel_shape is required")
    if len(kernel) != spatial:
        ctx.fail("kernel_shape does not match the input's spatial rank",
                 expected=f"{spatial} values", found=str(list(kernel)))
    return [int(k) for k in kernel]


# ------------------------------------------------------- shape arithmetic
def same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    """(begin, end) padding that makes ``out = ceil(size / stride)`` (auto_pad SAME_*)."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - size)
    small, big = total // 2, total - total // 2
    return (small, big) if upper else (big, small)


def resolve_pads(sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int], pads: Optional[Sequence[int]],
                 auto_pad: str = "NOTSET") -> list[int]:
    """Explicit ``[begin..., end...]`` pads for concrete input sizes."""
    d = len(sizes)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pairs = [same_pads(sizes[i], kernel[i], strides[i], dilations[i],
                           auto_pad == "SAME_UPPER") for i in range(d)]
        return [p[0] for p in pairs] + [p[1] for p in pairs]
    if auto_pad == "VALID" or not pads:
        return [0] * (2 * d)
    return [int(p) for p in pads]


def window_output_dims(sizes: Sequence[Dim], kernel: Sequence[int], strides: Sequence[int],
                       dilations: Sequence[int], pads: Sequence[int], auto_pad: str = "NOTSET",
                       ceil_mode: bool = False) -> list[Dim]:
    """Output spatial dims of a convolution / pooling window.

    Symbolic dims survive when the window cannot change the length (stride 1
    and a "same"-sized window), otherwise an unknown input dim gives None.
    """
    d = len(sizes)
    out: list[Dim] = []
    for i, size in enumerate(sizes):
        eff = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if isinstance(size, int):
                out.append(-(-size // strides[i]))
            else:
                out.append(size if strides[i] == 1 else None)
            continue
        begin, end = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + d])
        if not isinstance(size, int):
            out.append(size if strides[i] == 1 and begin + end == eff - 1 else None)
            continue
        out.append(conv_output_dim(size, kernel[i], strides[i], begin, end, dilations[i],
                                   ceil_mode))
    return out


# ------------------------------------------------------------ NumPy kernels
def pad_spatial(x: np.ndarray, pads: Sequence[int], value: Any = 0,
                extra_end: Optional[Sequence[int]] = None) -> np.ndarray:
    """Pad (or crop, for negative pads) the trailing spatial axes of ``x``.

    ``extra_end`` adds padding after ``pads`` (pooling's ceil_mode windows
    that overhang the padded input).
    """
    d = len(pads) // 2
    begin, end = list(pads[:d]), list(pads[d:])
    if extra_end is not None:
        end = [e + x_ for e, x_ in zip(end, extra_end)]
    lead = x.ndim - d
    crop = tuple([slice(None)] * lead + [slice(max(0, -b), x.shape[lead + i] - max(0, -e))
                                          for i, (b, e) in enumerate(zip(begin, end))])
    x = x[crop]
    widths = [(0, 0)] * lead + [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    if all(w == (0, 0) for w in widths):
        return x
    return np.pad(x, widths, mode="constant", constant_values=value)


def sliding_windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                    dilations: Sequence[int]) -> np.ndarray:
    """A read-only strided view ``(*lead, *out, *kernel)`` of every window of ``x``.

    ``x`` is already padded; the last ``len(kernel)`` axes are spatial.
    """
    d = len(kernel)
    eff = [(k - 1) * dl + 1 for k, dl in zip(kernel, dilations)]
    lead = x.ndim - d
    axes = tuple(range(lead, x.ndim))
    view = sliding_window_view(x, eff, axis=axes)
    index = ((slice(None),) * lead + tuple(slice(None, None, s) for s in strides)
             + tuple(slice(None, None, dl) for dl in dilations))
    return view[index]


def im2col(x: np.ndarray, kernel_shape: Sequence[int], strides: Sequence[int],
           pads: Sequence[int], dilations: Sequence[int], pad_value: Any = 0) -> np.ndarray:
    """Unfold the windows of ``x`` ``(N, C, *spatial)`` into ``(N, C, *kernel, *out)``.

    The result is a fresh C-contiguous array in ``x``'s dtype, so it reshapes
    for free into ``(N, C * prod(kernel), prod(out))``, the right operand of
    the convolution matmul.  ``pads`` is ``[begin..., end...]``; ``pad_value``
    fills the padding (a zero point for quantized convolutions).
    """
    d = len(kernel_shape)
    if all(k == 1 for k in kernel_shape) and all(s == 1 for s in strides) and not any(pads):
        return np.ascontiguousarray(x).reshape(x.shape[:2] + (1,) * d + x.shape[2:])
    windows = sliding_windows(pad_spatial(x, pads, pad_value), kernel_shape, strides, dilations)
    # windows: (N, C, *out, *kernel) -> (N, C, *kernel, *out)
    perm = (0, 1) + tuple(range(2 + d, 2 + 2 * d)) + tuple(range(2, 2 + d))
    return np.ascontiguousarray(windows.transpose(perm))


def col2im(cols: np.ndarray, image_shape: Sequence[int], strides: Sequence[int],
           pads: Sequence[int], dilations: Sequence[int]) -> np.ndarray:
    """Adjoint of ``im2col``: add ``cols`` ``(N, C, *kernel, *blocks)`` back into an image.

    Returns ``(N, C, *image_shape)``; contributions that land in the padding
    are dropped.  One vectorized strided add per kernel position.
    """
    d = len(image_shape)
    kernel = cols.shape[2:2 + d]
    blocks = cols.shape[2 + d:]
    begin = list(pads[:d])
    padded = [image_shape[i] + pads[i] + pads[i + d] for i in range(d)]
    # Large enough for every window even when the blocks do not tile the image exactly.
    full = [max(padded[i], (blocks[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1)
            for i in range(d)]
    out = np.zeros(cols.shape[:2] + tuple(full), dtype=cols.dtype)
    for k in itertools.product(*(range(n) for n in kernel)):
        target = tuple(slice(k[i] * dilations[i], k[i] * dilations[i]
                             + (blocks[i] - 1) * strides[i] + 1, strides[i]) for i in range(d))
        out[(Ellipsis,) + target] += cols[(slice(None), slice(None)) + k]
    crop = tuple(slice(begin[i], begin[i] + image_shape[i]) for i in range(d))
    return out[(Ellipsis,) + crop]

