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
from runtime.llvm_worker import init_llvm


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


ISAS = ("avx512", "avx2", "generic")
# The LLVM features each ISA level needs (what a build for that level may use).
ISA_FEATURES = {
    "generic": ("sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cx16"),
}
ISA_FEATURES["avx2"] = ISA_FEATURES["generic"] + ("avx", "avx2", "fma", "f16c", "bmi", "bmi2", "lzcnt", "movbe")
ISA_FEATURES["avx512"] = ISA_FEATURES["avx2"] + ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd")
# A CPU LLVM knows for a build whose ISA the host lacks (the x86-64 micro-architecture levels).
_LEVEL_CPU = {"avx512": "x86-64-v4", "avx2": "x86-64-v3", "generic": "x86-64-v2"}
# Feature name prefixes that belong to a wider ISA than the key: a build for the key turns them off.
_WIDER = {"avx512": (), "avx2": ("avx512", "amx", "avx10"), "generic": ("avx", "amx", "fma", "f16c")}


@lru_cache(maxsize=None)
def host_features() -> dict[str, bool]:
    """LLVM's feature map of this machine: every feature name LLVM knows, on or off."""
    return dict(init_llvm().get_host_cpu_features())


def isa_of(features: set[str]) -> str:
    """The widest ISA level a feature set covers."""
    if {"avx512f", "avx512bw", "avx512vl"} <= features:
        return "avx512"
    return "avx2" if {"avx2", "fma"} <= features else "generic"


def _narrow(features: set[str], isa: str) -> set[str]:
    """``features`` without everything wider than ``isa``."""
    return {f for f in features if not f.startswith(_WIDER[isa])} if _WIDER[isa] else set(features)


def cpu_target(isa: str = "auto", cpu: str = "", features: tuple[str, ...] = ()) -> TargetInfo:
    """Describe the CPU to generate code for.

    By default that is this machine (its LLVM CPU name, features, caches).
    ``isa`` narrows the host to avx2/generic, or asks for a wider ISA than the
    host has (a build for another machine).  ``cpu`` (an LLVM CPU name such as
    ``skylake-avx512`` or ``znver4``) and ``features`` (LLVM feature names)
    describe another CPU completely.  Only running the result needs a host
    that has the features; building never does.
    """
    if isa != "auto" and isa not in ISAS:
        raise BackendError("unknown ISA", subject=repr(isa), expected=" or ".join(("auto",) + ISAS))
    host = host_features()
    host_enabled = {k for k, v in host.items() if v}
    if features or cpu:
        enabled = set(features) if features else set(ISA_FEATURES[isa if isa != "auto" else "avx2"])
        chosen = isa if isa != "auto" else isa_of(enabled)
        too_wide = sorted(enabled - _narrow(enabled, chosen))
        if too_wide:
            raise BackendError("CPU features wider than the instruction set", subject=", ".join(too_wide),
                               expected=f"features of {chosen} or narrower",
                               hint="add the features the ISA needs or choose a wider --option isa")
        enabled |= set(ISA_FEATURES[chosen])
        cpu_name = cpu or _LEVEL_CPU[chosen]
    else:
        detected = isa_of(host_enabled)
        chosen = detected if isa == "auto" else isa
        if ISAS.index(chosen) >= ISAS.index(detected):  # the host's level or narrower
            enabled = _narrow(host_enabled, chosen) | (set(ISA_FEATURES[chosen]) & host_enabled)
            cpu_name = init_llvm().get_host_cpu_name()
        else:  # wider than the host: a build for another machine
            enabled = set(ISA_FEATURES[chosen])
            cpu_name = _LEVEL_CPU[chosen]
    bits = {"avx512": 512, "avx2": 256, "generic": 128}[chosen]
    return TargetInfo(
        name="cpu", kind="cpu", isa=chosen, vector_bits=bits,
        cores=os.cpu_count() or 1,
        l1d_bytes=_cache_size(1, "Data") or 32 * 1024,
        l2_bytes=_cache_size(2, "Unified") or 1024 * 1024,
        l3_bytes=_cache_size(3, "Unified") or 8 * 1024 * 1024,
        registers=32 if chosen == "avx512" else 16,
        fma_units=2 if chosen == "avx512" else 1,
        cpu_name=cpu_name,
        features=tuple(sorted(enabled)),
        triple=init_llvm().get_process_triple(),
    )


@lru_cache(maxsize=None)
def host_cpu(isa: Optional[str] = None) -> TargetInfo:
    """This machine's CPU (``isa`` narrows it to avx2/generic)."""
    return cpu_target(isa or "auto")


def feature_string(target: TargetInfo) -> str:
    """LLVM's ``+feature,-feature`` text: the target's features on, those of wider ISAs off.

    Features neither listed nor wider keep the CPU's defaults (as clang's
    ``-mcpu`` with ``-mattr`` does), so a list never contradicts what LLVM
    derives from it.
    """
    enabled = set(target.features)
    wider = _WIDER.get(target.isa, ())
    off = {name for name in host_features() if wider and name.startswith(wider)} - enabled
    return ",".join([f"+{name}" for name in sorted(enabled)] + [f"-{name}" for name in sorted(off)])


def missing_on_host(target: TargetInfo) -> list[str]:
    """Features code for ``target`` uses that this machine lacks (empty: it can run here)."""
    host = host_features()
    return sorted(f for f in target.features if f in host and not host[f])
