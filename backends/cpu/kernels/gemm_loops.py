"""The task grid shared by the gemm kernels.

``TaskGrid`` splits (batch, M, N) into tasks: each task gets a
batch index, a contiguous range of M units (register-tile rows) and a
contiguous range of N units (panels), balanced to within one unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import llvmlite.ir as ir

from ..codegen import const_int, task_range

MIN_TASK_MACS = 8 << 20     # ~60 us of work: smaller tasks repack more than they gain
MAX_TASKS = 32


@dataclass
class TaskGrid:
    """Tasks = batch x tm (ranges of M units) x tn (ranges of N units); N varies fastest."""

    batch: int
    m_units: int
    n_units: int
    tm: int
    tn: int

    @property
    def n_tasks(self) -> int:
        return self.batch * self.tm * self.tn

    @property
    def max_m_units(self) -> int:
        return math.ceil(self.m_units / self.tm)

    @property
    def max_n_units(self) -> int:
        return math.ceil(self.n_units / self.tn)

    def decode(self, b: ir.IRBuilder, task: ir.Value):
        """(batch index, first M unit, end M unit, first N unit, end N unit) of ``task``."""
        nt = b.urem(task, const_int(self.tn)) if self.tn > 1 else const_int(0)
        rest = b.udiv(task, const_int(self.tn)) if self.tn > 1 else task
        mt = b.urem(rest, const_int(self.tm)) if self.tm > 1 else const_int(0)
        bt = b.udiv(rest, const_int(self.tm)) if self.tm > 1 else rest
        if self.batch == 1:
            bt = const_int(0)
        u0, u1 = task_range(b, mt, self.tm, self.m_units) if self.tm > 1 else (const_int(0),
                                                                               const_int(self.m_units))
        p0, p1 = task_range(b, nt, self.tn, self.n_units) if self.tn > 1 else (const_int(0),
                                                                               const_int(self.n_units))
        return bt, u0, u1, p0, p1


def choose_grid(batch: int, m: int, n: int, k: int, mr: int, nr: int, max_m_units: int = 0,
                max_n_units: int = 0, min_task_macs: int = MIN_TASK_MACS, cores: int = 1) -> TaskGrid:
    """Split (batch, M, N) into tasks of whole mr-row units and nr-column panels.

    Aim for ``total / min_task_macs`` tasks (at most MAX_TASKS), rounded up to
    a multiple of ``cores`` once the product is worth splitting, and among the
    splits reaching it take the one that packs the least: a task packs its
    rows of A and its columns of B, so splitting M in tm parts and N in tn
    parts packs ``tn*M*K + tm*N*K`` elements.  ``max_m_units`` and
    ``max_n_units`` cap one task's rows and columns (its buffers).
    """
    m_units, n_units = math.ceil(m / mr), math.ceil(n / nr)
    total = batch * m * n * k
    target = max(1, min(MAX_TASKS, total // min_task_macs))
    if cores > 1 and total >= min_task_macs // 2:
        # A whole number of tasks per core: 3 equal tasks on 2 cores take as long as 4.
        target = min(max(MAX_TASKS // cores, 1) * cores, -(-target // cores) * cores)
    tm_min = math.ceil(m_units / max_m_units) if max_m_units else 1
    tn_min = math.ceil(n_units / max_n_units) if max_n_units else 1
    best = None
    for tm in range(tm_min, m_units + 1):
        tn = min(n_units, max(tn_min, math.ceil(target / (batch * tm))))
        tasks = batch * tm * tn
        key = (min(tasks, target) < target, tn * m + tm * n, tasks)  # reach the target, pack least, fewer tasks
        if best is None or key < best[0]:
            best = (key, tm, tn)
        if tn == tn_min and tasks >= target:
            break  # more row splits only pack more
    _, tm, tn = best
    return TaskGrid(batch, m_units, n_units, tm, tn)
