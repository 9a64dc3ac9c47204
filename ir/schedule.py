"""Schedules: how a kernel's loops are tiled, ordered, vectorized and parallelized.

A ``Schedule`` is plain data (a kernel kind plus named integer parameters)
held by the kernel node it was chosen for, ``Node.schedule`` (a plain op or
an ``nnc.Fused`` group; None until the scheduling pass runs).  The IR text
shows it after the node's attributes (see ``ir.printer``)::

    %y: f32[1,4,56,56,16] = nnc.Fused(%x, %w) {body=..., pattern="ConvNCHWc+Relu"}
        schedule{kind="conv2d_nchwc", params={ic_unroll=4, oc_unroll=2, ow_block=14},
                 vector="oc:16", parallel=3, est_cycles=1204224, source="model", for="1a2b3c4d"}

Backends read it to generate code; the scheduling pass (``passes.scheduling``)
fills it from an analytical model of the target, or from a tuning database.

A schedule records what it was computed for: ``fingerprint`` is
``kernel_fingerprint(node)`` at the time (the op, its attributes, its input
and output types; for a fused group its body's ops, wiring and types; never
value names).  When a later rewrite changes the node, the fingerprints differ
and ``ir.verifier`` reports the schedule as stale.

``to_text``/``from_text`` are a compact one-line form for tuning databases::

    conv2d_nchwc:ic_unroll=4,oc_unroll=2,ow_block=14|vector=oc:16|parallel=3|est_cycles=1204224|source=model
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .errors import PassError

if TYPE_CHECKING:
    from .graph import Graph, Node


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
    ``fingerprint`` is the ``kernel_fingerprint`` of the node it was chosen
    for ("" when not chosen for a node yet, e.g. a tuning candidate).
    """

    kind: str
    params: dict[str, int] = field(default_factory=dict)
    vector_axis: str = ""
    vector_width: int = 1
    parallel: int = 1
    est_cycles: int = 0
    source: str = "model"
    dataflow: str = ""
    fingerprint: str = ""

    def to_text(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        parts = [f"{self.kind}:{params}", f"vector={self.vector_axis}:{self.vector_width}",
                 f"parallel={self.parallel}", f"est_cycles={self.est_cycles}", f"source={self.source}"]
        if self.dataflow:
            parts.append(f"dataflow={self.dataflow}")
        if self.fingerprint:
            parts.append(f"for={self.fingerprint}")
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
                elif key == "for":
                    s.fingerprint = value
            return s
        except (ValueError, IndexError):
            raise PassError("malformed schedule text", found=repr(text)) from None

    def get(self, name: str, default: Optional[int] = None) -> int:
        if name in self.params:
            return self.params[name]
        if default is None:
            raise PassError(f"schedule has no parameter {name!r}", found=self.to_text())
        return default

    def copy(self) -> Schedule:
        return replace(self, params=dict(self.params))


# --------------------------------------------------------------- fingerprints
def kernel_fingerprint(node: Node) -> str:
    """8 hex digits summarizing what a schedule of ``node`` depends on.

    The op, its attributes and its input/output types; a subgraph attribute
    (a fused group's body) contributes its ops, attributes, types and wiring
    (by position).  Value names, node names and constant data never do, so
    renaming values or refolding weights keeps a schedule valid, while a
    changed shape, layout, dtype, attribute or fused body makes it stale.
    """
    h = hashlib.blake2b(digest_size=4)
    h.update(_describe_node(node, {}).encode())
    return h.hexdigest()


def _describe_node(node: Node, numbering: dict[int, int]) -> str:
    def ref(v: Any) -> str:
        if v is None:
            return "none"
        return f"{numbering[id(v)]}:{v.type}" if id(v) in numbering else str(v.type)

    ins = ",".join(ref(v) for v in node.inputs)
    outs = ",".join(str(v.type) for v in node.outputs)
    attrs = ",".join(f"{k}={_describe_attr(node.attrs[k])}" for k in sorted(node.attrs))
    return f"{node.qualified_op}({ins})->({outs}){{{attrs}}}"


def _describe_graph(g: Graph) -> str:
    numbering: dict[int, int] = {}
    parts = []
    for v in list(g.inputs) + list(g.constants.values()):
        numbering[id(v)] = len(numbering)
        parts.append(("const " if v.const is not None else "in ") + str(v.type))
    for n in g.nodes:
        parts.append(_describe_node(n, numbering))
        for o in n.outputs:
            numbering[id(o)] = len(numbering)
    parts.append("return " + ",".join(str(numbering.get(id(v), "?")) for v in g.outputs))
    return "graph{" + ";".join(parts) + "}"


def _describe_attr(v: Any) -> str:
    from .graph import Graph
    if isinstance(v, Graph):
        return _describe_graph(v)
    if isinstance(v, np.ndarray):
        digest = hashlib.blake2b(np.ascontiguousarray(v).tobytes() if v.dtype != object else
                                 repr(v.tolist()).encode(), digest_size=8).hexdigest()
        return f"dense<{v.dtype}{list(v.shape)}:{digest}>"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_describe_attr(x) for x in v) + "]"
    return repr(v) if isinstance(v, (str, bytes, float)) else str(v)


# ------------------------------------------------------------------ on nodes
def assign_schedule(node: Node, schedule: Schedule) -> Schedule:
    """Give ``node`` (a copy of) ``schedule``, stamped with the node's fingerprint; returns it."""
    node.schedule = replace(schedule, params=dict(schedule.params), fingerprint=kernel_fingerprint(node))
    return node.schedule


def stale_schedule(node: Node) -> Optional[str]:
    """Why ``node.schedule`` no longer fits the node, or None (also when it has none)."""
    s = node.schedule
    if s is None:
        return None
    now = kernel_fingerprint(node)
    if s.fingerprint == now:
        return None
    if not s.fingerprint:
        return "it records no fingerprint of the node it was chosen for"
    return (f"it was chosen for fingerprint {s.fingerprint}, the node is now {now} "
            "(its op, attributes or types changed)")


def clear_schedules(graph: Graph) -> int:
    """Drop every schedule of ``graph``'s nodes; returns how many there were."""
    count = 0
    for n in graph.nodes:
        if n.schedule is not None:
            n.schedule = None
            count += 1
    return count
