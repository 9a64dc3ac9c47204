"""User mistakes and damaged files end in one clear line and exit code 1, never a crash.

Artifacts: the manifest records each file's size and sha256 and ``compiler.load``
checks them before a target reads anything; a build replaces the artifact it
writes over and refuses anything else.  Models: ONNX's checker per node and
tensor plus our own rules.  The command line: bad ``--input-shape`` and
``bench`` settings.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.cli import main
from ir.errors import ArtifactError, ImportError_, InputError, ModelLoadError
from ir.infer import MAX_TENSOR_BYTES
from runtime.artifact import MANIFEST

ROOT = Path(__file__).resolve().parent.parent
CNN = str(ROOT / "examples" / "models" / "digits_cnn.onnx")


def cli(capsys, *argv):
    """Run the CLI; returns (exit code, stdout, stderr lines)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, [line for line in err.splitlines() if line.strip()]


def assert_one_error(capsys, argv, *fragments):
    rc, _, err = cli(capsys, *argv)
    assert rc == 1, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "internal error" not in err[0]
    for f in fragments:
        assert f in err[0], err[0]
    return err[0]


def save_model(m, path):
    onnx.save(m, str(path))
    return path


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def make(nodes, inputs, outputs, initializers=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    path = tmp_path_factory.mktemp("inputs") / "x.npz"
    np.savez(path, input=x)
    return path


@pytest.fixture(scope="module")
def cpu_artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("cpu") / "art"
    assert main(["build", CNN, "-t", "cpu", "--input-shape", "input=1,1,8,8", "-o", str(d), "-q"]) == 0
    return d


def copy_artifact(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


# ------------------------------------------------------------------ artifacts
def test_manifest_records_size_and_hash_of_every_file(cpu_artifact):
    manifest = json.loads((cpu_artifact / MANIFEST).read_text())
    names = {e["name"] for e in manifest["files"]}
    assert {"model.o", "model_weights.bin", "libmodel.a", "model.h", "cpu_module.json"} <= names
    for e in manifest["files"]:
        data = (cpu_artifact / e["name"]).read_bytes()
        assert e["bytes"] == len(data)
        assert e["sha256"] == "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["model.o", "model_weights.bin"])
def test_truncated_cpu_file_is_an_artifact_error(cpu_artifact, tmp_path, capsys, samples, name):
    d = copy_artifact(cpu_artifact, tmp_path / "art")
    size = (d / name).stat().st_size
    os.truncate(d / name, size // 2)
    with pytest.raises(ArtifactError, match=f"{name}: artifact file has the wrong size.*expected {size} bytes"):
        compiler.load(d)
    assert_one_error(capsys, ["run", d, "--inputs", samples], name, "wrong size")


def test_same_size_corruption_is_caught_by_the_hash(cpu_artifact, tmp_path, capsys, samples):
    d = copy_artifact(cpu_artifact, tmp_path / "art")
    data = bytearray((d / "model.o").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.o").write_bytes(bytes(data))
    assert_one_error(capsys, ["run", d, "--inputs", samples], "model.o", "sha256")


def test_missing_file_is_named(cpu_artifact, tmp_path, capsys, samples):
    d = copy_artifact(cpu_artifact, tmp_path / "art")
    (d / "model_weights.bin").unlink()
    assert_one_error(capsys, ["run", d, "--inputs", samples], "model_weights.bin", "missing")


def test_truncated_ref_weights(tmp_path, capsys, samples):
    d = tmp_path / "ref"
    assert main(["build", CNN, "-o", str(d), "-q"]) == 0
    os.truncate(d / "weights.bin", (d / "weights.bin").stat().st_size // 2)
    assert_one_error(capsys, ["run", d, "--inputs", samples], "weights.bin", "wrong size")


@pytest.mark.parametrize("edit, msg", [
    (lambda m: m.pop("files"), "no files list"),
    (lambda m: m["files"][0].update(name="../escape"), "malformed files entry 0"),
    (lambda m: m["files"][0].pop("sha256"), "malformed files entry 0"),
    (lambda m: m["files"][0].update(bytes="12"), "malformed files entry 0"),
])
def test_malformed_files_entries(tmp_path, edit, msg):
    compiler.compile(CNN).save(tmp_path / "art")
    path = tmp_path / "art" / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=msg):
        compiler.load(tmp_path / "art")


def test_building_over_an_artifact_replaces_it(cpu_artifact, tmp_path, capsys, samples):
    d = copy_artifact(cpu_artifact, tmp_path / "art")
    rc, _, err = cli(capsys, "build", CNN, "-o", d, "-q")  # ref over cpu
    assert rc == 0, err
    left = sorted(p.name for p in d.iterdir())
    assert left == ["graph.ir", "manifest.json", "weights.bin", "weights.bin.json"]
    assert compiler.load(d).target == "ref"
    rc, out, _ = cli(capsys, "run", d, "--inputs", samples)
    assert rc == 0 and "logits" in out


def test_saving_a_loaded_module_over_itself(tmp_path, samples):
    d = tmp_path / "art"
    compiler.compile(CNN).save(d)
    x = dict(np.load(samples))
    m = compiler.load(d)  # its weights are memory-mapped from d
    expected = m.run(x)["logits"]
    m.save(d)
    np.testing.assert_array_equal(m.run(x)["logits"], expected)
    np.testing.assert_array_equal(compiler.load(d).run(x)["logits"], expected)


def test_foreign_folder_is_refused_unless_forced(tmp_path, capsys):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    assert_one_error(capsys, ["build", CNN, "-o", d], "not empty and holds no artifact", "notes.txt", "--force")
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
    with pytest.raises(ArtifactError, match="not empty"):
        compiler.compile(CNN).save(d)
    rc, _, err = cli(capsys, "build", CNN, "-o", d, "--force", "-q")
    assert rc == 0, err
    assert (d / "notes.txt").read_text() == "keep me" and compiler.load(d).target == "ref"


def test_output_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "out.bin"
    f.write_bytes(b"x")
    assert_one_error(capsys, ["build", CNN, "-o", f], "is a file, not a folder")
    assert f.read_bytes() == b"x"


def test_bundle_sizes_are_checked_for_overflow():
    from backends.cpu.bundle import BundleSource, checked_size, header_text
    big = 2 ** 31
    src = BundleSource(b"", np.zeros(0, np.uint8), [{"name": "x", "dtype": "f32", "shape": [big, big, big]}],
                       [{"name": "y", "dtype": "f32", "shape": [1]}], 0, [], "avx2")
    with pytest.raises(ArtifactError, match="input 0 \\('x'\\) element count.*does not fit a 64-bit integer"):
        header_text(src, "model")
    src.inputs = [{"name": "x", "dtype": "f64", "shape": [2 ** 31, 2 ** 31]}]  # 2^62 elements, 2^65 bytes
    with pytest.raises(ArtifactError, match="size in bytes"):
        header_text(src, "model")
    assert checked_size(2 ** 63 - 1, "n") == 2 ** 63 - 1
    src.inputs = [{"name": "x", "dtype": "f32", "shape": [2, 3]}]
    assert "#define MODEL_INPUT_0_BYTES 24" in header_text(src, "model")


def test_huge_input_is_an_import_error(tmp_path, capsys):
    big = 2 ** 31
    m = make([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [big, big, big])], [vi("y", None)])
    with pytest.raises(ImportError_, match="value 'x': value is larger than the supported limit"):
        compiler.compile(m)
    assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-t", "cpu", "-o", tmp_path / "o"],
                     "'x'", "2^40")


def test_huge_intermediate_is_an_import_error():
    shape = numpy_helper.from_array(np.array([2 ** 20, 2 ** 20, 2 ** 10], np.int64), "shape")
    m = make([helper.make_node("ConstantOfShape", ["shape"], ["big"]),
              helper.make_node("Add", ["x", "big"], ["y"])],
             [vi("x", [1])], [vi("y", None)], [shape])
    with pytest.raises(ImportError_, match="value 'big'.*larger than the supported limit"):
        compiler.compile(m)
    assert MAX_TENSOR_BYTES == 2 ** 40


# ------------------------------------------------------------------ models
def relu_model(opset=17):
    return make([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2, 3])], [vi("y", [2, 3])], opset=opset)


