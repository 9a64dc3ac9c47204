"""Pipeline parsing, pass instruments (verification, timing, IR printing and dumping, custom ones)."""

import io

import pytest

from ir import parse_graph
from ir.errors import PassError
from passes import PassManager, parse_pipeline, register_pass
from passes.instruments import DumpIR, PassInstrument, PrintIRAfter, Timing, VerifyEach

SRC = """graph @main(%x: f32[2]) {
  %a: f32[2] = constant [1.0, 2.0]
  %b: f32[2] = Neg(%a)
  %y: f32[2] = Add(%x, %b)
  return %y
}"""


@register_pass("test-options")
def _test_options(graph, ctx, *, size: int = 32, ratio: float = 0.5, name: str = "x",
                  flag: bool = False):
    ctx.stats["seen"] = (size, ratio, name, flag)
    return False


@register_pass("test-break-uses")
def _test_break(graph, ctx):
    """Corrupts a use list, as a buggy pass would."""
    graph.nodes[0].outputs[0]._uses.clear()
    return True


def test_parse_pipeline_with_options():
    steps = parse_pipeline("fold-constants, test-options{size=64,ratio=0.25,name=abc,flag=true},dce")
    assert [s.info.name for s in steps] == ["fold-constants", "test-options", "dce"]
    assert steps[1].options == {"size": 64, "ratio": 0.25, "name": "abc", "flag": True}
    assert str(steps[1]) == "test-options{size=64,ratio=0.25,name=abc,flag=True}"


def test_options_reach_the_pass():
    pm = PassManager("test-options{size=7}")
    ctx = pm.run(parse_graph(SRC))
    assert ctx.stats["seen"] == (7, 0.5, "x", False)


@pytest.mark.parametrize("spec, msg", [
    ("no-such-pass", "unknown pass"),
    ("test-options{bogus=1}", "unknown option"),
    ("test-options{size=big}", "bad option value"),
    ("test-options{size=1", "unbalanced"),
    ("Bad_Name", "unknown pass|malformed"),
])
def test_bad_pipelines_are_rejected(spec, msg):
    with pytest.raises(PassError, match=msg):
        parse_pipeline(spec)


def test_verification_after_each_pass_names_the_culprit():
    with pytest.raises(PassError, match="test-break-uses"):
        PassManager("test-break-uses").run(parse_graph(SRC))


def test_print_ir_after_and_dump(tmp_path):
    out = io.StringIO()
    pm = PassManager("fold-constants,dce", print_ir_after=["dce"], dump_ir_dir=tmp_path, stream=out)
    pm.run(parse_graph(SRC))
    text = out.getvalue()
    assert "IR after dce" in text and "IR after fold-constants" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00-input.ir", "01-fold-constants.ir", "02-dce.ir"]
    assert "Neg" in (tmp_path / "00-input.ir").read_text()
    assert "Neg" not in (tmp_path / "02-dce.ir").read_text()


def test_timing_report_lists_every_pass():
    pm = PassManager("fold-constants,cse,dce")
    pm.run(parse_graph(SRC))
    report = pm.timing_report()
    for name in ("fold-constants", "cse", "dce", "total"):
        assert name in report
    assert [r.changed for r in pm.records] == [True, False, True]


def test_register_pass_requires_kebab_case():
    with pytest.raises(ValueError):
        register_pass("NotKebab")


def test_with_pass_options_sets_options_on_the_named_pass_only():
    from passes.manager import with_pass_options
    text = with_pass_options("fold-constants,schedule{tune_budget=5.0},dce", "schedule",
                             {"tune": True, "tuning_db": "db.json"})
    assert text == "fold-constants,schedule{tune_budget=5.0,tune=True,tuning_db=db.json},dce"
    steps = parse_pipeline(text)
    assert steps[1].options == {"tune_budget": 5.0, "tune": True, "tuning_db": "db.json"}
    with pytest.raises(PassError, match="unknown option"):
        with_pass_options("schedule", "schedule", {"speed": 11})


