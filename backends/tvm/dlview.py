"""Tensors that are windows into one device allocation: how kernels see the arena and the weights.

TVM's own views (``Tensor._create_view``) carry a ``byte_offset``, which a
kernel built from TE (whose buffers have no element offset) refuses.  The
memory plan's offsets are 64-byte aligned, so on devices whose buffers are
plain pointers (CUDA, ROCm, host memory) a view can instead point at
``base + offset`` with a zero ``byte_offset``: that is what ``view`` makes,
through DLPack.  The DLPack structure has no deleter: the ``Views`` object
that made it keeps the structure and the base tensor alive, and the
executable keeps the ``Views``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import tvm

from ir.errors import BackendError


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32), ("dtype", _DType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _Managed(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_capsule = ctypes.pythonapi.PyCapsule_New
_capsule.restype = ctypes.py_object
_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

# DLPack type codes (dlpack.h): int, uint, float, bool.
_CODES = {"int": 0, "uint": 1, "float": 2, "bool": 6}


def _dl_dtype(dtype: str) -> _DType:
    if dtype == "bool":
        return _DType(_CODES["bool"], 8, 1)
    t = tvm.DataType(dtype)
    return _DType(int(t.type_code), int(t.bits), int(t.lanes))


class _Export:
    """What ``from_dlpack`` reads: one DLPack capsule (made once)."""

    def __init__(self, capsule: Any, device: tuple[int, int]) -> None:
        self._capsule, self._device = capsule, device

    def __dlpack__(self, stream: Any = None, **_: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._device


class Views:
    """Makes tensors over ``base`` (a tvm Tensor of bytes) and keeps what they point into alive."""

    def __init__(self, base: Any, dl_type: int) -> None:
        self.base = base
        self.dl_type = dl_type
        self.nbytes = int(base.shape[0])
        self._keep: list[Any] = []

    def view(self, offset: int, shape: Sequence[int], dtype: str, nbytes: int) -> Any:
        if offset < 0 or offset + nbytes > self.nbytes:
            raise BackendError("a tensor lies outside its device buffer", subject=f"offset {offset}",
                               expected=f"at most {self.nbytes - nbytes}")
        m = _Managed()
        dims = (ctypes.c_int64 * max(1, len(shape)))(*[int(d) for d in shape])
        m.dl_tensor.data = int(self.base.data_ptr()) + offset
        m.dl_tensor.device = _Device(self.dl_type, int(self.base.device.index))
        m.dl_tensor.ndim = len(shape)
        m.dl_tensor.dtype = _dl_dtype(dtype)
        m.dl_tensor.shape = dims
        m.dl_tensor.strides = None
        m.dl_tensor.byte_offset = 0
        m.deleter = None
        self._keep.append((m, dims))
        cap = _capsule(ctypes.addressof(m), b"dltensor", None)
        return tvm.runtime.from_dlpack(_Export(cap, (self.dl_type, int(self.base.device.index))))