def test_duplicate_graph_outputs(tmp_path, capsys):
    m = make([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", [2]), vi("y", [2])])
    assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-o", tmp_path / "o"],
                     "lists an output name twice", "'y'")


def test_float_strides_on_conv(tmp_path, capsys):
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"])
    conv.attribute.append(helper.make_attribute("strides", [1.0, 1.0]))
    m = make([conv], [vi("x", [1, 1, 8, 8])], [vi("y", None)], [w])
    with pytest.raises(ModelLoadError, match="Conv node.*strides.*Expected: 'INTS', actual: 'FLOATS'"):
        compiler.compile(m)
    assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-o", tmp_path / "o"],
                     "Conv node", "strides")


@pytest.mark.parametrize("opset", [99, 0])
def test_opsets_outside_the_supported_range(tmp_path, capsys, opset):
    latest = onnx.defs.onnx_opset_version()
    line = assert_one_error(capsys, ["build", save_model(relu_model(opset), tmp_path / "m.onnx"), "-o", tmp_path / "o"],
                            "unsupported ONNX opset", f"opset 1 to {latest}", f"found opset {opset}")
    assert line


def test_old_opsets_import_through_their_rules():
    # Opsets before 6 are in the supported range: import rules rewrite the older op forms.
    m = compiler.compile(relu_model(opset=3))
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    np.testing.assert_array_equal(m.run({"x": x})["y"], np.maximum(x, 0))


