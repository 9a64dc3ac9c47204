"""Import rules for the reduction family (see frontends/onnx/rules/__init__.py).

* Reduce* before opset 18 (ReduceSum before 13) took ``axes`` as an
  attribute; the IR op takes it as an optional input.
* TopK-1 took ``k`` as an attribute; since opset 10 it is the input ``K``.

ArgMax/ArgMin, CumSum and older TopK/ReduceMax versions only gained
attributes or types whose defaults keep the old meaning, so they import as-is.
"""

from __future__ import annotations

import numpy as np

from . import canonical_since, rule

# The opset where each reduction's axes became an input.
_AXES_INPUT_SINCE = {
    "ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18,
    "ReduceL1": 18, "ReduceL2": 18, "ReduceLogSum": 18, "ReduceLogSumExp": 18,
    "ReduceSumSquare": 18,
}


def _axes_attr_to_input(b) -> list:
    """Move the ``axes`` attribute to the second input; no attribute means all axes."""
    axes = b.attrs.pop("axes", None)
    keepdims = b.attrs.pop("keepdims", 1)
    if b.attrs:
        b.fail(f"attribute {sorted(b.attrs)[0]!r} is not supported",
               hint="older reductions take axes and keepdims")
    inputs = [b.input(0)]
    if axes:  # an empty list, like a missing one, reduces over every axis
        inputs.append(b.const(np.array(list(axes), np.int64), name=b.importer.unique_hint(b.node.output[0] + "_axes")))
    return b.emit(b.op_type, inputs, {"keepdims": keepdims})


for _op, _since in _AXES_INPUT_SINCE.items():
    rule(_op, until=_since)(_axes_attr_to_input)
    canonical_since(_op, _since)


@rule("TopK", until=10)
def _topk_attr_k(b) -> list:
    """TopK-1: ``k`` attribute -> ``K`` input (shape [1], int64)."""
    k = b.attrs.pop("k", None)
    if k is None:
        b.fail("TopK-1 needs the attribute k")
    K = b.const(np.array([k], np.int64), name=b.importer.unique_hint(b.node.output[0] + "_k"))
    return b.emit("TopK", [b.input(0), K], b.attrs, num_outputs=b.num_outputs)


canonical_since("TopK", 10)
