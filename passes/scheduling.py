"""schedule: ask the target for a Schedule for every kernel.

Each top-level node is one kernel (a fused group or a plain op).  The rules
belong to the target (``PassContext.backend.scheduler()``, see
``passes.target_hooks``): the cpu target's register-blocking models, a
systolic array's dataflow and fold model.  This pass only walks the kernels,
consults the tuning database, records each choice and logs why.  With
``tune=true`` the target's best candidates are timed instead (targets whose
``capabilities.measure`` is set), within a time budget, and the winners go
to a tuning database file that later builds reuse.
"""

from __future__ import annotations

from ir.graph import Graph, Node
from ir.schedule import assign_schedule
from ir.types import TensorType

from .manager import PassContext, register_pass


@register_pass("schedule")
def schedule(graph: Graph, ctx: PassContext, *, tune: bool = False, tune_budget: float = 60.0,
             tuning_db: str = "") -> bool:
    """Choose each kernel's schedule with the target's rules (tile sizes, vectorization, dataflow...)."""
    rules = ctx.backend.scheduler() if ctx.backend is not None else None
    if rules is None or ctx.target is None:
        ctx.decide("skip scheduling", reason="the target has no schedule rules")
        return False
    from .tuning import TuningDB, tune_graph
    db = TuningDB.open(tuning_db or "tuning.json") if (tuning_db or tune) else None
    if tune:
        tune_graph(graph, ctx, rules, db, tune_budget)
    changed = False
    for node in graph.nodes:
        chosen = None
        if _static_outputs(node):
            chosen = db.lookup(ctx.target, rules.signature(node)) if db is not None else None
            chosen = chosen or rules.schedule(node, ctx.target)
        if chosen is None:  # no shapes, or a kernel the target's rules do not schedule
            changed |= node.schedule is not None
            node.schedule = None  # an earlier schedule would describe other shapes
            continue
        chosen = assign_schedule(node, chosen)  # node.schedule, stamped with the node's fingerprint
        ctx.decide("schedule", kernel=node.outputs[0].name, kind=chosen.kind, params=chosen.params,
                   est_cycles=chosen.est_cycles, source=chosen.source,
                   **{"rule": "tuning database" if chosen.source == "tuned" else "analytical model",
                      **rules.details(chosen, ctx.target)})
        changed = True
    if db is not None:
        db.save()
    return changed


def _static_outputs(node: Node) -> bool:
    """Schedules need shapes: every output a tensor of static shape."""
    return bool(node.outputs) and all(isinstance(o.type, TensorType) and o.type.is_static for o in node.outputs)
