"""Tests for plan-memory: exact offsets on small graphs, real models, random DAGs.

Besides ``verify_plan``, plans are checked by running the graph with every
planned value stored at its offset in one shared byte arena: a plan that lets
a live value be overwritten gives wrong outputs.
"""

from __future__ import annotations

import functools
import os
import random
import textwrap

import numpy as np
import onnx
import pytest

from frontends.onnx import ImportOptions, import_onnx
from ir import CompilerError, Graph, Interpreter, f32, parse_graph, print_graph, run_graph, tensor, verify
from ir.errors import PassError, VerificationError
from passes import run_pipeline
from passes.manager import PassInfo, PassManager, PassStep
from tests.passes.golden import assert_pass
from ir.memory import Arena, MemoryPlan, Placement, PlanEntry, clear_plan, plan_of, verify_plan
from passes.memory_plan import build_plan
from tests.conftest import SHARED_DATA

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
DIGITS = SHARED_DATA
PREP = "fold-constants,remove-identity,dce"


def planned(source: str, options: str = "") -> tuple[Graph, MemoryPlan]:
    g = parse_graph(textwrap.dedent(source).strip(), allow_elided=False)
    before = print_graph(g)
    run_pipeline(g, "plan-memory" + (f"{{{options}}}" if options else ""))
    plan = plan_of(g)
    after = print_graph(g)
    assert parse_graph(after) is not None and print_graph(parse_graph(after)) == after  # round trip
    clear_plan(g)
    assert print_graph(g) == before  # the plan is the only change: without it, the IR text is the same
    return g, plan


def table(plan: MemoryPlan) -> dict[str, tuple[int, int, str]]:
    return {k: tuple(e) for k, e in plan.entries.items()}


# --------------------------------------------------------------- arena runs
class ArenaInterpreter(Interpreter):
    """Keeps every planned value inside one byte arena at its planned offset."""

    def __init__(self, graph: Graph, plan: MemoryPlan) -> None:
        super().__init__(graph)
        self.plan = plan

    def run(self, feeds):
        rng = np.random.default_rng(0)
        arena = rng.integers(0, 256, self.plan.arena_bytes, dtype=np.uint8)  # garbage to start
        env = {v.name: feeds[v.name] for v in self.graph.inputs}
        env.update({c.name: c.const for c in self.graph.constants.values()})
        for node in self.graph.nodes:
            args = [None if v is None else env[v.name] for v in node.inputs]
            for out, r in zip(node.outputs, self.run_node(node, args)):
                e = self.plan.entries.get(out.name)
                if e is None:  # caller's buffer
                    env[out.name] = np.array(r, copy=True)
                    continue
                dst = arena[e.offset:e.offset + e.nbytes].view(out.dtype.np).reshape(out.shape)
                dst[...] = r
                env[out.name] = dst
        return [np.array(env[v.name]) for v in self.graph.outputs]


def assert_arena_run_matches(graph: Graph, plan: MemoryPlan, feeds: dict) -> None:
    want = run_graph(graph, feeds)
    got = ArenaInterpreter(graph, plan).run(feeds)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


def random_feeds(graph: Graph, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal(v.shape).astype(v.dtype.np) for v in graph.inputs}


# ----------------------------------------------------------- golden offsets
def test_chain_reuses_the_buffer_two_steps_back():
    g, plan = planned("""
        graph @main(%x: f32[4,16]) {
          %a: f32[4,16] = Softmax(%x)
          %b: f32[4,16] = Softmax(%a)
          %c: f32[4,16] = Softmax(%b)
          %y: f32[4,16] = Softmax(%c)
          return %y
        }""")
    assert table(plan) == {"a": (0, 256, "arena"), "b": (256, 256, "arena"), "c": (0, 256, "arena")}
    assert (plan.arena_bytes, plan.naive_bytes, plan.peak_live_bytes) == (512, 768, 512)


def test_diamond_reuse_waits_for_both_readers():
    # %a is read by %b and %c: only %d (after both) may take its bytes.
    g, plan = planned("""
        graph @main(%x: f32[4,16]) {
          %a: f32[4,16] = Softmax(%x)
          %b: f32[4,16] = Softmax(%a)
          %c: f32[4,16] = Softmax(%a)
          %d: f32[4,16] = Add(%b, %c)
          %y: f32[4,16] = Softmax(%d)
          return %y
        }""", "inplace=false")
    assert table(plan) == {"a": (0, 256, "arena"), "b": (256, 256, "arena"),
                           "c": (512, 256, "arena"), "d": (0, 256, "arena")}
    assert plan.arena_bytes == 768
    verify_plan(g, plan)


