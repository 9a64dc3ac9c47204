"""Check one op against onnxruntime: build a one-node model, run both, compare.

    from tests.ops.ortcheck import check_op
    check_op("Conv", [x, w], {"pads": [1, 1, 1, 1]}, opset=17)

Inputs given as ``Const(array)`` become initializers (so constant-only code
paths such as shape inference from constant inputs are exercised); plain
arrays become graph inputs.  Outputs must match onnxruntime's in dtype, shape
and value (``rtol``/``atol``); our reference is run through the whole driver
(import, default passes, ref target), so import rules are tested too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir.dtypes import DType


@dataclass
class Const:
    """Wrap an input array to make it an initializer instead of a graph input."""

    value: np.ndarray


def make_model(op: str, inputs: Sequence[Any], attrs: Optional[dict] = None, *, opset: int = 21,
               num_outputs: int = 1, domain: str = "", output_names: Optional[Sequence[str]] = None,
               ir_version: Optional[int] = None) -> onnx.ModelProto:
    """A model with one node; ``None`` inputs are omitted optional inputs."""
    graph_inputs, inits, names = [], [], []
    for i, x in enumerate(inputs):
        if x is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if isinstance(x, Const):
            inits.append(numpy_helper.from_array(np.asarray(x.value), name))
        else:
            arr = np.asarray(x)
            graph_inputs.append(helper.make_tensor_value_info(
                name, DType.from_numpy(arr.dtype).onnx, arr.shape))
    outs = list(output_names or [f"out{i}" for i in range(num_outputs)])
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    graph = helper.make_graph(
        [node], f"{op}_test", graph_inputs,
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs if o],
        initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = ir_version or min(onnx.IR_VERSION, 10)
    return _fill_output_types(model)


def _fill_output_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime wants typed outputs: take them from ONNX's shape inference, or ours."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        by_name = {o.name: o for o in inferred.graph.output}
    except Exception:
        by_name = {}
    missing = []
    for out in model.graph.output:
        src = by_name.get(out.name)
        if src is not None and src.type.tensor_type.elem_type:
            out.type.CopyFrom(src.type)
        else:
            missing.append(out)
    if missing:
        import compiler
        m = compiler.compile(model)
        specs = {s.name: s for s in m.outputs}
        for out in missing:
            spec = specs[out.name]
            out.type.tensor_type.elem_type = DType.from_short(spec.dtype).onnx
    return model


def run_ours(model: onnx.ModelProto, feeds: dict[str, np.ndarray], target: str = "ref") -> list[np.ndarray]:
    import compiler
    m = compiler.compile(model, target=target)
    out = m.run(feeds)
    return [out[n] for n in m.output_names]


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *, optimize: bool = True) -> list[np.ndarray]:
    """onnxruntime's outputs; ``optimize=False`` runs its unfused reference kernels."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # no warnings about unused initializers
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def check_op(op: str, inputs: Sequence[Any], attrs: Optional[dict] = None, *, opset: int = 21,
             num_outputs: int = 1, domain: str = "", rtol: float = 1e-5, atol: float = 1e-6,
             target: str = "ref", expected: Optional[Sequence[np.ndarray]] = None) -> list[np.ndarray]:
    """Assert our result equals onnxruntime's (or ``expected``); returns ours."""
    model = make_model(op, inputs, attrs, opset=opset, num_outputs=num_outputs, domain=domain)
    feeds = {f"in{i}": np.asarray(x) for i, x in enumerate(inputs)
             if x is not None and not isinstance(x, Const)}
    ours = run_ours(model, feeds, target)
    theirs = list(expected) if expected is not None else run_ort(model, feeds)
    assert len(ours) == len(theirs), f"{op}: {len(ours)} outputs, reference has {len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        b = np.asarray(b)
        assert a.dtype == b.dtype, f"{op} output {i}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{op} output {i}: shape {a.shape} != {b.shape}"
        if a.dtype == object:
            assert a.tolist() == b.tolist(), f"{op} output {i} differs"
        elif a.dtype.kind in "fc" or a.dtype.kind == "V":
            np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol,
                                       err_msg=f"{op} output {i}")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{op} output {i}")
    return ours
