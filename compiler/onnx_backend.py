"""An ``onnx.backend.base.Backend`` over our pipeline, for ONNX's backend test suite.

    from compiler.onnx_backend import Backend
    rep = Backend.prepare(model, target="ref")
    outputs = rep.run([x])

The target is chosen with ``target=`` (default ``ref``, the reference
interpreter); every target plugs into this same class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend as _OnnxBackend
from onnx.backend.base import BackendRep as _OnnxBackendRep

from .driver import compile as _compile


def _as_input(x: Any) -> Any:
    """Tensors (NumPy scalars too) become arrays; sequences and absent optionals stay."""
    if x is None or isinstance(x, list):
        return x
    return np.asarray(x)


class BackendRep(_OnnxBackendRep):
    def __init__(self, module) -> None:
        self.module = module

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        if isinstance(inputs, dict):
            feeds = {k: _as_input(v) for k, v in inputs.items()}
        else:
            if not isinstance(inputs, (list, tuple)):
                inputs = [inputs]
            # ONNX tests pass 0-d inputs as NumPy scalars.
            feeds = dict(zip(self.module.input_names, (_as_input(x) for x in inputs)))
        out = self.module.run(feeds)
        return tuple(out[n] for n in self.module.output_names)


class Backend(_OnnxBackend):
    default_target = "ref"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> BackendRep:
        target = kwargs.pop("target", cls.default_target)
        kwargs.pop("rtol", None)
        kwargs.pop("atol", None)
        return BackendRep(_compile(model, target=target, **kwargs))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence = None, **kwargs: Any) -> tuple:
        """Run one node: it becomes a one-node model whose inputs take the given arrays' types."""
        arrays = [np.asarray(x) for x in (inputs.values() if isinstance(inputs, dict) else inputs)]
        names = [n for n in node.input if n]
        if len(arrays) != len(names):
            from ir.errors import CompilerError
            raise CompilerError("run_node needs one array per node input",
                                subject=node.op_type, expected=str(len(names)), found=str(len(arrays)))
        graph_inputs = [onnx.helper.make_tensor_value_info(
            n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in zip(names, arrays)]
        graph_outputs = [onnx.helper.make_empty_tensor_value_info(n) for n in node.output if n]
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        domain_opsets = [onnx.helper.make_opsetid(node.domain or "", opset)]
        model = onnx.helper.make_model(onnx.helper.make_graph([node], f"run_node_{node.op_type}",
                                                              graph_inputs, graph_outputs),
                                       opset_imports=domain_opsets)
        return cls.prepare(model, device, **kwargs).run(dict(zip(names, arrays)))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


def backend_for(target: str) -> type[Backend]:
    """The Backend class whose ``prepare`` compiles for ``target`` by default."""
    return type(f"{target.capitalize()}Backend", (Backend,), {"default_target": target})


prepare = Backend.prepare
run_model = Backend.run_model
supports_device = Backend.supports_device
