"""The systolic-array target (FPGA/ASIC accelerators): its pipeline and schedule rules.

Systolic arrays get channels-last convolutions with HWIO weights
(``layout-nhwc``), then fusion, a dataflow/fold schedule per GEMM-like kernel
(``backends.systolic.scheduling``) and the memory plan.  The simulator that
compiles and runs programs for the array is not here yet, so this package
defines no ``BACKEND`` and is not a ``--target``; its passes run through
``SystolicPassTarget``, which hands the schedule rules to the pass manager.
"""

from __future__ import annotations

from typing import Optional

from ir.errors import BackendError
from ir.graph import Graph, Node
from ir.schedule import Schedule
from passes.pipelines import SIMPLIFY

from ..base import Capabilities, Support
from .scheduling import SystolicScheduler

PIPELINE = (SIMPLIFY + ",expand-functions,lower-conv-transpose,fold-constants,cse,dce,"
            "layout-nhwc,simplify-algebra,fold-constants,dce,fuse,dce,schedule,plan-memory")


class SystolicPassTarget:
    """What the target-independent passes ask a systolic array (``passes.target_hooks.PassTarget``)."""

    name = "systolic"
    capabilities = Capabilities()

    def __init__(self) -> None:
        self._scheduler = SystolicScheduler()

    def supports(self, node: Node) -> Support:
        """Every op with a reference: GEMM-like ones go to the array, the rest to its host."""
        if node.op == "ConvTranspose" and node.domain == "":
            return Support.no("the array runs it as a Conv over a zero-upsampled input (lower-conv-transpose)")
        if node.schema.reference_fn is None:
            return Support.no("op has no reference implementation")
        return Support.yes()

    def fusable(self, node: Node) -> bool:
        return True

    def scheduler(self) -> Optional[SystolicScheduler]:
        return self._scheduler

    def measure(self, graph: Graph, node: Node, schedule: Schedule) -> float:
        raise BackendError("the systolic target cannot time schedules yet", subject="--tune")
