"""Import rules for the sequence family (see frontends/onnx/rules/__init__.py).

Only SequenceMap needs one: its body may read outer values, which become
trailing inputs counted by ``num_captures`` (see ``ir/ops/sequence.py``).
The other sequence and optional ops import one-to-one.
"""

from __future__ import annotations

from ir.types import SequenceType

from . import rule
from .control_flow import import_body


@rule("SequenceMap")
def _sequence_map(b) -> list:
    """The body takes one element of each sequence input (tensor inputs as they are)."""
    hints = [v.type.elem if v is not None and isinstance(v.type, SequenceType)
             else (None if v is None else v.type) for v in b.inputs]
    body, caps = import_body(b, "body", hints)
    if b.attrs:
        b.fail(f"attribute {sorted(b.attrs)[0]!r} is not supported",
               hint="SequenceMap takes only 'body'")
    return b.emit("SequenceMap", [*b.inputs, *caps], {"body": body, "num_captures": len(caps)},
                  num_outputs=b.num_outputs)
