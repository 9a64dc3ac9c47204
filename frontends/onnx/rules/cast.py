"""Import rules for the cast family (see frontends/onnx/rules/__init__.py).

* Cast-1 (opsets 1-5) named the target type with a string (``to="FLOAT"``);
  opset 6 switched to the ``TensorProto.DataType`` code the IR op uses.
* CastLike becomes a Cast: the target's element type is always known at
  import time, so backends only ever see one cast op.
"""

from __future__ import annotations

import onnx

from . import canonical_since, rule

_CAST_ATTRS = ("saturate", "round_mode")


@rule("Cast", until=6)
def _cast_v1(b) -> list:
    """Cast-1: ``to`` is a type name such as "FLOAT" or "int64"."""
    to = b.attrs.get("to")
    if isinstance(to, str):
        try:
            b.attrs["to"] = int(onnx.TensorProto.DataType.Value(to.upper()))
        except ValueError:
            b.fail("attribute 'to' names no ONNX element type", found=repr(to),
                   expected="a TensorProto.DataType name such as FLOAT or INT64")
    elif not isinstance(to, int):
        b.fail("attribute 'to' is required", found=repr(to))
    return b.default()


canonical_since("Cast", 6)


@rule("CastLike")
def _castlike(b) -> list:
    """CastLike(x, like) -> Cast(x, to=dtype(like)), keeping saturate/round_mode."""
    unknown = sorted(set(b.attrs) - set(_CAST_ATTRS))
    if unknown:
        b.fail(f"attribute {unknown[0]!r} is not supported",
               hint="CastLike takes " + ", ".join(_CAST_ATTRS))
    target = b.input(1)
    if target is None or not hasattr(target.type, "dtype"):
        b.fail("CastLike needs a tensor target_type input")
    attrs = {"to": target.type.dtype.onnx, **b.attrs}
    return b.emit("Cast", [b.input(0)], attrs)
