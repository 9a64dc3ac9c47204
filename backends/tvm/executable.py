"""Running a built model: our kernel order over our memory plan, on one device.

At load the weights go to the device once (one buffer), the arena is one
device buffer, inputs and outputs have one device buffer each, and every
kernel argument is a view made once (``dlview``).  A call copies the inputs
in, calls the kernels in order, and copies the outputs out.

The artifact: ``kernels.so`` (``export_library``), ``program.json`` (the
calls and where each argument lives), ``weights.bin``, and for GPU builds the
generated device source (``kernels.cu`` for CUDA), which the manifest lists
with sizes and digests like every other file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import tvm

from ir.dtypes import DType
from ir.errors import BackendError
from runtime.executable import Executable

from .devices import Device, device as device_named, runtime_device
from .dlview import Views
from .program import Program, Slot

LIBRARY = "kernels.so"
PROGRAM = "program.json"
WEIGHTS = "weights.bin"
SOURCE_FILES = {"cuda": "kernels.cu", "opencl": "kernels.cl"}


# TVM sizes its CPU thread pool once, when first used, from TVM_NUM_THREADS or else half the
# cores (it assumes hyper-threading: one thread on this 2-core machine); later requests can only
# use fewer.  So the pool is made as large as the machine before TVM first runs anything (a
# value the user set wins), and ``host_threads`` picks how many of its threads run.  Its idle
# workers spin and are pinned to cores by default, which on a shared machine turns any other
# load into a 5-10x slowdown; they sleep instead, and float.
os.environ.setdefault("TVM_NUM_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "0")
os.environ.setdefault("TVM_BIND_THREADS", "0")


def host_threads(threads: int) -> None:
    """Run host kernels on ``threads`` of TVM's pool (0: one per core); an error if it has fewer."""
    n = threads or os.cpu_count() or 1
    tvm.get_global_func("runtime.config_threadpool")(0, n)
    have = int(tvm.runtime.num_threads())
    if threads and have != n:  # 0 means as many as the pool has
        raise BackendError("TVM's thread pool cannot run that many threads", subject=f"threads={threads}",
                           expected=f"at most {have}",
                           hint="TVM sized its pool before this target loaded; set TVM_NUM_THREADS before starting")


