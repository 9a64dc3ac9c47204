"""The target contract: everything the driver, CLI, tuner, runtime and bundle writer ask of a target.

A target is one package ``backends/<name>/`` whose ``__init__`` defines a
``Backend`` subclass and names it ``BACKEND``; ``get_backend("<name>")``
imports the package on first use (no list of targets to edit).  A target
outside this folder registers its class with ``register_backend``.

What a target declares (class attributes, read without instantiating):

``name``, ``description``
    How users pick it (``--target name``) and what ``ops``/``--help`` say.
``options``
    Every option it takes, as ``OptionSpec`` (name, type, default, help).
    ``--option key=value`` and ``build(options=...)`` reach the target only
    through ``Backend(options)``, which validates them: an unknown key or a
    value of the wrong type is a ``BackendError`` naming the valid options.
``capabilities``
    What it can do beyond compiling (``Capabilities``): time candidate
    schedules for tuning, change thread counts, profile per kernel, write a
    C bundle, and whether it needs static shapes (then the driver compiles a
    static specialization per call signature, see ``compiler.specialize``).
    Callers check these flags; they never probe for methods.
``default_pipeline`` / ``generic_pipeline``
    Its pass pipelines: the full one, and the shape-free one run before
    specialization.

What a target implements (methods):

``target_info``
    Its hardware description (``ir.target.TargetInfo``, pure data) built
    from its options; passes read it, code generators take the ISA, CPU and
    triple from it.
``supports(node)`` / ``op_coverage(schema)``
    Per node (a build reports every unsupported node at once) and per op
    (the ``ops`` table): ``Coverage.KERNEL``, ``EXPAND`` (runs the op's ONNX
    function body) or ``NONE``.
``fusable(node)``
    Whether it can generate ``node`` inside a fused kernel (fusion asks).
``scheduler()``
    Its schedule rules (``passes.target_hooks.Scheduler``) or None: the
    ``schedule`` pass asks the target and never imports it.
``compile(graph)`` / ``load(directory)``
    An optimized graph to an ``Executable`` (``runtime.executable``), and an
    artifact folder back to one.  ``Executable.save`` returns the files it
    wrote, which the manifest lists.
``measure(graph, node, schedule)``
    Seconds one kernel takes with a candidate schedule (only when
    ``capabilities.measure``).
"""

from __future__ import annotations

import abc
import importlib
import pkgutil
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional, Sequence

from ir.errors import BackendError, UnsupportedOpError
from ir.graph import Graph, Node
from ir.registry import OpSchema
from ir.target import TargetInfo
from runtime.executable import Executable

if TYPE_CHECKING:
    from ir.schedule import Schedule
    from passes.target_hooks import Scheduler


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


def _folds_once_shapes_are_known(graph: Graph, known_inputs: Sequence[int] = ()) -> set[int]:
    """Nodes that compute only from constants, shapes (``Shape``, ``Size``) and the graph inputs at
    positions ``known_inputs``: constants once specialized."""
    folds: set[int] = set()
    computed: set[int] = {id(graph.inputs[i]) for i in known_inputs}
    for node in graph.nodes:
        shape_only = node.domain == "" and node.op in ("Shape", "Size")
        if shape_only or all(v is None or v.const is not None or id(v) in computed for v in node.inputs):
            folds.add(id(node))
            computed.update(id(o) for o in node.outputs)
    return folds


class Coverage(Enum):
    """How a target runs an op (the ``python -m compiler ops`` table)."""

    KERNEL = "yes"     # generated or interpreted directly
    EXPAND = "expand"  # replaced by the op's ONNX function body, whose ops it runs
    NONE = "-"


def function_body_coverage(schema: OpSchema) -> Coverage:
    """``EXPAND`` for an ONNX op with a function body (``expand-functions`` replaces it), else ``NONE``.

    For targets whose pipeline runs ``expand-functions``: what they have no kernel for may still run.
    """
    if schema.domain != "":
        return Coverage.NONE
    try:
        import onnx.defs
        onnx_schema = onnx.defs.get_schema(schema.name)
    except Exception:  # noqa: BLE001 - not an ONNX op
        return Coverage.NONE
    has_body = onnx_schema.has_function or onnx_schema.has_context_dependent_function
    return Coverage.EXPAND if has_body else Coverage.NONE


@dataclass(frozen=True)
class Capabilities:
    """What a target can do besides compiling and loading."""

    measure: bool = False        # Backend.measure times candidate schedules (--tune)
    threads: bool = False        # the ``threads`` option and Executable.set_threads work
    profile: bool = False        # Executable.profile gives per-kernel times
    c_bundle: bool = False       # the artifact holds an object file and header for C programs
    static_shapes: bool = False  # compiles static shapes only: the driver specializes per call
    # Compiles a one-sample graph (``Graph.batch`` set) into code that takes the batch count
    # at run time, so a model with a symbolic batch dimension is compiled once, at build time.
    runtime_batch: bool = False