def test_tensor_data_that_does_not_match_its_dims(tmp_path, capsys):
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    w.dims[:] = [4, 3]  # 12 elements declared, 6 stored
    m = make([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [2, 3])], [vi("y", None)], [w])
    assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-o", tmp_path / "o"], "tensor 'w'")


def test_value_defined_twice(tmp_path, capsys):
    m = make([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])],
             [vi("x", [2])], [vi("y", [2])])
    assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-o", tmp_path / "o"],
                     "defined twice", "'y'")


# ------------------------------------------------------------- command line
def test_negative_input_shape(tmp_path, capsys):
    assert_one_error(capsys, ["build", CNN, "-t", "cpu", "--input-shape", "input=-1,1,8,8", "-o", tmp_path / "o"],
                     "input 'input'", "0 or more", "-1,1,8,8")


def test_input_shape_for_no_such_input(tmp_path, capsys):
    assert_one_error(capsys, ["build", CNN, "--input-shape", "nosuch=1,2", "-o", tmp_path / "o"],
                     "'nosuch'", "names no input", "'input'")
    assert_one_error(capsys, ["inspect", CNN, "--input-shape", "nosuch=1,2"], "'nosuch'")


def test_input_shape_of_the_wrong_rank(tmp_path, capsys):
    assert_one_error(capsys, ["build", CNN, "--input-shape", "input=1,8,8", "-o", tmp_path / "o"],
                     "wrong number of dimensions", "expected 4")


@pytest.mark.parametrize("argv, fragment", [
    (["--repeat", "0"], "repeat"),
    (["--repeat", "-5"], "repeat"),
    (["--warmup", "-1"], "warmup"),
    (["--threads", "-2"], "threads"),
])
def test_bench_settings(capsys, samples, argv, fragment):
    assert_one_error(capsys, ["bench", CNN, "--inputs", samples, *argv], fragment)


def test_profile_repeat_zero(capsys, samples):
    assert_one_error(capsys, ["profile", CNN, "--inputs", samples, "--repeat", "0"], "repeat")


