"""ONNX TypeProto -> IR types."""

from __future__ import annotations

import onnx

from ir.dtypes import DType
from ir.errors import ImportError_
from ir.types import OptionalType, SequenceType, TensorType, Type


def onnx_type_to_ir(tp: onnx.TypeProto, what: str) -> Type:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        tt = tp.tensor_type
        if tt.elem_type == 0:
            raise ImportError_("tensor has no element type", subject=what)
        dtype = DType.from_onnx(tt.elem_type)
        if not tt.HasField("shape"):
            return TensorType(dtype, None)
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                if d.dim_value < 0:
                    raise ImportError_("negative dimension in a tensor type", subject=what,
                                       found=str(d.dim_value), hint="use a dim_param name for an unknown size")
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param:
                dims.append(d.dim_param)
            else:
                dims.append(None)
        return TensorType(dtype, tuple(dims))
    if kind == "sequence_type":
        return SequenceType(onnx_type_to_ir(tp.sequence_type.elem_type, what))
    if kind == "optional_type":
        return OptionalType(onnx_type_to_ir(tp.optional_type.elem_type, what))
    if kind is None:
        raise ImportError_("value has no type", subject=what,
                           hint="graph inputs and outputs must declare their types")
    raise ImportError_(f"unsupported value type {kind!r}", subject=what)
