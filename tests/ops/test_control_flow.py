"""If, Loop and Scan against onnxruntime, through import rules and the reference interpreter.

Bodies use only elementwise ops (Add, Mul, Less...), so these tests do not
depend on other op families.  ``check_model`` (also used by test_sequence.py)
runs a small multi-node model through our pipeline and onnxruntime and
compares results, sequences (lists) and absent optionals (None) included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from frontends.onnx import import_model
from ir.dtypes import DType
from ir.errors import CompilerError, ExecutionError, ImportError_, TypeInferenceError
from ir.ops.control_flow import join_types
from ir.types import OptionalType, SequenceType, TensorType
from tests.ops.ortcheck import Const, run_ort

F32, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


# ------------------------------------------------------------------ helpers
def value_info(name: str, x: Any) -> onnx.ValueInfoProto:
    """A graph input typed after the value that will be fed."""
    if isinstance(x, onnx.TypeProto):
        return helper.make_value_info(name, x)
    if isinstance(x, list):
        elem = helper.make_tensor_type_proto(DType.from_numpy(x[0].dtype).onnx, None)
        return helper.make_value_info(name, helper.make_sequence_type_proto(elem))
    arr = np.asarray(x)
    return helper.make_tensor_value_info(name, DType.from_numpy(arr.dtype).onnx, arr.shape)


def make_model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, Any], outputs: Sequence[str],
               *, opset: int = 21, output_types: Optional[dict[str, onnx.TypeProto]] = None,
               ir_version: int = 10) -> onnx.ModelProto:
    """A model of ``nodes``; inputs wrapped in ``Const`` become initializers."""
    graph_inputs, inits = [], []
    for name, x in inputs.items():
        if isinstance(x, Const):
            inits.append(numpy_helper.from_array(np.asarray(x.value), name))
        else:
            graph_inputs.append(value_info(name, x))
    outs = [helper.make_value_info(o, (output_types or {}).get(o, onnx.TypeProto())) for o in outputs]
    graph = helper.make_graph(list(nodes), "test", graph_inputs, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    inferred = onnx.shape_inference.infer_shapes(model)
    for out, inf in zip(model.graph.output, inferred.graph.output):
        if not out.type.WhichOneof("value"):
            out.type.CopyFrom(inf.type)
    return model


def feeds_of(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if not isinstance(v, Const)}


def run_ours(model: onnx.ModelProto, feeds: dict[str, Any]) -> list[Any]:
    m = compiler.compile(model)
    out = m.run(feeds)
    return [out[n] for n in m.output_names]


def assert_same(ours: Any, theirs: Any, where: str = "output") -> None:
    """Recursive comparison: arrays (dtype, shape, values), lists, None."""
    if theirs is None or ours is None:
        assert ours is None and theirs is None, f"{where}: {ours!r} != {theirs!r}"
        return
    if isinstance(theirs, list):
        assert isinstance(ours, list), f"{where}: expected a sequence, got {type(ours).__name__}"
        assert len(ours) == len(theirs), f"{where}: length {len(ours)} != {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{i}]")
        return
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-5, atol=1e-6,
                               err_msg=where)


def check_model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, Any], outputs: Sequence[str],
                *, opset: int = 21, expected: Optional[Sequence[Any]] = None,
                output_types: Optional[dict[str, onnx.TypeProto]] = None) -> list[Any]:
    """Assert our outputs equal onnxruntime's (or ``expected``); returns ours."""
    model = make_model(nodes, inputs, outputs, opset=opset, output_types=output_types)
    feeds = feeds_of(inputs)
    ours = run_ours(model, feeds)
    theirs = list(expected) if expected is not None else run_ort(model, feeds)
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_same(a, b, f"output {i} ({outputs[i]})")
    return ours


def ir_types(nodes, inputs, outputs, **kw) -> list:
    """Our IR types of the model's outputs."""
    g = import_model(make_model(nodes, inputs, outputs, **kw))
    return [v.type for v in g.outputs]