def test_unreadable_inputs_file(tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    assert_one_error(capsys, ["run", CNN, "--inputs", empty], "cannot read inputs")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not a zip")
    assert_one_error(capsys, ["run", CNN, "--inputs", junk], "cannot read inputs")


def test_api_errors_are_input_errors():
    m = compiler.compile(CNN)
    with pytest.raises(InputError, match="repeat"):
        m.benchmark(repeat=0)
    with pytest.raises(InputError, match="names no input"):
        compiler.compile(CNN, input_shapes={"nosuch": (1, 2)})


def test_import_model_checks_attribute_kinds_without_the_loader():
    # import_model takes a proto directly (no checker); import rules rely on attribute kinds.
    from frontends.onnx import import_model
    pad = helper.make_node("Pad", ["x"], ["y"], mode="constant")
    pad.attribute.append(helper.make_attribute("pads", [0.0, 1.0]))
    m = make([pad], [vi("x", [2])], [vi("y", None)], opset=2)
    with pytest.raises(ImportError_, match="Pad node.*attribute 'pads' has the wrong kind; expected INTS, found FLOATS"):
        import_model(m)
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    m = make([helper.make_node("If", ["c"], ["y"])], [cond], [vi("y", None)])
    with pytest.raises(ImportError_, match="If node.*required attribute '(then|else)_branch' is missing"):
        import_model(m)


def test_a_manifest_of_something_else_is_not_an_artifact(tmp_path, capsys):
    d = tmp_path / "webapp"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"name": "app", "files": ["precious.txt"]}))
    (d / "precious.txt").write_text("keep")
    assert_one_error(capsys, ["build", CNN, "-o", d], "not empty and holds no artifact")
    rc, _, err = cli(capsys, "build", CNN, "-o", d, "--force", "-q")
    assert rc == 0, err
    assert (d / "precious.txt").read_text() == "keep"


def test_run_time_shapes_above_the_limit_are_input_errors():
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [3])
    m = make([helper.make_node("Expand", ["x", "shape"], ["y"])], [vi("x", [1]), shape], [vi("y", None)])
    module = compiler.compile(m, options={"specialize": True})  # static per call, as the cpu target
    x = np.ones(1, np.float32)
    np.testing.assert_array_equal(module.run({"x": x, "shape": np.array([2, 1, 3])})["y"], np.ones((2, 1, 3)))
    with pytest.raises(InputError, match="value 'y'.*larger than the supported limit"):
        module.run({"x": x, "shape": np.array([2 ** 20, 2 ** 20, 2 ** 10])})


def test_names_that_are_not_utf8(tmp_path, capsys):
    data = relu_model().SerializeToString().replace(b"Relu", b"R\xe9lu")
    with pytest.raises(ModelLoadError, match="an op type is not valid UTF-8 text"):
        compiler.compile(data)
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert_one_error(capsys, ["inspect", path], "not valid UTF-8")
    from frontends.onnx import import_model
    m = onnx.ModelProto()
    m.ParseFromString(data)
    with pytest.raises(ModelLoadError, match="not valid UTF-8"):
        import_model(m)


def test_opset_versions_of_other_domains_are_checked():
    m = relu_model()
    m.opset_import.append(helper.make_opsetid("com.acme", 2 ** 40))
    with pytest.raises(ModelLoadError, match="invalid opset version.*com.acme 1099511627776"):
        compiler.compile(m)


def test_a_failed_save_leaves_no_half_artifact(tmp_path, monkeypatch):
    m = compiler.compile(CNN)
    d = tmp_path / "art"
    m.save(d)

    def failing_save(directory):
        (directory / "graph.ir").write_text("partial")
        raise ArtifactError("disk full (simulated)")

    monkeypatch.setattr(m.executable, "save", failing_save)
    with pytest.raises(ArtifactError, match="simulated"):
        m.save(d)
    assert list(d.iterdir()) == []  # the old artifact was replaced, the new one never finished
    monkeypatch.undo()
    m.save(d)  # an empty folder: the next save goes ahead
    assert compiler.load(d).target == "ref"


