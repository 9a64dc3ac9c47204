"""Sequence and optional ops against onnxruntime (lists for sequences, None for empty optionals)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import compiler
from frontends.onnx import import_model
from ir.dtypes import DType
from ir.errors import ExecutionError, TypeInferenceError
from ir.types import OptionalType, SequenceType, TensorType
from tests.ops.ortcheck import Const
from tests.ops.test_control_flow import check_model, graph, make_model, tensor_vi

F32, I64, I32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
rng = np.random.default_rng(1)


def seq_type(elem: int = F32, shape=None) -> onnx.TypeProto:
    return helper.make_sequence_type_proto(helper.make_tensor_type_proto(elem, shape))


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


def arrays(*shapes, dtype=np.float32):
    return [rng.standard_normal(s).astype(dtype) if np.dtype(dtype).kind == "f"
            else rng.integers(-5, 5, s).astype(dtype) for s in shapes]


# --------------------------------------------------- construct / at / length
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float16])
@pytest.mark.parametrize("pos", [0, 2, -1, -3])
def test_construct_at_length(dtype, pos):
    a, b, c = arrays((2, 3), (2, 3), (4, 3), dtype=dtype)
    nodes = [node("SequenceConstruct", ["a", "b", "c"], ["s"]),
             node("SequenceAt", ["s", "pos"], ["item"]),
             node("SequenceLength", ["s"], ["n"])]
    for p in (np.array(pos, np.int64), Const(np.array(pos, np.int32))):
        check_model(nodes, {"a": a, "b": b, "c": c, "pos": p}, ["s", "item", "n"])


def test_construct_type_joins_element_shapes():
    a, b = arrays((2, 3), (4, 3))
    nodes = [node("SequenceConstruct", ["a", "b"], ["s"]), node("SequenceLength", ["s"], ["n"])]
    g = import_model(make_model(nodes, {"a": a, "b": b}, ["s", "n"]))
    assert g.outputs[0].type == SequenceType(TensorType(DType.F32, (None, 3)))
    assert g.outputs[1].type == TensorType(DType.I64, ())


def test_sequence_model_input():
    xs = arrays((3,), (5,), (1,))
    nodes = [node("SequenceAt", ["xs", "pos"], ["item"]), node("SequenceLength", ["xs"], ["n"]),
             node("SequenceErase", ["xs"], ["rest"])]
    check_model(nodes, {"xs": xs, "pos": np.array(1, np.int64)}, ["item", "n", "rest"])


# ------------------------------------------------------------ insert / erase
@pytest.mark.parametrize("pos", [None, 0, 1, 2, -1, -2])
def test_insert(pos):
    a, b, t = arrays((2,), (3,), (4,))
    ins = ["s", "t"] + ([] if pos is None else ["pos"])
    inputs = {"a": a, "b": b, "t": t}
    if pos is not None:
        inputs["pos"] = np.array(pos, np.int64)
    nodes = [node("SequenceConstruct", ["a", "b"], ["s"]), node("SequenceInsert", ins, ["out"])]
    check_model(nodes, inputs, ["out"])


@pytest.mark.parametrize("dtype,code", [(np.float32, F32), (np.int32, I32), (np.float64, TensorProto.DOUBLE)])
def test_empty_then_insert(dtype, code):
    a, b = arrays((2, 2), (2, 2), dtype=dtype)
    nodes = [node("SequenceEmpty", [], ["e"], dtype=code), node("SequenceInsert", ["e", "a"], ["s1"]),
             node("SequenceInsert", ["s1", "b", "zero"], ["s2"]), node("SequenceLength", ["e"], ["n"])]
    check_model(nodes, {"a": a, "b": b, "zero": Const(np.array(0, np.int64))}, ["e", "s2", "n"])


def test_empty_default_dtype_is_float():
    g = import_model(make_model([node("SequenceEmpty", [], ["e"])], {}, ["e"]))
    assert g.outputs[0].type == SequenceType(TensorType(DType.F32, None))


@pytest.mark.parametrize("pos", [None, 0, 1, -3])
def test_erase(pos):
    a, b, c = arrays((1,), (2,), (3,))
    ins = ["s"] + ([] if pos is None else ["pos"])
    inputs = {"a": a, "b": b, "c": c}
    if pos is not None:
        inputs["pos"] = Const(np.array(pos, np.int64))
    nodes = [node("SequenceConstruct", ["a", "b", "c"], ["s"]), node("SequenceErase", ins, ["out"])]
    check_model(nodes, inputs, ["out"])


def test_insert_rejects_another_element_type():
    nodes = [node("SequenceConstruct", ["a"], ["s"]), node("SequenceInsert", ["s", "b"], ["out"])]
    model = make_model(nodes, {"a": np.zeros(2, np.float32), "b": np.zeros(2, np.int64)}, ["out"],
                       output_types={"out": seq_type()})
    with pytest.raises(TypeInferenceError, match="element type differs"):
        import_model(model)


def test_construct_rejects_mixed_element_types():
    model = make_model([node("SequenceConstruct", ["a", "b"], ["s"])],
                       {"a": np.zeros(2, np.float32), "b": np.zeros(2, np.int64)}, ["s"],
                       output_types={"s": seq_type()})
    with pytest.raises(TypeInferenceError, match="share one element type"):
        import_model(model)


def test_at_out_of_range_fails_at_run_time():
    nodes = [node("SequenceConstruct", ["a", "a"], ["s"]), node("SequenceAt", ["s", "pos"], ["item"])]
    m = compiler.compile(make_model(nodes, {"a": np.zeros(2, np.float32), "pos": np.array(0, np.int64)},
                                    ["item"]))
    with pytest.raises(ExecutionError, match="position out of range"):
        m.run({"a": np.zeros(2, np.float32), "pos": np.array(2, np.int64)})


def test_at_rejects_a_non_sequence():
    model = make_model([node("SequenceAt", ["a", "pos"], ["item"])],
                       {"a": np.zeros(2, np.float32), "pos": np.array(0, np.int64)}, ["item"],
                       output_types={"item": helper.make_tensor_type_proto(F32, None)})
    with pytest.raises(TypeInferenceError, match="must be a sequence"):
        import_model(model)


# ------------------------------------------------------------ concat / split
@pytest.mark.parametrize("axis,new_axis", [(0, 0), (1, 0), (-1, 0), (0, 1), (2, 1), (-1, 1), (-3, 1)])
def test_concat_from_sequence(axis, new_axis):
    shapes = [(2, 3), (2, 3), (2, 3)]
    xs = arrays(*shapes)
    check_model([node("ConcatFromSequence", ["xs"], ["y"], axis=axis, new_axis=new_axis)], {"xs": xs}, ["y"])


def test_concat_from_sequence_types():
    nodes = [node("SequenceConstruct", ["a", "b"], ["s"]),
             node("ConcatFromSequence", ["s"], ["cat"], axis=1),
             node("ConcatFromSequence", ["s"], ["stack"], axis=-1, new_axis=1)]
    a, b = arrays((2, 3), (2, 5))
    check_model(nodes[:2], {"a": a, "b": b}, ["cat"])
    g = import_model(make_model(nodes, {"a": a, "b": b}, ["cat", "stack"]))
    assert g.outputs[0].type == TensorType(DType.F32, (2, None))
    assert g.outputs[1].type == TensorType(DType.F32, (2, None, None))


def test_concat_from_sequence_rejects_bad_axis():
    model = make_model([node("ConcatFromSequence", ["xs"], ["y"], axis=2)],
                       {"xs": seq_type(F32, [2, 3])}, ["y"],
                       output_types={"y": helper.make_tensor_type_proto(F32, None)})
    with pytest.raises(TypeInferenceError, match="axis out of range"):
        import_model(model)


@pytest.mark.parametrize("axis,keepdims", [(0, 1), (1, 0), (-1, 1), (-2, 0)])
def test_split_to_sequence_without_split(axis, keepdims):
    x = arrays((3, 4))[0]
    check_model([node("SplitToSequence", ["x"], ["s"], axis=axis, keepdims=keepdims)], {"x": x}, ["s"])


@pytest.mark.parametrize("split", [np.array(2, np.int64), np.array(3, np.int32),
                                   np.array([1, 4, 2], np.int64),
                                   np.array([7], np.int64), np.array([0, 7], np.int32)])
@pytest.mark.parametrize("as_const", [False, True])
def test_split_to_sequence_with_split(split, as_const):
    x = arrays((2, 7))[0]
    check_model([node("SplitToSequence", ["x", "split"], ["s"], axis=1)],
                {"x": x, "split": Const(split) if as_const else split}, ["s"])


@pytest.mark.parametrize("split", [np.array(1, np.int64), np.array([1, 1, 1], np.int64)])
@pytest.mark.parametrize("as_const", [False, True])
def test_split_to_sequence_keepdims_with_split(split, as_const):
    """keepdims=0 drops the axis for a scalar split of 1 (as onnxruntime does), not for a list."""
    x = arrays((2, 3))[0]
    ours = check_model([node("SplitToSequence", ["x", "split"], ["s"], axis=-1, keepdims=0)],
                       {"x": x, "split": Const(split) if as_const else split}, ["s"])
    assert ours[0][0].shape == ((2,) if split.ndim == 0 else (2, 1))


def test_split_to_sequence_types():
    x = arrays((2, 6))[0]
    def elem(split, **attrs):
        inputs = {"x": x} if split is None else {"x": x, "split": Const(split)}
        ins = ["x"] if split is None else ["x", "split"]
        return import_model(make_model([node("SplitToSequence", ins, ["s"], axis=1, **attrs)],
                                       inputs, ["s"])).outputs[0].type.elem
    assert elem(None) == TensorType(DType.F32, (2, 1))
    assert elem(None, keepdims=0) == TensorType(DType.F32, (2,))
    assert elem(np.array(3, np.int64)) == TensorType(DType.F32, (2, 3))
    assert elem(np.array(4, np.int64)) == TensorType(DType.F32, (2, None))
    assert elem(np.array([2, 2, 2], np.int64)) == TensorType(DType.F32, (2, 2))
    assert elem(np.array([1, 5], np.int64)) == TensorType(DType.F32, (2, None))
    assert elem(np.array(1, np.int64), keepdims=0) == TensorType(DType.F32, (2,))
    runtime_split = import_model(make_model([node("SplitToSequence", ["x", "split"], ["s"], keepdims=0)],
                                            {"x": x, "split": np.array(2, np.int64)}, ["s"]))
    assert runtime_split.outputs[0].type.elem == TensorType(DType.F32, None)  # rank depends on split


@pytest.mark.parametrize("opset", [11, 12, 13, 16])
def test_sequence_ops_at_older_opsets(opset):
    a, b = arrays((2, 2), (3, 2))
    nodes = [node("SequenceConstruct", ["a", "b"], ["s"]), node("SequenceInsert", ["s", "a", "pos"], ["s2"]),
             node("SequenceErase", ["s2", "pos"], ["s3"]),
             node("ConcatFromSequence", ["s3"], ["cat"], axis=0),
             node("SplitToSequence", ["cat"], ["parts"], axis=0), node("SequenceLength", ["parts"], ["n"]),
             node("SequenceAt", ["parts", "pos"], ["item"])]
    check_model(nodes, {"a": a, "b": b, "pos": np.array(-1, np.int64)}, ["cat", "n", "item", "parts"],
                opset=opset)


def test_split_to_sequence_rejects_sizes_that_do_not_add_up():
    model = make_model([node("SplitToSequence", ["x", "split"], ["s"], axis=1)],
                       {"x": np.zeros((2, 6), np.float32), "split": Const(np.array([2, 2], np.int64))}, ["s"],
                       output_types={"s": seq_type()})
    with pytest.raises(TypeInferenceError, match="add up to the axis length"):
        import_model(model)


def test_split_then_concat_round_trip():
    x = arrays((3, 5, 2))[0]
    nodes = [node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=0),
             node("ConcatFromSequence", ["s"], ["y"], axis=1, new_axis=1)]
    ours = check_model(nodes, {"x": x}, ["y"])
    np.testing.assert_array_equal(ours[0], x)


# ---------------------------------------------------------------- SequenceMap
def test_sequence_map_with_captured_value_and_tensor_input():
    """body(e, t) = (e + t) * k, k read from the outer graph."""
    body = graph([node("Add", ["e", "t"], ["sum"]), node("Mul", ["sum", "k"], ["out"])],
                 [tensor_vi("e", F32, ["N"]), tensor_vi("t", F32, ["N"])], [tensor_vi("out", F32, ["N"])])
    xs = arrays((3,), (3,), (3,))
    inputs = {"xs": xs, "t": arrays((3,))[0], "k": np.array(2, np.float32)}
    check_model([node("SequenceMap", ["xs", "t"], ["ys"], body=body)], inputs, ["ys"], opset=17)
    g = import_model(make_model([node("SequenceMap", ["xs", "t"], ["ys"], body=body)], inputs, ["ys"],
                                opset=17))
    n = g.find_nodes("SequenceMap")[0]
    assert n.attrs["num_captures"] == 1 and [v.name for v in n.inputs] == ["xs", "t", "k"]


def test_sequence_map_two_sequences_two_outputs():
    body = graph([node("Add", ["a", "b"], ["s"]), node("Mul", ["a", "b"], ["p"])],
                 [tensor_vi("a", F32, None), tensor_vi("b", F32, None)],
                 [tensor_vi("s", F32, None), tensor_vi("p", F32, None)])
    xs, ys = arrays((2,), (4,)), arrays((2,), (4,))
    check_model([node("SequenceMap", ["xs", "ys"], ["sums", "prods"], body=body)],
                {"xs": xs, "ys": ys}, ["sums", "prods"], opset=17)


def test_sequence_map_rejects_sequences_of_different_lengths():
    body = graph([node("Add", ["a", "b"], ["s"])], [tensor_vi("a", F32, None), tensor_vi("b", F32, None)],
                 [tensor_vi("s", F32, None)])
    m = compiler.compile(make_model([node("SequenceMap", ["xs", "ys"], ["out"], body=body)],
                                    {"xs": arrays((2,)), "ys": arrays((2,))}, ["out"], opset=17))
    with pytest.raises(ExecutionError, match="differ in length"):
        m.run({"xs": arrays((2,), (2,)), "ys": arrays((2,))})


# ------------------------------------------------------------------ optionals
def test_optional_of_tensor():
    x = arrays((2, 3))[0]
    nodes = [node("Optional", ["x"], ["o"]), node("OptionalHasElement", ["o"], ["has"]),
             node("OptionalGetElement", ["o"], ["y"])]
    check_model(nodes, {"x": x}, ["has", "y"], opset=18)
    g = import_model(make_model(nodes, {"x": x}, ["o", "has"], opset=18))
    assert g.outputs[0].type == OptionalType(TensorType(DType.F32, (2, 3)))


def test_optional_at_opset_15():
    x = arrays((4,))[0]
    nodes = [node("Optional", ["x"], ["o"]), node("OptionalHasElement", ["o"], ["has"]),
             node("OptionalGetElement", ["o"], ["y"])]
    check_model(nodes, {"x": x}, ["has", "y"], opset=15)


def test_empty_optional_of_sequence():
    tp = seq_type(F32, [5])
    nodes = [node("Optional", [], ["o"], type=tp), node("OptionalHasElement", ["o"], ["has"])]
    check_model(nodes, {}, ["has"], opset=18)
    ours = check_model(nodes, {}, ["o", "has"], opset=18, expected=[None, np.array(False)])
    assert ours[0] is None
    g = import_model(make_model(nodes, {}, ["o"], opset=18))
    assert g.outputs[0].type == OptionalType(SequenceType(TensorType(DType.F32, (5,))))


def test_optional_has_element_of_plain_values_and_missing_input():
    nodes = [node("OptionalHasElement", ["x"], ["h1"]), node("OptionalHasElement", ["s"], ["h2"]),
             node("OptionalHasElement", [], ["h3"]), node("SequenceConstruct", ["x"], ["s"])]
    check_model(nodes, {"x": arrays((2,))[0]}, ["h1", "h2", "h3"], opset=18,
                expected=[np.array(True), np.array(True), np.array(False)])


def test_optional_get_element_of_sequence_and_tensor():
    x = arrays((3,))[0]
    nodes = [node("SequenceConstruct", ["x", "x"], ["s"]), node("Optional", ["s"], ["o"]),
             node("OptionalGetElement", ["o"], ["s2"]), node("OptionalGetElement", ["x"], ["x2"])]
    check_model(nodes, {"x": x}, ["s2", "x2"], opset=18)


def test_optional_get_element_of_nothing_fails_at_run_time():
    nodes = [node("Optional", [], ["o"], type=helper.make_tensor_type_proto(F32, [2])),
             node("OptionalGetElement", ["o"], ["y"])]
    m = compiler.compile(make_model(nodes, {}, ["y"], opset=18))
    with pytest.raises(ExecutionError, match="holds no value"):
        m.run({})


def test_optional_without_input_or_type_is_rejected():
    model = make_model([node("Optional", [], ["o"])], {}, ["o"], opset=18,
                       output_types={"o": helper.make_optional_type_proto(
                           helper.make_tensor_type_proto(F32, None))})
    with pytest.raises(TypeInferenceError, match="needs the 'type' attribute"):
        import_model(model)


# ------------------------------------------------------- with control flow
@pytest.mark.parametrize("cond", [True, False])
def test_if_returning_sequences(cond):
    then_g = graph([node("SequenceConstruct", ["a", "b"], ["ts"])], [],
                   [helper.make_value_info("ts", seq_type(F32, None))])
    else_g = graph([node("SequenceConstruct", ["b"], ["es"])], [],
                   [helper.make_value_info("es", seq_type(F32, None))])
    nodes = [node("If", ["cond"], ["s"], then_branch=then_g, else_branch=else_g)]
    a, b = arrays((2,), (3,))
    check_model(nodes, {"cond": np.array(cond), "a": a, "b": b}, ["s"])


@pytest.mark.parametrize("m", [0, 1, 4])
def test_loop_building_a_sequence(m):
    """Each iteration appends x * (i-th running sum): a sequence carried through a Loop."""
    body = graph([node("Add", ["acc_in", "x"], ["acc_out"]),
                  node("SequenceInsert", ["seq_in", "acc_out"], ["seq_out"]),
                  node("Or", ["cond_in", "cond_in"], ["cond_out"])],
                 [tensor_vi("i", I64, []), tensor_vi("cond_in", TensorProto.BOOL, []),
                  tensor_vi("acc_in", F32, [2]), helper.make_value_info("seq_in", seq_type(F32, None))],
                 [tensor_vi("cond_out", TensorProto.BOOL, []), tensor_vi("acc_out", F32, [2]),
                  helper.make_value_info("seq_out", seq_type(F32, None))])
    nodes = [node("SequenceEmpty", [], ["empty"]),
             node("Loop", ["M", "cond", "acc0", "empty"], ["acc", "seq"], body=body),
             node("ConcatFromSequence", ["seq"], ["stacked"], axis=0, new_axis=1)]
    inputs = {"M": np.array(m, np.int64), "cond": np.array(True), "acc0": np.zeros(2, np.float32),
              "x": np.array([1, 2], np.float32)}
    check_model(nodes[:2], inputs, ["acc", "seq"])
    if m:
        check_model(nodes, inputs, ["stacked"])
