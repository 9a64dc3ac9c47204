"""The devices the tvm target generates code for: TVM target descriptions and run-time devices.

Targets are JSON-style dicts (TVM 0.27 reads strings as JSON; dicts avoid the
quoting).  ``pointer_views`` says whether tensors in the arena can be plain
pointers into one device allocation (CUDA, ROCm, host memory); OpenCL,
Vulkan and Metal buffers are opaque handles, so those devices build but do
not run through one arena here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import tvm

from ir.errors import BackendError

# DLPack device type codes (dlpack.h).
_DL_CPU, _DL_CUDA, _DL_OPENCL, _DL_ROCM = 1, 2, 4, 10

DEFAULT_CUDA_ARCH = "sm_80"


@dataclass(frozen=True)
class Device:
    name: str
    kind: str            # TVM target kind
    dl_type: int
    gpu: bool            # scheduled with DLight's GPU rules
    pointer_views: bool  # arena views are pointer offsets (the executable can run it)
    builds_here: str = ""  # why TVM 0.27 cannot generate its code here ("" when it can)


DEVICES: dict[str, Device] = {
    "cuda": Device("cuda", "cuda", _DL_CUDA, True, True),
    "llvm": Device("llvm", "llvm", _DL_CPU, False, True),
    "opencl": Device("opencl", "opencl", _DL_OPENCL, True, False),
    "rocm": Device("rocm", "rocm", _DL_ROCM, True, True, "needs a ROCm installation (ld.lld, device libraries)"),
    "vulkan": Device("vulkan", "vulkan", 7, True, False, "this TVM build has no SPIR-V code generator "
                                                         "(target.build.vulkan)"),
    "metal": Device("metal", "metal", 8, True, False, "TVM 0.27's Metal code generator crashes off macOS"),
}


def device(name: str) -> Device:
    d = DEVICES.get(name)
    if d is None:
        raise BackendError("unknown tvm device", subject=f"--option device={name}", expected=" or ".join(DEVICES))
    return d


def gpu_present() -> bool:
    """Whether this process can run CUDA kernels (a driver and a device)."""
    try:
        return bool(tvm.cuda(0).exist)
    except Exception:  # noqa: BLE001 - no driver library at all
        return False


def cuda_arch(option: str) -> str:
    """``sm_XY``: the option's, else the present GPU's, else ``DEFAULT_CUDA_ARCH``."""
    if option and option != "auto":
        return option
    if gpu_present():
        return "sm_" + tvm.cuda(0).compute_version.replace(".", "")
    return DEFAULT_CUDA_ARCH


def target_of(dev: Device, arch: str = "auto", cpu: str = "") -> Any:
    """The TVM target (with an llvm host for device targets)."""
    if dev.builds_here:
        raise BackendError(f"the tvm target cannot generate {dev.name} code here: {dev.builds_here}",
                           subject=f"--option device={dev.name}", hint="use device=cuda, opencl or llvm")
    host = {"kind": "llvm", "mcpu": cpu or tvm.target.codegen.llvm_get_system_cpu()}
    if dev.kind == "llvm":  # MetaSchedule's CPU rules read num-cores
        return tvm.target.Target({**host, "num-cores": os.cpu_count() or 1})
    spec: dict[str, Any] = {"kind": dev.kind}
    if dev.kind == "cuda":
        spec["arch"] = cuda_arch(arch)
        if not gpu_present():  # what TVM would otherwise ask the (absent) device
            spec["max_shared_memory_per_block"] = 49152
    return tvm.target.Target(spec, host=host)


def runtime_device(dev: Device) -> Any:
    """The tvm.runtime.Device to run on; BackendError when it is not present."""
    d = tvm.device(dev.kind if dev.kind != "llvm" else "cpu", 0)
    if not d.exist:
        raise BackendError(f"no {dev.name} device is present to run on", subject=f"device={dev.name}",
                           hint="the artifact still holds the generated code; run it on a machine with one, "
                                "or build with --option device=llvm to run on this CPU")
    return d
