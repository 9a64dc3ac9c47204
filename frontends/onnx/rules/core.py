"""Rules for ops that are not plain IR nodes: Constant, and broadcast attributes of opset < 7."""

from __future__ import annotations

import numpy as np

from ir.dtypes import DType

from . import canonical_since, rule


@rule("Constant")
def _constant(b) -> list:
    """A Constant node becomes a graph constant (whatever attribute holds the value)."""
    if len(b.attrs) != 1:
        b.fail("Constant needs exactly one value attribute", found=", ".join(sorted(b.attrs)))
    (key, value), = b.attrs.items()
    if key in ("value", "sparse_value"):
        arr = np.asarray(value)
    elif key == "value_float":
        arr = np.array(value, np.float32)
    elif key == "value_floats":
        arr = np.array(value, np.float32).reshape(-1)
    elif key == "value_int":
        arr = np.array(value, np.int64)
    elif key == "value_ints":
        arr = np.array(value, np.int64).reshape(-1)
    elif key == "value_string":
        arr = np.array(value, dtype=object)
    elif key == "value_strings":
        arr = np.array(list(value), dtype=object).reshape(-1)
    else:
        b.fail(f"unknown Constant attribute {key!r}")
    name = b.node.output[0]
    v = b.graph.add_constant(arr, b.importer.unique_hint(name) if b.graph.has_value(name) else name,
                             dtype=DType.from_numpy(arr.dtype))
    return [v]


# Before opset 7, binary arithmetic broadcast only when asked (attribute
# ``broadcast=1``), aligning B to A starting at ``axis``.  Opset 7 switched to
# NumPy broadcasting; we rewrite the old form by reshaping B.
_LEGACY_BROADCAST_OPS = ("Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor",
                         "Equal", "Greater", "Less")


def _legacy_broadcast(b) -> list:
    b.attrs.pop("consumed_inputs", None)
    bcast = b.attrs.pop("broadcast", 0)
    axis = b.attrs.pop("axis", None)
    a, other = b.input(0), b.input(1)
    if bcast and axis is not None and a.type.rank is not None and other.type.rank is not None:
        a_rank, b_rank = a.type.rank, other.type.rank
        axis = axis + a_rank if axis < 0 else axis
        trailing = a_rank - axis - b_rank
        if trailing > 0:
            shape = b.const(np.array(list(other.type.shape) + [1] * trailing, np.int64)
                            if other.type.is_static else None)
            if not other.type.is_static:
                b.fail("legacy broadcast with an axis needs a static second operand")
            other = b.helper("Reshape", other, shape)
    return b.default(inputs=[a, other])


for _op in _LEGACY_BROADCAST_OPS:
    rule(_op, until=7)(_legacy_broadcast)
    canonical_since(_op, 7)


@rule("PRelu", until=7)
def _prelu_per_channel(b) -> list:
    """PRelu-1/6: a 1-D slope of size C applies along the channel axis (axis 1)."""
    b.attrs.pop("consumed_inputs", None)
    x, slope = b.input(0), b.input(1)
    rank = x.type.rank
    if slope.type.rank == 1 and rank is not None and rank > 2 and slope.type.shape[0] != 1:
        shape = b.const(np.array([-1] + [1] * (rank - 2), np.int64))
        slope = b.helper("Reshape", slope, shape)
    return b.default(inputs=[x, slope])


canonical_since("PRelu", 7)


@rule("Clip", until=11)
def _clip_attributes(b) -> list:
    """Clip-1/6 took min/max as attributes (defaults: the float range)."""
    b.attrs.pop("consumed_inputs", None)
    x = b.input(0)
    dtype = x.type.dtype
    lo, hi = b.attrs.pop("min", None), b.attrs.pop("max", None)
    inputs = [x, None, None]
    if lo is not None:
        inputs[1] = b.const(np.array(lo, dtype=dtype.np))
    if hi is not None:
        inputs[2] = b.const(np.array(hi, dtype=dtype.np))
    return b.default(inputs=inputs)


canonical_since("Clip", 11)
