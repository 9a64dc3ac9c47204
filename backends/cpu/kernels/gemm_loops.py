"""Loop and task-grid helpers shared by the gemm kernels.

``loop_carry`` is a counted loop whose body threads values (the register
accumulators) from one iteration to the next as phi nodes, so they stay in
registers.  ``TaskGrid`` splits (batch, M, N) into tasks: each task gets a
batch index, a contiguous range of M units (register-tile rows) and a
contiguous range of N units (panels), balanced to within one unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import llvmlite.ir as ir

from ..codegen import I64, const_int

MIN_TASK_MACS = 8 << 20     # ~60 us of work: smaller tasks repack more than they gain
MAX_TASKS = 32

Body = Callable[[ir.Value, list[ir.Value]], list[ir.Value]]


def loop_carry(b: ir.IRBuilder, start: Union[int, ir.Value], stop: Union[int, ir.Value], step: int,
               init: Sequence[ir.Value], body: Body, name: str = "k") -> list[ir.Value]:
    """``for i in range(start, stop, step): vals = body(i, vals)``; returns the final values.

    Emits nothing when the trip count is statically zero.
    """
    if isinstance(start, int) and isinstance(stop, int):
        if start >= stop:
            return list(init)
        if start + step >= stop:  # one iteration: straight-line code
            return body(const_int(start), list(init))
    start_v = const_int(start) if isinstance(start, int) else start
    stop_v = const_int(stop) if isinstance(stop, int) else stop
    fn = b.function
    header = fn.append_basic_block(f"{name}.head")
    loop = fn.append_basic_block(f"{name}.body")
    exit_ = fn.append_basic_block(f"{name}.end")
    pre = b.block
    b.branch(header)
    b.position_at_end(header)
    i = b.phi(I64, name=name)
    i.add_incoming(start_v, pre)
    phis = []
    for v in init:
        phi = b.phi(v.type)
        phi.add_incoming(v, pre)
        phis.append(phi)
    b.cbranch(b.icmp_signed("<", i, stop_v), loop, exit_)
    b.position_at_end(loop)
    new = body(i, list(phis))
    latch = b.block
    i.add_incoming(b.add(i, const_int(step)), latch)
    for phi, v in zip(phis, new):
        phi.add_incoming(v, latch)
    b.branch(header)
    b.position_at_end(exit_)
    return list(phis)


def balanced(b: ir.IRBuilder, part: ir.Value, parts: int, total: int) -> tuple[ir.Value, ir.Value]:
    """[start, stop) of ``part`` when ``total`` units are split into ``parts`` near-equal ranges."""
    base, extra = divmod(total, parts)
    lt = b.icmp_signed("<", part, const_int(extra))
    start = b.add(b.mul(part, const_int(base)), b.select(lt, part, const_int(extra)))
    stop = b.add(start, b.add(const_int(base), b.zext(lt, I64)))
    return start, stop


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
        u0, u1 = balanced(b, mt, self.tm, self.m_units) if self.tm > 1 else (const_int(0),
                                                                               const_int(self.m_units))
        p0, p1 = balanced(b, nt, self.tn, self.n_units) if self.tn > 1 else (const_int(0),
                                                                               const_int(self.n_units))
        return bt, u0, u1, p0, p1


def choose_grid(batch: int, m: int, n: int, k: int, mr: int, nr: int, max_m_units: int = 0,
                max_n_units: int = 0, min_task_macs: int = MIN_TASK_MACS) -> TaskGrid:
    """Split (batch, M, N) into tasks of whole mr-row units and nr-column panels.

    Aim for ``total / min_task_macs`` tasks (at most MAX_TASKS) and among the
    splits reaching it take the one that packs the least: a task packs its
    rows of A and its columns of B, so splitting M in tm parts and N in tn
    parts packs ``tn*M*K + tm*N*K`` elements.  ``max_m_units`` and
    ``max_n_units`` cap one task's rows and columns (its buffers).
    """
    m_units, n_units = math.ceil(m / mr), math.ceil(n / nr)
    target = max(1, min(MAX_TASKS, batch * m * n * k // min_task_macs))
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
