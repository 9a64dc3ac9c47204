"""JIT-compiled CPU modules: optimize with LLVM at -O3, load in-process, call through ctypes.

A call passes the weights blob, arrays of input and output pointers, the
arena and the thread pool to ``nnc_run``; ctypes releases the GIL for it.
An executable saves as an object file plus the weights blob and a small
JSON description, and loads back without running LLVM's optimizer again.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
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
from runtime.native import ThreadPool, runtime_library

from .host import init_llvm, feature_string, missing_on_host
from .lower import ENTRY, ENTRY_PROFILED, Lowered

OBJECT_FILE = "model.o"
DESCRIPTION = "cpu_module.json"


def target_machine(target: TargetInfo, reloc: str = "pic") -> llvm.TargetMachine:
    """An LLVM target machine for exactly ``target``'s triple, CPU and features (never the host's)."""
    init_llvm()
    t = llvm.Target.from_triple(target.triple or llvm.get_process_triple())
    return t.create_target_machine(cpu=target.cpu_name or "x86-64", features=feature_string(target),
                                   opt=3, reloc=reloc, codemodel="default")


def target_from_json(d: dict[str, Any]) -> TargetInfo:
    """The ``TargetInfo`` an artifact was built for (``TargetInfo.to_json`` read back)."""
    fields = {k: v for k, v in d.items() if k in TargetInfo.__dataclass_fields__}
    fields["features"] = tuple(fields.get("features", ()))
    return TargetInfo(**fields)


def optimize(module_text: str, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    """Parse, verify and optimize (O3) an LLVM module."""
    init_llvm()
    mod = llvm.parse_assembly(module_text)
    mod.triple = tm.triple
    try:
        mod.verify()
    except RuntimeError as exc:
        raise BackendError(f"generated LLVM IR is invalid: {str(exc).splitlines()[0]}") from exc
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


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
                 threads: int, object_code: bytes) -> None:
        self.description = description
        self.weights = weights
        self.target = target
        self.object_code = object_code
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
            self.engine = _engine_from_object(self.object_code, self.target)
            symbols = self.description.get("bundle", {}).get("symbols", {})  # saved objects are renamed
            self._entries = (
                _ENTRY_TYPE(self.engine.get_function_address(symbols.get("entry", ENTRY))),
                _PROFILED_TYPE(self.engine.get_function_address(symbols.get("entry_profiled", ENTRY_PROFILED))))
        return self._entries

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
        if self.object_code is None:
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
        return CpuExecutable(description, weights, target, threads, obj)


def _engine_from_object(obj: bytes, target: TargetInfo) -> llvm.ExecutionEngine:
    runtime_library()  # the runtime's symbols must be loaded before linking
    tm = target_machine(target)
    empty = llvm.parse_assembly("")
    empty.triple = tm.triple
    engine = llvm.create_mcjit_compiler(empty, tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def build_executable(lowered: Lowered, target: TargetInfo, threads: int = 0) -> CpuExecutable:
    """Optimize and JIT a lowered graph."""
    t0 = time.perf_counter()
    tm = target_machine(target)
    mod = optimize(str(lowered.module), tm)
    obj = tm.emit_object(mod)
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
        "llvm_seconds": round(time.perf_counter() - t0, 3),
    }
    return CpuExecutable(description, aligned_buffer(lowered.weights.size, lowered.weights),
                         target, threads, obj)
