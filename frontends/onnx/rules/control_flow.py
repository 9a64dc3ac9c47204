"""Import rules for If, Loop and Scan (see frontends/onnx/rules/__init__.py).

ONNX bodies read outer values by name; our subgraphs are closed, so each
rule passes the values a body captures as extra trailing node inputs (see
``ir/ops/control_flow.py``).  ``NodeBuilder.subgraph`` imports a body and
returns those captured values.

ONNX lets body inputs be untyped (function expansions such as Range's use
that); ``import_body`` types them from the values the op passes in, widening
loop-carried types until the body's outputs agree with its inputs.
"""

from __future__ import annotations

from typing import Optional

import onnx
from onnx import helper

from ir.dtypes import DType
from ir.graph import Graph, Value
from ir.ops.control_flow import join_types
from ir.types import OptionalType, SequenceType, TensorType, Type

from . import canonical_since, rule

# ------------------------------------------------------------------ helpers


def type_proto(t: Type) -> onnx.TypeProto:
    """An IR type as an ONNX TypeProto (symbolic dims become dim_params)."""
    if isinstance(t, TensorType):
        return helper.make_tensor_type_proto(t.dtype.onnx, None if t.shape is None else list(t.shape))
    if isinstance(t, SequenceType):
        return helper.make_sequence_type_proto(type_proto(t.elem))
    if isinstance(t, OptionalType):
        return helper.make_optional_type_proto(type_proto(t.elem))
    raise TypeError(f"no ONNX type for {t!r}")


def _has_type(vi: onnx.ValueInfoProto) -> bool:
    kind = vi.type.WhichOneof("value")
    return kind is not None and not (kind == "tensor_type" and vi.type.tensor_type.elem_type == 0)


def _with_input_types(proto: onnx.GraphProto, types: dict[int, Type]) -> onnx.GraphProto:
    """A copy of ``proto`` whose inputs listed in ``types`` get those types."""
    out = onnx.GraphProto()
    out.CopyFrom(proto)
    for i, t in types.items():
        out.input[i].type.CopyFrom(type_proto(t))
    return out


def import_body(b, attr: str, hints: list[Optional[Type]],
                carried: Optional[dict[int, int]] = None) -> tuple[Graph, list[Value]]:
    """Import graph attribute ``attr``; untyped inputs take the types in ``hints``.

    ``carried`` maps a body input to the body output that feeds it on the next
    iteration; an untyped carried input is re-imported with a wider type
    until that output's type fits it (join only loses precision, so this ends).
    """
    proto = b.attrs.get(attr)
    if not isinstance(proto, onnx.GraphProto):
        b.fail(f"attribute {attr!r} must be a graph")
    if len(proto.input) != len(hints):
        b.fail(f"body {attr!r} declares the wrong number of inputs",
               expected=str(len(hints)), found=str(len(proto.input)))
    untyped = [i for i, vi in enumerate(proto.input) if not _has_type(vi)]
    missing = [i for i in untyped if hints[i] is None]
    if missing:
        b.fail(f"input {missing[0]} of body {attr!r} has no type and none can be deduced")
    hints = list(hints)
    while True:
        b.attrs[attr] = _with_input_types(proto, {i: hints[i] for i in untyped}) if untyped else proto
        g, captured = b.subgraph(attr)
        changed = False
        for i in untyped:
            o = (carried or {}).get(i)
            if o is None or o >= len(g.outputs):
                continue
            wider = join_types(hints[i], g.outputs[o].type)
            if wider is not None and wider != hints[i]:
                hints[i], changed = wider, True
        if not changed:
            return g, captured


def bind_captures(g: Graph, captured: list[Value], union: list[Value]) -> None:
    """Make ``g``'s trailing inputs stand for exactly ``union``, in that order.

    ``g`` ends with one input per value of ``captured``; inputs for values it
    does not read are added, and an outer value captured twice is merged.
    """
    n_declared = len(g.inputs) - len(captured)
    declared = g.inputs[:n_declared]
    by_outer: dict[int, Value] = {}
    for outer, inner in zip(captured, list(g.inputs[n_declared:])):
        first = by_outer.setdefault(id(outer), inner)
        if first is not inner:
            g.replace_all_uses(inner, first)
            g.remove_input(inner)
    for outer in union:
        if id(outer) not in by_outer:
            by_outer[id(outer)] = g.add_input(outer.name, outer.type)
    g.inputs = declared + [by_outer[id(o)] for o in union]


def _unique(values: list[Value]) -> list[Value]:
    seen: dict[int, Value] = {}
    for v in values:
        seen.setdefault(id(v), v)
    return list(seen.values())


def _no_other_attrs(b, allowed: tuple[str, ...] = ()) -> dict:
    extra = sorted(set(b.attrs) - set(allowed))
    if extra:
        b.fail(f"attribute {extra[0]!r} is not supported",
               hint=f"{b.op_type} takes {', '.join(allowed) or 'no other attributes'}")
    return {k: b.attrs[k] for k in allowed if k in b.attrs}


def _scalar(dtype: DType) -> TensorType:
    return TensorType(dtype, ())


def _drop_axis(t: Optional[Type], axis: int) -> Optional[Type]:
    """The type of one slice of ``t`` along ``axis`` (None when unknown)."""
    if not isinstance(t, TensorType):
        return None
    if t.shape is None:
        return TensorType(t.dtype, None)
    rank = len(t.shape)
    if not -rank <= axis < rank:
        return TensorType(t.dtype, None)
    axis %= rank
    return TensorType(t.dtype, t.shape[:axis] + t.shape[axis + 1:])


def _type_of(v: Optional[Value]) -> Optional[Type]:
    return None if v is None else v.type