def test_sizes_are_aligned_and_small_values_fill_gaps():
    g, plan = planned("""
        graph @main(%x: f32[4,16]) {
          %axis: i64[1] = constant [1]
          %a: f32[4,16] = Softmax(%x)
          %s: f32[4,1] = ReduceSum(%a, %axis) {keepdims=1}
          %b: f32[4,16] = Div(%a, %s)
          %y: f32[4,16] = Softmax(%b)
          return %y
        }""", "inplace=false")
    # %s (16 B) takes a 64-byte slot; %b cannot reuse %a (read at the same node).
    assert table(plan) == {"a": (0, 256, "arena"), "s": (512, 16, "arena"),
                           "b": (256, 256, "arena")}
    assert plan.arena_bytes == 576 and plan.alignment == 64


def test_views_alias_their_input_and_extend_its_life():
    source = """
        graph @main(%x: f32[4,16]) {
          %shape: i64[1] = constant [64]
          %a: f32[4,16] = Softmax(%x)
          %r: f32[64] = Reshape(%a, %shape)
          %xr: f32[64] = Reshape(%x, %shape)
          %b: f32[64] = Softmax(%xr)
          %c: f32[64] = Add(%r, %b)
          %y: f32[64] = Softmax(%c)
          return %y
        }"""
    g, plan = planned(source, "inplace=false")
    # %r views %a (no bytes, %a lives until %c); %xr reads a graph input: it gets bytes.
    assert table(plan) == {"a": (0, 256, "arena"), "r": (0, 256, "view-of:a"),
                           "xr": (256, 256, "arena"), "b": (512, 256, "arena"),
                           "c": (256, 256, "arena")}
    g, plan = planned(source, "inplace=false,views=false")
    assert plan.count("view-of") == 0 and plan.arena_bytes == 768


def test_inplace_over_inputs_that_die_here():
    g, plan = planned("""
        graph @main(%x: f32[4,16]) {
          %a: f32[4,16] = Softmax(%x)
          %b: f32[4,16] = Relu(%a)
          %c: f32[4,16] = Add(%x, %b)
          %d: f32[4,16] = Softmax(%c)
          %e: f32[4,16] = Mul(%c, %d)
          %y: f32[4,16] = Softmax(%e)
          return %y
        }""")
    assert table(plan) == {"a": (0, 256, "arena"), "b": (0, 256, "inplace-of:a"),
                           "c": (0, 256, "inplace-of:b"), "d": (256, 256, "arena"),
                           "e": (0, 256, "inplace-of:c")}
    assert plan.count("inplace-of") == 3


def test_no_inplace_over_values_read_later_inputs_or_live_views():
    g, plan = planned("""
        graph @main(%x: f32[4,16]) {
          %shape: i64[1] = constant [64]
          %r0: f32[4,16] = Relu(%x)
          %a: f32[4,16] = Softmax(%r0)
          %b: f32[4,16] = Relu(%a)
          %c: f32[4,16] = Sub(%a, %b)
          %v: f32[64] = Reshape(%c, %shape)
          %n: f32[4,16] = Neg(%c)
          %m: f32[64] = Softmax(%v)
          %y: f32[4,16] = Softmax(%n)
          return %y, %m
        }""")
    t = table(plan)
    assert t["r0"][2] == "arena"             # %x is the caller's
    assert t["b"][2] == "arena"              # %a is read again by %c
    assert t["c"][2] == "inplace-of:a"       # first operand that dies here
    assert t["v"][2] == "view-of:c"
    assert t["n"][2] == "arena"              # %c's bytes are still read through the view %v
    verify_plan(g, plan)


def test_graph_outputs_are_callers_unless_planned():
    source = """
        graph @main(%x: f32[4,16]) {
          %a: f32[4,16] = Softmax(%x)
          %y: f32[4,16] = Softmax(%a)
          %b: f32[4,16] = Relu(%y)
          %z: f32[4,16] = Softmax(%b)
          return %y, %z
        }"""
    g, plan = planned(source)
    # %b cannot overwrite %y: it is not the arena's.
    assert table(plan) == {"a": (0, 256, "arena"), "b": (0, 256, "arena")}
    g, plan = planned(source, "plan_outputs=true")
    assert table(plan) == {"a": (0, 256, "arena"), "y": (256, 256, "arena"),
                           "b": (0, 256, "arena"), "z": (512, 256, "arena")}


