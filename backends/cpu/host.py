"""Describing this machine's CPU as a ``TargetInfo`` (the only place that probes the host).

``host_cpu()`` reads LLVM's view of the host (CPU name, features, triple) and
the cache sizes from sysfs.  A build for another x86-64 CPU passes an ISA or a
feature list instead, and nothing else in the cpu target looks at the host.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Optional

from ir.errors import BackendError
from ir.target import TargetInfo


def _cache_size(level: int, kind: str) -> Optional[int]:
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    if not base.exists():
        return None
    for idx in sorted(base.glob("index*")):
        try:
            lvl = int((idx / "level").read_text())
            typ = (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        if lvl == level and typ in (kind, "Unified"):
            mult = {"K": 1024, "M": 1024 * 1024}.get(size[-1], 1)
            return int(size.rstrip("KM")) * mult
    return None


@lru_cache(maxsize=None)
def host_cpu(isa: Optional[str] = None) -> TargetInfo:
    """Describe this machine's CPU (``isa`` forces avx512/avx2/generic)."""
    import llvmlite.binding as llvm
    try:
        llvm.initialize_native_target()
    except Exception:  # noqa: BLE001 - llvmlite >= 0.44 initializes itself
        pass
    features = llvm.get_host_cpu_features()
    enabled = tuple(sorted(k for k, v in features.items() if v))
    has = set(enabled)
    detected = "avx512" if {"avx512f", "avx512bw", "avx512vl"} <= has else \
        "avx2" if {"avx2", "fma"} <= has else "generic"
    chosen = isa or detected
    order = ["generic", "avx2", "avx512"]
    if chosen not in order:
        raise BackendError("unknown ISA", subject=repr(chosen), expected=" or ".join(order))
    if order.index(chosen) > order.index(detected):
        raise BackendError("this CPU cannot run the requested ISA", subject=chosen,
                           found=f"the host supports up to {detected}")
    bits = {"avx512": 512, "avx2": 256, "generic": 128}[chosen]
    return TargetInfo(
        name="cpu", kind="cpu", isa=chosen, vector_bits=bits,
        cores=os.cpu_count() or 1,
        l1d_bytes=_cache_size(1, "Data") or 32 * 1024,
        l2_bytes=_cache_size(2, "Unified") or 1024 * 1024,
        l3_bytes=_cache_size(3, "Unified") or 8 * 1024 * 1024,
        registers=32 if chosen == "avx512" else 16,
        fma_units=2 if chosen == "avx512" else 1,
        cpu_name=llvm.get_host_cpu_name(),
        features=enabled,
    )
