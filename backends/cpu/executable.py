"""JIT-compiled CPU modules: optimize with LLVM at -O3, load in-process, call through ctypes.

A build compiles each distinct kernel function and the entry module to an
object of its own (``UnitCompiler``): objects come from the on-disk kernel
cache when it has them (``kernel_cache.py``), the rest are compiled in
worker processes, while the lowering is still generating the next kernels,
when there is enough of them to pay for starting the processes
(``PARALLEL_MIN_BYTES`` of IR), else in this process.  MCJIT links
the objects together; the C bundle links them into one ``model.o``.

A call passes the weights blob, arrays of input and output pointers, the
arena and the thread pool to ``nnc_run``; ctypes releases the GIL for it.
An executable saves as an object file plus the weights blob and a small
JSON description, and loads back without running LLVM's optimizer again.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import llvmlite.binding as llvm
import numpy as np

from runtime.executable import Executable
from ir.target import TargetInfo
from ir.dtypes import DType
from ir.batch import BatchSignature
from ir.errors import ArtifactError, BackendError, InputError
from ir.memory import ALIGNMENT, aligned_buffer
from runtime import llvm_worker
from runtime.llvm_worker import LLVMError, Machine, init_llvm
from runtime.native import ThreadPool, runtime_library

from .host import feature_string, missing_on_host
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


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """While worker processes start: hide where ``__main__`` came from, so they do not import it.

    A 'spawn' child imports the parent's main module before it runs anything;
    for ``python -m compiler`` that is the whole compiler (onnx, NumPy's extra
    dtypes...): a second of CPU per worker, taken from code generation while
    it runs.  The workers need ``runtime.llvm_worker`` only.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__["__spec__"] = None
            main.__dict__.pop("__file__", None)
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


def _pool(workers: int) -> ProcessPoolExecutor:
    """The worker processes (started once per process with 'spawn': they import only llvmlite)."""
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != workers:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        _POOL_SIZE = workers
    return _POOL


