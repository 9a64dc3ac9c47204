"""Kernel generators of the cpu target, one module per kernel family.

A generator turns one top-level node (a plain op or an ``nnc.Fused`` group)
into a task function.  It registers under the kernel kinds of
``backends.cpu.scheduling.kernel_kind`` with ``@generator(kind, ...)`` and offers:

* ``supports(node) -> Optional[str]``: None when it can compile the node,
  else the reason (reported to the user as "target cpu cannot run ...");
* ``emit(kb, node, schedule) -> Kernel``: the IR, the task count, and the
  buffers (values) the task function reads, in slot order.  ``schedule`` is
  ``node.schedule`` (None when the ``schedule`` pass did not set one); a
  kernel whose tiling comes from it takes it through ``require_schedule``,
  which refuses a missing one rather than choosing tiles itself.

``KernelContext`` bundles what ``emit`` needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from ir.errors import BackendError
from ir.graph import Graph, Node, Value
from ir.schedule import Schedule

from ..codegen import KernelBuilder, TaskFunction


@dataclass
class Kernel:
    name: str            # the task function's symbol
    n_tasks: int         # parallel tasks (the task function is called with 0..n_tasks-1)
    buffers: list[Any]   # values whose pointers fill the buffers array, in slot order
    label: str           # for profiles: "Conv+Add+Relu %res2a"


@dataclass
class Generator:
    kinds: tuple[str, ...]
    supports: Callable[[Node], Optional[str]]
    emit: Callable[[KernelBuilder, Node, Any], Kernel]
    priority: int = 0


_GENERATORS: list[Generator] = []


def generator(*kinds: str, supports: Callable[[Node], Optional[str]], priority: int = 0):
    """Register ``emit`` as the generator for ``kinds`` (higher priority is tried first)."""
    def register(emit: Callable[[KernelBuilder, Node, Any], Kernel]):
        _GENERATORS.append(Generator(tuple(kinds), supports, emit, priority))
        _GENERATORS.sort(key=lambda g: -g.priority)
        return emit
    return register


def find_generator(kind: str, node: Node) -> tuple[Optional[Generator], str]:
    """The first generator for ``kind`` that supports ``node``, else (None, reasons)."""
    _ensure_loaded()
    reasons = []
    for g in _GENERATORS:
        if kind in g.kinds or "*" in g.kinds:
            why = g.supports(node)
            if why is None:
                return g, ""
            reasons.append(why)
    return None, "; ".join(dict.fromkeys(reasons)) or f"no cpu kernel for {kind} kernels"


def require_schedule(node: Node, schedule: Optional[Schedule], kind: str) -> Schedule:
    """``schedule`` when it is one of ``kind``; a BackendError naming the node and the pass otherwise."""
    if schedule is None:
        raise BackendError(f"the node has no schedule and its {kind} kernel takes its tiling from one",
                           subject=node.describe(),
                           hint="run the `schedule` pass before the cpu backend (the cpu pipeline does)")
    if schedule.kind != kind:
        raise BackendError(f"the node's schedule is for a {schedule.kind} kernel, not {kind}",
                           subject=node.describe(), hint="re-run the `schedule` pass for the cpu target")
    return schedule


def body_and_keys(node: Node) -> tuple[Optional[Graph], dict[int, Value], list[Value]]:
    """For a fused node: (body, body input -> node input, body outputs); for a plain node: (None, {}, outputs)."""
    if node.domain == "nnc" and node.op == "Fused":
        body: Graph = node.attrs["body"]
        keys = {id(bv): nv for bv, nv in zip(body.inputs, node.inputs)}
        return body, keys, list(body.outputs)
    return None, {}, list(node.outputs)


def nodes_of(node: Node) -> list[Node]:
    """The ops a kernel computes: the body's nodes, or the node itself."""
    body, _, _ = body_and_keys(node)
    return list(body.nodes) if body is not None else [node]


def label_of(node: Node) -> str:
    pattern = node.attrs.get("pattern") if node.domain == "nnc" and node.op == "Fused" else node.qualified_op
    return f"{pattern} %{node.outputs[0].name}"


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from . import conv, elementwise, gemm, pool, reduction  # noqa: F401