def tensor_vi(name: str, elem: int = F32, shape: Optional[Sequence] = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def untyped(name: str) -> onnx.ValueInfoProto:
    return helper.make_value_info(name, onnx.TypeProto())


def graph(nodes, inputs, outputs, name="body") -> onnx.GraphProto:
    return helper.make_graph(nodes, name, inputs, outputs)


rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3)).astype(np.float32)
Y = rng.standard_normal((2, 3)).astype(np.float32)


# ------------------------------------------------------------------------ If
def if_model_branches():
    """then: x + y (captures x, y); else: x * x (captures only x)."""
    then_g = graph([helper.make_node("Add", ["x", "y"], ["t"])], [], [tensor_vi("t")], "then")
    else_g = graph([helper.make_node("Mul", ["x", "x"], ["e"])], [], [tensor_vi("e")], "else")
    return helper.make_node("If", ["cond"], ["out"], then_branch=then_g, else_branch=else_g)


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("as_const", [False, True])
def test_if_branches_capture_different_outer_values(cond, as_const):
    c = np.array(cond)
    check_model([if_model_branches()], {"cond": Const(c) if as_const else c, "x": X, "y": Y}, ["out"])


def test_if_branches_take_the_union_of_captures():
    g = import_model(make_model([if_model_branches()], {"cond": np.array(True), "x": X, "y": Y},
                                ["out"]))
    node = g.find_nodes("If")[0]
    assert [v.name for v in node.inputs] == ["cond", "x", "y"]
    assert node.attrs["then_branch"].inputs[0].type == node.attrs["else_branch"].inputs[0].type
    assert len(node.attrs["then_branch"].inputs) == len(node.attrs["else_branch"].inputs) == 2


@pytest.mark.parametrize("cond", [True, False])
def test_if_multiple_outputs_with_different_shapes(cond):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    n = rng.integers(0, 9, (3,)).astype(np.int64)
    then_g = graph([helper.make_node("Add", ["a", "a"], ["t0"]), helper.make_node("Add", ["n", "n"], ["t1"])],
                   [], [tensor_vi("t0"), tensor_vi("t1", I64)], "then")
    else_g = graph([helper.make_node("Mul", ["b", "b"], ["e0"]), helper.make_node("Mul", ["n", "n"], ["e1"])],
                   [], [tensor_vi("e0"), tensor_vi("e1", I64)], "else")
    node = helper.make_node("If", ["cond"], ["o0", "o1"], then_branch=then_g, else_branch=else_g)
    inputs = {"cond": np.array(cond), "a": a, "b": b, "n": n}
    check_model([node], inputs, ["o0", "o1"])
    t0, t1 = ir_types([node], inputs, ["o0", "o1"])
    assert t0 == TensorType(DType.F32, (None, 3))  # 2 vs 4 rows: unknown; 3 columns: known
    assert t1 == TensorType(DType.I64, (3,))


@pytest.mark.parametrize("c1,c2", [(True, True), (True, False), (False, True)])
def test_nested_if_captures_through_two_levels(c1, c2):
    inner_then = graph([helper.make_node("Add", ["x", "y"], ["it"])], [], [tensor_vi("it")], "it")
    inner_else = graph([helper.make_node("Sub", ["x", "y"], ["ie"])], [], [tensor_vi("ie")], "ie")
    inner = helper.make_node("If", ["c2"], ["inner"], then_branch=inner_then, else_branch=inner_else)
    outer_then = graph([inner, helper.make_node("Mul", ["inner", "x"], ["ot"])], [], [tensor_vi("ot")])
    outer_else = graph([helper.make_node("Mul", ["y", "y"], ["oe"])], [], [tensor_vi("oe")])
    node = helper.make_node("If", ["c1"], ["out"], then_branch=outer_then, else_branch=outer_else)
    check_model([node], {"c1": np.array(c1), "c2": np.array(c2), "x": X, "y": Y}, ["out"])


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_if_older_opsets(opset):
    check_model([if_model_branches()], {"cond": np.array(False), "x": X, "y": Y}, ["out"], opset=opset)


