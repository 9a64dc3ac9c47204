"""Extending the compiler touches only the new thing's own files.

* An elementwise op with a cpu kernel is its registry entry (kind included)
  plus its cpu emitter: fusion, scheduling, the memory planner, the cpu
  backend's coverage and ``python -m compiler ops`` read the kind from the
  registry and the emitter from the emitter table.
* A pass, an import rule family, an op family or a kernel family is one
  file dropped into its package folder: every module there whose name does
  not start with ``_`` is imported on first use (``ir.discovery``).
* First use from several threads at once is safe.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import compiler
from backends.base import Coverage, get_backend
from backends.cpu.expr import constant, elementwise_op, unregister_elementwise
from ir import Graph, run_graph, tensor
from ir.dtypes import f32
from ir.registry import ELEMENTWISE, InferContext, define, get_schema, has_schema, undefine

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- A: op kinds
@pytest.fixture(params=["nnc.example", "nnc"])
def example_op(request):
    """``ExampleSquarePlusOne(x) = x*x + 1``: a registry entry and a cpu emitter, nothing else.

    Also defined in the ``nnc`` domain itself, which the cpu backend once took
    for an index-mapping domain as a whole.
    """
    domain = request.param
    schema = define("ExampleSquarePlusOne", domain=domain, inputs=["X"], outputs=["Y"], kind=ELEMENTWISE,
                    doc="x * x + 1 (an example op defined by a test)")

    @schema.infer
    def _(ctx: InferContext):
        return [ctx.input_type(0)]

    @schema.reference
    def _(x):
        return x * x + np.ones((), x.dtype)

    @elementwise_op("ExampleSquarePlusOne", domain=domain)
    def _(kb, b, node, xs):
        x = xs[0]
        return b.fadd(b.fmul(x, x), constant(x, 1.0))

    yield schema
    unregister_elementwise("ExampleSquarePlusOne", domain=domain)
    undefine("ExampleSquarePlusOne", domain=domain)


def _relu_example_add(domain: str) -> Graph:
    g = Graph("extending")
    x = g.add_input("x", tensor(f32, (4, 37)))
    y = g.add_input("y", tensor(f32, (4, 37)))
    r = g.add("Relu", x)
    e = g.add("ExampleSquarePlusOne", r, domain=domain)
    g.set_outputs([g.add("Add", e, y)])
    return g


def test_new_elementwise_op_compiles_and_fuses(example_op):
    domain = example_op.domain
    graph = _relu_example_add(domain)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, 37)).astype(np.float32),
             "y": rng.standard_normal((4, 37)).astype(np.float32)}
    (want,) = run_graph(graph, feeds)
    np.testing.assert_allclose(want, np.maximum(feeds["x"], 0) ** 2 + 1 + feeds["y"], rtol=1e-6)

    result = compiler.build(graph, target="cpu")
    got = result.module.run(feeds)
    (out,) = got.values()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)

    # Fusion put the new op in one kernel with its neighbours.
    fused = [n for n in result.graph.nodes if n.domain == "nnc" and n.op == "Fused"]
    assert len(fused) == 1, [n.qualified_op for n in result.graph.nodes]
    body_ops = [(n.domain, n.op) for n in fused[0].attrs["body"].nodes]
    assert body_ops == [("", "Relu"), (domain, "ExampleSquarePlusOne"), ("", "Add")]
    assert fused[0].attrs["pattern"] == "Relu+ExampleSquarePlusOne+Add"
    assert len(result.graph.nodes) == 1
    assert get_backend("cpu").op_coverage(example_op) is Coverage.KERNEL


def test_new_elementwise_op_in_the_ops_listing(example_op, capsys):
    from compiler.cli import main
    assert main(["ops", "--targets", "cpu,ref"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [example_op.qualified_name, "elementwise", "yes", "yes"] in rows


def test_no_example_op_left_behind():
    """The fixture's teardown removed the op and its emitter (this runs after the tests using it)."""
    from backends.cpu.expr import elementwise_ops
    for domain in ("nnc.example", "nnc"):
        assert not has_schema("ExampleSquarePlusOne", domain)
        assert (domain, "ExampleSquarePlusOne") not in elementwise_ops()


