"""Measured schedule search (`build --tune`): the database is written, reused, and results stay right."""

import json
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler.driver import build


def conv_relu_model() -> onnx.ModelProto:
    """One 3x3 convolution with a ReLU: a kernel with several candidate schedules."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1, "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv_relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def decisions(result, what: str) -> list[dict]:
    return [d for d in result.context.log if d["decision"] == what]


def test_tune_records_then_reuses_the_fastest_schedule(tmp_path):
    model = conv_relu_model()
    x = np.random.default_rng(0).standard_normal((1, 16, 28, 28)).astype(np.float32)
    expected = compiler.compile(model, target="ref").run({"x": x})["y"]
    db_path = tmp_path / "tuning.json"

    tuned = build(model, "cpu", tune=True, tune_budget=30, tuning_db=db_path)
    records = json.loads(db_path.read_text())["targets"]
    entries = [rec for per_target in records.values() for rec in per_target.values()]
    assert entries, "tuning wrote no schedule"
    assert all(rec["candidates_tried"] >= 2 and rec["seconds"] > 0 for rec in entries)
    assert decisions(tuned, "tuned")
    np.testing.assert_allclose(tuned.module.run({"x": x})["y"], expected, rtol=1e-4, atol=1e-5)

    # A later build without --tune reads the database: the conv's schedule comes from it.
    reused = build(model, "cpu", tuning_db=db_path)
    sources = {d["kernel"]: d["source"] for d in decisions(reused, "schedule")}
    assert "tuned" in sources.values()
    assert any(n.schedule is not None and n.schedule.source == "tuned" for n in reused.graph.nodes)
    assert not decisions(reused, "tuned")  # nothing measured the second time
    np.testing.assert_allclose(reused.module.run({"x": x})["y"], expected, rtol=1e-4, atol=1e-5)


def test_tune_on_a_target_without_schedules_is_a_clear_error(tmp_path):
    model_path = tmp_path / "m.onnx"
    onnx.save(conv_relu_model(), model_path)
    proc = subprocess.run([sys.executable, "-m", "compiler", "build", str(model_path), "--target", "ref",
                           "--tune", "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "nothing to tune" in proc.stderr and "Traceback" not in proc.stderr