def test_if_rejects_branches_of_different_types():
    then_g = graph([helper.make_node("Add", ["x", "x"], ["t"])], [], [tensor_vi("t")])
    else_g = graph([helper.make_node("Add", ["n", "n"], ["e"])], [], [tensor_vi("e", I64)])
    node = helper.make_node("If", ["cond"], ["out"], then_branch=then_g, else_branch=else_g)
    model = make_model([node], {"cond": np.array(True), "x": X, "n": np.arange(3)}, ["out"],
                       output_types={"out": helper.make_tensor_type_proto(F32, None)})
    with pytest.raises(TypeInferenceError, match="different types in the two branches"):
        import_model(model)


def test_if_rejects_a_non_boolean_condition():
    model = make_model([if_model_branches()], {"cond": np.array(1.0, np.float32), "x": X, "y": Y},
                       ["out"], output_types={"out": helper.make_tensor_type_proto(F32, None)})
    with pytest.raises(TypeInferenceError, match="cond has the wrong element type"):
        import_model(model)


def test_if_rejects_branches_with_different_output_counts():
    then_g = graph([helper.make_node("Add", ["x", "x"], ["t"])], [], [tensor_vi("t"), tensor_vi("t")])
    else_g = graph([helper.make_node("Mul", ["x", "x"], ["e"])], [], [tensor_vi("e")])
    node = helper.make_node("If", ["cond"], ["out"], then_branch=then_g, else_branch=else_g)
    model = make_model([node], {"cond": np.array(True), "x": X}, ["out"],
                       output_types={"out": helper.make_tensor_type_proto(F32, None)})
    with pytest.raises(CompilerError, match="different numbers of values"):
        import_model(model)


# ---------------------------------------------------------------------- Loop
def accumulate_body(*, typed: bool = True) -> onnx.GraphProto:
    """Body: y += x (x captured); scan output y * 2; cond_out always true."""
    nodes = [helper.make_node("Add", ["y_in", "x"], ["y_out"]),
             helper.make_node("Add", ["y_out", "y_out"], ["scan"]),
             helper.make_node("Or", ["cond_in", "true"], ["cond_out"])]
    ins = ([tensor_vi("i", I64, []), tensor_vi("cond_in", BOOL, []), tensor_vi("y_in", F32, [3])]
           if typed else [untyped("i"), untyped("cond_in"), untyped("y_in")])
    return graph(nodes, ins, [tensor_vi("cond_out", BOOL, []), tensor_vi("y_out", F32, [3]),
                              tensor_vi("scan", F32, [3])])


def while_body() -> onnx.GraphProto:
    """Body: y += step (captured), scan output y, go on while y < limit (captured)."""
    nodes = [helper.make_node("Add", ["y_in", "step"], ["y_out"]),
             helper.make_node("Less", ["y_out", "limit"], ["cond_out"]),
             helper.make_node("Mul", ["y_out", "step"], ["scan"])]
    return graph(nodes, [tensor_vi("i", I64, []), tensor_vi("cond_in", BOOL, []), tensor_vi("y_in", F32, [])],
                 [tensor_vi("cond_out", BOOL, []), tensor_vi("y_out", F32, []), tensor_vi("scan", F32, [])])


def loop_inputs(m, **extra):
    return {"M": m, "y0": np.zeros(3, np.float32), "x": np.array([1, 2, 3], np.float32),
            "true": Const(np.array(True)), **extra}


@pytest.mark.parametrize("m", [np.array(4, np.int64), Const(np.array(4, np.int64)),
                               np.array(0, np.int64)])
@pytest.mark.parametrize("opset", [8, 11, 21])
def test_loop_for_with_captures_and_scan_output(m, opset):
    node = helper.make_node("Loop", ["M", "", "y0"], ["y", "ys"], body=accumulate_body())
    check_model([node], loop_inputs(m), ["y", "ys"], opset=opset)


