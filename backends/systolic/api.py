"""Build a systolic program straight from a model, for reports, sweeps and the SCALE-Sim interface.

The driver (``compiler.compile(..., target="systolic")``) is the usual way in;
these helpers exist because a report needs static shapes (a batch size for a
model whose batch is symbolic) and because the simulator's own command line
(``python -m backends.systolic``) sits below the driver in the layering.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from frontends.onnx import ImportOptions, load_model
from frontends.onnx.importer import import_model
from ir.errors import CompilerError
from ir.graph import Graph
from ir.types import TensorType
from passes.manager import PassContext, PassManager

from . import PIPELINE, SystolicBackend, SystolicExecutable


def static_input_shapes(proto: Any, batch: int = 1,
                        given: Optional[Mapping[str, tuple]] = None) -> dict[str, tuple]:
    """Every graph input's shape with symbolic dims set to ``batch`` (``given`` ones win)."""
    inits = {i.name for i in proto.graph.initializer}
    shapes: dict[str, tuple] = {}
    for inp in proto.graph.input:
        if inp.name in inits or not inp.type.HasField("tensor_type"):
            continue
        dims = inp.type.tensor_type.shape.dim
        shapes[inp.name] = tuple(d.dim_value if d.HasField("dim_value") else batch for d in dims)
    shapes.update({k: tuple(v) for k, v in (given or {}).items()})
    return shapes


def build(model: Union[str, bytes, Any, Graph], options: Optional[Mapping[str, Any]] = None, *,
          batch: int = 1, input_shapes: Optional[Mapping[str, tuple]] = None) -> SystolicExecutable:
    """Import ``model`` with static shapes, run the systolic pipeline, and compile its program."""
    backend = SystolicBackend(dict(options or {}))
    if isinstance(model, Graph):
        graph = model.clone()
    else:
        proto = load_model(model)
        graph = import_model(proto, ImportOptions(input_shapes=static_input_shapes(proto, batch, input_shapes)))
    for v in graph.inputs:
        if isinstance(v.type, TensorType) and not v.type.is_static:
            raise CompilerError("the systolic simulator needs static input shapes", subject=v.name,
                                found=str(v.type), hint="give input_shapes (or --batch)")
    PassManager(PIPELINE).run(graph, PassContext(target=backend.target_info, backend=backend))
    return backend.compile(graph)