def test_fused_group_writes_over_its_residual_input():
    g, plan = planned("""
        graph @main(%x: f32[1,4,4,4]) {
          %r: f32[1,4,4,4] = Relu(%x)
          %c: f32[1,4,4,4] = Softmax(%r)
          %f: f32[1,4,4,4] = nnc.Fused(%c, %r) {body=graph @body(%i: f32[1,4,4,4], %res: f32[1,4,4,4]) {
            %w: f32[4,4,1,1] = constant [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
            %conv: f32[1,4,4,4] = Conv(%i, %w)
            %add: f32[1,4,4,4] = Add(%conv, %res)
            %out: f32[1,4,4,4] = Relu(%add)
            return %out
          }, pattern="Conv+Add+Relu"}
          %y: f32[1,4,4,4] = Softmax(%f)
          return %y
        }""")
    # %c feeds the Conv (read at other indices): never overwritten; %r only by the epilogue.
    assert table(plan) == {"r": (0, 256, "arena"), "c": (256, 256, "arena"),
                           "f": (0, 256, "inplace-of:r")}
    assert_arena_run_matches(g, plan, random_feeds(g))


def test_dynamic_shapes_get_no_plan():
    g = parse_graph(textwrap.dedent("""
        graph @main(%x: f32[N,16]) {
          %a: f32[N,16] = Softmax(%x)
          %y: f32[N,16] = Softmax(%a)
          return %y
        }""").strip())
    g.memory = Arena(256)  # a stale plan: dropped
    g.value("a").placement = Placement(0, 256)
    ctx = run_pipeline(g, "plan-memory")
    assert plan_of(g) is None and g.memory is None and g.value("a").placement is None
    assert ctx.stats["memory_planned"] is False
    (decision,) = ctx.log
    assert "not static" in decision["decision"] and "%a" in decision["value"]


# --------------------------------------------------------------- IR text
VIEW_AND_INPLACE = """
    graph @main(%x: f32[4,16]) {
      %shape: i64[1] = constant [64]
      %a: f32[4,16] = Softmax(%x)
      %r: f32[64] = Reshape(%a, %shape)
      %b: f32[64] = Relu(%r)
      %c: f32[64] = Softmax(%b)
      %d: f32[64] = Add(%c, %b)
      %y: f32[64] = Softmax(%d)
      return %y
    }"""


def test_golden_text_with_a_view_and_in_place_results():
    # %r views %a; Relu writes over %r (its last reader), so %a, %r and %b share one buffer, live
    # until %d reads %b; %c needs its own; Add writes over %c (first operand dying there).
    # Five values of 256 B (naive 1280) in two buffers: 512 B, which is also the peak.
    assert_pass(VIEW_AND_INPLACE, "plan-memory", """
        graph @main(%x: f32[4,16]) memory{arena_bytes=512, alignment=64, naive_bytes=1280, peak_live_bytes=512, algorithm="greedy-by-size/best-fit"} {
          %shape: i64[1] = constant [64]
          %a: f32[4,16] @mem(offset=0, nbytes=256) = Softmax(%x)
          %r: f32[64] @mem(offset=0, nbytes=256, view_of=%a) = Reshape(%a, %shape)
          %b: f32[64] @mem(offset=0, nbytes=256, inplace_of=%r) = Relu(%r)
          %c: f32[64] @mem(offset=256, nbytes=256) = Softmax(%b)
          %d: f32[64] @mem(offset=256, nbytes=256, inplace_of=%c) = Add(%c, %b)
          %y: f32[64] = Softmax(%d)
          return %y
        }""")


def test_golden_text_without_views_and_in_place():
    # Every value its own bytes: %c reuses %r's (dead after %b), %d needs a third slot (%b, %c live).
    assert_pass(VIEW_AND_INPLACE, "plan-memory{views=false,inplace=false}", """
        graph @main(%x: f32[4,16]) memory{arena_bytes=768, alignment=64, naive_bytes=1280, peak_live_bytes=768, algorithm="greedy-by-size/best-fit"} {
          %shape: i64[1] = constant [64]
          %a: f32[4,16] @mem(offset=0, nbytes=256) = Softmax(%x)
          %r: f32[64] @mem(offset=256, nbytes=256) = Reshape(%a, %shape)
          %b: f32[64] @mem(offset=0, nbytes=256) = Relu(%r)
          %c: f32[64] @mem(offset=256, nbytes=256) = Softmax(%b)
          %d: f32[64] @mem(offset=512, nbytes=256) = Add(%c, %b)
          %y: f32[64] = Softmax(%d)
          return %y
        }""")


