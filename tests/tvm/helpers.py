"""Small ONNX models built with onnx.helper, compiled for the tvm target and checked against the reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import compiler

OPSET = 18


def model(nodes: Sequence[onnx.NodeProto], inputs: dict[str, Sequence[int]], outputs: Sequence[str],
          weights: Optional[dict[str, np.ndarray]] = None, opset: int = OPSET,
          input_types: Optional[dict[str, int]] = None) -> onnx.ModelProto:
    """A float32 model: ``inputs`` name -> shape; outputs' types are inferred by our importer."""
    types = input_types or {}
    g = helper.make_graph(
        list(nodes), "t",
        [helper.make_tensor_value_info(k, types.get(k, TensorProto.FLOAT), list(s)) for k, s in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (weights or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def rand(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed + sum(shape)).standard_normal(shape) * scale).astype(np.float32)


def check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = 1e-4,
          options: Optional[dict[str, Any]] = None) -> Any:
    """Compile for tvm (device=llvm), run, compare every output with the reference; return the module."""
    m = compiler.compile(proto, target="tvm", options={"device": "llvm", **(options or {})})
    got = m.run(feeds)
    want = compiler.compile(proto, target="ref").run(feeds)
    for name, expected in want.items():
        expected = np.asarray(expected)
        scale = float(np.abs(expected).max()) if expected.size and expected.dtype.kind == "f" else 1.0
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(got[name], expected, rtol=0, atol=rtol * max(scale, 1e-6), err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], expected, err_msg=name)
    return m


def static_executable(m: Any, feeds: Optional[dict[str, np.ndarray]] = None) -> Any:
    """The TvmExecutable behind a module: for a graph the driver specializes per call, the one
    specialization made so far, or (given ``feeds``) the one for them, compiled without running."""
    exe = m.executable
    if getattr(exe, "cache", None) is None:
        return exe
    if feeds is not None:
        return exe.executable_for([feeds[name] for name in m.input_names])
    (only,) = exe.cache.values()
    return only


def transformer_block() -> tuple:
    """A transformer-style block: LayerNorm, attention scores, Softmax, residual MLP with Gelu."""
    d = 16
    n = helper.make_node
    proto = model([n("LayerNormalization", ["x", "g", "b"], ["n"], axis=-1),
                   n("MatMul", ["n", "wq"], ["q"]), n("MatMul", ["n", "wk"], ["k"]),
                   n("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), n("MatMul", ["q", "kt"], ["s"]),
                   n("Mul", ["s", "scale"], ["ss"]), n("Softmax", ["ss"], ["p"], axis=-1),
                   n("MatMul", ["p", "n"], ["a"]), n("Add", ["a", "x"], ["h"]),
                   n("MatMul", ["h", "w1"], ["m"]), n("Gelu", ["m"], ["gm"], approximate="tanh"),
                   n("MatMul", ["gm", "w2"], ["o"]), n("Add", ["o", "h"], ["y"])],
                  {"x": (2, 8, d)}, ["y"],
                  {"g": rand(d), "b": rand(d), "wq": rand(d, d, scale=0.3), "wk": rand(d, d, scale=0.3),
                   "scale": np.float32(0.25), "w1": rand(d, 2 * d, scale=0.3), "w2": rand(2 * d, d, scale=0.3)},
                  opset=20)
    return proto, {"x": rand(2, 8, d)}
