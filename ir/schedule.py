"""Schedules: how a kernel's loops are tiled, ordered, vectorized and parallelized.

A ``Schedule`` is plain data (a kernel kind plus named integer parameters),
serializable to a short text stored in the node's ``schedule`` attribute::

    conv2d_nchwc:ow_block=14,oc_unroll=2,ic_unroll=4,parallel=3|vector=oc:16|est_cycles=1204224

Backends read it to generate code; the scheduling pass (``passes.scheduling``)
fills it from an analytical model of the target, or from a tuning database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .errors import PassError


@dataclass
class Schedule:
    """Loop structure for one kernel.

    ``kind`` names the kernel template (conv2d_nchwc, gemm, elementwise,
    pool, reduction, injective, systolic_gemm, ...).  ``params`` are its
    tunable integers (tile sizes, unroll factors, ...), ``vector`` the
    vectorized axis and width, ``parallel`` how many outer loops are split
    across threads (the product of their extents is the task count).
    ``est_cycles`` is the model's estimate; ``source`` says where it came
    from (``model`` or ``tuned``).  ``dataflow`` is a systolic array's
    stationary operand (``os`` outputs, ``ws`` weights, ``is`` inputs).
    """

    kind: str
    params: dict[str, int] = field(default_factory=dict)
    vector_axis: str = ""
    vector_width: int = 1
    parallel: int = 1
    est_cycles: int = 0
    source: str = "model"
    dataflow: str = ""

    def to_text(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        parts = [f"{self.kind}:{params}", f"vector={self.vector_axis}:{self.vector_width}",
                 f"parallel={self.parallel}", f"est_cycles={self.est_cycles}", f"source={self.source}"]
        if self.dataflow:
            parts.append(f"dataflow={self.dataflow}")
        return "|".join(parts)

    @staticmethod
    def from_text(text: str) -> Schedule:
        try:
            head, *rest = text.split("|")
            kind, _, params_text = head.partition(":")
            params = {k: int(v) for k, v in (p.split("=") for p in params_text.split(",") if p)}
            s = Schedule(kind, params)
            for item in rest:
                key, _, value = item.partition("=")
                if key == "vector":
                    axis, _, width = value.partition(":")
                    s.vector_axis, s.vector_width = axis, int(width)
                elif key == "parallel":
                    s.parallel = int(value)
                elif key == "est_cycles":
                    s.est_cycles = int(value)
                elif key == "source":
                    s.source = value
                elif key == "dataflow":
                    s.dataflow = value
            return s
        except (ValueError, IndexError):
            raise PassError("malformed schedule text", found=repr(text)) from None

    def get(self, name: str, default: Optional[int] = None) -> int:
        if name in self.params:
            return self.params[name]
        if default is None:
            raise PassError(f"schedule has no parameter {name!r}", found=self.to_text())
        return default