def test_loop_constant_trip_count_gives_static_scan_shape():
    node = helper.make_node("Loop", ["M", "", "y0"], ["y", "ys"], body=accumulate_body())
    y, ys = ir_types([node], loop_inputs(Const(np.array(4, np.int64))), ["y", "ys"])
    assert y == TensorType(DType.F32, (3,)) and ys == TensorType(DType.F32, (4, 3))
    g = import_model(make_model([node], loop_inputs(Const(np.array(4, np.int64))), ["y", "ys"]))
    assert g.find_nodes("Loop")[0].attrs["num_captures"] == 2  # x and true


def test_loop_runtime_trip_count_gives_unknown_scan_length():
    node = helper.make_node("Loop", ["M", "", "y0"], ["y", "ys"], body=accumulate_body())
    # ONNX's shape inference cannot tell either; our rule must not invent the length.
    model = make_model([node], loop_inputs(np.array(4, np.int64)), ["y", "ys"],
                       output_types={"ys": helper.make_tensor_type_proto(F32, None)})
    g = import_model(model)
    assert g.find_nodes("Loop")[0].outputs[1].type.shape[1:] == (3,)
    assert g.find_nodes("Loop")[0].outputs[1].type.shape[0] is None


@pytest.mark.parametrize("m,limit,steps", [(None, 7.0, 3), (10, 7.0, 3), (2, 7.0, 2), (10, -1.0, 1)])
def test_loop_while_condition_from_body(m, limit, steps):
    node = helper.make_node("Loop", ["" if m is None else "M", "cond", "y0"], ["y", "ys"], body=while_body())
    inputs = {"cond": np.array(True), "y0": np.array(0, np.float32), "step": np.array(2.5, np.float32),
              "limit": np.array(limit, np.float32)}
    if m is not None:
        inputs["M"] = np.array(m, np.int64)
    ours = check_model([node], inputs, ["y", "ys"], opset=18,
                       output_types={"ys": helper.make_tensor_type_proto(F32, None)})
    assert ours[1].shape == (steps,)


def test_loop_false_condition_runs_no_iteration():
    node = helper.make_node("Loop", ["M", "cond", "y0"], ["y", "ys"], body=accumulate_body())
    ours = check_model([node], loop_inputs(np.array(5, np.int64), cond=np.array(False)), ["y", "ys"])
    assert ours[1].shape == (0, 3)


def test_loop_untyped_body_inputs_get_types_that_fit_every_iteration():
    """y0 is [1] and the body broadcasts it to [3]: the carried type must widen to [?]."""
    body = graph([helper.make_node("Add", ["y_in", "x"], ["y_out"]),
                  helper.make_node("Or", ["cond_in", "true"], ["cond_out"])],
                 [untyped("i"), untyped("cond_in"), untyped("y_in")],
                 [untyped("cond_out"), untyped("y_out")])
    node = helper.make_node("Loop", ["M", "", "y0"], ["y"], body=body)
    inputs = loop_inputs(np.array(3, np.int64))
    inputs["y0"] = np.array([0.5], np.float32)
    # onnxruntime refuses untyped body inputs outside functions: compare with the known answer.
    check_model([node], inputs, ["y"], output_types={"y": helper.make_tensor_type_proto(F32, None)},
                expected=[np.array([3.5, 6.5, 9.5], np.float32)])
    g = import_model(make_model([node], inputs, ["y"],
                                output_types={"y": helper.make_tensor_type_proto(F32, None)}))
    loop = g.find_nodes("Loop")[0]
    assert loop.attrs["body"].inputs[2].type == TensorType(DType.F32, (None,))
    assert loop.outputs[0].type == TensorType(DType.F32, (None,))


