"""Target descriptions: what passes need to know about the hardware.

A ``TargetInfo`` says how wide the vectors are, how many cores and how much
cache there is (for a CPU), or how big the array and its SRAMs are (for a
systolic array).  It is pure data: passes read it to choose layouts, tile
sizes and fusion, and code generators read the ISA, the LLVM triple, the CPU
name and the feature list from it.  Nothing below the target packages probes
the machine, so a build for another machine only needs another ``TargetInfo``
(a target's package says how to describe its host, e.g. ``backends.cpu.host``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any



@dataclass(frozen=True)
class TargetInfo:
    """A compilation target's hardware parameters."""

    name: str
    kind: str = "cpu"               # cpu | gpu | systolic | ref
    isa: str = "generic"            # avx512, avx2, generic (CPU); cuda (GPU)
    vector_bits: int = 128
    cores: int = 1
    l1d_bytes: int = 32 * 1024
    l2_bytes: int = 1024 * 1024
    l3_bytes: int = 8 * 1024 * 1024
    registers: int = 16             # vector registers
    fma_units: int = 1
    cpu_name: str = ""              # LLVM CPU name, e.g. sapphirerapids
    features: tuple[str, ...] = ()  # LLVM feature names enabled, e.g. ("avx512f", "fma")
    triple: str = ""                # LLVM target triple; "" means the host's
    # Systolic arrays: rows x cols of processing elements, SRAM sizes in bytes.
    array_rows: int = 0
    array_cols: int = 0
    sram: dict[str, int] = field(default_factory=dict)
    dataflow: str = ""              # os | ws | is

    @property
    def vector_lanes_f32(self) -> int:
        return max(1, self.vector_bits // 32)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = list(self.features)
        return d
