"""JIT-compiled CPU modules: optimize with LLVM at -O3, load in-process, call through ctypes.

A build compiles each distinct kernel function and the entry module to an
object of its own (``compile_units``): objects come from the on-disk kernel
cache when it has them (``kernel_cache.py``), the rest are compiled in
worker processes when there is enough of them to pay for starting the
processes (``PARALLEL_MIN_BYTES`` of IR), else in this process.  MCJIT links
the objects together; the C bundle links them into one ``model.o``.

A call passes the weights blob, arrays of input and output pointers, the
arena and the thread pool to ``nnc_run``; ctypes releases the GIL for it.
An executable saves as an object file plus the weights blob and a small
JSON description, and loads back without running LLVM's optimizer again.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import llvmlite.binding as llvm
import numpy as np

from runtime.executable import Executable
from ir.target import TargetInfo
from ir.dtypes import DType
from ir.errors import ArtifactError, BackendError
from ir.memory import ALIGNMENT
from runtime import llvm_worker
from runtime.llvm_worker import LLVMError, Machine
from runtime.native import ThreadPool, runtime_library

from .host import init_llvm, feature_string, missing_on_host
from .kernel_cache import KernelCache, kernel_key
from .lower import ENTRY, ENTRY_PROFILED, Lowered

OBJECT_FILE = "model.o"
DESCRIPTION = "cpu_module.json"


OPT_LEVEL = 3
# Below this much IR text to compile, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 300_000


def machine_of(target: TargetInfo, reloc: str = "pic") -> Machine:
    """What ``target``'s code is generated for, as the plain tuple worker processes and cache keys take."""
    init_llvm()
    return (target.triple or llvm.get_process_triple(), target.cpu_name or "x86-64", feature_string(target),
            OPT_LEVEL, reloc)


def target_machine(target: TargetInfo, reloc: str = "pic") -> llvm.TargetMachine:
    """An LLVM target machine for exactly ``target``'s triple, CPU and features (never the host's)."""
    return llvm_worker.new_target_machine(machine_of(target, reloc))


def target_from_json(d: dict[str, Any]) -> TargetInfo:
    """The ``TargetInfo`` an artifact was built for (``TargetInfo.to_json`` read back)."""
    fields = {k: v for k, v in d.items() if k in TargetInfo.__dataclass_fields__}
    fields["features"] = tuple(fields.get("features", ()))
    return TargetInfo(**fields)


