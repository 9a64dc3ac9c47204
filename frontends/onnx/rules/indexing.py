"""Import rules for the indexing family (see frontends/onnx/rules/__init__.py).

Only the deprecated ``Scatter`` (opsets 9-10, kept by opset 11 as an alias)
needs one: it is ScatterElements without the ``reduction`` attribute.  The
other ops' older versions only lacked attributes whose defaults keep the old
meaning (GatherND's batch_dims, ScatterElements' reduction) or forbade
negative indices, so they import one-to-one.
"""

from __future__ import annotations

from . import rule


@rule("Scatter")
def _scatter_to_elements(b) -> list:
    """Scatter(data, indices, updates; axis) is ScatterElements with reduction none."""
    axis = b.attrs.pop("axis", 0)
    if b.attrs:
        b.fail(f"attribute {sorted(b.attrs)[0]!r} is not supported", hint="Scatter takes axis")
    return b.emit("ScatterElements", b.inputs, {"axis": axis})