def test_kinds_and_rank_come_from_the_registry():
    import passes.fuse as fuse
    import ir.anchor as anchor
    from ir.memory import is_view_op
    from ir.registry import KIND_RANK, all_schemas
    assert fuse.RANK is KIND_RANK and anchor.KIND_RANK is KIND_RANK
    assert all(s.kind in KIND_RANK for s in all_schemas())
    views = {s.qualified_name for s in all_schemas() if s.view}
    assert views == {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
    g = Graph("v")
    x = g.add_input("x", tensor(f32, (2, 3)))
    flat = g.add("Flatten", x)
    assert is_view_op(flat.producer) and not is_view_op(g.add("Relu", flat).producer)
    with pytest.raises(ValueError, match="unknown kind"):
        define("ExampleBadKind", domain="nnc.example", kind="pointwise")
    assert not has_schema("ExampleBadKind", "nnc.example")


def test_cpu_coverage_comes_from_emitter_tables():
    from backends.cpu.evaluator import index_map_ops
    from backends.cpu.expr import elementwise_ops
    from backends.cpu.kernels import generated_ops
    cpu = get_backend("cpu")
    covered = generated_ops()
    assert elementwise_ops() <= covered and index_map_ops() <= covered
    assert {("", "Conv"), ("", "Gemm"), ("", "MatMul"), ("", "MaxPool"), ("", "ReduceSum"), ("", "Softmax"),
            ("nnc", "ConvNCHWc")} <= covered
    assert cpu.op_coverage(get_schema("Relu")) is Coverage.KERNEL
    assert cpu.op_coverage(get_schema("Transpose")) is Coverage.KERNEL
    assert cpu.op_coverage(get_schema("ToBlocked", "nnc")) is Coverage.KERNEL
    assert cpu.op_coverage(get_schema("ConvTranspose")) is Coverage.KERNEL  # lowered to Conv by the cpu pipeline
    assert cpu.op_coverage(get_schema("ConvNHWC", "nnc")) is Coverage.NONE


# ----------------------------------------------------------- B: discovery
PASS_MODULE = '''
"""example-dropped-in: renames the first node's output (a pass added as one file)."""

from passes.manager import register_pass


@register_pass("example-dropped-in")
def example_dropped_in(graph, ctx) -> bool:
    """Rename the first node's output to show that the pass ran."""
    graph.rename(graph.nodes[0].outputs[0], "renamed_by_dropped_in_pass")
    return True
'''


def _relu_model(path: Path) -> Path:
    node = helper.make_node("Relu", ["x"], ["r"])
    node2 = helper.make_node("Neg", ["r"], ["y"])
    graph = helper.make_graph([node, node2], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


@pytest.fixture
def dropped_in(tmp_path):
    """Put a module into a package as if its file were in the package folder; undo afterwards."""
    added = []

    def drop(package: str, module: str, text: str, discovery) -> None:
        pkg = importlib.import_module(package)
        folder = tmp_path / package.replace(".", "_")
        folder.mkdir(exist_ok=True)
        (folder / f"{module}.py").write_text(textwrap.dedent(text))
        pkg.__path__.append(str(folder))
        importlib.invalidate_caches()
        discovery.reset()
        added.append((pkg, str(folder), f"{package}.{module}", discovery))

    yield drop
    for pkg, folder, name, discovery in added:
        pkg.__path__.remove(folder)
        sys.modules.pop(name, None)
        discovery.reset()


def test_pass_is_one_file(dropped_in, tmp_path, capsys):
    from compiler.cli import main
    from passes import manager
    drop_name = "example_dropped_in"
    assert "example-dropped-in" not in {p.name for p in manager.all_passes()}
    dropped_in("passes", drop_name, PASS_MODULE, manager._DISCOVERY)
    try:
        model = _relu_model(tmp_path / "relu.onnx")
        assert main(["inspect", str(model), "--ir", "--passes", "example-dropped-in,dce"]) == 0
        out = capsys.readouterr().out
        assert "%renamed_by_dropped_in_pass: f32[2,3] = Relu(%x)" in out
        assert "example-dropped-in" in {p.name for p in manager.all_passes()}
        assert main(["passes"]) == 0
        assert "example-dropped-in" in capsys.readouterr().out
    finally:
        manager.unregister_pass("example-dropped-in")
    assert "example-dropped-in" not in {p.name for p in manager.all_passes()}


RULE_MODULE = '''
"""Import rules for an example custom domain (a family added as one file)."""

from frontends.onnx.rules import rule


@rule("ExampleDouble", domain="com.example")
def _(b):
    x = b.input(0)
    return b.emit("Add", [x, x])
'''


def test_import_rule_family_is_one_file(dropped_in):
    from frontends.onnx import import_model, rules
    node = helper.make_node("ExampleDouble", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    with pytest.raises(compiler.CompilerError, match="ExampleDouble"):
        import_model(model)
    dropped_in("frontends.onnx.rules", "example_rules", RULE_MODULE, rules._DISCOVERY)
    try:
        g = import_model(model)
        assert [n.op for n in g.nodes] == ["Add"]
        x = np.array([1.0, -2.0, 3.5], np.float32)
        (y,) = run_graph(g, {"x": x})
        np.testing.assert_array_equal(y, 2 * x)
    finally:
        rules.unregister_rules("ExampleDouble", domain="com.example")


def test_discovery_skips_underscore_modules_and_imports_the_rest():
    from ir.discovery import Discovery
    d = Discovery("passes")
    names = d.module_names()
    assert "fuse" in names and "manager" in names and not any(n.startswith("_") for n in names)
    assert "builtin" not in names  # the hand-kept import list is gone
    ops = Discovery("ir.ops").module_names()
    assert "elementwise" in ops and "_common" not in ops


THREADS_SCRIPT = '''
import sys, threading, traceback
import numpy as np
from onnx import TensorProto, helper
import compiler

node = helper.make_node("Gemm", ["a", "b"], ["c"], transB=1)
graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 8]),
                                        helper.make_tensor_value_info("b", TensorProto.FLOAT, [5, 8])],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4, 5])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
barrier = threading.Barrier(8)
errors, results = [], []
a = np.arange(32, dtype=np.float32).reshape(4, 8) / 7
b = np.arange(40, dtype=np.float32).reshape(5, 8) / 11


def work():
    try:
        barrier.wait()
        m = compiler.compile(model, target="cpu")
        (c,) = m.run({"a": a, "b": b}).values()
        np.testing.assert_allclose(c, a @ b.T, rtol=1e-5)
        results.append(True)
    except BaseException:
        errors.append(traceback.format_exc())


threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("\\n".join(errors))
print(f"ok {len(results)}")
sys.exit(0 if len(results) == 8 and not errors else 1)
'''


def test_first_use_from_eight_threads():
    """Every registry loads under a lock: no thread sees a half-filled one ("no cpu kernel")."""
    proc = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok 8" in proc.stdout
