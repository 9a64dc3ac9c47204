"""Import rules for the linalg family (see frontends/onnx/rules/__init__.py).

MatMul, Einsum and Det never changed meaning across opsets (only their type
lists grew), so only Gemm needs a rule.
"""

from __future__ import annotations

from . import canonical_since, rule


@rule("Gemm", until=7)
def _gemm_legacy(b) -> list:
    """Gemm-1/6: ``broadcast=1`` asked for unidirectional broadcasting of C.

    With ``broadcast=0`` C had to have the result's shape already, which is a
    special case of the broadcasting the IR op always does, so the attribute
    can simply be dropped.
    """
    b.attrs.pop("broadcast", None)
    return b.default()


canonical_since("Gemm", 7)
