"""Run-time specialization for targets that need static shapes and static shape values.

ONNX lets a model compute shapes, axes, pads, sizes, k and split sizes at run
time.  Constant ones are folded at compile time.  The rest are handled here:
on each call we look at the input shapes and at the values of the inputs that
decide such shape-like operands, and compile (once, then from a cache) a
version of the graph where those are constants and every shape is static.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from backends.base import Backend, save_graph
from ir.errors import InputError
from ir.graph import Graph, Value
from ir.infer import check_tensor_sizes
from ir.memory import clear_plan
from ir.schedule import clear_schedules
from ir.registry import get_schema
from ir.types import TensorType
from passes.manager import PassContext, PassManager
from runtime.artifact import SPECIALIZATIONS, file_records, verify_files
from runtime.executable import Executable

# Ops whose outputs depend on their input's shape only, not on its values.
_SHAPE_ONLY = {("", "Shape"), ("", "Size")}


def value_deciding_inputs(graph: Graph) -> list[int]:
    """Positions of graph inputs whose *values* flow into a static operand of some op."""
    index = {id(v): i for i, v in enumerate(graph.inputs)}
    found: set[int] = set()
    seen: set[int] = set()
    stack: list[Value] = []
    for node in graph.nodes:
        schema = get_schema(node.op, node.domain)
        for i in schema.static_input_indices():
            v = node.input(i)
            if v is not None and v.const is None:
                stack.append(v)
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if id(v) in index:
            if isinstance(v.type, TensorType):  # a sequence or optional cannot become a constant
                found.add(index[id(v)])
            continue
        p = v.producer
        if p is None or (p.domain, p.op) in _SHAPE_ONLY:
            continue
        stack.extend(x for x in p.inputs if x is not None and x.const is None)
    return sorted(found)


def needs_specialization(graph: Graph) -> bool:
    dynamic = any(not (isinstance(v.type, TensorType) and v.type.is_static)
                  for v in list(graph.inputs) + [o for n in graph.nodes for o in n.outputs])
    return dynamic or bool(value_deciding_inputs(graph))


def specialize(graph: Graph, inputs: Sequence[np.ndarray], value_inputs: Sequence[int]) -> Graph:
    """A copy of ``graph`` with static input shapes and the given inputs turned into constants.

    The inputs stay in the signature (callers keep passing them); their uses
    read the constant instead.  Fold and re-infer afterwards to propagate.
    Schedules and the memory plan of ``graph`` are dropped: they describe its
    generic shapes (the specialized pipeline computes new ones).
    """
    g = graph.clone()
    clear_schedules(g)
    clear_plan(g)
    for v, x in zip(g.inputs, inputs):
        if isinstance(v.type, TensorType) and not isinstance(x, list) and x is not None:
            v.type = v.type.with_shape(tuple(np.shape(x)))
    for i in value_inputs:
        v = g.inputs[i]
        c = g.add_constant(np.asarray(inputs[i]), v.name + "_value", dtype=v.type.dtype)
        for use in list(v.uses):
            g.set_input(use.node, use.index, c)
    from ir.infer import refine_types
    # Input shapes changed: recompute every type from the rules, then keep what they say.
    for node in g.nodes:
        for out in node.outputs:
            if isinstance(out.type, TensorType):
                out.type = out.type.with_shape(None if out.type.shape is None else
                                               tuple(None if isinstance(d, str) else d for d in out.type.shape))
    rejected: list = []
    refine_types(g, rejected)
    if rejected:
        node, exc = rejected[0]
        given = ", ".join(f"{v.name} {tuple(np.shape(x))}" for v, x in zip(g.inputs, inputs)
                          if isinstance(v.type, TensorType) and not isinstance(x, list))
        raise InputError(f"these input shapes do not fit the model ({given})", subject=node.describe(),
                         found=getattr(exc, "message", None) or str(exc))
    # These inputs' shapes or values may blow an intermediate up: refuse before anything allocates.
    check_tensor_sizes(g, InputError)
    return g


def _shape_key(x) -> tuple:
    """A run's input described for the cache: its shape (a sequence: its elements' shapes)."""
    if x is None:
        return ("none",)
    if isinstance(x, list):
        return ("seq",) + tuple(tuple(np.shape(e)) for e in x)
    return tuple(np.shape(x))


class SpecializationStore:
    """Specializations kept on disk in an artifact, so that a new process does not recompile them.

    ``<artifact>/specializations/<digest of the signature>/`` holds what the
    target's executable saved plus ``specialization.json`` (the signature and
    each file's size and sha256, checked before loading).  Folders are written
    under a temporary name and renamed into place, so concurrent processes
    never see half of one.  A folder that cannot be written (read-only
    artifact) is reported once as a warning: the model still runs, compiling
    in each new process.
    """

    INDEX = "specialization.json"

    def __init__(self, root: Path, load: Callable[[Path], Executable]) -> None:
        self.root = Path(root)
        self.load_executable = load
        self._warned = False

    @staticmethod
    def digest(key: tuple) -> str:
        return hashlib.sha256(repr(key).encode()).hexdigest()[:20]

    def load(self, key: tuple) -> Optional[Executable]:
        d = self.root / self.digest(key)
        index = d / self.INDEX
        if not index.is_file():
            return None
        try:
            record = json.loads(index.read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") != repr(key):
            return None
        verify_files(d, record)  # a damaged specialization is an ArtifactError, never a crash
        return self.load_executable(d)

    def save(self, key: tuple, exe: Executable) -> None:
        final = self.root / self.digest(key)
        tmp = self.root / f".tmp-{final.name}-{os.getpid()}-{threading.get_ident()}"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            files = exe.save(tmp)
            (tmp / self.INDEX).write_text(json.dumps({"key": repr(key), "files": file_records(tmp, files)}) + "\n")
            try:
                os.replace(tmp, final)
            except OSError:  # another process stored it first
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if not self._warned:
                warnings.warn(f"cannot keep compiled specializations in {self.root}: {exc.strerror or exc}; "
                              "each new process will compile them again", RuntimeWarning, stacklevel=3)
                self._warned = True


class SpecializingExecutable(Executable):
    """Compiles one executable per distinct (input shapes, deciding values), with an LRU cache.

    Safe to call from several threads: the cache (and compiling into it) is
    guarded by a lock, so each signature compiles once and concurrent calls
    never see the cache mid-update; the runs themselves happen outside it.
    With a ``store`` (a module loaded from an artifact), a signature compiled
    once is kept in the artifact and loaded, not compiled, by later processes.
    """

    def __init__(self, graph: Graph, compile_static: Callable[[Graph], Executable],
                 save_generic: Callable[[Graph, Path], list[str]], threads_capable: bool,
                 capacity: int = 16, store: Optional[SpecializationStore] = None,
                 load_static: Optional[Callable[[Path], Executable]] = None) -> None:
        self.store = store
        self.load_static = load_static
        self.loaded_from_store = 0
        self.graph = graph
        self.threads_capable = threads_capable
        self.threads: Optional[int] = None  # set_threads before a specialization exists
        self.compile_static = compile_static
        self.save_generic = save_generic
        self.value_inputs = value_deciding_inputs(graph)
        self.capacity = capacity
        self.cache: OrderedDict[tuple, Executable] = OrderedDict()
        self.compilations = 0
        self._lock = threading.Lock()

    def key(self, inputs: Sequence[np.ndarray]) -> tuple:
        shapes = tuple(_shape_key(x) for x in inputs)
        values = tuple(np.asarray(inputs[i]).tobytes() for i in self.value_inputs)
        return shapes, values

    def executable_for(self, inputs: Sequence[np.ndarray]) -> Executable:
        k = self.key(inputs)
        with self._lock:
            exe = self.cache.get(k)
            if exe is None:
                exe = self.store.load(k) if self.store is not None else None
                if exe is not None:
                    self.loaded_from_store += 1
                else:
                    exe = self.compile_static(specialize(self.graph, inputs, self.value_inputs))
                    self.compilations += 1
                    if self.store is not None:
                        self.store.save(k, exe)
                if self.threads is not None:
                    exe.set_threads(self.threads)
                self.cache[k] = exe
                if len(self.cache) > self.capacity:
                    self.cache.popitem(last=False)
            else:
                self.cache.move_to_end(k)
            return exe

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.executable_for(inputs).run(inputs)

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        return self.executable_for(inputs).profile(inputs)

    def profile_table(self, inputs: Sequence[np.ndarray]) -> Optional[str]:
        return self.executable_for(inputs).profile_table(inputs)

    def set_threads(self, threads: int) -> None:
        """Every specialization, compiled or to come, runs with ``threads``."""
        if not self.threads_capable:
            super().set_threads(threads)  # the target's own refusal
        with self._lock:
            self.threads = threads
            for exe in self.cache.values():
                exe.set_threads(threads)

    def save(self, directory: Path) -> list[str]:
        """The generic graph (the artifact's files), and every specialization compiled so far beside it."""
        files = self.save_generic(self.graph, directory)
        if self.load_static is not None:
            store = SpecializationStore(Path(directory) / SPECIALIZATIONS, self.load_static)
            with self._lock:
                for k, exe in self.cache.items():
                    store.save(k, exe)
        return files


def make_specializing(backend: Backend, graph: Graph, pipeline: str,
                      directory: Optional[Path] = None) -> SpecializingExecutable:
    """Wrap ``graph`` so each new call signature runs ``pipeline`` on a static copy and compiles it.

    ``directory``: the artifact the graph was loaded from, where compiled
    specializations are kept (``SpecializationStore``).
    """
    def compile_static(g: Graph) -> Executable:
        PassManager(pipeline or []).run(g, PassContext(target=backend.target_info, backend=backend))
        return backend.compile(g)

    store = SpecializationStore(Path(directory) / SPECIALIZATIONS, backend.load) if directory is not None else None
    return SpecializingExecutable(graph, compile_static, save_graph, backend.capabilities.threads,
                                  store=store, load_static=backend.load)
