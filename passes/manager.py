"""Pass registry and the PassManager that runs pipelines.

A pass is a function (or any callable) over a graph, registered under a
kebab-case name, in its own module of ``passes/`` (every module there whose
name does not start with ``_`` is imported on first use, see
``ir.discovery``).  It mutates the graph in place and returns whether it
changed anything::

    @register_pass("dce", "remove nodes whose outputs nobody reads")
    def dce(graph: Graph, ctx: PassContext) -> bool:
        ...

Options come as keyword-only parameters with defaults; the pipeline text
``fold-constants{max_elements=1000000},dce`` sets them.  The manager runs
the passes; instruments (``passes.instruments``) run around each one: by
default it times each pass and verifies the graph after it, and on request
prints the IR after chosen passes or dumps it to a folder.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO, Union

from ir.discovery import Discovery
from ir.errors import CompilerError, PassError
from ir.graph import Graph
from ir.target import TargetInfo

from .instruments import DumpIR, PassInstrument, PassRecord, PrintIRAfter, Timing, VerifyEach
from .target_hooks import PassTarget

PassFn = Callable[..., Optional[bool]]


@dataclass
class PassInfo:
    name: str
    fn: PassFn
    summary: str
    options: dict[str, Any]  # name -> default

    def option_text(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


@dataclass
class PassContext:
    """What passes may read besides the graph: the target and a decision log."""

    target: Optional[TargetInfo] = None  # the hardware description (vector width, cores, caches...)
    backend: Optional[PassTarget] = None  # the target compiling the graph: fusable ops, schedule rules
    log: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    current_pass: str = ""

    def decide(self, what: str, **details: Any) -> None:
        """Record one decision (a fusion, a layout change, a tile size) and why."""
        self.log.append({"pass": self.current_pass, "decision": what, **details})


_PASSES: dict[str, PassInfo] = {}
_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def register_pass(name: str, summary: str = "") -> Callable[[PassFn], PassFn]:
    """Register ``fn`` as pass ``name`` (kebab-case)."""
    if not _KEBAB.match(name):
        raise ValueError(f"pass names are kebab-case, got {name!r}")

    def register(fn: PassFn) -> PassFn:
        if name in _PASSES:
            raise ValueError(f"pass {name!r} is registered twice")
        sig = inspect.signature(fn)
        options = {p.name: p.default for p in sig.parameters.values()
                   if p.kind is inspect.Parameter.KEYWORD_ONLY}
        doc = summary or (inspect.getdoc(fn) or "").split("\n")[0]
        _PASSES[name] = PassInfo(name, fn, doc, options)
        return fn
    return register


def get_pass(name: str) -> PassInfo:
    _ensure_loaded()
    try:
        return _PASSES[name]
    except KeyError:
        raise PassError("unknown pass", subject=repr(name),
                        hint="`python -m compiler passes` lists them") from None


def all_passes() -> list[PassInfo]:
    _ensure_loaded()
    return sorted(_PASSES.values(), key=lambda p: p.name)


# Every module of passes/ not starting with "_" is imported on first use, so its
# ``@register_pass`` runs: a new pass is one new file (``ir.discovery``).
_DISCOVERY = Discovery("passes")


def _ensure_loaded() -> None:
    _DISCOVERY.ensure()


def unregister_pass(name: str) -> None:
    """Remove a pass (for passes registered at run time, e.g. by tests)."""
    _PASSES.pop(name, None)


# ------------------------------------------------------------------ pipeline text
@dataclass
class PassStep:
    info: PassInfo
    options: dict[str, Any]

    def __str__(self) -> str:
        if not self.options:
            return self.info.name
        return self.info.name + "{" + ",".join(f"{k}={v}" for k, v in self.options.items()) + "}"


def parse_pipeline(spec: Union[str, Sequence[Union[str, PassStep]]]) -> list[PassStep]:
    """Parse ``"a,b{k=v,k2=v2},c"`` (or a list of such names) into steps."""
    if isinstance(spec, str):
        items = _split_top_level(spec)
    else:
        items = list(spec)
    steps = []
    for item in items:
        if isinstance(item, PassStep):
            steps.append(item)
            continue
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(r"([A-Za-z0-9\-]+)(?:\{(.*)\})?", item)
        if not m:
            raise PassError("malformed pipeline entry", subject=repr(item),
                            expected="name or name{key=value,...}")
        info = get_pass(m.group(1))
        options: dict[str, Any] = {}
        if m.group(2):
            for kv in m.group(2).split(","):
                if "=" not in kv:
                    raise PassError("pass option needs key=value", subject=f"{info.name}: {kv!r}")
                k, v = (s.strip() for s in kv.split("=", 1))
                if k not in info.options:
                    raise PassError("unknown option", subject=f"pass {info.name!r}: {k!r}",
                                    hint=f"options: {info.option_text() or 'none'}")
                options[k] = _convert(v, info.options[k], f"{info.name}.{k}")
        steps.append(PassStep(info, options))
    return steps


def with_pass_options(spec: Union[str, Sequence[Union[str, PassStep]]], name: str,
                      options: dict[str, Any]) -> str:
    """``spec`` with ``options`` set on every ``name`` step (e.g. ``schedule{tune=True}``).

    Used by the driver to turn CLI flags such as ``--tune`` into pass options
    without the user having to spell the target's whole pipeline.
    """
    steps = parse_pipeline(spec)
    for i, step in enumerate(steps):
        if step.info.name == name:
            for k in options:
                if k not in step.info.options:
                    raise PassError("unknown option", subject=f"pass {name!r}: {k!r}",
                                    hint=f"options: {step.info.option_text() or 'none'}")
            steps[i] = PassStep(step.info, {**step.options, **options})
    return ",".join(str(s) for s in steps)


def _split_top_level(spec: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in spec:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise PassError("unbalanced braces in pipeline", subject=repr(spec))
    parts.append("".join(cur))
    return parts


def _convert(text: str, default: Any, what: str) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise PassError("bad option value", subject=what,
                        expected=type(default).__name__, found=repr(text)) from None
    return text.strip("\"'")


# -------------------------------------------------------------------- running
class PassManager:
    """Runs a pipeline over a graph, calling its instruments around every pass.

    The keywords build the standard instruments, in this order: ``Timing``
    (always: ``records`` and ``timing_report()`` read it), ``VerifyEach``
    (``verify_each``), ``PrintIRAfter`` (``print_ir_after`` pass names or
    ``"all"``, to ``stream``), ``DumpIR`` (``dump_ir_dir``); ``instruments``
    come after them.
    """

    def __init__(self, pipeline: Union[str, Sequence[Union[str, PassStep]]], *,
                 verify_each: bool = True, print_ir_after: Sequence[str] = (),
                 dump_ir_dir: Optional[Union[str, Path]] = None,
                 stream: Optional[TextIO] = None,
                 instruments: Sequence[PassInstrument] = ()) -> None:
        self.steps = parse_pipeline(pipeline)
        for name in set(print_ir_after) - {"all"}:
            get_pass(name)  # unknown names fail early
        self.timing = Timing()
        self.instruments: list[PassInstrument] = [self.timing]
        if verify_each:
            self.instruments.append(VerifyEach())
        if print_ir_after:
            self.instruments.append(PrintIRAfter(print_ir_after, stream))
        if dump_ir_dir:
            self.instruments.append(DumpIR(dump_ir_dir))
        self.instruments.extend(instruments)

    @property
    def pipeline_text(self) -> str:
        return ",".join(str(s) for s in self.steps)

    @property
    def records(self) -> list[PassRecord]:
        """One record per pass run so far (over every ``run``)."""
        return self.timing.records

    def timing_report(self) -> str:
        return self.timing.report()

    def run(self, graph: Graph, ctx: Optional[PassContext] = None) -> PassContext:
        ctx = ctx or PassContext()
        for inst in self.instruments:
            inst.enter_pipeline(graph, ctx)
        try:
            for step in self.steps:
                ctx.current_pass = step.info.name
                for inst in self.instruments:
                    inst.run_before_pass(graph, step, ctx)
                changed, seconds = _run_step(step, graph, ctx)
                for inst in self.instruments:
                    inst.run_after_pass(graph, step, ctx, changed, seconds)
        finally:
            ctx.current_pass = ""
            for inst in self.instruments:
                inst.exit_pipeline(graph, ctx)
        return ctx


def _run_step(step: PassStep, graph: Graph, ctx: PassContext) -> tuple[bool, float]:
    """Run one pass: (changed, seconds); an unexpected exception becomes a PassError naming it."""
    t0 = time.perf_counter()
    try:
        changed = step.info.fn(graph, ctx, **step.options)
    except CompilerError:
        raise
    except Exception as exc:
        raise PassError(f"pass crashed: {type(exc).__name__}: {exc}",
                        subject=f"pass {step.info.name!r}") from exc
    return bool(changed), time.perf_counter() - t0


def run_pipeline(graph: Graph, pipeline: Union[str, Sequence[str]], **kw: Any) -> PassContext:
    """Convenience: ``run_pipeline(g, "fold-constants,dce")``."""
    return PassManager(pipeline, **kw).run(graph)