def test_golden_text_dynamic_shapes_are_not_planned():
    source = """
        graph @main(%x: f32[N,16]) {
          %a: f32[N,16] = Softmax(%x)
          %y: f32[N,16] = Relu(%a)
          return %y
        }"""
    assert_pass(source, "plan-memory", source)


def test_annotations_follow_renames_and_clones():
    g = parse_graph(textwrap.dedent(VIEW_AND_INPLACE).strip())
    run_pipeline(g, "plan-memory")
    g.rename(g.value("a"), "softmax_out")
    plan = plan_of(g)
    assert plan.entries["softmax_out"] == PlanEntry(0, 256, "arena")
    assert plan.entries["r"] == PlanEntry(0, 256, "view-of:softmax_out")
    verify_plan(g, plan)
    copy = g.clone()
    assert print_graph(copy) == print_graph(g)
    assert copy.value("r").placement.base is copy.value("softmax_out")  # the copy's own value
    assert table(plan_of(copy)) == table(plan)
    assert "memory_plan" not in g.meta


def test_verifier_reports_a_broken_plan():
    g = parse_graph(textwrap.dedent(VIEW_AND_INPLACE).strip())
    run_pipeline(g, "plan-memory")
    verify(g)
    c, d = g.value("c"), g.value("d")
    c.placement = Placement(0, 256)  # onto %b, which %d still reads
    d.placement = Placement(0, 256, "inplace", c)
    with pytest.raises(VerificationError, match=r"two values live at the same time share bytes "
                                                r"\(%b and %c\); re-run `plan-memory`") as exc:
        verify(g)
    assert ">> %c: f32[64] @mem(offset=0, nbytes=256) = Softmax(%b)" in str(exc.value)
    c.placement = Placement(32, 256)
    with pytest.raises(VerificationError, match=r"misaligned.*%c"):
        verify(g)
    c.placement = None
    with pytest.raises(VerificationError, match=r"intermediate has no place \(%c\)"):
        verify(g)
    c.placement = Placement(256, 256)
    with pytest.raises(VerificationError, match=r"alias does not sit on its base \(%d\)"):
        verify(g)
    d.placement = Placement(256, 256, "inplace", c)
    verify(g)
    g.inputs[0].placement = Placement(0, 256)
    with pytest.raises(VerificationError, match="not node outputs"):
        verify(g)
    g.inputs[0].placement = None
    verify(g)
    g.memory = None
    with pytest.raises(VerificationError, match="placement but the graph has no memory plan"):
        verify(g)


def test_a_rewrite_after_planning_fails_verification():
    def add_node(graph, ctx):  # plays a pass that rewrites the graph after plan-memory
        graph.create_node("Neg", [graph.value("c")], after=graph.value("c").producer)
        return True

    def add_node_and_drop_plan(graph, ctx):  # ... as such a pass must: dropping the plan
        add_node(graph, ctx)
        return clear_plan(graph)

    g = parse_graph(textwrap.dedent(VIEW_AND_INPLACE).strip())
    step = PassStep(PassInfo("add-node", add_node, "test only", {}), {})
    with pytest.raises(PassError, match=r"intermediate has no place \(%neg\); re-run `plan-memory`"):
        PassManager(["plan-memory", step]).run(g)
    g = parse_graph(textwrap.dedent(VIEW_AND_INPLACE).strip())
    step = PassStep(PassInfo("add-node", add_node_and_drop_plan, "test only", {}), {})
    PassManager(["plan-memory", step]).run(g)
    assert plan_of(g) is None and all(v.placement is None for v in g.values())
    PassManager(["plan-memory"]).run(g)  # planning again covers the new value
    assert g.value("neg").placement is not None


