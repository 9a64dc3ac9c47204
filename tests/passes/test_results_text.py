"""The text form of pass results: schedules, placements and the arena round-trip through the parser."""

from __future__ import annotations

import textwrap

import pytest

from ir import parse_graph, print_graph, verify
from ir.errors import IRParseError
from ir.memory import Arena, Placement, plan_of
from ir.printer import print_graph as print_with
from ir.schedule import Schedule, assign_schedule, kernel_fingerprint

# Every form at once: a schedule with a vector axis, a systolic one with a dataflow, one without a
# fingerprint, placements of each kind (a multi-output node too), the arena header, a location.
EVERYTHING = """
graph @main(%x: f32[4,16]) memory{arena_bytes=768, alignment=64, naive_bytes=1536, peak_live_bytes=768, algorithm="in-order/first-fit"} {
  %shape: i64[1] = constant [64]
  %a: f32[4,16] @mem(offset=0, nbytes=256) = Softmax(%x) schedule{kind="reduction", params={chunk=64}, vector="inner:16", parallel=1, est_cycles=16, source="model", for="0badc0de"}
  %r: f32[64] @mem(offset=0, nbytes=256, view_of=%a) = Reshape(%a, %shape)
  %b: f32[64] @mem(offset=0, nbytes=256, inplace_of=%r) = Relu(%r) schedule{kind="elementwise", params={}, parallel=2, est_cycles=0, source="tuned"} loc("relu_1")
  %s0: f32[32] @mem(offset=256, nbytes=128), %s1: f32[32] @mem(offset=384, nbytes=128) = Split(%b) {axis=0, num_outputs=2}
  %m: f32[32] @mem(offset=512, nbytes=128) = Mul(%s0, %s1) schedule{kind="systolic_gemm", params={fold_cols=1, fold_rows=2, k=-1, m=32}, parallel=1, est_cycles=96, source="model", dataflow="ws", for="12345678"}
  %y: f32[32] = Neg(%m)
  return %y
}""".strip()


def test_everything_round_trips():
    g = parse_graph(EVERYTHING)
    assert print_with(g, locations=True) == EVERYTHING
    assert print_with(parse_graph(print_with(g, locations=True)), locations=True) == EVERYTHING
    assert g.memory == Arena(768, 64, 1536, 768, "in-order/first-fit")
    assert g.value("r").placement == Placement(0, 256, "view", g.value("a"))
    assert g.value("b").placement == Placement(0, 256, "inplace", g.value("r"))
    assert g.value("s1").placement == Placement(384, 128)
    assert g.value("y").placement is None and g.inputs[0].placement is None
    a, b, m = (g.value(n).producer for n in "abm")
    assert a.schedule == Schedule("reduction", {"chunk": 64}, "inner", 16, 1, 16, "model", "", "0badc0de")
    assert b.schedule == Schedule("elementwise", {}, parallel=2, source="tuned") and b.name == "relu_1"
    assert m.schedule.dataflow == "ws" and m.schedule.params["k"] == -1
    assert plan_of(g).entries["b"].kind == "inplace-of:r"


def test_params_print_sorted_and_text_is_deterministic():
    g = parse_graph("graph @main(%a: f32[4,8], %b: f32[8,4]) {\n  %y: f32[4,4] = MatMul(%a, %b)\n  return %y\n}")
    node = g.nodes[0]
    assign_schedule(node, Schedule("gemm", {"nr": 16, "mr": 4, "kc": 8, "mc": 4}, "n", 16))
    line = print_graph(g).splitlines()[1]
    assert line == ('  %y: f32[4,4] = MatMul(%a, %b) schedule{kind="gemm", params={kc=8, mc=4, mr=4, nr=16}, '
                    f'vector="n:16", parallel=1, est_cycles=0, source="model", for="{kernel_fingerprint(node)}"}}')
    verify(g)
    assert print_graph(g.clone()) == print_graph(g)


def test_tuning_text_keeps_the_fingerprint():
    s = Schedule("gemm", {"mr": 4}, "n", 16, fingerprint="00ff00ff")
    assert Schedule.from_text(s.to_text()) == s


def parse_error(body: str) -> str:
    text = "graph @main(%x: f32[4]) {\n" + textwrap.dedent(body).strip() + "\n  return %y\n}"
    with pytest.raises(IRParseError) as exc:
        parse_graph(text)
    return str(exc.value)


@pytest.mark.parametrize("body,message", [
    ('%y: f32[4] = Relu(%x) schedule{params={}}', "schedule without 'kind'"),
    ('%y: f32[4] = Relu(%x) schedule{kind="elementwise"}', "schedule without 'params'"),
    ('%y: f32[4] = Relu(%x) schedule{kind="e", params={}, speed=3}', "unknown schedule field 'speed'"),
    ('%y: f32[4] = Relu(%x) schedule{kind="e", params={a=1.5}}', "expected an integer"),
    ('%y: f32[4] = Relu(%x) schedule{kind="e", params={}, vector="16"}', 'vector must be "axis:lanes"'),
    ('%y: f32[4] = Relu(%x) schedule{kind="e", kind="f", params={}}', "given twice"),
    ('%y: f32[4] @mem(offset=0) = Relu(%x)', "@mem needs offset and nbytes"),
    ('%y: f32[4] @mem(offset=0, nbytes=16, size=3) = Relu(%x)', "unknown @mem field 'size'"),
    ('%y: f32[4] @mem(offset=0, nbytes=16, view_of=%z) = Relu(%x)', "use of undefined value %z"),
    ('%a: f32[4] = Relu(%x)\n%y: f32[4] @mem(offset=0, nbytes=16, view_of=%a, inplace_of=%a) = Relu(%a)',
     "both view_of and inplace_of"),
])
def test_malformed_results_are_parse_errors(body, message):
    assert message in parse_error(body)


def test_malformed_memory_header():
    with pytest.raises(IRParseError, match="memory without 'arena_bytes'"):
        parse_graph("graph @main(%x: f32[4]) memory{alignment=64} {\n  return %x\n}")
    with pytest.raises(IRParseError, match="unknown memory field 'arena'"):
        parse_graph("graph @main(%x: f32[4]) memory{arena=64} {\n  return %x\n}")
