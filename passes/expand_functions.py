"""expand-functions: rewrite ops the target cannot run into ONNX's own definition of them.

ONNX defines many ops as functions of simpler ops (LayerNormalization,
GroupNormalization, Attention, Softmax-13, Gelu, Range...).  When the target
(``ctx.backend``) has no kernel for such a node, this pass replaces the node
by the function's body, taken from ONNX's schema and inlined with the
node's attributes and input types, so the target compiles the primitives
instead.  This is a lowering, not a fallback: the semantics are ONNX's, and
a node with no function definition is left for the backend to report.

Repeats until no expandable unsupported node is left (a body may itself use
a function op the target lacks), at most ``max_rounds`` times.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import onnx
import onnx.defs
import onnx.inliner
from onnx import helper, numpy_helper

from ir.errors import CompilerError
from ir.graph import Graph, Node, Value
from ir.types import TensorType

from .manager import PassContext, register_pass

_EXPAND_DOMAIN = "nnc.expand"


def _onnx_attr(name: str, value: Any) -> Optional[onnx.AttributeProto]:
    if isinstance(value, np.ndarray):
        return helper.make_attribute(name, numpy_helper.from_array(value))
    if isinstance(value, tuple):
        value = list(value)
    try:
        return helper.make_attribute(name, value)
    except (TypeError, ValueError):
        return None  # graphs and IR-only attributes cannot be expressed


def _type_proto(v: Value) -> onnx.TypeProto:
    t = v.type
    shape = None if t.shape is None else [d if isinstance(d, int) else (d if isinstance(d, str) else None)
                                          for d in t.shape]
    return helper.make_tensor_type_proto(t.dtype.onnx, shape)


def function_body(node: Node) -> Optional[onnx.FunctionProto]:
    """ONNX's function definition of ``node`` (its newest schema), or None."""
    if node.domain != "" or any(not isinstance(v.type, TensorType) for v in node.inputs if v is not None):
        return None
    try:
        schema = onnx.defs.get_schema(node.op)
    except onnx.defs.SchemaError:
        return None
    proto = _node_proto(node)
    if proto is None:
        return None
    try:
        if schema.has_context_dependent_function:
            types = [(_type_proto(v) if v is not None else onnx.TypeProto()).SerializeToString()
                     for v in node.inputs]
            data = schema.get_context_dependent_function(proto.SerializeToString(), types)
            fn = onnx.FunctionProto()
            fn.ParseFromString(data)
            return fn if fn.node else None
        if schema.has_function:
            fn = onnx.FunctionProto()
            fn.CopyFrom(schema.function_body)
            return fn
    except Exception:  # noqa: BLE001 - ONNX refused to build a body for these attributes/types
        return None
    return None


def _node_proto(node: Node) -> Optional[onnx.NodeProto]:
    attrs = []
    for k, v in node.attrs.items():
        a = _onnx_attr(k, v)
        if a is None:
            return None
        attrs.append(a)
    inputs = ["" if v is None else f"i{k}" for k, v in enumerate(node.inputs)]
    proto = helper.make_node(node.op, inputs, [f"o{k}" for k in range(len(node.outputs))])
    proto.attribute.extend(attrs)
    return proto


def expansion_graph(node: Node, fn: onnx.FunctionProto) -> Graph:
    """The node's function body as an IR graph whose inputs/outputs mirror the node's."""
    from frontends.onnx import ImportOptions, import_model
    copy = onnx.FunctionProto()
    copy.CopyFrom(fn)
    fn = copy
    fn.name, fn.domain = node.op, _EXPAND_DOMAIN
    proto = _node_proto(node)
    proto.domain = _EXPAND_DOMAIN
    inputs = [helper.make_value_info(f"i{k}", _type_proto(v)) for k, v in enumerate(node.inputs) if v is not None]
    outputs = [helper.make_value_info(f"o{k}", _type_proto(v)) for k, v in enumerate(node.outputs)]
    opset = next((o.version for o in fn.opset_import if o.domain in ("", "ai.onnx")), 18)
    model = helper.make_model(helper.make_graph([proto], "expansion", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(_EXPAND_DOMAIN, 1)],
                              functions=[fn])
    model.ir_version = min(onnx.IR_VERSION, 10)
    inlined = onnx.inliner.inline_local_functions(model)
    return import_model(inlined, ImportOptions(onnx_shape_inference=False))


def splice(graph: Graph, node: Node, body: Graph) -> list[Node]:
    """Replace ``node`` by ``body``'s nodes; returns the new nodes."""
    present = [v for v in node.inputs if v is not None]
    mapping: dict[int, Value] = {id(b): v for b, v in zip(body.inputs, present)}
    for c in body.constants.values():
        mapping[id(c)] = graph.add_constant(c.const, graph.fresh_name(f"{node.outputs[0].name}_{c.name}"),
                                            dtype=c.type.dtype)
    created = []
    for n in body.nodes:
        new = graph.create_node(n.op, [None if v is None else mapping[id(v)] for v in n.inputs], dict(n.attrs),
                                domain=n.domain, name=node.name,
                                output_names=[f"{node.outputs[0].name}_{o.name}" for o in n.outputs],
                                output_types=[o.type for o in n.outputs], before=node)
        for old, out in zip(n.outputs, new.outputs):
            mapping[id(old)] = out
        created.append(new)
    for old, inner in zip(node.outputs, body.outputs):
        new = mapping[id(inner)]
        if not graph.can_replace(old, new):
            new = graph.create_node("Identity", [new], {}, output_types=[old.type],
                                    output_names=[old.name + "_id"], before=node).output
        graph.replace_all_uses(old, new)
    graph.remove_node(node)
    return created


@register_pass("expand-functions")
def expand_functions(graph: Graph, ctx: PassContext, *, max_rounds: int = 4) -> bool:
    """Replace nodes the target cannot run by ONNX's function definition of their op."""
    backend = ctx.backend
    if backend is None:
        ctx.decide("skip expansion", reason="no target backend to ask what it supports")
        return False
    changed = False
    for _ in range(max_rounds):
        todo = [n for n in graph.nodes if not backend.supports(n).ok]
        expanded = 0
        for node in todo:
            fn = function_body(node)
            if fn is None:
                continue
            try:
                body = expansion_graph(node, fn)
                from .fold_constants import fold_constants
                fold_constants(body, PassContext())
            except CompilerError:
                continue  # the body uses something we cannot import: leave the node to be reported
            if not all(backend.supports(n).ok or function_body(n) is not None for n in body.nodes):
                continue  # no better off: keep the node, so the error names the op the user wrote
            reason = backend.supports(node).reason
            label = node.describe()
            created = splice(graph, node, body)
            ctx.decide("expand into ONNX function body", node=label, into=len(created),
                       rule=f"target lacks a kernel ({reason})")
            expanded += 1
        if not expanded:
            break
        changed = True
    if changed:
        graph.topological_sort()
    return changed