def test_unwritable_outputs(tmp_path, capsys, samples):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_error(capsys, ["build", CNN, "-o", tmp_path / "o", "--dump-ir", f], "IR dump folder is a file")
    assert_one_error(capsys, ["build", CNN, "-o", f / "sub"], "cannot write the artifact folder")
    assert_one_error(capsys, ["run", CNN, "--inputs", samples, "--output", tmp_path / "no" / "such" / "y.npz"],
                     "cannot write the outputs")


def test_inconsistency_found_by_folding_is_the_models(tmp_path, capsys):
    a = numpy_helper.from_array(np.array([1, 5], np.int64), "a")
    b = numpy_helper.from_array(np.array([0, 0], np.int64), "b")
    m = make([helper.make_node("Add", ["a", "b"], ["shape"]), helper.make_node("Reshape", ["x", "shape"], ["y"])],
             [vi("x", [2, 3])], [vi("y", None)], [a, b])
    line = assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-o", tmp_path / "o"],
                            "Reshape node", "inconsistent once its constants are folded", "element counts differ")
    assert "pass crashed" not in line and "IR is invalid" not in line


def test_op_used_before_its_opset(tmp_path, capsys):
    m = make([helper.make_node("Gelu", ["x"], ["y"])], [vi("x", [2])], [vi("y", [2])], opset=17)
    assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-o", tmp_path / "o"],
                     "Gelu does not exist in opset 17", "opset 20 or later")


def test_ir_version_newer_than_onnx(tmp_path, capsys):
    m = relu_model()
    m.ir_version = 456774631099  # found by the fuzzer: it crashed ONNX's checker context
    assert_one_error(capsys, ["build", save_model(m, tmp_path / "m.onnx"), "-o", tmp_path / "o"],
                     "IR version is newer", f"expected 3 to {onnx.IR_VERSION}")


def test_attributes_of_nodes_with_subgraphs_are_checked():
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [], [vi("z", [2])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body, to=1)
    m = make([node], [helper.make_tensor_value_info("c", TensorProto.BOOL, []), vi("x", [2])], [vi("y", None)])
    with pytest.raises(ModelLoadError, match="If node.*unrecognized attribute 'to'"):
        compiler.compile(m)
    del node.attribute[-1]
    m = make([node], [helper.make_tensor_value_info("c", TensorProto.BOOL, []), vi("x", [2])], [vi("y", None)])
    x = np.array([1, 2], np.float32)
    np.testing.assert_array_equal(compiler.compile(m).run({"c": np.array(True), "x": x})["y"], x)


def test_empty_but_huge_dims_are_refused():
    # Found by the fuzzer: [0, 2^62] holds no element, yet NumPy cannot even make such an array.
    m = make([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [0, 2 ** 62])], [vi("y", None)])
    with pytest.raises(ImportError_, match="value 'x'.*larger than the supported limit"):
        compiler.compile(m)


def test_declared_shapes_that_contradict_a_node_are_refused_at_import():
    """Found by the long fuzz run: an output declaration fixes a weight input's symbolic dim to a
    size its Conv's kernel_shape contradicts.  The import names the node (it used to pass import and
    leave a later pass to find the IR invalid)."""
    from onnx import TensorProto, helper

    import compiler
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])
    w = helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 1, "N", 3])
    w_out = helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 1, 5, 5])
    conv = helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    model = helper.make_model(helper.make_graph([conv], "g", [x, w], [w_out]),
                              opset_imports=[helper.make_opsetid("", 11)])
    with pytest.raises(compiler.CompilerError, match="declared shapes contradict") as info:
        compiler.compile(model.SerializeToString(), target="ref")
    assert "Conv" in str(info.value)