def test_loop_with_only_scan_outputs_and_folded_trip_count():
    """Loop(M, "") with M folded to a constant: the trimmed node must stay valid."""
    body = graph([helper.make_node("Add", ["i", "i"], ["twice"]),
                  helper.make_node("Or", ["cond_in", "cond_in"], ["cond_out"])],
                 [tensor_vi("i", I64, []), tensor_vi("cond_in", BOOL, [])],
                 [tensor_vi("cond_out", BOOL, []), tensor_vi("twice", I64, [])])
    nodes = [helper.make_node("Add", ["a", "a"], ["M"]),
             helper.make_node("Loop", ["M", ""], ["ys"], body=body)]
    ours = check_model(nodes, {"a": Const(np.array(2, np.int64))}, ["ys"])
    np.testing.assert_array_equal(ours[0], [0, 2, 4, 6])


def test_loop_without_trip_count_or_condition_is_rejected():
    node = helper.make_node("Loop", ["", "", "y0"], ["y", "ys"], body=accumulate_body())
    inputs = loop_inputs(None)
    del inputs["M"]
    model = make_model([node], inputs, ["y", "ys"])
    with pytest.raises(TypeInferenceError, match="needs a trip count M or a condition"):
        import_model(model)


def test_loop_body_returning_too_few_values_is_rejected():
    body = graph([helper.make_node("Or", ["cond_in", "true"], ["cond_out"])],
                 [tensor_vi("i", I64, []), tensor_vi("cond_in", BOOL, []), tensor_vi("y_in", F32, [3])],
                 [tensor_vi("cond_out", BOOL, [])])
    node = helper.make_node("Loop", ["M", "", "y0"], ["y"], body=body)
    model = make_model([node], loop_inputs(np.array(2, np.int64)), ["y"],
                       output_types={"y": helper.make_tensor_type_proto(F32, None)})
    with pytest.raises(TypeInferenceError, match="returns too few values"):
        import_model(model)


# ---------------------------------------------------------------------- Scan
def scan_body(captured: bool = False) -> onnx.GraphProto:
    """state += x_t (times a captured scale); scan output: the running state and x_t * 2."""
    nodes = [helper.make_node("Mul", ["x_t", "scale"], ["xs"]) if captured else
             helper.make_node("Add", ["x_t", "zero"], ["xs"]),
             helper.make_node("Add", ["s_in", "xs"], ["s_out"]),
             helper.make_node("Add", ["x_t", "x_t"], ["x2"]),
             helper.make_node("Add", ["s_out", "zero"], ["running"])]
    return graph(nodes, [tensor_vi("s_in", F32, [2]), tensor_vi("x_t", F32, [2])],
                 [tensor_vi("s_out", F32, [2]), tensor_vi("running", F32, [2]), tensor_vi("x2", F32, [2])])


@pytest.mark.parametrize("attrs", [
    {},
    {"scan_input_directions": [1]},
    {"scan_output_directions": [1, 0]},
    {"scan_input_axes": [1], "scan_output_axes": [1, -1]},
    {"scan_input_axes": [-1], "scan_input_directions": [1], "scan_output_axes": [0, 1],
     "scan_output_directions": [0, 1]},
])
def test_scan9_directions_and_axes(attrs):
    axes = attrs.get("scan_input_axes", [0])
    x = rng.standard_normal((4, 2) if axes[0] == 0 else (2, 4)).astype(np.float32)
    node = helper.make_node("Scan", ["s0", "x"], ["s", "run", "x2"], body=scan_body(),
                            num_scan_inputs=1, **attrs)
    inputs = {"s0": np.zeros(2, np.float32), "x": x, "zero": Const(np.zeros(2, np.float32))}
    check_model([node], inputs, ["s", "run", "x2"], opset=16)