@dataclass(frozen=True)
class OptionSpec:
    """One target option: ``--option name=value``."""

    name: str
    type: type           # bool, int, float, str, or tuple for a comma-separated list of strings
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    minimum: Optional[int] = None  # for int options

    @property
    def type_name(self) -> str:
        return "list" if self.type is tuple else self.type.__name__

    def describe(self) -> str:
        allowed = f" ({'|'.join(map(str, self.choices))})" if self.choices else ""
        return f"{self.name}: {self.type_name}{allowed}, default {self.default!r}: {self.help}"

    def convert(self, value: Any, target: str) -> Any:
        """``value`` (from JSON on the command line, or Python) as this option's type."""
        bad = BackendError("bad option value", subject=f"--option {self.name} (target {target})",
                           expected=self.type_name + (f" ({'|'.join(map(str, self.choices))})"
                                                      if self.choices else ""),
                           found=repr(value))
        if self.type is bool:
            if isinstance(value, bool):
                out: Any = value
            elif isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0",
                                                                       "false", "no", "off"):
                out = value.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(value, int) and value in (0, 1):
                out = bool(value)
            else:
                raise bad
        elif self.type is int:
            if isinstance(value, bool):
                raise bad
            try:
                out = int(value)
            except (TypeError, ValueError):
                raise bad from None
            if isinstance(value, float) and value != out:
                raise bad
            if self.minimum is not None and out < self.minimum:
                raise BackendError("bad option value", subject=f"--option {self.name} (target {target})",
                                   expected=f"an integer >= {self.minimum}", found=repr(value))
        elif self.type is float:
            if isinstance(value, bool):
                raise bad
            try:
                out = float(value)
            except (TypeError, ValueError):
                raise bad from None
        elif self.type is tuple:
            if isinstance(value, str):
                out = tuple(s.strip() for s in value.split(",") if s.strip())
            elif isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
                out = tuple(value)
            else:
                raise bad
        elif self.type is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise bad
            out = str(value)
        else:
            raise BackendError("option of an unsupported type", subject=self.name, found=str(self.type))
        if self.choices and out not in self.choices:
            raise bad
        return out


def validate_options(specs: tuple[OptionSpec, ...], given: Mapping[str, Any], target: str) -> dict[str, Any]:
    """Every declared option, typed: the given values checked, defaults for the rest."""
    by_name = {s.name: s for s in specs}
    unknown = [k for k in given if k not in by_name]
    if unknown:
        valid = ", ".join(f"{s.name} ({s.type_name})" for s in specs) or "none"
        raise BackendError("unknown target option", subject=f"--option {unknown[0]} (target {target})",
                           expected=f"one of: {valid}",
                           hint="`python -m compiler targets` lists each target's options")
    return {s.name: (s.convert(given[s.name], target) if s.name in given else s.default) for s in specs}


THREADS_OPTION = OptionSpec("threads", int, 0, "worker threads for running the model (0: one per core)",
                            minimum=0)


class Backend(abc.ABC):
    """A compilation target (see the module docstring for the whole contract)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    capabilities: ClassVar[Capabilities] = Capabilities()
    default_pipeline: ClassVar[str] = ""
    generic_pipeline: ClassVar[str] = "fold-constants,cse,dce"

    def __init__(self, options: Optional[Mapping[str, Any]] = None) -> None:
        #: The validated options: every declared one, typed, defaults filled in.
        self.config: dict[str, Any] = validate_options(type(self).options, dict(options or {}), self.name)

    def given_options(self) -> dict[str, Any]:
        """The options that differ from their defaults (what a manifest records)."""
        return {s.name: self.config[s.name] for s in type(self).options if self.config[s.name] != s.default}

    # ------------------------------------------------------------ describing
    @property
    @abc.abstractmethod
    def target_info(self) -> TargetInfo:
        """The hardware description passes and code generators read."""

    @abc.abstractmethod
    def supports(self, node: Node) -> Support:
        """Can this target run ``node``?  Say why not."""

    @abc.abstractmethod
    def op_coverage(self, schema: OpSchema) -> Coverage:
        """How this target runs ``schema``'s op in general (a build still checks every node)."""

    def fusable(self, node: Node) -> bool:
        """Can this target generate ``node`` inside a fused kernel?  (Fusion asks.)"""
        return self.supports(node).ok

    def scheduler(self) -> Optional[Scheduler]:
        """This target's schedule rules, or None when its kernels need no schedule."""
        return None

    # -------------------------------------------------------------- building
    @abc.abstractmethod
    def compile(self, graph: Graph) -> Executable:
        """Turn an optimized graph (after ``default_pipeline``) into an executable."""

    @abc.abstractmethod
    def load(self, directory: Path) -> Executable:
        """Read an executable written by ``Executable.save``."""

    def set_tuning(self, tune: bool, budget: float, database: Optional[str], rpc_tracker: str = "",
                   rpc_key: str = "") -> bool:
        """Take ``--tune``/``--tuning-db`` here and return True if this target tunes its kernels itself
        (tvm: MetaSchedule); False (the default) leaves tuning to the ``schedule`` pass."""
        return False

    def measure(self, graph: Graph, node: Node, schedule: Schedule) -> float:
        """Seconds ``node`` of ``graph`` takes with ``schedule`` (targets with ``capabilities.measure``)."""
        raise BackendError("this target cannot time schedules", subject=f"target {self.name!r}",
                           hint="measured tuning needs a target that runs code, e.g. --target cpu")

    def check_supported(self, graph: Graph, ops_only: bool = False, known_inputs: Sequence[int] = ()) -> None:
        """Raise one error naming every node this target cannot run.

        ``ops_only``: judge each node by its op alone (``op_coverage``), for a
        graph whose shapes are not known yet (a model compiled per input
        signature): an op no kernel covers is refused at build time, not at
        the first run.  Nodes computing only from constants, shapes and the
        graph inputs at positions ``known_inputs`` (whose values each
        specialization makes constants) fold away and are not judged.
        """
        missing: dict[tuple[str, str, int], list[str]] = {}
        reasons: dict[tuple[str, str, int], str] = {}
        folds = _folds_once_shapes_are_known(graph, known_inputs) if ops_only else set()
        for node in graph.nodes:
            if id(node) in folds:
                continue
            if ops_only:
                s = Support.yes() if self.op_coverage(node.schema) is not Coverage.NONE else \
                    Support.no(f"target {self.name!r} has no kernel for this op")
            else:
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