# A Loop model from ONNX's test suite (test_loop11) whose body declares y_out as f32[0] while its Add
# gives f32[1]: the input the long fuzz run found (mutation "dim of y_out").
LOOP_WITH_CONTRADICTING_BODY = b'\x08\x06\x12\x0cbackend-test:\xbd\x05\n\xc5\x04\n\ntrip_count\n\x04cond\n\x01y\x12\x05res_y\x12\x08res_scan"\x04Loop*\x96\x04\n\x04body2\x8a\x04\n\x1d\n\x07cond_in\x12\x08cond_out"\x08Identity\nE\x12\x01x"\x08Constant*6\n\x05value**\x08\x05\x10\x01"\x14\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@\x00\x00\xa0@B\x0econst_tensor_x\xa0\x01\x04\n4\x12\x03one"\x08Constant*#\n\x05value*\x17\x10\x07:\x01\x01B\x10const_tensor_one\xa0\x01\x04\n\x1b\n\niter_count\n\x03one\x12\x03end"\x03Add\n1\n\niter_count\x12\x0bslice_start"\tUnsqueeze*\x0b\n\x04axes@\x00\xa0\x01\x07\n(\n\x03end\x12\tslice_end"\tUnsqueeze*\x0b\n\x04axes@\x00\xa0\x01\x07\n-\n\x01x\n\x0bslice_start\n\tslice_end\x12\tslice_out"\x05Slice\n\x1d\n\x04y_in\n\tslice_out\x12\x05y_out"\x03Add\n\x1b\n\x05y_out\x12\x08scan_out"\x08Identity\x12\tloop_bodyZ\x14\n\niter_count\x12\x06\n\x04\x08\x07\x12\x00Z\x11\n\x07cond_in\x12\x06\n\x04\x08\t\x12\x00Z\x12\n\x04y_in\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01b\x12\n\x08cond_out\x12\x06\n\x04\x08\t\x12\x00b\x13\n\x05y_out\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x00b\x16\n\x08scan_out\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01\xa0\x01\x05\x12\x0btest_loop11Z\x14\n\ntrip_count\x12\x06\n\x04\x08\x07\x12\x00Z\x0e\n\x04cond\x12\x06\n\x04\x08\t\x12\x00Z\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01b\x13\n\x05res_y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01b\x1a\n\x08res_scan\x12\x0e\n\x0c\x08\x01\x12\x08\n\x02\x08\x05\n\x02\x08\x01B\x04\n\x00\x10\x0b'


def test_declared_shapes_in_a_loop_body_that_contradict_its_ops_are_refused():
    import compiler
    with pytest.raises(compiler.CompilerError) as info:
        compiler.compile(LOOP_WITH_CONTRADICTING_BODY, target="ref")
    assert "declared shapes contradict" in str(info.value)  # refused at import, not blamed on a pass


