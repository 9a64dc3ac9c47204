"""What target-independent passes may ask the target they compile for.

Passes sit below the targets, so they never import one: the driver puts the
target in ``PassContext.backend``, and passes talk to it through these
protocols (``backends.base.Backend`` implements ``PassTarget``).  A test or
a tool can hand passes any object that has these methods.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

from ir.graph import Node
from ir.schedule import Schedule
from ir.target import TargetInfo


class Scheduler(Protocol):
    """A target's schedule rules: its kernel templates, cost models and candidate spaces."""

    def schedule(self, node: Node, target: TargetInfo) -> Optional[Schedule]:
        """The cost model's best schedule for kernel ``node`` (None: this kernel needs none)."""

    def candidates(self, node: Node, target: TargetInfo, limit: int) -> list[Schedule]:
        """The model's ``limit`` best schedules for ``node``, best first (measured tuning tries them)."""

    def signature(self, node: Node) -> str:
        """What ``node``'s schedule depends on (tuning databases key on it)."""

    def details(self, schedule: Schedule, target: TargetInfo) -> dict[str, Any]:
        """Extra facts for the decision log (e.g. an array's utilization)."""


class PassTarget(Protocol):
    """The part of the target contract that passes use."""

    name: str
    capabilities: Any  # backends.base.Capabilities: passes read ``measure``

    def supports(self, node: Node) -> Any:
        """``backends.base.Support``: can the target run ``node`` (``.ok``), and why not (``.reason``)?"""

    def fusable(self, node: Node) -> bool:
        """Can the target generate ``node`` inside a fused kernel?"""

    def scheduler(self) -> Optional[Scheduler]:
        """The target's schedule rules, or None."""

    def measure(self, graph: Any, node: Node, schedule: Schedule) -> float:
        """Seconds ``node`` takes with ``schedule`` (only when ``capabilities.measure``)."""
