"""The systolic-array target (FPGA/ASIC accelerators): a simulator that counts and computes.

``--target systolic`` compiles a model through the systolic pipeline
(channels-last convolutions with HWIO weights, fusion, a dataflow/fold
schedule per GEMM-like kernel from ``scheduling.py``, the memory plan) into a
``Program`` (``program.py``, made by ``lowering.py``): DMA, GEMM-loop, vector,
host and sync instructions for an array configured by ``config.py``.  The
executable runs that program: ``simulator.execute`` computes the outputs with
the array's own arithmetic (``numerics.py``: fp32, or int8 x int8 -> int32
with the shared requantization), and ``simulator.simulate`` costs it per fold
(``model.py``: SCALE-Sim-compatible or refined cycles, SRAM/DRAM traffic,
stalls, energy), giving a ``Report`` (``report.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ir.errors import BackendError
from ir.graph import Graph, Node
from ir.registry import OpSchema
from ir.schedule import Schedule
from ir.target import TargetInfo
from passes.pipelines import SIMPLIFY
from runtime.executable import Executable

from ..base import Backend, Capabilities, Coverage, OptionSpec, Support, load_graph, save_graph
from .config import PRESETS, ArrayConfig, config_from_options
from .lowering import choose_word, lower
from .program import Program
from .report import Report
from .scheduling import SystolicScheduler

PIPELINE = ("fold-qdq," + SIMPLIFY + ",expand-functions,lower-conv-transpose,fold-constants,cse,dce,"
            "layout-nhwc,simplify-algebra,fold-constants,dce,fuse,dce,schedule,plan-memory")
PROGRAM_FILE = "program.json"


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


class SystolicExecutable(Executable):
    """A compiled program plus the graph it came from (weights, and the ops' arithmetic)."""

    def __init__(self, graph: Graph, program: Program) -> None:
        self.graph = graph
        self.program = program
        self._reports: dict[str, Report] = {}

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        from .simulator import execute
        return execute(self.program, self.graph, inputs)

    def report(self, mode: str = "") -> Report:
        """The simulated cycles, traffic and energy per layer (``mode``: compat or refined; default the config's)."""
        from .simulator import simulate
        if mode not in self._reports:
            self._reports[mode] = simulate(self.program, mode)
        return self._reports[mode]

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Simulated seconds per layer at the configured clock (the accelerator's time, not the host's)."""
        rep = self.report()
        return [(f"{r.label} {r.name}", r.latency_us * 1e-6) for r in rep.layers if r.kind in ("gemm", "vector")]

    def profile_table(self, inputs: Sequence[np.ndarray]) -> str:
        """``python -m compiler profile``: the simulated per-layer table and totals (the report's)."""
        return self.report().table()

    def save(self, directory: Path) -> list[str]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = save_graph(self.graph, directory)
        (directory / PROGRAM_FILE).write_text(json.dumps(self.program.to_json()) + "\n")
        (directory / "program.txt").write_text(self.program.text() + "\n")
        rep = self.report()
        (directory / "report.txt").write_text(rep.table() + "\n")
        files += [PROGRAM_FILE, "program.txt", "report.txt"] + rep.write(directory, plot=False)
        return files


_CHOICE_UNSET = ("",)


class SystolicBackend(Backend):
    name = "systolic"
    description = ("systolic-array accelerator simulator (FPGA/ASIC, TPU-like): cycles, SRAM/DRAM traffic, "
                   "stalls, energy, and the exact fp32/int8 results")
    options = (
        OptionSpec("preset", str, "32x32", "array preset", tuple(PRESETS)),
        OptionSpec("config", str, "", "a config file: our JSON form or a SCALE-Sim .cfg (applied over the preset)"),
        OptionSpec("rows", int, 0, "processing-element rows (0: the preset's)", minimum=0),
        OptionSpec("cols", int, 0, "processing-element columns (0: the preset's)", minimum=0),
        OptionSpec("dataflow", str, "", "os, ws, is, or auto (per layer, fewest cycles); default the preset's",
                   _CHOICE_UNSET + ("os", "ws", "is", "auto")),
        OptionSpec("ifmap_sram_kb", int, 0, "input SRAM in KB (0: the preset's)", minimum=0),
        OptionSpec("filter_sram_kb", int, 0, "weight SRAM in KB (0: the preset's)", minimum=0),
        OptionSpec("ofmap_sram_kb", int, 0, "output SRAM in KB (0: the preset's)", minimum=0),
        OptionSpec("word", str, "", "word size: int8 or fp32; default int8 for integer GEMMs, fp32 for float ones",
                   _CHOICE_UNSET + ("int8", "fp32")),
        OptionSpec("dram_bw", float, 0.0, "DRAM bandwidth in words per cycle per operand (0: the preset's)"),
        OptionSpec("clock_mhz", float, 0.0, "clock in MHz (0: the preset's)"),
        OptionSpec("mode", str, "", "cycle model: compat (SCALE-Sim's counts) or refined; default compat",
                   _CHOICE_UNSET + ("compat", "refined")),
        OptionSpec("vector_lanes", int, 0, "vector-unit lanes (0: one per array column)", minimum=0),
    )
    capabilities = Capabilities(profile=True, static_shapes=True)
    default_pipeline = PIPELINE
    generic_pipeline = "fold-qdq," + SIMPLIFY  # fold-qdq first: fold-constants would dequantize weights

    def __init__(self, options: Optional[dict[str, Any]] = None) -> None:
        super().__init__(options)
        for key in ("dram_bw", "clock_mhz"):
            if self.config[key] < 0:
                raise BackendError("bad option value", subject=f"--option {key} (target systolic)",
                                   expected="a positive number (0: the preset's)", found=repr(self.config[key]))
        #: The array this build targets (options over config file over preset), checked.
        self.array: ArrayConfig = config_from_options(self.config)

    @property
    def target_info(self) -> TargetInfo:
        return self.array.target_info()

    def supports(self, node: Node) -> Support:
        return SystolicPassTarget().supports(node)

    def op_coverage(self, schema: OpSchema) -> Coverage:
        """Every op with a reference runs: GEMM-like ones on the array, others on its vector unit or host."""
        return Coverage.KERNEL if schema.reference_fn is not None else Coverage.NONE

    def fusable(self, node: Node) -> bool:
        return True

    def scheduler(self) -> SystolicScheduler:
        return SystolicScheduler()

    def array_for(self, graph: Graph) -> ArrayConfig:
        """The configuration with the word size settled for ``graph`` (``word`` auto)."""
        from dataclasses import replace
        return self.array if self.config["word"] else replace(self.array, word=choose_word(graph))

    def compile(self, graph: Graph) -> SystolicExecutable:
        self.check_supported(graph)
        return SystolicExecutable(graph, lower(graph, self.array_for(graph)))

    def load(self, directory: Path) -> SystolicExecutable:
        path = directory / PROGRAM_FILE
        if not path.exists():
            raise BackendError("systolic artifact has no program", subject=str(directory), expected=PROGRAM_FILE)
        try:
            program = Program.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError("malformed systolic program", subject=str(path), found=str(exc)) from None
        return SystolicExecutable(load_graph(directory), program)


BACKEND = SystolicBackend