def test_nested_graphs_have_no_plan():
    g = parse_graph(textwrap.dedent("""
        graph @main(%x: f32[4,16]) {
          %f: f32[4,16] = nnc.Fused(%x) {body=graph @body(%i: f32[4,16]) {
            %s: f32[4,16] = Softmax(%i)
            %o: f32[4,16] = Relu(%s)
            return %o
          }, pattern="Softmax+Relu"}
          %y: f32[4,16] = Softmax(%f)
          return %y
        }""").strip())
    run_pipeline(g, "plan-memory")
    body = g.value("f").producer.attrs["body"]
    assert body.memory is None and all(v.placement is None for v in body.values())
    body.value("s").placement = Placement(0, 256)
    with pytest.raises(VerificationError, match="nested graph has a memory plan"):
        verify(g)


def test_report_and_json_round_trip():
    g = parse_graph("graph @main(%x: f32[4,16]) {\n %a: f32[4,16] = Softmax(%x)\n"
                    " %b: f32[4,16] = Relu(%a)\n %y: f32[4,16] = Softmax(%b)\n return %y\n}")
    ctx = run_pipeline(g, "plan-memory")
    plan = plan_of(g)
    assert MemoryPlan.from_json(plan.to_json()) == plan
    assert ctx.stats["memory_arena_bytes"] == 256 and ctx.stats["memory_inplace"] == 1
    assert [d["decision"] for d in ctx.log] == ["place intermediates in one arena",
                                                 "write elementwise results over dying inputs"]
    assert ctx.log[0]["saves_bytes"] == 256


def test_verify_plan_rejects_bad_plans():
    g, plan = planned("""
        graph @main(%x: f32[4,16]) {
          %a: f32[4,16] = Softmax(%x)
          %b: f32[4,16] = Softmax(%a)
          %c: f32[4,16] = Softmax(%b)
          %y: f32[4,16] = Softmax(%c)
          return %y
        }""")
    bad = [dict(plan.entries, b=PlanEntry(0, 256, "arena")),          # overlaps %a
           dict(plan.entries, b=PlanEntry(32, 256, "arena")),         # misaligned
           dict(plan.entries, b=PlanEntry(0, 256, "inplace-of:a")),   # Softmax is not elementwise
           {k: v for k, v in plan.entries.items() if k != "c"}]       # %c missing
    for entries in bad:
        with pytest.raises(CompilerError, match="memory plan is invalid"):
            verify_plan(g, MemoryPlan(plan.arena_bytes, 64, entries, plan.naive_bytes))


# ------------------------------------------------------------ random DAGs
def random_graph(seed: int) -> Graph:
    """A random DAG of [k,16] tensors: elementwise, broadcast, reductions, views, concat."""
    rnd = random.Random(seed)
    g = Graph("rand")
    vals = [g.add_input("x", tensor(f32, (rnd.randint(1, 4), 16)))]
    shape16 = g.add_constant(np.array([16, -1], dtype=np.int64), "to16")
    for _ in range(rnd.randint(3, 25)):
        a = rnd.choice(vals[-6:])
        same = [v for v in vals if v.shape == a.shape]
        op = rnd.choice(["Relu", "Neg", "Add", "Mul", "Softmax", "Reshape", "Concat", "Split", "Fused"])
        if op in ("Relu", "Neg", "Softmax"):
            vals.append(g.add(op, a))
        elif op in ("Add", "Mul"):
            vals.append(g.add(op, a, rnd.choice(same)))
        elif op == "Reshape" and a.shape[1] == 16:
            r = g.add("Reshape", a, shape16)
            vals.append(g.add("Reshape", g.add("Relu", r), g.add_constant(np.array([-1, 16]), "back")))
        elif op == "Concat" and a.shape[0] < 8:
            vals.append(g.add("Concat", a, rnd.choice(vals), axis=0))
        elif op == "Split":
            outs = g.create_node("Split", [a], {"axis": 1, "num_outputs": 2}, num_outputs=2).outputs
            vals.append(g.add("Concat", outs[1], outs[1], axis=1) if rnd.random() < 0.5 else
                        g.add("Concat", outs[0], outs[1], axis=1))
        elif op == "Fused":
            vals.append(fused_softmax_add(g, a, rnd.choice(same)))
        else:
            vals.append(g.add("Relu", a))
    outs = [vals[-1]] + [v for v in vals[1:-1] if not v.uses or rnd.random() < 0.1]
    g.set_outputs(outs)
    run_pipeline(g, "dce")
    return g


