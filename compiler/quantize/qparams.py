"""Scales and zero points: onnxruntime's formulas for activations, symmetric int8/int4 weights."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir import quant
from ir.dtypes import DType
from ir.errors import CompilerError


def activation_qparams(lo: float, hi: float, dtype: DType, symmetric: bool) -> tuple[np.float32, int]:
    """Scale and zero point for the range ``[lo, hi]`` (widened to include 0), onnxruntime's formulas."""
    qmin, qmax = quant.qrange(dtype)
    rmin, rmax = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        absmax = max(abs(rmin), abs(rmax))
        rmin, rmax = -absmax, absmax
    scale = np.float32((rmax - rmin) / (qmax - qmin)) if rmax > rmin else np.float32(1.0)
    if symmetric:
        zp = (qmin + qmax + 1) // 2 if dtype == DType.U8 else 0
    else:
        zp = int(np.clip(np.rint(qmin - rmin / float(scale)), qmin, qmax))
    return scale, zp


def weight_qparams(w: np.ndarray, axis: Optional[int], bits: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric weights in [-127, 127] (int8) or [-7, 7] (int4): ``(q, scale, zero_point)``.

    Per channel along ``axis``; int4 arrays are ``ml_dtypes.int4`` (ONNX packs
    two to a byte).
    """
    if bits not in (4, 8):
        raise CompilerError("weights must be int8 or int4", found=f"{bits} bits")
    qmax = np.float32(127.0 if bits == 8 else 7.0)
    dt = DType.I8 if bits == 8 else DType.I4
    if axis is None:
        absmax = np.float32(np.max(np.abs(w))) if w.size else np.float32(0)
    else:
        absmax = np.max(np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1), axis=1).astype(np.float32)
    scale = np.where(absmax > 0, absmax / qmax, np.float32(1.0)).astype(np.float32)
    zp = np.zeros(np.shape(scale), dt.np)
    q = quant.quantize(w, scale, zp, dt, axis=0 if axis is None else axis)
    return q, scale, zp