def test_scan9_with_captured_value_and_types():
    node = helper.make_node("Scan", ["s0", "x"], ["s", "run", "x2"], body=scan_body(captured=True),
                            num_scan_inputs=1, scan_output_axes=[0, 1])
    inputs = {"s0": np.ones(2, np.float32), "x": rng.standard_normal((5, 2)).astype(np.float32),
              "zero": Const(np.zeros(2, np.float32)), "scale": np.array([2, 3], np.float32)}
    check_model([node], inputs, ["s", "run", "x2"])
    types = ir_types([node], inputs, ["s", "run", "x2"])
    assert types == [TensorType(DType.F32, (2,)), TensorType(DType.F32, (5, 2)),
                     TensorType(DType.F32, (2, 5))]


def test_scan9_empty_sequence():
    node = helper.make_node("Scan", ["s0", "x"], ["s", "run", "x2"], body=scan_body(), num_scan_inputs=1)
    inputs = {"s0": np.ones(2, np.float32), "x": np.zeros((0, 2), np.float32),
              "zero": Const(np.zeros(2, np.float32))}
    # onnxruntime fails on a zero-length scan; the answer is the initial state and empty stacks.
    empty = np.zeros((0, 2), np.float32)
    check_model([node], inputs, ["s", "run", "x2"], expected=[np.ones(2, np.float32), empty, empty])


def scan8_body() -> onnx.GraphProto:
    nodes = [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
             helper.make_node("Mul", ["s_out", "x_t"], ["y"])]
    return graph(nodes, [tensor_vi("s_in", F32, [2]), tensor_vi("x_t", F32, [2])],
                 [tensor_vi("s_out", F32, [2]), tensor_vi("y", F32, [2])])


@pytest.mark.parametrize("directions", [None, [1]])
def test_scan8_batched_form_is_rewritten(directions):
    kw = {} if directions is None else {"directions": directions}
    node = helper.make_node("Scan", ["", "s0", "x"], ["s", "ys"], body=scan8_body(),
                            num_scan_inputs=1, **kw)
    inputs = {"s0": rng.standard_normal((3, 2)).astype(np.float32),
              "x": rng.standard_normal((3, 4, 2)).astype(np.float32)}
    check_model([node], inputs, ["s", "ys"], opset=8)
    assert ir_types([node], inputs, ["s", "ys"], opset=8) == [
        TensorType(DType.F32, (3, 2)), TensorType(DType.F32, (3, 4, 2))]


