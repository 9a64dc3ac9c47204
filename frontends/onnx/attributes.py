"""ONNX attributes and tensors -> plain Python / NumPy values."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ir.dtypes import DType
from ir.errors import ImportError_

from .types import onnx_type_to_ir


def tensor_to_array(t: onnx.TensorProto) -> np.ndarray:
    """A TensorProto's data as a read-only array (strings as Python str objects)."""
    try:
        arr = numpy_helper.to_array(t)
    except Exception as exc:
        raise ImportError_(f"cannot decode tensor data: {exc}", subject=f"tensor {t.name!r}") from None
    if t.data_type == onnx.TensorProto.STRING:
        arr = np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b,
                           otypes=[object])(arr) if arr.size else arr.astype(object)
    expected = DType.from_onnx(t.data_type).np
    if arr.dtype != expected:
        arr = arr.astype(expected)
    return arr


def decode_attribute(a: onnx.AttributeProto) -> Any:
    """Python value of an attribute; graphs stay GraphProtos for the importer."""
    A = onnx.AttributeProto
    if a.ref_attr_name:
        raise ImportError_("attribute references are only valid inside functions",
                           subject=f"attribute {a.name!r}")
    if a.type == A.INT:
        return int(a.i)
    if a.type == A.FLOAT:
        return float(np.float32(a.f))
    if a.type == A.STRING:
        return a.s.decode("utf-8", errors="surrogateescape")
    if a.type == A.INTS:
        return tuple(int(x) for x in a.ints)
    if a.type == A.FLOATS:
        return tuple(float(np.float32(x)) for x in a.floats)
    if a.type == A.STRINGS:
        return tuple(s.decode("utf-8", errors="surrogateescape") for s in a.strings)
    if a.type == A.TENSOR:
        return tensor_to_array(a.t)
    if a.type == A.SPARSE_TENSOR:
        return sparse_to_dense(a.sparse_tensor)
    if a.type == A.GRAPH:
        return a.g
    if a.type == A.GRAPHS:
        return list(a.graphs)
    if a.type == A.TYPE_PROTO:
        return onnx_type_to_ir(a.tp, f"attribute {a.name!r}")
    if a.type == A.TENSORS:
        return [tensor_to_array(t) for t in a.tensors]
    raise ImportError_(f"unsupported attribute kind {A.AttributeType.Name(a.type)}",
                       subject=f"attribute {a.name!r}")


def sparse_to_dense(sp: onnx.SparseTensorProto) -> np.ndarray:
    values = tensor_to_array(sp.values)
    shape = tuple(sp.dims)
    dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    idx = tensor_to_array(sp.indices).astype(np.int64)
    if idx.ndim == 2:  # one row of coordinates per value
        idx = np.ravel_multi_index(tuple(idx.T), shape)
    dense[idx.ravel()] = values.ravel()
    return dense.reshape(shape)
