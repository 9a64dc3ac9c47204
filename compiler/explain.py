"""``build --explain``: what the optimization pipeline decided, and what it saved."""

from __future__ import annotations

from collections import Counter
from typing import Any


def summarize(decisions: list[dict[str, Any]], stats: dict[str, Any], nodes_before: int,
              nodes_after: int, full: bool = False) -> str:
    lines = [f"nodes: {nodes_before} imported -> {nodes_after} after the pipeline"]
    fusions = [d for d in decisions if d.get("decision") == "fuse"]
    if fusions:
        patterns = Counter(d["pattern"] for d in fusions)
        saved = sum(d.get("saves_bytes", 0) for d in fusions)
        lines.append(f"fused groups: {len(fusions)} ({sum(d['nodes'] for d in fusions)} nodes), "
                     f"{saved / 1e6:.1f} MB of intermediate traffic avoided")
        for pattern, n in patterns.most_common(8):
            lines.append(f"  {n:4d} x {pattern}")
    if "layout_conversions" in stats:
        lines.append(f"layout conversions left: {stats['layout_conversions']}")
    if stats.get("memory_planned"):
        arena, naive = stats["memory_arena_bytes"], stats["memory_naive_bytes"]
        lines.append(f"memory: arena {arena / 1e6:.2f} MB vs naive sum of intermediates {naive / 1e6:.2f} MB "
                     f"({arena / naive if naive else 0:.1%}); {stats.get('memory_views', 0)} views, "
                     f"{stats.get('memory_inplace', 0)} in-place")
    schedules = [d for d in decisions if d.get("decision") == "schedule"]
    if schedules:
        kinds = Counter(d["kind"] for d in schedules)
        cycles = sum(d.get("est_cycles", 0) for d in schedules)
        lines.append(f"schedules: {len(schedules)} kernels ({', '.join(f'{n} {k}' for k, n in kinds.most_common())}), "
                     f"estimated {cycles / 1e6:.1f} M cycles")
    per_pass = Counter((d.get("pass", "?"), d.get("decision", "?")) for d in decisions)
    lines.append("decisions by pass:")
    for (p, what), n in sorted(per_pass.items()):
        lines.append(f"  {p:<24}{what:<40}{n:>6}")
    if full:
        lines.append("all decisions:")
        for d in decisions:
            rest = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("pass", "decision"))
            lines.append(f"  [{d.get('pass', '?')}] {d.get('decision', '?')}: {rest}")
    return "\n".join(lines)
