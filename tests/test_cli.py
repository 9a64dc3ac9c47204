"""The CLI: every command works, and bad input gives one clear line and exit code 1."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "compiler", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    w = numpy_helper.from_array(np.linspace(-1, 1, 4).astype(np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Mul", ["input", "w"], ["m"]), helper.make_node("Relu", ["m"], ["logits"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    p = d / "tiny.onnx"
    onnx.save(m, p)
    return p


def assert_clean_error(proc, pattern):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert pattern in lines[0], lines[0]


def test_help_lists_commands():
    out = cli("--help")
    assert out.returncode == 0
    for cmd in ("inspect", "build", "run", "bench", "profile", "passes", "ops"):
        assert cmd in out.stdout


def test_build_run_bench_profile(model_path, tmp_path):
    art = tmp_path / "art"
    b = cli("build", model_path, "-o", art, "--time-passes")
    assert b.returncode == 0, b.stderr
    assert (art / "manifest.json").exists() and "total" in b.stderr
    x = np.ones((2, 4), np.float32)
    np.savez(tmp_path / "x.npz", input=x)
    r = cli("run", art, "--inputs", tmp_path / "x.npz", "--output", tmp_path / "y.npz")
    assert r.returncode == 0, r.stderr
    assert "logits: float32[2, 4]" in r.stdout
    y = np.load(tmp_path / "y.npz")["logits"]
    np.testing.assert_allclose(y, np.maximum(x * np.linspace(-1, 1, 4), 0), rtol=1e-6)
    assert cli("bench", art, "--repeat", "3", "--warmup", "1").returncode == 0
    p = cli("profile", art)
    assert p.returncode == 0 and "Relu" in p.stdout


def test_inspect_summary_and_ir(model_path):
    out = cli("inspect", model_path)
    assert out.returncode == 0, out.stderr
    assert "input: f32[N,4]" in out.stdout and "Relu" in out.stdout
    ir = cli("inspect", model_path, "--ir")
    assert ir.stdout.startswith("graph @main(%input: f32[N,4])")


def test_print_ir_after_and_dump(model_path, tmp_path):
    out = cli("build", model_path, "-o", tmp_path / "a", "--print-ir-after", "all",
              "--dump-ir", tmp_path / "dump", "-q")
    assert out.returncode == 0, out.stderr
    assert "IR after fold-constants" in out.stderr
    assert (tmp_path / "dump" / "00-input.ir").exists()


def test_missing_model(tmp_path):
    assert_clean_error(cli("build", tmp_path / "nope.onnx", "-o", tmp_path / "o"), "model file not found")


def test_not_onnx(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_text("this is not a model")
    assert_clean_error(cli("inspect", p), "not an ONNX model")


def test_unknown_op(tmp_path):
    g = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], name="mystery")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    p = tmp_path / "unknown.onnx"
    onnx.save(m, p)
    assert_clean_error(cli("build", p, "-o", tmp_path / "o"), "NoSuchOp (opset 17; used by mystery)")


def test_wrong_input_shape_and_dtype(model_path, tmp_path):
    np.savez(tmp_path / "bad_shape.npz", input=np.ones((2, 5), np.float32))
    assert_clean_error(cli("run", model_path, "--inputs", tmp_path / "bad_shape.npz"),
                       "wrong size of dimension 1")
    np.savez(tmp_path / "bad_dtype.npz", input=np.ones((2, 4), np.int32))
    assert_clean_error(cli("run", model_path, "--inputs", tmp_path / "bad_dtype.npz"),
                       "wrong element type")


def test_bad_pipeline_and_target(model_path, tmp_path):
    assert_clean_error(cli("build", model_path, "-o", tmp_path / "o", "--passes", "nope"), "unknown pass")
    assert_clean_error(cli("build", model_path, "-o", tmp_path / "o", "--target", "quantum"),
                       "unknown target")


def test_not_an_artifact(tmp_path):
    assert_clean_error(cli("run", tmp_path), "not a compiled artifact")


def test_ops_table_tells_kernels_from_expansions_and_gaps():
    proc = cli("ops", "--targets", "cpu,ref")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[2:] for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert rows["Conv"] == ["yes", "yes"]            # a kernel of its own
    assert rows["Relu"] == ["yes", "yes"]            # generated elementwise code
    assert rows["CastLike"] == ["expand", "yes"]     # runs through its ONNX function body
    assert rows["Resize"] == ["yes", "yes"]
    assert rows["NonMaxSuppression"] == ["-", "yes"]  # only the reference runs it
    assert rows["nnc.ConvNHWC"] == ["-", "yes"]      # systolic layout: not a cpu kernel