def fused_softmax_add(g: Graph, a, b):
    """``Softmax(a) + b`` as one kernel: it may overwrite ``b``, never ``a``."""
    body = Graph("body")
    i0, i1 = body.add_input("i0", a.type), body.add_input("i1", b.type)
    body.set_outputs([body.add("Add", body.add("Softmax", i0), i1)])
    return g.create_node("Fused", [a, b], {"body": body, "pattern": "Softmax+Add"},
                         domain="nnc").output


@pytest.mark.parametrize("seed", range(60))
def test_random_dags(seed: int):
    g = random_graph(seed)
    feeds = random_feeds(g, seed)
    for opts in ({}, {"views": False, "inplace": False}, {"plan_outputs": True}):
        plan, details = build_plan(g, **opts)
        verify_plan(g, plan)
        assert plan.peak_live_bytes <= plan.arena_bytes
        assert plan.arena_bytes <= max(details["arena_by_strategy"].values())
        assert plan.arena_bytes <= sum(-(-e.nbytes // 64) * 64 for e in plan.entries.values()
                                       if e.kind == "arena")
        assert plan.arena_bytes <= plan.naive_bytes or plan.naive_bytes < 64 * len(plan.entries)
        assert_arena_run_matches(g, plan, feeds)


def test_arena_runs_catch_a_clobbering_plan():
    g, plan = planned("""
        graph @main(%x: f32[4,16]) {
          %a: f32[4,16] = Softmax(%x)
          %b: f32[4,16] = Softmax(%a)
          %c: f32[4,16] = Add(%a, %b)
          %y: f32[4,16] = Softmax(%c)
          return %y
        }""", "inplace=false")
    bad = MemoryPlan(plan.arena_bytes, 64, dict(plan.entries, b=plan.entries["a"]), plan.naive_bytes)
    with pytest.raises(AssertionError):
        assert_arena_run_matches(g, bad, random_feeds(g))
    with pytest.raises(CompilerError):
        verify_plan(g, bad)


def test_random_dags_exercise_every_kind():
    kinds = set()
    for seed in range(60):
        plan, _ = build_plan(random_graph(seed))
        kinds.update(e.kind.split(":")[0] for e in plan.entries.values())
    assert kinds == {"arena", "view-of", "inplace-of"}


# ------------------------------------------------------------- real models
@functools.lru_cache(maxsize=None)
def prepared_model(path: str, batch: int = 0) -> Graph:
    """The imported model after PREP; ``batch`` fixes a symbolic batch dimension."""
    options = None
    if batch:
        first = onnx.load(path).graph.input[0]
        dims = [d.dim_value or batch for d in first.type.tensor_type.shape.dim]
        options = ImportOptions(input_shapes={first.name: tuple(dims)})
    g = import_onnx(path, options)
    run_pipeline(g, PREP)
    return g


def light(name: str) -> str:
    return os.path.join(LIGHT, f"light_{name}.onnx")


SMALL = [light("squeezenet"), light("shufflenet"), light("inception_v1"),
         f"{DIGITS}/digits_cnn.onnx", f"{DIGITS}/digits_mlp.onnx"]
LARGE = [light(n) for n in ("resnet50", "densenet121", "vgg19", "inception_v2", "bvlc_alexnet",
                            "zfnet512")]


def check_model(path: str, run_arena: bool) -> MemoryPlan:
    g = prepared_model(path, batch=3 if "digits" in path else 0).clone()
    ctx = run_pipeline(g, "plan-memory")
    plan = plan_of(g)
    verify_plan(g, plan)
    assert plan.peak_live_bytes <= plan.arena_bytes <= plan.naive_bytes
    assert ctx.stats["memory_ratio"] == plan.ratio
    if run_arena:
        assert_arena_run_matches(g, plan, random_feeds(g))
    return plan


@pytest.mark.parametrize("path", SMALL, ids=os.path.basename)
def test_light_models_small(path: str):
    check_model(path, run_arena="digits" in path or "squeezenet" in path)


@pytest.mark.slow
@pytest.mark.parametrize("path", LARGE + SMALL, ids=os.path.basename)
def test_light_models_all(path: str):
    plan = check_model(path, run_arena=True)
    if "resnet50" in path:
        assert plan.ratio <= 0.25


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp"])
def test_digits_with_a_symbolic_batch_get_no_plan(name: str):
    g = prepared_model(f"{DIGITS}/{name}.onnx").clone()
    ctx = run_pipeline(g, "plan-memory")
    assert plan_of(g) is None and ctx.stats["memory_planned"] is False
