"""ONNX import: clear errors on bad input, external data safety, legacy forms."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from frontends.onnx import import_model, import_onnx, load_model
from ir import print_graph, run_graph
from ir.errors import ImportError_, ModelLoadError, UnsupportedOpError


def model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8, extra_opsets=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    m.ir_version = ir_version
    return m


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\x89PNG\r\n\x1a\n not a model at all \xff\xff")
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        load_model(p)


def test_empty_file_is_not_a_model(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no graph"):
        load_model(p)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ModelLoadError, match="folder"):
        load_model(tmp_path)


def test_every_unsupported_op_is_reported_at_once():
    m = model([helper.make_node("FooBar", ["x"], ["a"], name="first"),
               helper.make_node("FooBar", ["a"], ["b"], name="second"),
               helper.make_node("Baz", ["b"], ["y"], domain="com.acme", name="third")],
              [vi("x", [2])], [vi("y", [2])], extra_opsets=[helper.make_opsetid("com.acme", 3)])
    with pytest.raises(UnsupportedOpError) as info:
        import_onnx(m)
    msg = str(info.value)
    assert "2 unsupported ops" in msg
    assert "FooBar (opset 17; used by first, second)" in msg
    assert "com.acme.Baz (opset 3; used by third)" in msg
    assert set(info.value.ops) == {("", "FooBar", 17), ("com.acme", "Baz", 3)}


def test_unknown_attribute_is_an_error():
    m = model([helper.make_node("Relu", ["x"], ["y"], foo=1)], [vi("x", [2])], [vi("y", [2])])
    # ONNX's checker refuses it while loading (as onnxruntime does) ...
    with pytest.raises(ModelLoadError, match="Relu node.*Unrecognized attribute: foo"):
        import_onnx(m)
    # ... and the importer still names it when handed the proto directly.
    with pytest.raises(ImportError_, match="attribute 'foo' is not supported"):
        import_model(m)


def test_undefined_value_is_an_error():
    m = model([helper.make_node("Add", ["x", "ghost"], ["y"])], [vi("x", [2])], [vi("y", [2])])
    with pytest.raises(ImportError_, match="never defined.*ghost"):
        import_onnx(m)


def test_domain_not_imported_is_an_error():
    m = model([helper.make_node("Relu", ["x"], ["y"], domain="com.other")], [vi("x", [2])], [vi("y", [2])])
    with pytest.raises(ImportError_, match="domain"):
        import_onnx(m)


def test_symbolic_dims_and_constants():
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    m = model([helper.make_node("Constant", [], ["c"], value_float=2.0),
               helper.make_node("Add", ["x", "w"], ["a"]),
               helper.make_node("Mul", ["a", "c"], ["y"])],
              [vi("x", ["batch", 4])], [vi("y", ["batch", 4])], [w])
    g = import_onnx(m)
    text = print_graph(g)
    assert "graph @main(%x: f32[batch,4])" in text
    assert "%c: f32[] = constant [2.0]" in text
    assert "%y: f32[batch,4] = Mul(%a, %c)" in text
    (out,) = run_graph(g, {"x": np.ones((3, 4), np.float32)})
    np.testing.assert_array_equal(out, 2 * (1 + np.arange(4, dtype=np.float32))[None].repeat(3, 0))


def test_ir3_initializers_listed_as_inputs_become_constants():
    w = numpy_helper.from_array(np.ones(2, np.float32), "w")
    m = model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [2]), vi("w", [2])], [vi("y", [2])],
              [w], opset=9, ir_version=3)
    g = import_onnx(m)
    assert [v.name for v in g.inputs] == ["x"]
    assert "w" in g.constants


def test_opset6_broadcast_with_axis_is_rewritten():
    b = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "b")
    m = model([helper.make_node("Add", ["x", "b"], ["y"], broadcast=1, axis=1)],
              [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])], [b], opset=6, ir_version=3)
    g = import_onnx(m)
    x = np.zeros((2, 3, 4), np.float32)
    (out,) = run_graph(g, {"x": x})
    np.testing.assert_array_equal(out[0, :, 0], [1, 2, 3])


def _external_model(tmp_path, location):
    arr = np.arange(16, dtype=np.float32)
    t = numpy_helper.from_array(arr, "w")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(arr.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    t.ClearField("raw_data")
    m = model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [16])], [vi("y", [16])], [t])
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir()
    path.write_bytes(m.SerializeToString())
    return path, arr


def test_external_data_inside_the_folder_loads(tmp_path):
    path, arr = _external_model(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(arr.tobytes())
    g = import_onnx(path)
    np.testing.assert_array_equal(g.value("w").const, arr)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    path, arr = _external_model(tmp_path, location)
    (tmp_path / "secret.bin").write_bytes(arr.tobytes())
    with pytest.raises(ModelLoadError, match="outside the model's folder|must be a relative path"):
        import_onnx(path)


def test_external_data_file_missing(tmp_path):
    path, _ = _external_model(tmp_path, "weights.bin")
    with pytest.raises(ModelLoadError, match="external data file not found"):
        import_onnx(path)


def test_output_that_is_an_input_keeps_its_name():
    m = model([helper.make_node("Relu", ["x"], ["r"])], [vi("x", [2])], [vi("r", [2]), vi("x", [2])])
    m.graph.output[1].name = "x"
    g = import_onnx(m)
    assert [v.name for v in g.outputs][0] == "r"
    assert len(g.outputs) == 2


def test_opset6_clip_attributes_become_inputs():
    from tests.ops.ortcheck import check_op
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    check_op("Clip", [x], {"min": -0.5, "max": 0.5}, opset=6)
    check_op("Clip", [x], {"max": 0.25}, opset=6)


def test_opset6_prelu_slope_is_per_channel():
    from tests.ops.ortcheck import check_op
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    expected = np.where(x < 0, x * slope[None, :, None, None], x)
    check_op("PRelu", [x, slope], opset=6, expected=[expected])  # onnxruntime has no PRelu-6 kernel
