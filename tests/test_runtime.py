"""Module.run validates inputs; save/load round-trips; benchmark reports statistics."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from ir.errors import ArtifactError, InputError
from runtime.artifact import FORMAT_VERSION, MANIFEST, read_manifest
from runtime.module import Module


@pytest.fixture(scope="module")
def small_model():
    w = numpy_helper.from_array(np.linspace(-1, 1, 4).astype(np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_run_returns_named_outputs(small_model):
    m = compiler.compile(small_model)
    assert m.input_names == ["x"] and m.output_names == ["y"]
    x = np.ones((3, 4), np.float32)
    out = m.run({"x": x})
    np.testing.assert_allclose(out["y"], np.maximum(x * np.linspace(-1, 1, 4), 0), rtol=1e-6)
    assert list(m.run([x])) == ["y"]


@pytest.mark.parametrize("feeds, msg", [
    ({"x": np.ones((3, 4), np.float64)}, "wrong element type.*expected f32"),
    ({"x": np.ones((3, 5), np.float32)}, "wrong size of dimension 1"),
    ({"x": np.ones((4,), np.float32)}, "wrong rank"),
    ({"z": np.ones((3, 4), np.float32)}, "unknown input name"),
    ({}, "missing input"),
])
def test_bad_inputs_are_refused(small_model, feeds, msg):
    m = compiler.compile(small_model)
    with pytest.raises(InputError, match=msg):
        m.run(feeds)


def test_save_and_load(small_model, tmp_path):
    m = compiler.compile(small_model)
    m.save(tmp_path / "art")
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["target"] == "ref"
    assert manifest["model"]["sha256"].startswith("sha256:")
    assert manifest["tools"]["onnx"] == onnx.__version__
    m2 = compiler.load(tmp_path / "art")
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(m.run({"x": x})["y"], m2.run({"x": x})["y"])


def test_load_errors(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        compiler.load(tmp_path / "missing")
    with pytest.raises(ArtifactError, match="no manifest"):
        compiler.load(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="is a folder, not a file"):
        compiler.load(tmp_path / "file")


def _edit_manifest(directory, edit):
    path = directory / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit, msg", [
    (lambda m: m.update(format_version=FORMAT_VERSION + 1), f"format version mismatch.*found {FORMAT_VERSION + 1}"),
    (lambda m: m.pop("format_version"), "format version mismatch.*found None"),
    (lambda m: m.pop("target"), "names no target"),
    (lambda m: m.update(target="warp-drive"), "target this compiler does not have.*'warp-drive'"),
    (lambda m: m.update(options=[1]), "options must be an object"),
    (lambda m: m.update(inputs={"x": 1}), "no inputs list"),
    (lambda m: m["outputs"][0].pop("dtype"), "malformed outputs entry 0"),
    (lambda m: m["inputs"][0].update(shape="N,4"), "malformed inputs entry 0"),
])
def test_bad_manifests_are_refused(small_model, tmp_path, edit, msg):
    compiler.compile(small_model).save(tmp_path / "art")
    _edit_manifest(tmp_path / "art", edit)
    with pytest.raises(ArtifactError, match=msg):
        compiler.load(tmp_path / "art")


def test_corrupt_manifest(tmp_path):
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="manifest.json is corrupt"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="not a JSON object"):
        read_manifest(tmp_path)


def test_read_manifest_returns_what_save_wrote(small_model, tmp_path):
    m = compiler.compile(small_model)
    m.save(tmp_path)
    manifest = read_manifest(tmp_path)
    assert manifest["format_version"] == FORMAT_VERSION and manifest["target"] == "ref"
    assert manifest["inputs"] == [{"name": "x", "dtype": "f32", "shape": ["N", 4]}]
    loaded = compiler.load(tmp_path)
    assert loaded.inputs == m.inputs and loaded.outputs == m.outputs
    assert not hasattr(Module, "load")  # loading needs a target: compiler.load, above the runtime


def test_benchmark_statistics(small_model):
    m = compiler.compile(small_model)
    r = m.benchmark(warmup=1, repeat=10)
    assert r.repeat == 10
    assert 0 < r.min_ms <= r.median_ms <= r.p90_ms <= r.p99_ms
    assert r.throughput > 0


def test_profile_lists_nodes(small_model):
    m = compiler.compile(small_model)
    rows = m.profile()
    assert {label.split()[0] for label, _ in rows} == {"Mul", "Relu"}


# ------------------------------------------------------- onnxruntime's habits
def test_run_in_onnxruntime_order_returns_a_list(small_model):
    m = compiler.compile(small_model)
    x = np.arange(8, dtype=np.float32).reshape(2, 4) - 3
    expected = m.run({"x": x})["y"]
    (y,) = m.run(None, {"x": x})
    np.testing.assert_array_equal(y, expected)
    (y,) = m.run(["y"], {"x": x})
    np.testing.assert_array_equal(y, expected)
    (y,) = m.run(None, [x])  # feeds in input order
    np.testing.assert_array_equal(y, expected)
    assert list(m.run({"x": x}, output_names=["y"])) == ["y"]
    assert list(m.run({"x": x}, ["y"])) == ["y"]
    with pytest.raises(InputError, match="'z': unknown output name"):
        m.run(["z"], {"x": x})
    with pytest.raises(InputError, match="no inputs given"):
        m.run(None)
    with pytest.raises(InputError, match="inputs must be a dict"):
        m.run(None, 3)


def test_get_inputs_and_outputs_describe_like_onnxruntime(small_model):
    import onnxruntime as ort
    m = compiler.compile(small_model)
    sess = ort.InferenceSession(small_model.SerializeToString(), providers=["CPUExecutionProvider"])
    for ours, theirs in ((m.get_inputs(), sess.get_inputs()), (m.get_outputs(), sess.get_outputs())):
        assert [(a.name, a.shape, a.type) for a in ours] == [(b.name, b.shape, b.type) for b in theirs]
    assert m.get_inputs()[0].type == "tensor(float)" and m.get_inputs()[0].shape == ["N", 4]


def test_python_lists_are_converted_to_the_input_dtype(small_model):
    m = compiler.compile(small_model)
    rows = [[1.0, -2.0, 3.0, 4.0], [0.5, 0.25, -1, 2]]
    out = m.run({"x": rows})["y"]
    np.testing.assert_array_equal(out, m.run({"x": np.array(rows, np.float32)})["y"])
    assert out.dtype == np.float32
    with pytest.raises(InputError, match="input 'x': cannot make an array"):
        m.run({"x": [[1.0, 2.0], [3.0]]})
    with pytest.raises(InputError, match="input 'x': wrong rank"):
        m.run({"x": [1.0, 2.0, 3.0, 4.0]})


def test_lists_into_integer_inputs_must_fit():
    g = helper.make_graph([helper.make_node("Neg", ["i"], ["o"])], "g",
                          [helper.make_tensor_value_info("i", TensorProto.INT32, [3])],
                          [helper.make_tensor_value_info("o", TensorProto.INT32, [3])])
    m = compiler.compile(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    np.testing.assert_array_equal(m.run({"i": [1, 2, 3]})["o"], np.array([-1, -2, -3], np.int32))
    with pytest.raises(InputError, match="input 'i': the values do not fit.*i32"):
        m.run({"i": [1.5, 2, 3]})
    with pytest.raises(InputError, match="input 'i': the values do not fit"):
        m.run({"i": [2 ** 40, 0, 0]})
