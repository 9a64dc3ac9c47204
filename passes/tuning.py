"""Measured schedule search and the tuning database.

``tune_graph`` times the target's best few candidates of every distinct kernel
on the target (through ``ctx.backend.measure``), within a time budget, with a
progress bar, and records the fastest in a ``TuningDB``: a JSON file keyed by
target (CPU name and ISA) and kernel signature, reused by later builds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from ir.target import TargetInfo
from ir.errors import PassError
from ir.graph import Graph

from .manager import PassContext
from .target_hooks import Scheduler
from ir.schedule import Schedule

DB_VERSION = 1


class TuningDB:
    """Best measured schedules: {target key: {kernel signature: record}}."""

    def __init__(self, path: Path, data: Optional[dict[str, Any]] = None) -> None:
        self.path = path
        self.data = data or {"version": DB_VERSION, "targets": {}}

    @staticmethod
    def open(path: str) -> TuningDB:
        p = Path(path)
        if not p.exists():
            return TuningDB(p)
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise PassError(f"tuning database is not valid JSON: {exc}", subject=str(p)) from None
        if data.get("version") != DB_VERSION:
            raise PassError("tuning database version mismatch", subject=str(p),
                            expected=str(DB_VERSION), found=str(data.get("version")))
        return TuningDB(p, data)

    @staticmethod
    def target_key(target: TargetInfo) -> str:
        return f"{target.cpu_name or target.name}/{target.isa}/{target.cores}c"

    def lookup(self, target: TargetInfo, signature: str) -> Optional[Schedule]:
        rec = self.data["targets"].get(self.target_key(target), {}).get(signature)
        if rec is None:
            return None
        s = Schedule.from_text(rec["schedule"])
        s.source = "tuned"
        return s

    def record(self, target: TargetInfo, signature: str, schedule: Schedule, seconds: float,
               tried: int) -> None:
        entry = {"schedule": schedule.to_text(), "seconds": seconds, "candidates_tried": tried,
                 "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.data["targets"].setdefault(self.target_key(target), {})[signature] = entry

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")


def tune_graph(graph: Graph, ctx: PassContext, rules: Scheduler, db: TuningDB,
               budget: float, per_kernel: int = 8) -> int:
    """Time candidates for every distinct kernel not yet in ``db``; returns kernels tuned."""
    from tqdm import tqdm

    target: TargetInfo = ctx.target
    if ctx.backend is None or not ctx.backend.capabilities.measure:
        raise PassError("this target cannot time schedules", subject="--tune",
                        hint="measured tuning needs a target that runs code, e.g. --target cpu")
    measure = ctx.backend.measure
    todo = {}
    for node in graph.nodes:
        sig = rules.signature(node)
        if sig not in todo and db.lookup(target, sig) is None:
            cands = rules.candidates(node, target, per_kernel)
            if len(cands) > 1:
                todo[sig] = (node, cands)
    deadline = time.monotonic() + budget
    tuned = 0
    with tqdm(total=sum(len(c) for _, c in todo.values()), desc="tuning", unit="candidate",
              disable=None) as bar:
        for sig, (node, cands) in todo.items():
            best, best_t = None, float("inf")
            for cand in cands:
                if time.monotonic() > deadline:
                    break
                seconds = measure(graph, node, cand)
                bar.update(1)
                if seconds < best_t:
                    best, best_t = cand, seconds
            if best is None:
                break
            db.record(target, sig, best, best_t, len(cands))
            ctx.decide("tuned", kernel=node.outputs[0].name, schedule=best.to_text(),
                       seconds=best_t, rule="fastest measured candidate")
            tuned += 1
            if time.monotonic() > deadline:
                ctx.decide("tuning stopped", reason=f"time budget of {budget:.0f} s spent")
                break
    db.save()
    return tuned