def test_a_node_with_the_wrong_number_of_outputs_is_an_import_error():
    """Found by the long fuzz run: a Constant node with no output crashed an import rule
    (``import_model`` on a proto skips the loader's checker, so the importer checks arity itself)."""
    from onnx import TensorProto, helper

    from frontends.onnx import import_model
    from ir.errors import ImportError_
    node = helper.make_node("Constant", [], [], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([node, helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ImportError_, match="wrong number of outputs"):
        import_model(model)


# ONNX's test_unsqueeze_axis_0 with x's first dim made symbolic ("dim of x"): built for cpu with
# x fixed to [1, 4, 5], the declared output [1, 3, 4, 5] contradicts it.  simplify-reshapes turned
# the Unsqueeze into a Reshape no input could satisfy (fourth long-fuzz finding).
UNSQUEEZE_WITH_CONTRADICTING_OUTPUT = b'\x08\r\x12\x0cbackend-test:{\n\x17\n\x01x\n\x04axes\x12\x01y"\tUnsqueeze\x12\x15test_unsqueeze_axis_0Z\x18\n\x01x\x12\x13\n\x11\x08\x01\x12\r\n\x03\x12\x01N\n\x02\x08\x04\n\x02\x08\x05Z\x12\n\x04axes\x12\n\n\x08\x08\x07\x12\x04\n\x02\x08\x01b\x1b\n\x01y\x12\x16\n\x14\x08\x01\x12\x10\n\x02\x08\x01\n\x02\x08\x03\n\x02\x08\x04\n\x02\x08\x05B\x04\n\x00\x10\x19'


def test_simplify_reshapes_leaves_contradicting_types_alone():
    import compiler
    try:
        compiler.compile(UNSQUEEZE_WITH_CONTRADICTING_OUTPUT, target="cpu", input_shapes={"x": [1, 4, 5]})
    except compiler.CompilerError as exc:
        assert "IR is invalid" not in str(exc) and "pass crashed" not in str(exc), str(exc)


# A Scan-8 model from ONNX's tests with a scanned input's rank cut below 2 (fifth long-fuzz
# finding: the Scan-8 import rule indexed the missing sequence dimension).
SCAN8_WITH_RANK_1_INPUT = b'\x08\x04\x12\x0cbackend-test:\xae\x02\n\xd6\x01\n\x07initial\n\x01x\x12\x01y\x12\x01z"\x04Scan*\x16\n\x0fnum_scan_inputs\x18\x01\xa0\x01\x02*\xa1\x01\n\x04body2\x95\x01\n\x1e\n\x06sum_in\n\x04next\x12\x07sum_out"\x03Add:\x00\n\x1f\n\x07sum_out\x12\x08scan_out"\x08Identity:\x00\x12\tscan_bodyZ\x10\n\x06sum_in\x12\x06\n\x04\x08\x01\x12\x00Z\x0e\n\x04next\x12\x06\n\x04\x08\x01\x12\x00b\x11\n\x07sum_out\x12\x06\n\x04\x08\x01\x12\x00b\x12\n\x08scan_out\x12\x06\n\x04\x08\x01\x12\x00\xa0\x01\x05:\x00\x12\x11test_scan9_scalarZ\x11\n\x07initial\x12\x06\n\x04\x08\x01\x12\x00Z\x0f\n\x01x\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x05b\x0b\n\x01y\x12\x06\n\x04\x08\x01\x12\x00b\x0f\n\x01z\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x05B\x04\n\x00\x10\x01'


def test_scan8_inputs_without_batch_and_sequence_dims_are_an_import_error():
    from frontends.onnx import import_model
    import onnx
    from ir.errors import CompilerError
    model = onnx.ModelProto()
    model.ParseFromString(SCAN8_WITH_RANK_1_INPUT)
    with pytest.raises(CompilerError):
        import_model(model)


# ONNX's test_clip_default_int8_max with x made float ("elem_type of x"): Clip's max stayed int8.
# The type rule let it through and the cpu code generator failed on the mixed types (sixth
# long-fuzz finding, from the whole-suite run).
CLIP_WITH_MIXED_TYPES = b'\x08\x07\x12\x0cbackend-test:r\n\x13\n\x01x\n\x00\n\x03max\x12\x01y"\x04Clip\x12\x1atest_clip_default_int8_maxZ\x17\n\x01x\x12\x12\n\x10\x08\x01\x12\x0c\n\x02\x08\x03\n\x02\x08\x04\n\x02\x08\x05Z\r\n\x03max\x12\x06\n\x04\x08\x03\x12\x00b\x17\n\x01y\x12\x12\n\x10\x08\x03\x12\x0c\n\x02\x08\x03\n\x02\x08\x04\n\x02\x08\x05B\x04\n\x00\x10\r'


def test_clip_bounds_of_another_type_are_a_type_error():
    import compiler
    with pytest.raises(compiler.CompilerError, match="max must have the input's element type"):
        compiler.compile(CLIP_WITH_MIXED_TYPES, target="ref")
