"""Pass instruments: code that runs around every pass of a pipeline.

Modelled on TVM's ``PassInstrument``.  The ``PassManager`` runs the passes;
everything else it does while running them (timing, verifying the IR,
printing or dumping it) is an instrument, called in order::

    enter_pipeline(graph, ctx)
    for each step:
        run_before_pass(graph, step, ctx)
        changed = the pass                      (timed by the manager)
        run_after_pass(graph, step, ctx, changed, seconds)
    exit_pipeline(graph, ctx)                   (also when a pass fails)

Write one by subclassing ``PassInstrument`` and overriding the hooks you
need; give it to ``PassManager(..., instruments=[...])``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Optional, TextIO, Union

from ir.errors import CompilerError, PassError
from ir.graph import Graph
from ir.printer import print_graph
from ir.verifier import verify

if TYPE_CHECKING:
    from .manager import PassContext, PassStep


class PassInstrument:
    """Hooks around a pipeline and its passes; each default does nothing."""

    def enter_pipeline(self, graph: Graph, ctx: PassContext) -> None:
        """Before the first pass."""

    def run_before_pass(self, graph: Graph, step: PassStep, ctx: PassContext) -> None:
        """Before ``step`` runs on ``graph``."""

    def run_after_pass(self, graph: Graph, step: PassStep, ctx: PassContext, changed: bool,
                       seconds: float) -> None:
        """After ``step`` ran (``seconds`` is the pass alone) and reported ``changed``."""

    def exit_pipeline(self, graph: Graph, ctx: PassContext) -> None:
        """After the last pass, or after the pass or instrument that raised."""


@dataclass
class PassRecord:
    name: str
    seconds: float
    changed: bool
    nodes_before: int
    nodes_after: int


class Timing(PassInstrument):
    """Records each pass's time, whether it changed the graph, and the node counts around it."""

    def __init__(self) -> None:
        self.records: list[PassRecord] = []
        self._nodes_before = 0

    def run_before_pass(self, graph: Graph, step: PassStep, ctx: PassContext) -> None:
        self._nodes_before = len(graph.nodes)

    def run_after_pass(self, graph: Graph, step: PassStep, ctx: PassContext, changed: bool,
                       seconds: float) -> None:
        self.records.append(PassRecord(step.info.name, seconds, bool(changed), self._nodes_before,
                                       len(graph.nodes)))

    def report(self, extra: Iterable[tuple[str, float]] = ()) -> str:
        """One line per pass run (time, share, nodes before->after, changed) and the total.

        ``extra``: (step, seconds) rows after the passes, e.g. the target's code
        generation and LLVM work (``Executable.build_timings``), counted in the total.
        """
        extra = list(extra)
        total = sum(r.seconds for r in self.records) + sum(s for _, s in extra) or 1e-12
        width = max([28] + [len(name) + 2 for name, _ in extra])
        lines = [f"{'pass':<{width}}{'time (ms)':>11}{'share':>8}{'nodes':>14}  changed"]
        for r in self.records:
            lines.append(f"{r.name:<{width}}{r.seconds * 1e3:>11.2f}{r.seconds / total:>8.1%}"
                         f"{f'{r.nodes_before}->{r.nodes_after}':>14}  {'yes' if r.changed else 'no'}")
        for name, seconds in extra:
            lines.append(f"{name:<{width}}{seconds * 1e3:>11.2f}{seconds / total:>8.1%}")
        lines.append(f"{'total':<{width}}{total * 1e3:>11.2f}")
        return "\n".join(lines)


class VerifyEach(PassInstrument):
    """Verifies the graph after every pass; a broken graph is blamed on the pass that broke it."""

    def run_after_pass(self, graph: Graph, step: PassStep, ctx: PassContext, changed: bool,
                       seconds: float) -> None:
        try:
            verify(graph)
        except CompilerError as exc:
            raise PassError(f"IR is invalid after this pass: {exc}",
                            subject=f"pass {step.info.name!r}") from exc


class PrintIRAfter(PassInstrument):
    """Prints the IR after the passes named (``"all"``: after every pass) to ``stream`` (stderr)."""

    def __init__(self, names: Iterable[str], stream: Optional[TextIO] = None) -> None:
        self.names = frozenset(names)
        self.stream = stream

    def run_after_pass(self, graph: Graph, step: PassStep, ctx: PassContext, changed: bool,
                       seconds: float) -> None:
        if "all" in self.names or step.info.name in self.names:
            (self.stream or sys.stderr).write(f"// ----- IR after {step} -----\n{print_graph(graph)}\n")


class DumpIR(PassInstrument):
    """Writes the IR to ``directory``: ``00-input.ir``, then ``NN-<pass>.ir`` after pass NN."""

    def __init__(self, directory: Union[str, Path]) -> None:
        self.directory = Path(directory)
        self._index = 0

    def enter_pipeline(self, graph: Graph, ctx: PassContext) -> None:
        if self.directory.exists() and not self.directory.is_dir():
            raise PassError("the IR dump folder is a file", subject=str(self.directory),
                            hint="give --dump-ir a folder name")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PassError(f"cannot create the IR dump folder: {exc.strerror}", subject=str(self.directory)) from None
        self._index = 0
        self._write("00-input.ir", graph)

    def run_after_pass(self, graph: Graph, step: PassStep, ctx: PassContext, changed: bool,
                       seconds: float) -> None:
        self._index += 1
        self._write(f"{self._index:02d}-{step.info.name}.ir", graph)

    def _write(self, name: str, graph: Graph) -> None:
        try:
            (self.directory / name).write_text(print_graph(graph) + "\n")
        except OSError as exc:
            raise PassError(f"cannot write the IR dump: {exc.strerror}", subject=str(self.directory / name)) from None
