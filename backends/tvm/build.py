"""Scheduling and building the kernels: one TVM library for the whole model.

The distinct PrimFuncs of a lowered graph go into one IRModule, each under
its symbol; ``schedule.py`` schedules them for the device and
``tvm.compile`` builds them together (host code, and device code for GPUs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import tvm

from ir.errors import BackendError

from .devices import Device
from .schedule import cpu_schedule, gpu_schedule


@dataclass
class Built:
    library: Any                       # tvm.runtime.Executable (what export_library writes)
    timings: list[tuple[str, float]] = field(default_factory=list)

    def device_sources(self) -> dict[str, str]:
        """The generated device code by module kind (``{"cuda": "...CUDA C..."}``); empty on the host."""
        out: dict[str, str] = {}
        for sub in (self.library.mod.imports if self.library is not None else []):
            try:
                out[sub.kind] = sub.inspect_source()
            except Exception:  # noqa: BLE001 - a binary-only module has no source to show
                continue
        return out


def build_library(functions: dict[str, Any], device: Device, target: Any,
                  tuned: Optional[dict[str, Any]] = None) -> Built:
    """Schedule and build ``functions`` (symbol -> PrimFunc) for ``target``.

    ``tuned``: functions already scheduled (by MetaSchedule's database), built as they are."""
    if not functions:  # only views and copies (an Identity graph): nothing for TVM to build
        return Built(None)
    tuned = tuned or {}
    mod = tvm.IRModule({sym: f.with_attr("global_symbol", sym) for sym, f in functions.items() if sym not in tuned})
    t0 = time.perf_counter()
    try:
        mod = gpu_schedule(mod, target) if device.gpu else cpu_schedule(mod)
    except Exception as exc:  # noqa: BLE001 - TVM raises its own error types
        raise BackendError(f"scheduling the kernels for {device.name} failed: {_first_line(exc)}") from None
    scheduled = {gv.name_hint: f for gv, f in mod.functions.items()}
    scheduled.update(tuned)
    mod = tvm.IRModule({sym: f.with_attr("global_symbol", sym) for sym, f in scheduled.items()})
    t1 = time.perf_counter()
    try:
        lib = tvm.compile(mod, target=target)
    except Exception as exc:  # noqa: BLE001
        raise BackendError(f"TVM could not build the kernels for {device.name}: {_first_line(exc)}",
                           hint=_unscheduled(mod) if device.gpu else "") from None
    t2 = time.perf_counter()
    return Built(lib, [("tvm schedule", t1 - t0), ("tvm build", t2 - t1)])


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    errs = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errs[-1] if errs else lines[-1] if lines else type(exc).__name__).strip()[:400]


def _unscheduled(mod: tvm.IRModule) -> str:
    """Names of functions no GPU rule bound to threads (the usual cause of a failed GPU build)."""
    names = [gv.name_hint for gv, f in mod.functions.items() if "threadIdx" not in f.script()]
    return ("kernels without a GPU schedule: " + ", ".join(names[:5])) if names else ""
