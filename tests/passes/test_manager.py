"""Pipeline parsing, per-pass verification, timing, IR printing and dumping."""

import io

import pytest

from ir import parse_graph
from ir.errors import PassError
from passes import PassManager, parse_pipeline, register_pass

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
