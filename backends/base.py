"""The interface every target implements.

A backend turns an optimized IR graph into an ``Executable`` and reads one
back from an artifact folder.  It also says, node by node, what it supports,
so the driver can report every unsupported node before compiling (and the
``inspect`` command can print a coverage table).

Adding a target: subclass ``Backend``, implement ``supports``/``compile``/
``load``, and register it with ``register_backend``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ir.errors import BackendError, UnsupportedOpError
from ir.graph import Graph, Node
from runtime.executable import Executable


@dataclass(frozen=True)
class Support:
    """Whether a backend can run one node, and why not."""

    ok: bool
    reason: str = ""

    @staticmethod
    def yes() -> Support:
        return Support(True)

    @staticmethod
    def no(reason: str) -> Support:
        return Support(False, reason)


@dataclass
class CompileOptions:
    """Options shared by all targets; backends read what they understand.

    ``extra`` holds target-specific options (``threads``, ``isa``, ...).
    """

    passes: Optional[str] = None  # pipeline text; None means the target's default
    print_ir_after: Sequence[str] = ()  # pass names, or ("all",)
    dump_ir_dir: Optional[str] = None
    time_passes: bool = False
    verify_each: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


GRAPH_FILE = "graph.ir"


def save_graph(graph: Graph, directory: Path) -> None:
    """Write a graph as IR text (constants elided) plus its weights blob."""
    from ir.printer import print_graph
    from runtime.weights import save_weights
    save_weights(graph, directory)
    (directory / GRAPH_FILE).write_text(print_graph(graph, locations=True) + "\n")


def load_graph(directory: Path) -> Graph:
    """Read a graph written by ``save_graph``."""
    from ir.parser import parse_graph
    from runtime.weights import load_weights
    path = directory / GRAPH_FILE
    if not path.exists():
        raise BackendError("artifact has no IR file", subject=str(directory), expected=GRAPH_FILE)
    return parse_graph(path.read_text(), weights=load_weights(directory))


class Backend(abc.ABC):
    """A compilation target.

    ``default_pipeline`` is the pass pipeline the target runs.  A target that
    needs static shapes (``requires_static_shapes``) compiles a graph with
    dynamic dims or run-time shape values per call signature instead: the
    build runs ``generic_pipeline`` (passes that need no shapes), and each
    specialization runs ``default_pipeline`` (see ``compiler.specialize``).
    """

    name: str = ""
    description: str = ""
    default_pipeline: str = ""
    generic_pipeline: str = "fold-constants,cse,dce"
    requires_static_shapes: bool = False

    def configure(self, options: dict[str, Any]) -> None:
        """Take target options (``--option key=value``) before passes run; default: none used."""

    @property
    def target_info(self):
        """What passes know about this target's hardware (``ir.target.TargetInfo``)."""
        from ir.target import TargetInfo
        return TargetInfo(name=self.name, kind=self.name)

    @abc.abstractmethod
    def supports(self, node: Node) -> Support:
        """Can this target run ``node``?  Say why not."""

    def fusable(self, node: Node) -> bool:
        """Can this target generate ``node`` inside a fused kernel?  (Fusion asks.)"""
        return True

    @abc.abstractmethod
    def compile(self, graph: Graph, options: CompileOptions) -> Executable:
        """Turn an optimized graph into an executable."""

    @abc.abstractmethod
    def load(self, directory: Path) -> Executable:
        """Read an executable written by ``Executable.save``."""

    def check_supported(self, graph: Graph) -> None:
        """Raise one error naming every node this target cannot run."""
        missing: dict[tuple[str, str, int], list[str]] = {}
        reasons: dict[tuple[str, str, int], str] = {}
        for node in graph.nodes:
            s = self.supports(node)
            if not s.ok:
                key = (node.domain, node.op, 0)
                missing.setdefault(key, []).append(node.name or f"%{node.outputs[0].name}")
                reasons.setdefault(key, s.reason)
        if missing:
            parts = []
            for key, names in sorted(missing.items()):
                op = f"{key[0]}.{key[1]}" if key[0] else key[1]
                shown = ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")
                parts.append(f"{op} ({reasons[key]}; nodes: {shown})")
            raise UnsupportedOpError(
                f"target {self.name!r} cannot run {len(missing)} op kind(s): " + "; ".join(parts),
                ops=missing, hint="choose another target with --target, e.g. ref")


_BACKENDS: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    _BACKENDS[name] = factory


def get_backend(name: str) -> Backend:
    _ensure_loaded()
    try:
        return _BACKENDS[name]()
    except KeyError:
        raise BackendError("unknown target", subject=repr(name),
                           expected=" or ".join(sorted(_BACKENDS))) from None


def available_backends() -> list[str]:
    _ensure_loaded()
    return sorted(_BACKENDS)


def _ensure_loaded() -> None:
    from . import cpu, ref  # noqa: F401