class UnitCompiler:
    """Compiles modules (name, LLVM IR text) to objects as they are handed over, through the cache.

    ``add`` takes each module as soon as it is generated: a cached object is
    taken at once; the others wait until at least ``parallel_min_bytes`` of
    text is waiting, then go to ``jobs`` worker processes (0: one per core),
    each as it comes from then on, so that LLVM runs while the rest of the
    model is still being generated.  ``finish`` waits for the workers, or
    compiles in this process what never reached that size (a small model),
    stores the new objects in the cache and returns the stats.
    """

    def __init__(self, machine: Machine, cache: Optional[KernelCache] = None, jobs: int = 0,
                 parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> None:
        self.machine = machine
        self.cache = cache
        self.max_workers = jobs or default_jobs()
        self.parallel_min_bytes = parallel_min_bytes
        self.objects: dict[str, bytes] = {}
        self.names: list[str] = []
        self.misses: dict[str, tuple[str, Optional[str]]] = {}  # name -> (text, cache key)
        self._waiting: list[str] = []
        self._waiting_bytes = 0
        self._futures: dict[Any, list[str]] = {}
        self._pool: Optional[ProcessPoolExecutor] = None
        self.seconds = 0.0

    def add(self, name: str, text: str) -> None:
        t0 = time.perf_counter()
        self.names.append(name)
        key = kernel_key(text, self.machine) if self.cache is not None else None
        obj = self.cache.get(key) if key is not None else None
        if obj is not None:
            self.objects[name] = obj
        else:
            self.misses[name] = (text, key)
            self._waiting.append(name)
            self._waiting_bytes += len(text)
            # While this process is still generating kernels it uses a core itself: keep at most
            # one fewer worker busy than there are, so that generating and compiling do not fight.
            if self.max_workers > 1 and (self._futures or self._waiting_bytes >= self.parallel_min_bytes):
                busy = sum(1 for f in self._futures if not f.done())
                if busy < max(1, self.max_workers - 1):
                    self._submit(self._waiting, spread=False)
                    self._waiting = []
        self.seconds += time.perf_counter() - t0

    def _submit(self, names: list[str], spread: bool = True) -> None:
        """Hand ``names`` to the workers: split over all of them (``spread``), or as one batch."""
        if not names:
            return
        try:
            if self._pool is None:
                self._pool = _pool(self.max_workers)
            per = max(1, -(-len(names) // self.max_workers)) if spread else len(names)
            for i in range(0, len(names), per):
                group = names[i:i + per]
                with _main_not_reimported():  # workers start on demand, inside submit
                    fut = self._pool.submit(llvm_worker.compile_batch, [self.misses[n][0] for n in group],
                                            self.machine)
                self._futures[fut] = group
        except (BrokenProcessPool, OSError, RuntimeError):
            self._broken()

    def _broken(self) -> None:
        """No worker processes to be had: what they have not done is done in this process."""
        global _POOL
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = None
        self.max_workers = 1
        self._futures = {}

    def finish(self) -> dict[str, Any]:
        from tqdm import tqdm

        t0 = time.perf_counter()
        if self._futures and self._waiting:
            self._submit(self._waiting)
        self._waiting = []
        workers = min(self.max_workers, len(self.misses)) if self._futures else min(1, len(self.misses))
        with tqdm(total=len(self.misses), desc="llvm", unit="kernel", disable=None, leave=False) as bar:
            bar.update(sum(n in self.objects for n in self.misses))
            try:
                for fut in as_completed(list(self._futures)):
                    for name, obj in zip(self._futures[fut], fut.result()):
                        self.objects[name] = obj
                    bar.update(len(self._futures[fut]))
            except LLVMError as exc:
                raise BackendError(f"generated LLVM IR is invalid: {exc}") from None
            except (BrokenProcessPool, OSError):
                self._broken()
                workers = 1
            for name, (text, _) in self.misses.items():
                if name not in self.objects:
                    try:
                        self.objects[name] = llvm_worker.compile_ir(text, self.machine)
                    except LLVMError as exc:
                        raise BackendError(f"generated LLVM IR is invalid: {exc}") from None
                    bar.update(1)
        self._futures = {}
        if self.cache is not None:
            for name, (_, key) in self.misses.items():
                self.cache.put(key, self.objects[name])
            if self.misses:
                self.cache.trim()
        self.seconds += time.perf_counter() - t0
        stats = {"units": len(self.names), "compiled": len(self.misses), "workers": workers,
                 "llvm_seconds": round(self.seconds, 3)}
        if self.cache is not None:
            stats.update(cache_hits=len(self.names) - len(self.misses), cache_misses=len(self.misses),
                         cache_corrupt=self.cache.stats.corrupt)
        return stats

    def ordered(self) -> list[bytes]:
        """The objects in the order the modules were added."""
        return [self.objects[n] for n in self.names]


def compile_units(units: list[tuple[str, str]], machine: Machine, cache: Optional[KernelCache] = None,
                  jobs: int = 0, parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> tuple[list[bytes], dict[str, Any]]:
    """Object code of each (name, LLVM IR text), in order, and what it took (see ``UnitCompiler``)."""
    uc = UnitCompiler(machine, cache, jobs, parallel_min_bytes)
    for name, text in units:
        uc.add(name, text)
    stats = uc.finish()
    return uc.ordered(), stats


def _address(a: np.ndarray) -> int:
    """The address of an array's first byte (cheaper than ``a.ctypes.data``)."""
    return a.__array_interface__["data"][0]


_ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_PROFILED_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)


class CpuExecutable(Executable):
    """A compiled graph loaded in this process.

    A graph compiled for one sample of a batch (``description["batch"]``)
    takes inputs of any batch size: the batch is their leading dimension,
    the outputs get it too, and the arena grows to hold that many samples.
    """

    def __init__(self, description: dict[str, Any], weights: np.ndarray, target: TargetInfo,
                 threads: int, objects: list[bytes]) -> None:
        self.description = description
        self.weights = weights
        self.target = target
        self.objects = list(objects)  # linked together: the kernels' and the entry points'
        self.batch = BatchSignature.from_json(description["batch"]) if description.get("batch") else None
        self.arena_per_sample = int(description["arena_bytes"])
        self.arena = aligned_buffer(self.arena_per_sample)
        self.pool = ThreadPool(threads)
        self._lock = threading.Lock()  # the arena is shared: one run at a time
        self.outputs = [(DType.from_short(o["dtype"]).np, tuple(o["shape"])) for o in description["outputs"]]
        self.input_shapes = [tuple(i["shape"]) for i in description["inputs"]]
        self._entries: Optional[tuple[Any, Any]] = None  # linked on first use: building never needs the host
        self._addresses: Optional[tuple[np.ndarray, np.ndarray, int, int]] = None  # (see _buffers)
        self._tables: Optional[tuple[Any, Any]] = None  # (see _pointers)

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

    def batch_of(self, arrays: Sequence[np.ndarray]) -> int:
        """The batch the inputs carry (1 for an unbatched graph); an InputError if they disagree."""
        if self.batch is None:
            return 1
        sizes = {a.shape[0] if a.ndim else None for a, b in zip(arrays, self.batch.inputs) if b}
        if len(sizes) != 1 or None in sizes:
            raise InputError(f"the batched inputs disagree on the batch size ({self.batch.symbol!r})",
                             found=", ".join(str(s) for s in sorted(sizes, key=str)))
        batch = sizes.pop()
        for a, b, shape in zip(arrays, self.batch.inputs, self.input_shapes):
            want = (batch,) + shape[1:] if b else shape
            if tuple(a.shape) != want:
                raise InputError("input shape does not match the compiled model", expected=str(want),
                                 found=str(tuple(a.shape)))
        if batch < 1:
            raise InputError("the batch must hold at least one sample", found=f"{self.batch.symbol}={batch}")
        return batch

    def _prepare(self, inputs: Sequence[np.ndarray]):
        arrays = [np.ascontiguousarray(x) for x in inputs]
        batch = self.batch_of(arrays)
        if self.batch is None:
            outs = [np.empty(shape, dtype) for dtype, shape in self.outputs]
        else:
            outs = [np.empty((batch,) + shape[1:] if self.batch.outputs[k] else shape, dtype)
                    for k, (dtype, shape) in enumerate(self.outputs)]
        return arrays, outs, batch

    def _pointers(self, arrays: list[np.ndarray], outs: list[np.ndarray]) -> tuple[Any, Any]:
        """The input and output pointer tables of one call, reused between calls; under the lock."""
        if self._tables is None or len(self._tables[0]) < max(1, len(arrays)):
            self._tables = ((ctypes.c_void_p * max(1, len(arrays)))(),
                            (ctypes.c_void_p * max(1, len(self.outputs)))())
        in_ptrs, out_ptrs = self._tables
        for i, a in enumerate(arrays):
            in_ptrs[i] = _address(a)
        for i, o in enumerate(outs):
            out_ptrs[i] = _address(o)
        return in_ptrs, out_ptrs

    def _buffers(self, batch: int) -> tuple[int, int]:
        """Addresses of the weights and of an arena for ``batch`` samples; under the lock.

        Cached with the arrays they belong to: ``ndarray.ctypes.data`` costs about a
        microsecond per call, a tenth of a small model's whole run.
        """
        arena = self._arena_for(batch)
        cached = self._addresses
        if cached is None or cached[0] is not self.weights or cached[1] is not arena:
            cached = self._addresses = (self.weights, arena, _address(self.weights), _address(arena))
        return cached[2], cached[3]

    def _arena_for(self, batch: int) -> np.ndarray:
        """An arena for ``batch`` samples (kept: the largest batch seen so far); under the lock."""
        need = self.arena_per_sample * batch
        if self.arena.size < need:
            self.arena = aligned_buffer(need)
        return self.arena

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        arrays, outs, batch = self._prepare(inputs)
        with self._lock:
            weights, arena = self._buffers(batch)
            in_ptrs, out_ptrs = self._pointers(arrays, outs)
            rc = self._entry_points()[0](weights, in_ptrs, out_ptrs, arena, self.pool.handle, batch)
        if rc != 0:
            raise BackendError("compiled model reported an error", found=f"code {rc}")
        return outs

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        arrays, outs, batch = self._prepare(inputs)
        labels = self.description["kernels"]
        times = np.zeros(max(1, len(labels)), np.int64)
        with self._lock:
            weights, arena = self._buffers(batch)
            in_ptrs, out_ptrs = self._pointers(arrays, outs)
            rc = self._entry_points()[1](weights, in_ptrs, out_ptrs, arena, self.pool.handle, batch,
                                         times.ctypes.data)
        if rc != 0:
            raise BackendError("compiled model reported an error", found=f"code {rc}")
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
        from .bundle import read_parts
        if "library" not in files or not (directory / files["library"]).is_file():
            raise ArtifactError("cpu artifact is incomplete", subject=str(directory),
                                expected=files.get("library", "libmodel.a"), hint="rebuild the artifact")
        objects = read_parts(directory / files["library"], description.get("bundle", {}).get("name", "model"))
        path = directory / files["weights"]
        # Memory-mapped: loading costs nothing, pages come in on first use (mmap is page-aligned).
        weights = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
        return CpuExecutable(description, weights, target, threads, objects)


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
                     parallel_min_bytes: int = PARALLEL_MIN_BYTES,
                     compiler: Optional[UnitCompiler] = None) -> CpuExecutable:
    """Compile a lowered graph's modules (through ``cache`` when given) and wrap them for running.

    ``compiler``: the ``UnitCompiler`` the lowering already handed its kernel
    functions to (``lower(..., sink=compiler.add)``); only the entry points are left.

    The executable's ``description["build"]`` tells what the build took:
    kernel calls and distinct functions, cache hits and misses, worker
    processes, LLVM seconds.
    """
    if compiler is None:
        compiler = UnitCompiler(machine_of(target), cache, jobs, parallel_min_bytes)
        for name, text in lowered.functions.items():
            compiler.add(name, text)
    compiler.add("entry", str(lowered.module))
    stats = compiler.finish()
    objects = compiler.ordered()
    objects += list(lowered.precompiled.values())
    if "cache_hits" in stats:
        stats["cache_hits"] += len(lowered.precompiled)
    stats["units"] += len(lowered.precompiled)
    stats["codegen_skipped"] = sum(k.name in lowered.precompiled for k in lowered.kernels)
    description = {
        "isa": target.isa,
        "target": target.to_json(),
        "arena_bytes": lowered.arena_bytes,
        "batch": lowered.batch.to_json() if lowered.batch is not None else None,
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
    weights = lowered.weights
    if weights.size and weights.ctypes.data % ALIGNMENT:
        weights = aligned_buffer(weights.size, weights)
    return CpuExecutable(description, weights, target, threads, objects)