def optimize(module_text: str, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    """Parse, verify and optimize (O3) an LLVM module."""
    try:
        return llvm_worker.optimize(module_text, tm, OPT_LEVEL)
    except LLVMError as exc:
        raise BackendError(f"generated LLVM IR is invalid: {exc}") from None


def default_jobs() -> int:
    """Processes for LLVM work: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


_POOL: Optional[ProcessPoolExecutor] = None
_POOL_SIZE = 0


def _pool(workers: int) -> ProcessPoolExecutor:
    """The worker processes (started once per process with 'spawn': they import only llvmlite)."""
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != workers:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        _POOL_SIZE = workers
    return _POOL


def _chunks(items: list[tuple[int, str]], n: int) -> list[list[tuple[int, str]]]:
    """``items`` (index, text) in ``n`` groups of about equal text size (largest first, to the lightest group)."""
    groups: list[list[tuple[int, str]]] = [[] for _ in range(n)]
    sizes = [0] * n
    for item in sorted(items, key=lambda it: -len(it[1])):
        k = sizes.index(min(sizes))
        groups[k].append(item)
        sizes[k] += len(item[1])
    return [g for g in groups if g]


def compile_units(units: list[tuple[str, str]], machine: Machine, cache: Optional[KernelCache] = None,
                  jobs: int = 0, parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> tuple[list[bytes], dict[str, Any]]:
    """Object code of each (name, LLVM IR text), and what it took.

    Objects come from ``cache`` when it has them; the others are compiled,
    in ``jobs`` worker processes (0: one per core) when there are several
    and at least ``parallel_min_bytes`` of text, else in this process, and
    stored in the cache.  Returns (objects in ``units``' order, stats).
    """
    global _POOL
    from tqdm import tqdm

    t0 = time.perf_counter()
    objects: list[Optional[bytes]] = [None] * len(units)
    keys = [kernel_key(text, machine) for _, text in units] if cache is not None else []
    todo: list[tuple[int, str]] = []
    for i, (_, text) in enumerate(units):
        obj = cache.get(keys[i]) if cache is not None else None
        if obj is None:
            todo.append((i, text))
        else:
            objects[i] = obj
    workers = min(jobs or default_jobs(), len(todo))
    if workers > 1 and sum(len(t) for _, t in todo) < parallel_min_bytes:
        workers = 1
    with tqdm(total=len(todo), desc="llvm", unit="kernel", disable=None, leave=False) as bar:
        done = False
        if workers > 1:
            try:
                pool = _pool(workers)
                futures = {pool.submit(llvm_worker.compile_batch, [t for _, t in group], machine): group
                           for group in _chunks(todo, workers * 3)}
                for fut in as_completed(futures):
                    for (i, _), obj in zip(futures[fut], fut.result()):
                        objects[i] = obj
                    bar.update(len(futures[fut]))
                done = True
            except LLVMError as exc:
                raise BackendError(f"generated LLVM IR is invalid: {exc}") from None
            except (BrokenProcessPool, OSError):  # no worker processes here: do it in this process
                if _POOL is not None:
                    _POOL.shutdown(wait=False, cancel_futures=True)
                _POOL = None
                workers = 1
        if not done:
            for i, text in todo:
                if objects[i] is None:
                    try:
                        objects[i] = llvm_worker.compile_ir(text, machine)
                    except LLVMError as exc:
                        raise BackendError(f"generated LLVM IR is invalid: {exc}") from None
                bar.update(1)
    if cache is not None:
        for i, _ in todo:
            cache.put(keys[i], objects[i])
        if todo:
            cache.trim()
    stats = {"units": len(units), "compiled": len(todo), "workers": workers,
             "llvm_seconds": round(time.perf_counter() - t0, 3)}
    if cache is not None:
        stats.update(cache_hits=len(units) - len(todo), cache_misses=len(todo), cache_corrupt=cache.stats.corrupt)
    return objects, stats  # type: ignore[return-value]


def aligned_buffer(nbytes: int, fill: Optional[np.ndarray] = None) -> np.ndarray:
    """A uint8 array of ``nbytes`` whose data pointer is ``ALIGNMENT``-byte aligned."""
    raw = np.zeros(nbytes + ALIGNMENT, np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT
    buf = raw[start:start + nbytes]
    if fill is not None:
        buf[:] = fill
    return buf


_ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_void_p, ctypes.c_void_p)
_PROFILED_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class CpuExecutable(Executable):
    """A compiled graph loaded in this process."""

    def __init__(self, description: dict[str, Any], weights: np.ndarray, target: TargetInfo,
                 threads: int, objects: list[bytes]) -> None:
        self.description = description
        self.weights = weights
        self.target = target
        self.objects = list(objects)  # linked together: the kernels' and the entry points'
        self.arena = aligned_buffer(int(description["arena_bytes"]))
        self.pool = ThreadPool(threads)
        self._lock = threading.Lock()  # the arena is shared: one run at a time
        self.outputs = [(DType.from_short(o["dtype"]).np, tuple(o["shape"])) for o in description["outputs"]]
        self._entries: Optional[tuple[Any, Any]] = None  # linked on first use: building never needs the host

    def _entry_points(self) -> tuple[Any, Any]:
        """Link the object code into this process (once); refuse code this CPU cannot run."""
        if self._entries is None:
            missing = missing_on_host(self.target)
            if missing:
                raise BackendError("this machine's CPU cannot run code built for this target",
                                   subject=f"cpu {self.target.cpu_name} ({self.target.isa})",
                                   found=f"the host lacks {', '.join(missing[:6])}",
                                   hint="run it on such a CPU (e.g. link the C bundle there), or rebuild "
                                        "with --option isa=auto")
            self.engine = _engine_from_objects(self.objects, self.target)
            symbols = self.description.get("bundle", {}).get("symbols", {})  # saved objects are renamed
            self._entries = (
                _ENTRY_TYPE(self.engine.get_function_address(symbols.get("entry", ENTRY))),
                _PROFILED_TYPE(self.engine.get_function_address(symbols.get("entry_profiled", ENTRY_PROFILED))))
        return self._entries

    def build_timings(self) -> list[tuple[str, float]]:
        b = self.description.get("build")
        if not b:
            return []  # loaded from an artifact
        cached = f", {b['cache_hits']} cached" if "cache_hits" in b else ""
        return [(f"codegen ({b['kernels']} kernels, {b['functions']} distinct)", b.get("codegen_seconds", 0.0)),
                (f"llvm ({b['compiled']} compiled{cached}, {b['workers']} proc)", b["llvm_seconds"])]

    # --------------------------------------------------------------- running
    @property
    def threads(self) -> int:
        return self.pool.threads

    def set_threads(self, threads: int) -> None:
        if threads != self.pool.threads:
            self.pool.close()
            self.pool = ThreadPool(threads)

    def _prepare(self, inputs: Sequence[np.ndarray]):
        arrays = [np.ascontiguousarray(x) for x in inputs]
        outs = [np.empty(shape, dtype) for dtype, shape in self.outputs]
        in_ptrs = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
        out_ptrs = (ctypes.c_void_p * max(1, len(outs)))(*[o.ctypes.data for o in outs])
        return arrays, outs, in_ptrs, out_ptrs

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        arrays, outs, in_ptrs, out_ptrs = self._prepare(inputs)
        with self._lock:
            rc = self._entry_points()[0](self.weights.ctypes.data, in_ptrs, out_ptrs, self.arena.ctypes.data, self.pool.handle)
        if rc != 0:
            raise BackendError("compiled model reported an error", found=f"code {rc}")
        return outs

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        arrays, outs, in_ptrs, out_ptrs = self._prepare(inputs)
        labels = self.description["kernels"]
        times = np.zeros(max(1, len(labels)), np.int64)
        with self._lock:
            self._entry_points()[1](self.weights.ctypes.data, in_ptrs, out_ptrs, self.arena.ctypes.data,
                               self.pool.handle, times.ctypes.data)
        return [(label, ns * 1e-9) for label, ns in zip(labels, times.tolist())]

    # ---------------------------------------------------------- save / load
    def save(self, directory: Path) -> list[str]:
        if isinstance(self.weights, np.memmap) and Path(self.weights.filename).resolve().parent == \
                Path(directory).resolve():
            self.weights = aligned_buffer(self.weights.size, self.weights)  # we are about to rewrite that file
        if not self.objects:
            raise ArtifactError("this executable has no object code to save")
        from .bundle import write_bundle
        # The artifact is the C bundle (object, static library, header, weights); loading reads
        # the same renamed object back.
        options = self.description.get("bundle_options", {})
        bundle = write_bundle(self, directory, str(options.get("name", "model")),
                              c_array=bool(options.get("c_array", False)))
        description = dict(self.description, bundle=bundle.to_json())
        (directory / DESCRIPTION).write_text(json.dumps(description, indent=1) + "\n")
        return [DESCRIPTION, *bundle.files.values()]

    @staticmethod
    def load(directory: Path, threads: int = 0) -> CpuExecutable:
        if not (directory / DESCRIPTION).exists():
            raise ArtifactError("cpu artifact is incomplete", subject=str(directory), expected=DESCRIPTION)
        description = json.loads((directory / DESCRIPTION).read_text())
        files = description.get("bundle", {}).get("files", {"object": OBJECT_FILE, "weights": "weights.bin"})
        for name in (files["object"], files["weights"]):
            if not (directory / name).exists():
                raise ArtifactError("cpu artifact is incomplete", subject=str(directory), expected=name)
        if "target" not in description:
            raise ArtifactError("cpu artifact does not say which CPU it was built for", subject=str(directory),
                                hint="rebuild it with this version of the compiler")
        target = target_from_json(description["target"])
        obj = (directory / files["object"]).read_bytes()
        path = directory / files["weights"]
        # Memory-mapped: loading costs nothing, pages come in on first use (mmap is page-aligned).
        weights = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
        return CpuExecutable(description, weights, target, threads, [obj])


def _engine_from_objects(objects: list[bytes], target: TargetInfo) -> llvm.ExecutionEngine:
    runtime_library()  # the runtime's symbols must be loaded before linking
    tm = llvm_worker.new_target_machine(machine_of(target))  # the engine owns it
    empty = llvm.parse_assembly("")
    empty.triple = tm.triple
    engine = llvm.create_mcjit_compiler(empty, tm)
    for obj in objects:
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def build_executable(lowered: Lowered, target: TargetInfo, threads: int = 0,
                     cache: Optional[KernelCache] = None, jobs: int = 0,
                     parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> CpuExecutable:
    """Compile a lowered graph's modules (through ``cache`` when given) and wrap them for running.

    The executable's ``description["build"]`` tells what the build took:
    kernel calls and distinct functions, cache hits and misses, worker
    processes, LLVM seconds.
    """
    objects, stats = compile_units(lowered.units(), machine_of(target), cache, jobs, parallel_min_bytes)
    objects += list(lowered.precompiled.values())
    if cache is not None:
        stats["cache_hits"] += len(lowered.precompiled)
    stats["units"] += len(lowered.precompiled)
    stats["codegen_skipped"] = sum(k.name in lowered.precompiled for k in lowered.kernels)
    description = {
        "isa": target.isa,
        "target": target.to_json(),
        "arena_bytes": lowered.arena_bytes,
        "kernels": [k.label for k in lowered.kernels],
        "tasks": [k.n_tasks for k in lowered.kernels],
        "inputs": [{"name": v.name, "dtype": v.type.dtype.short, "shape": list(v.type.shape)}
                   for v in lowered.inputs],
        "outputs": [{"name": v.name, "dtype": v.type.dtype.short, "shape": list(v.type.shape)}
                    for v in lowered.outputs],
        "weights": lowered.weights_index,
        "llvm_seconds": stats["llvm_seconds"],
        "build": dict(stats, kernels=len(lowered.kernels),
                      functions=len(lowered.functions) + len(lowered.precompiled)),
    }
    return CpuExecutable(description, aligned_buffer(lowered.weights.size, lowered.weights),
                         target, threads, objects)