class Recorder(PassInstrument):
    """Records every hook call, in order."""

    def __init__(self, calls):
        self.calls = calls

    def enter_pipeline(self, graph, ctx):
        self.calls.append(("enter", len(graph.nodes)))

    def run_before_pass(self, graph, step, ctx):
        assert ctx.current_pass == step.info.name
        self.calls.append(("before", step.info.name, len(graph.nodes)))

    def run_after_pass(self, graph, step, ctx, changed, seconds):
        assert seconds >= 0
        self.calls.append(("after", step.info.name, changed, len(graph.nodes)))

    def exit_pipeline(self, graph, ctx):
        self.calls.append(("exit", ctx.current_pass))


def test_instrument_sees_the_pass_order():
    calls = []
    pm = PassManager("fold-constants,test-options{size=3},cse,dce", instruments=[Recorder(calls)])
    ctx = pm.run(parse_graph(SRC))
    assert ctx.stats["seen"][0] == 3
    # Neg(constant) folds away (2 -> 1 nodes); dce then drops the unused constant.
    assert calls == [("enter", 2),
                     ("before", "fold-constants", 2), ("after", "fold-constants", True, 1),
                     ("before", "test-options", 1), ("after", "test-options", False, 1),
                     ("before", "cse", 1), ("after", "cse", False, 1),
                     ("before", "dce", 1), ("after", "dce", True, 1),
                     ("exit", "")]
    # The built-in instruments come first, in a fixed order; the caller's after them.
    assert [type(i).__name__ for i in pm.instruments] == ["Timing", "VerifyEach", "Recorder"]


def test_instruments_run_in_order_and_see_the_same_pass():
    calls = []
    first, second = Recorder(calls), Recorder(calls)
    first.run_after_pass = lambda g, step, ctx, changed, s: calls.append(("first", step.info.name))
    second.run_after_pass = lambda g, step, ctx, changed, s: calls.append(("second", step.info.name))
    PassManager("cse,dce", verify_each=False, instruments=[first, second]).run(parse_graph(SRC))
    assert [c for c in calls if c[0] in ("first", "second")] == [
        ("first", "cse"), ("second", "cse"), ("first", "dce"), ("second", "dce")]


def test_exit_runs_when_a_pass_breaks_the_graph():
    calls = []
    with pytest.raises(PassError, match="test-break-uses"):
        PassManager("test-break-uses,dce", instruments=[Recorder(calls)]).run(parse_graph(SRC))
    # VerifyEach (before the caller's instrument) raised after the pass: dce never ran.
    assert calls == [("enter", 2), ("before", "test-break-uses", 2), ("exit", "")]


def test_without_verify_each_nothing_verifies():
    pm = PassManager("test-break-uses", verify_each=False)
    pm.run(parse_graph(SRC))  # the broken use list goes unnoticed
    assert not any(isinstance(i, VerifyEach) for i in pm.instruments)
    assert [r.name for r in pm.records] == ["test-break-uses"]


def test_standard_instruments_work_on_their_own(tmp_path):
    out = io.StringIO()
    timing = Timing()
    pm = PassManager("fold-constants,dce", verify_each=False,
                     instruments=[timing, PrintIRAfter(["all"], out), DumpIR(tmp_path / "ir")])
    pm.run(parse_graph(SRC))
    assert [(r.name, r.nodes_before, r.nodes_after) for r in timing.records] == [
        ("fold-constants", 2, 1), ("dce", 1, 1)]
    assert "total" in timing.report()
    assert out.getvalue().count("// ----- IR after") == 2
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == ["00-input.ir", "01-fold-constants.ir",
                                                                   "02-dce.ir"]


def test_unknown_print_ir_after_name_fails_early():
    with pytest.raises(PassError, match="unknown pass"):
        PassManager("dce", print_ir_after=["no-such-pass"])
