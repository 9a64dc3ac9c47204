"""What the runtime executes: the interface every target's compiled code implements.

The runtime sits below the targets: a ``Module`` drives an ``Executable``
without knowing which target made it.  Targets subclass ``Executable``;
a target's ``load`` reads back what ``save`` wrote (``compiler.load`` asks
the target named by the artifact's manifest, see ``runtime.artifact``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from ir.errors import BackendError


class Executable(abc.ABC):
    """A compiled graph: positional arrays in, positional arrays out."""

    @abc.abstractmethod
    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on inputs ordered like the graph's inputs."""

    @abc.abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write what the target's loader needs into ``directory``; return the file names written."""

    def build_timings(self) -> list[tuple[str, float]]:
        """(step, seconds) of the target's own build steps after the passes (code generation,
        LLVM...), for ``build --time-passes``; none by default."""
        return []

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Run once, returning (node label, seconds) per executed kernel."""
        raise BackendError("this target cannot profile per node")

    def profile_table(self, inputs: Sequence[np.ndarray]) -> Optional[str]:
        """The target's own per-kernel table for ``profile`` (a simulator's cycles, traffic and energy),
        or None: the driver times the kernels (``profile``) and prints its generic table."""
        return None

    def set_threads(self, threads: int) -> None:
        """Run with ``threads`` worker threads from now on (0: one per core)."""
        raise BackendError("this target does not run on worker threads", subject=f"threads={threads}",
                           hint="thread counts apply to targets such as cpu")