# ------------------------------------------------------------------ registry
_REGISTERED: dict[str, type[Backend]] = {}
_LOCK = threading.RLock()


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Make ``cls`` available as ``--target cls.name`` (for targets outside ``backends/``)."""
    if not cls.name:
        raise BackendError("a target class needs a name", subject=cls.__qualname__)
    with _LOCK:
        _REGISTERED[cls.name] = cls
    return cls


def unregister_backend(name: str) -> None:
    with _LOCK:
        _REGISTERED.pop(name, None)


def _package_names() -> list[str]:
    """Candidate target packages by naming convention: the sub-packages of ``backends``."""
    import backends
    return sorted({m.name for m in pkgutil.iter_modules(backends.__path__) if m.ispkg})


def _import_target(name: str) -> Optional[type[Backend]]:
    """Import ``backends/<name>`` and register the ``BACKEND`` it defines (None if it defines none)."""
    cls = getattr(importlib.import_module(f"backends.{name}"), "BACKEND", None)
    if isinstance(cls, type) and issubclass(cls, Backend):
        _REGISTERED[name] = cls
        return cls
    return None


def backend_class(name: str) -> type[Backend]:
    """The class of target ``name``, importing ``backends/<name>`` on first use."""
    with _LOCK:
        cls = _REGISTERED.get(name)
        if cls is not None:
            return cls
        if name in _package_names():
            cls = _import_target(name)
            if cls is not None:
                return cls
    raise BackendError("unknown target", subject=repr(name), expected=" or ".join(available_backends()))


def get_backend(name: str, options: Optional[Mapping[str, Any]] = None) -> Backend:
    """Target ``name`` configured with ``options`` (validated)."""
    return backend_class(name)(options)


def available_backends() -> list[str]:
    """Every target that can be used: the packages that define one, and registered classes."""
    with _LOCK:
        for name in _package_names():
            if name not in _REGISTERED:
                _import_target(name)
        return sorted(_REGISTERED)


# -------------------------------------------------------- graph artifacts
GRAPH_FILE = "graph.ir"
WEIGHTS_FILE = "weights.bin"


def save_graph(graph: Graph, directory: Path) -> list[str]:
    """Write a graph as IR text (constants elided) plus its weights blob; returns the files."""
    from ir.printer import print_graph
    from runtime.weights import save_weights
    save_weights(graph, directory, WEIGHTS_FILE)
    (directory / GRAPH_FILE).write_text(print_graph(graph, locations=True) + "\n")
    return [GRAPH_FILE, WEIGHTS_FILE, WEIGHTS_FILE + ".json"]


def load_graph(directory: Path) -> Graph:
    """Read a graph written by ``save_graph``."""
    from ir.parser import parse_graph
    from runtime.weights import load_weights
    path = directory / GRAPH_FILE
    if not path.exists():
        raise BackendError("artifact has no IR file", subject=str(directory), expected=GRAPH_FILE)
    return parse_graph(path.read_text(), weights=load_weights(directory, WEIGHTS_FILE))


__all__ = ["Backend", "Capabilities", "Coverage", "GRAPH_FILE", "OptionSpec", "Support", "THREADS_OPTION",
           "available_backends", "backend_class", "get_backend", "load_graph", "register_backend",
           "save_graph", "unregister_backend", "validate_options"]
