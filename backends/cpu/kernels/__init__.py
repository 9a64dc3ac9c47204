"""Kernel generators of the cpu target, one module per kernel family.

A generator turns one top-level node (a plain op or an ``nnc.Fused`` group)
into a task function.  It registers under the kernel kinds of
``backends.cpu.scheduling.kernel_kind`` with ``@generator(kind, ...)`` and offers:

* ``supports(node) -> Optional[str]``: None when it can compile the node,
  else the reason (reported to the user as "target cpu cannot run ...");
* ``emit(kb, node, schedule) -> Kernel``: the IR, the task count, and the
  buffers (values) the task function reads, in slot order;
* ``ops``: the anchor ops it generates (op names, or (domain, op) pairs; or a
  function returning them, for tables filled elsewhere), which is what
  ``CpuBackend.op_coverage`` reports.

``schedule`` is ``node.schedule`` (None when the ``schedule`` pass did not
set one); a kernel whose tiling comes from it takes it through
``require_schedule``, which refuses a missing one rather than choosing tiles
itself.

Every module of this package whose name does not start with ``_`` is
imported on first use (``ir.discovery``): a new kernel family is one file.

``KernelContext`` bundles what ``emit`` needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional, Union

from ir.discovery import Discovery
from ir.errors import BackendError
from ir.graph import Graph, Node, Value
from ir.registry import normalize_domain
from ir.schedule import Schedule

from ..codegen import KernelBuilder, TaskFunction


@dataclass
class Kernel:
    name: str            # the task function's symbol
    n_tasks: int         # parallel tasks (the task function is called with 0..n_tasks-1)
    buffers: list[Any]   # values whose pointers fill the buffers array, in slot order
    label: str           # for profiles: "Conv+Add+Relu %res2a"


OpNames = Iterable[Union[str, tuple[str, str]]]


@dataclass
class Generator:
    kinds: tuple[str, ...]
    supports: Callable[[Node], Optional[str]]
    emit: Callable[[KernelBuilder, Node, Any], Kernel]
    priority: int = 0
    ops: Union[OpNames, Callable[[], OpNames]] = ()

    def op_keys(self) -> set[tuple[str, str]]:
        """The (domain, op) pairs this generator can anchor a kernel on."""
        ops = self.ops() if callable(self.ops) else self.ops
        return {("", o) if isinstance(o, str) else (normalize_domain(o[0]), o[1]) for o in ops}


_GENERATORS: list[Generator] = []


def generator(*kinds: str, supports: Callable[[Node], Optional[str]], priority: int = 0,
              ops: Union[OpNames, Callable[[], OpNames]] = ()):
    """Register ``emit`` as the generator for ``kinds`` (higher priority is tried first)."""
    def register(emit: Callable[[KernelBuilder, Node, Any], Kernel]):
        _GENERATORS.append(Generator(tuple(kinds), supports, emit, priority, ops))
        _GENERATORS.sort(key=lambda g: -g.priority)
        return emit
    return register


def find_generator(kind: str, node: Node) -> tuple[Optional[Generator], str]:
    """The first generator for ``kind`` that supports ``node``, else (None, reasons)."""
    _DISCOVERY.ensure()
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


def template_of(domain: str, op: str) -> Optional[str]:
    """The kernel kind of the first single-template generator that anchors on ``op`` (None: none does)."""
    _DISCOVERY.ensure()
    key = (normalize_domain(domain), op)
    return next((g.kinds[0] for g in _GENERATORS if len(g.kinds) == 1 and key in g.op_keys()), None)


def generated_ops() -> set[tuple[str, str]]:
    """Every (domain, op) some generator can anchor a kernel on (op-level coverage)."""
    _DISCOVERY.ensure()
    out: set[tuple[str, str]] = set()
    for g in _GENERATORS:
        out |= g.op_keys()
    return out


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


# Kernel families register on import: every module here not starting with "_" (``ir.discovery``).
_DISCOVERY = Discovery(__name__)