# ----------------------------------------------------------------------- If
@rule("If")
def _if(b) -> list:
    """Both branches get the union of the outer values either one reads."""
    then_g, then_caps = b.subgraph("then_branch")
    else_g, else_caps = b.subgraph("else_branch")
    _no_other_attrs(b)
    union = _unique(then_caps + else_caps)
    bind_captures(then_g, then_caps, union)
    bind_captures(else_g, else_caps, union)
    return b.emit("If", [b.input(0), *union], {"then_branch": then_g, "else_branch": else_g},
                  num_outputs=b.num_outputs)


# --------------------------------------------------------------------- Loop
@rule("Loop")
def _loop(b) -> list:
    """Loop-1 to the newest share one meaning; captures follow the carried values."""
    initial = list(b.inputs[2:])
    hints = [_scalar(DType.I64), _scalar(DType.BOOL), *(_type_of(v) for v in initial)]
    carried = {2 + i: 1 + i for i in range(len(initial))}
    body, caps = import_body(b, "body", hints, carried)
    _no_other_attrs(b)
    return b.emit("Loop", [b.input(0), b.input(1), *initial, *caps],
                  {"body": body, "num_captures": len(caps)}, num_outputs=b.num_outputs)


# --------------------------------------------------------------------- Scan
_SCAN_ATTRS = ("num_scan_inputs", "scan_input_axes", "scan_input_directions",
               "scan_output_axes", "scan_output_directions")


@rule("Scan", since=9)
def _scan(b) -> list:
    m = b.attrs.get("num_scan_inputs")
    if not isinstance(m, int) or not 0 < m <= len(b.inputs):
        b.fail("attribute 'num_scan_inputs' is missing or out of range",
               expected=f"1..{len(b.inputs)}", found=str(m))
    n = len(b.inputs) - m
    axes = b.attrs.get("scan_input_axes") or [0] * m
    hints = [_type_of(v) for v in b.inputs[:n]]
    hints += [_drop_axis(_type_of(v), a) for v, a in zip(b.inputs[n:], axes)]
    body, caps = import_body(b, "body", hints, {i: i for i in range(n)})
    attrs = _no_other_attrs(b, _SCAN_ATTRS)
    attrs.update(body=body, num_captures=len(caps))
    return b.emit("Scan", [*b.inputs, *caps], attrs, num_outputs=b.num_outputs)


@rule("Scan", until=9)
def _scan8(b) -> list:
    """Scan-8 scans batched tensors: an outer Scan over the batch axis runs a Scan-9.

    Scan-8 inputs are ``[batch, seq, ...]`` (states ``[batch, ...]``), the body
    sees one batch element and one step.  The outer Scan slices axis 0 of every
    input (states included) and stacks the inner results along a new axis 0,
    which is exactly Scan-8's output layout.  ``sequence_lens`` (different
    lengths per batch element) is supported only when it changes nothing.
    """
    m = b.attrs.get("num_scan_inputs")
    inputs = list(b.inputs[1:])
    if not isinstance(m, int) or not 0 < m <= len(inputs):
        b.fail("attribute 'num_scan_inputs' is missing or out of range",
               expected=f"1..{len(inputs)}", found=str(m))
    n = len(inputs) - m
    for k, v in enumerate(inputs):  # Scan-8 batches every input: [batch, ...], scanned ones [batch, seq, ...]
        shape = v.type.shape if isinstance(v.type, TensorType) else None
        need = 1 if k < n else 2
        if shape is not None and len(shape) < need:
            b.fail(f"Scan-8 input {k + 1} needs rank {need} or more (batch{', sequence' if need == 2 else ''})",
                   found=str(v.type))
    _check_sequence_lens(b, inputs[n:])
    hints = [_drop_axis(_type_of(v), 0) for v in inputs[:n]]
    hints += [_drop_axis(_drop_axis(_type_of(v), 0), 0) for v in inputs[n:]]
    body, caps = import_body(b, "body", hints, {i: i for i in range(n)})
    attrs = _no_other_attrs(b, ("num_scan_inputs", "directions"))
    inner_attrs = {"body": body, "num_scan_inputs": m, "num_captures": len(caps)}
    if "directions" in attrs:
        inner_attrs["scan_input_directions"] = attrs["directions"]

    per_batch = Graph("scan8_batch_element")
    args = [per_batch.add_input(f"state_{i}", _drop_axis(v.type, 0)) for i, v in
            enumerate(inputs[:n])]
    args += [per_batch.add_input(f"scan_input_{j}", _drop_axis(v.type, 0)) for j, v in
             enumerate(inputs[n:])]
    args += [per_batch.add_input(v.name, v.type) for v in caps]
    inner = per_batch.create_node("Scan", args, inner_attrs, num_outputs=len(body.outputs))
    per_batch.set_outputs(inner.outputs)
    return b.emit("Scan", [*inputs, *caps],
                  {"body": per_batch, "num_scan_inputs": len(inputs), "num_captures": len(caps)},
                  num_outputs=b.num_outputs)


def _check_sequence_lens(b, scanned: list[Value]) -> None:
    lens = b.input(0)
    if lens is None:
        return
    full = next((v.type.shape[1] for v in scanned if isinstance(v.type, TensorType) and v.type.shape is not None
                 and len(v.type.shape) > 1 and isinstance(v.type.shape[1], int)), None)
    if lens.const is not None and full is not None and (lens.const == full).all():
        return  # every batch element uses the whole sequence: the same as no sequence_lens
    b.fail("Scan-8 with sequence_lens shorter than the sequence is not supported",
           hint="re-export the model with opset >= 9 (Scan without batching)")


canonical_since("Scan", 9)