def test_scan8_body_with_captured_value():
    body = graph([helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
                  helper.make_node("Mul", ["s_out", "k"], ["y"])],
                 [tensor_vi("s_in", F32, [2]), tensor_vi("x_t", F32, [2])],
                 [tensor_vi("s_out", F32, [2]), tensor_vi("y", F32, [2])])
    node = helper.make_node("Scan", ["", "s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1)
    inputs = {"s0": np.zeros((2, 2), np.float32), "x": rng.standard_normal((2, 3, 2)).astype(np.float32),
              "k": np.array([2, -1], np.float32)}
    check_model([node], inputs, ["s", "ys"], opset=8)


def test_scan8_full_constant_sequence_lens_is_accepted():
    node = helper.make_node("Scan", ["lens", "s0", "x"], ["s", "ys"], body=scan8_body(), num_scan_inputs=1)
    inputs = {"lens": Const(np.array([4, 4], np.int64)), "s0": np.zeros((2, 2), np.float32),
              "x": rng.standard_normal((2, 4, 2)).astype(np.float32)}
    check_model([node], inputs, ["s", "ys"], opset=8)


def test_scan8_with_runtime_sequence_lens_is_rejected():
    node = helper.make_node("Scan", ["lens", "s0", "x"], ["s", "ys"], body=scan8_body(), num_scan_inputs=1)
    inputs = {"lens": np.array([4, 2], np.int64), "s0": np.zeros((2, 2), np.float32),
              "x": np.zeros((2, 4, 2), np.float32)}
    with pytest.raises(ImportError_, match="sequence_lens"):
        import_model(make_model([node], inputs, ["s", "ys"], opset=8))


def test_scan_rejects_bad_num_scan_inputs():
    node = helper.make_node("Scan", ["s0", "x"], ["s", "run", "x2"], body=scan_body(), num_scan_inputs=3)
    model = make_model([node], {"s0": np.zeros(2, np.float32), "x": np.zeros((4, 2), np.float32),
                                "zero": Const(np.zeros(2, np.float32))}, ["s", "run", "x2"],
                       output_types={o: helper.make_tensor_type_proto(F32, None) for o in ("s", "run", "x2")})
    with pytest.raises(ImportError_, match="num_scan_inputs"):
        import_model(model)


def test_scan_rejects_inputs_of_different_lengths():
    body = graph([helper.make_node("Add", ["a", "b"], ["c"])],
                 [tensor_vi("a", F32, [2]), tensor_vi("b", F32, [2])], [tensor_vi("c", F32, [2])])
    node = helper.make_node("Scan", ["x", "y"], ["c"], body=body, num_scan_inputs=2)
    model = make_model([node], {"x": np.zeros((4, 2), np.float32), "y": np.zeros((3, 2), np.float32)},
                       ["c"], output_types={"c": helper.make_tensor_type_proto(F32, None)})
    with pytest.raises(TypeInferenceError, match="different sequence lengths"):
        import_model(model)


# ---------------------------------------------------------------- type joins
def test_join_types():
    f = DType.F32
    assert join_types(TensorType(f, (2, "N", 3)), TensorType(f, (2, "N", 4))) == TensorType(f, (2, "N", None))
    assert join_types(TensorType(f, (2,)), TensorType(f, (2, 1))) == TensorType(f, None)
    assert join_types(TensorType(f, (2,)), TensorType(DType.I64, (2,))) is None
    assert join_types(SequenceType(TensorType(f, (1,))), SequenceType(TensorType(f, (2,)))) == \
        SequenceType(TensorType(f, (None,)))
    assert join_types(OptionalType(TensorType(f, ())), TensorType(f, ())) is None


def test_if_reference_error_names_the_node():
    """A failing op inside a branch surfaces as an ExecutionError at run time."""
    then_g = graph([helper.make_node("Add", ["x", "y"], ["t"])], [], [tensor_vi("t", F32, None)])
    else_g = graph([helper.make_node("Add", ["x", "x"], ["e"])], [], [tensor_vi("e", F32, None)])
    node = helper.make_node("If", ["cond"], ["out"], then_branch=then_g, else_branch=else_g)
    inputs = {"cond": np.array(True), "x": helper.make_tensor_type_proto(F32, ["a"]),
              "y": helper.make_tensor_type_proto(F32, ["b"])}
    model = make_model([node], inputs, ["out"],
                       output_types={"out": helper.make_tensor_type_proto(F32, None)})
    m = compiler.compile(model)
    with pytest.raises(ExecutionError):
        m.run({"cond": np.array(True), "x": np.zeros(2, np.float32), "y": np.zeros(3, np.float32)})


def test_save_and_load_keep_subgraphs_and_captures(tmp_path):
    """The textual IR round-trips bodies and num_captures (ref backend artifacts)."""
    loop = helper.make_node("Loop", ["M", "", "y0"], ["y", "ys"], body=accumulate_body())
    branch = helper.make_node("If", ["cond"], ["out"],
                              then_branch=graph([helper.make_node("Add", ["ys", "ys"], ["t"])], [],
                                                [tensor_vi("t")], "then"),
                              else_branch=graph([helper.make_node("Mul", ["ys", "x"], ["e"])], [],
                                                [tensor_vi("e")], "else"))
    inputs = loop_inputs(np.array(3, np.int64), cond=np.array(False))
    model = make_model([loop, branch], inputs, ["y", "out"],
                       output_types={"out": helper.make_tensor_type_proto(F32, None)})
    m = compiler.compile(model)
    m.save(tmp_path)
    feeds = feeds_of(inputs)
    before, after = m.run(feeds), compiler.load(tmp_path).run(feeds)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    x = inputs["x"]
    np.testing.assert_array_equal(before["out"], np.arange(1, 4)[:, None] * 2 * x * x)