class TvmExecutable(Executable):
    def __init__(self, library: Any, program: Program, weights: np.ndarray, device: Device,
                 description: dict[str, Any], threads: int = 0, sources: Optional[dict[str, str]] = None,
                 timings: Optional[list[tuple[str, float]]] = None) -> None:
        self.library = library           # tvm.runtime.Executable or Module
        self.program = program
        self.weights = weights
        self.device = device
        self.description = description
        self.sources = sources or {}
        self._timings = list(timings or [])
        self.threads = threads
        self._ready = False

    # ------------------------------------------------------------ device state
    def _module(self) -> Any:
        return self.library  # tvm.compile's Executable and a loaded Module both index by symbol

    def _prepare(self) -> None:
        """Upload weights, allocate the arena and I/O buffers, and make every argument view (once)."""
        if self._ready:
            return
        if not self.device.pointer_views:
            raise BackendError(f"running {self.device.name} builds is not supported: its buffers are opaque "
                               "handles, so the arena cannot be viewed by offset", subject=f"device={self.device.name}",
                               hint="the artifact holds the generated code; run device=cuda or llvm builds")
        dev = runtime_device(self.device)
        if self.device.kind == "llvm":
            host_threads(self.threads)
        p = self.program
        mod = self._module()
        weights = tvm.runtime.empty((max(1, p.weights_bytes),), "uint8", dev)
        if p.weights_bytes:
            weights.copyfrom(self.weights)
        arena = tvm.runtime.empty((max(1, p.arena_bytes),), "uint8", dev)
        spaces = {"weights": Views(weights, self.device.dl_type), "arena": Views(arena, self.device.dl_type)}
        io_in = [self._io(s, dev) for s in p.inputs]
        io_out = [self._io(s, dev) for s in p.outputs]

        def view(s: Slot) -> Any:
            if s.space == "input":
                return io_in[s.index][1].view(0, s.shape, s.dtype, s.nbytes)
            if s.space == "output":
                return io_out[s.index][1].view(0, s.shape, s.dtype, s.nbytes)
            return spaces[s.space].view(s.offset, s.shape, s.dtype, s.nbytes)
        self._calls = []
        funcs: dict[str, Any] = {}
        for call in p.calls:
            if call.symbol not in funcs:
                funcs[call.symbol] = mod[call.symbol]
            self._calls.append((funcs[call.symbol], [view(a) for a in call.args]))
        self._inputs = [view(s) for s in p.inputs]
        self._outputs = [view(s) for s in p.outputs]
        self._copies = [(view(a), view(b)) for a, b in p.copies]
        self._keep = (weights, arena, spaces, io_in, io_out)
        self._dev = dev
        self._ready = True

    @staticmethod
    def _io(s: Slot, dev: Any) -> tuple[Any, Views]:
        buf = tvm.runtime.empty((max(1, s.nbytes),), "uint8", dev)
        return buf, Views(buf, buf.device.dlpack_device_type())

    # ------------------------------------------------------------------ running
    def _feed(self, inputs: Sequence[np.ndarray]) -> None:
        p = self.program
        if len(inputs) != len(p.inputs):
            raise BackendError("wrong number of inputs", expected=str(len(p.inputs)), found=str(len(inputs)))
        for t, x, s in zip(self._inputs, inputs, p.inputs):
            arr = np.asarray(x)  # (ascontiguousarray would make a 0-d array 1-d)
            if not arr.flags.c_contiguous:
                arr = arr.copy(order="C")
            if tuple(arr.shape) != s.shape:
                raise BackendError("input shape differs from the compiled one", expected=str(s.shape),
                                   found=str(tuple(arr.shape)))
            if s.nbytes:
                t.copyfrom(arr.astype(np.bool_ if s.dtype == "bool" else s.dtype, copy=False))

    def _results(self) -> list[np.ndarray]:
        for src, dst in self._copies:
            src.copyto(dst)
        outs = [t.numpy() if s.nbytes else np.zeros(s.shape, s.dtype)
                for t, s in zip(self._outputs, self.program.outputs)]
        # narrow integers are held as their byte-sized values: hand back the model's type
        return [o.astype(DType[s.elem].np) if s.elem else o for o, s in zip(outs, self.program.outputs)]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._prepare()
        self._feed(inputs)
        for f, args in self._calls:
            f(*args)
        return self._results()

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Seconds per kernel call, measured by TVM's time evaluator: device events on CUDA (the
        kernel's time on the GPU, without launch overhead or host synchronization), the host clock on
        the CPU.  The evaluator calls each kernel once untimed first, so a kernel whose output is also
        its input (an in-place step of the plan) leaves other values in the arena than a run does;
        the next ``run`` starts afresh from its inputs."""
        self._prepare()
        self._feed(inputs)
        self._dev.sync()
        out = []
        for (_, args), call in zip(self._calls, self.program.calls):
            seconds = self._evaluator(call.symbol)(*args).mean
            out.append((call.label, float(seconds)))
        self._results()
        return out

    def _evaluator(self, symbol: str) -> Any:
        evaluators = self.__dict__.setdefault("_evaluators", {})
        if symbol not in evaluators:
            mod = getattr(self.library, "mod", self.library)  # tvm.compile's Executable holds the Module
            evaluators[symbol] = mod.time_evaluator(symbol, self._dev, number=1, repeat=1)
        return evaluators[symbol]

    def set_threads(self, threads: int) -> None:
        if self.device.kind != "llvm":
            raise BackendError("thread counts apply to device=llvm builds only", subject=f"threads={threads}",
                               hint=f"a {self.device.name} build runs its kernels on the device")
        self.threads = threads
        host_threads(threads)

    def build_timings(self) -> list[tuple[str, float]]:
        return list(self._timings)

    # ---------------------------------------------------------------- artifact
    def save(self, directory: Path) -> list[str]:
        d = Path(directory)
        files = [WEIGHTS, PROGRAM]
        if self.library is not None:  # None: a graph of views and copies only
            self.library.export_library(str(d / LIBRARY))
            files.append(LIBRARY)
        (d / WEIGHTS).write_bytes(self.weights.tobytes())
        sources = {}
        for kind, text in self.sources.items():
            name = SOURCE_FILES.get(kind)
            if name:
                (d / name).write_text(text)
                files.append(name)
                sources[kind] = name
        meta = {"device": self.device.name, "program": self.program.to_json(), "sources": sources,
                "description": self.description}
        (d / PROGRAM).write_text(json.dumps(meta, indent=1, default=str) + "\n")
        return files

    @classmethod
    def load(cls, directory: Path, threads: int = 0) -> TvmExecutable:
        d = Path(directory)
        try:
            meta = json.loads((d / PROGRAM).read_text())
            program = Program.from_json(meta["program"])
            dev = device_named(meta["device"])
        except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise BackendError(f"the tvm artifact's {PROGRAM} is unreadable: {exc}", subject=str(d)) from None
        weights = np.fromfile(d / WEIGHTS, dtype=np.uint8)
        if weights.nbytes != program.weights_bytes:
            raise BackendError("the weights file does not match the program", subject=str(d / WEIGHTS),
                               expected=f"{program.weights_bytes} bytes", found=f"{weights.nbytes} bytes")
        if dev.kind != "llvm":
            runtime_device(dev)  # a clear error before TVM's loader complains about a missing runtime
        if not program.calls:
            library = None
        else:
            library = cls._load_library(d / LIBRARY)
        sources = {k: (d / name).read_text() for k, name in meta.get("sources", {}).items() if (d / name).is_file()}
        return cls(library, program, weights, dev, meta.get("description", {}), threads, sources)

    @staticmethod
    def _load_library(path: Path) -> Any:
        try:
            return tvm.runtime.load_module(str(path))
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"TVM could not load the kernel library: {str(exc).splitlines()[-1][:300]}",
                               subject=str(path)) from None
