"""One top-level node of our graph (a fused group or a single op) as one TVM PrimFunc.

The kernel's parameters, in order: the node's activation inputs, then the
constants it reads from the weights (a fused body's own constants included),
then its outputs.  One-element constants become immediates in the code.
Fused bodies are walked in their order, each node through its TE rule, so a
Conv+Add+Relu group is one ``te.create_prim_func`` whose epilogue the
schedule folds into the convolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from tvm import te

from ir.errors import BackendError
from ir.graph import Graph, Node, Value

from .rules import EXACT_EXTREMES, RULES, Scalar, support, tvm_dtype


@dataclass
class KernelDef:
    """A node's PrimFunc and the graph values bound to its parameters, in order."""

    node: Node
    label: str
    func: Any            # tvm.tirx.PrimFunc (unscheduled)
    params: list[Value]  # top-level activations, constants (any graph's), outputs


def label_of(node: Node) -> str:
    if node.domain == "nnc" and node.op == "Fused":
        return f"{node.attr('pattern')} %{node.outputs[0].name}"
    return f"{node.qualified_op} %{node.outputs[0].name}"


def _scalar(v: Value) -> Optional[Scalar]:
    arr = np.asarray(v.const)
    if arr.size != 1 or arr.dtype == object:
        return None
    dtype = tvm_dtype(v.type)
    item = arr.reshape(-1)[0]
    # bfloat16 arrays (ml_dtypes) are not of numpy kind "f": ask the TVM dtype whether it is a float.
    is_float = dtype.startswith(("float", "bfloat"))
    return Scalar(bool(item) if dtype == "bool" else (float(item) if is_float else int(item)), dtype)


class _Builder:
    def __init__(self) -> None:
        self.env: dict[int, Any] = {}
        self.placeholders: list[te.Tensor] = []
        self.params: list[Value] = []

    def placeholder(self, v: Value, bind: Value) -> te.Tensor:
        t = te.placeholder(tuple(int(d) for d in v.type.shape), tvm_dtype(v.type), name=f"p{len(self.params)}")
        self.placeholders.append(t)
        self.params.append(bind)
        self.env[id(v)] = t
        return t

    def operand(self, v: Optional[Value], skip: bool) -> Any:
        if v is None or skip:
            return None
        if id(v) in self.env:
            return self.env[id(v)]
        if v.const is not None:
            s = _scalar(v)
            if s is not None:
                self.env[id(v)] = s
                return s
            return self.placeholder(v, v)
        raise BackendError("a kernel operand is neither an input, a constant nor computed before",
                           subject=f"%{v.name}")

    def apply(self, node: Node) -> None:
        why = support(node)
        if why is not None:
            raise BackendError(f"the tvm target cannot lower this node: {why}", subject=node.describe())
        r = RULES[(node.domain, node.op)]
        operands = [self.operand(v, i in r.const_inputs) for i, v in enumerate(node.inputs)]
        outs = r.lower(node, operands)
        for o, t in zip(node.outputs, outs):
            if o is not None:
                self.env[id(o)] = t


def _copy(src: te.Tensor) -> te.Tensor:
    return te.compute(src.shape, lambda *i: src(*i), name="out_copy")


def build_kernel(node: Node, exact_extremes: bool = True) -> KernelDef:
    """``node``'s PrimFunc (unscheduled) and its parameter values (``rules.EXACT_EXTREMES``)."""
    token = EXACT_EXTREMES.set(exact_extremes)
    try:
        return _build(node)
    finally:
        EXACT_EXTREMES.reset(token)


def _build(node: Node) -> KernelDef:
    b = _Builder()
    if node.domain == "nnc" and node.op == "Fused":
        body: Graph = node.attr("body")
        for inner, outer in zip(body.inputs, node.inputs):
            b.placeholder(inner, outer)
        for inner in body.nodes:
            b.apply(inner)
        results = [b.env[id(v)] for v in body.outputs]
    else:
        for v in node.inputs:
            if v is not None and v.const is None and id(v) not in b.env:
                b.placeholder(v, v)
        b.apply(node)
        results = [b.env[id(o)] for o in node.outputs]
    outs: list[te.Tensor] = []
    for o, t in zip(node.outputs, results):
        if any(t.same_as(p) for p in b.placeholders + outs):
            t = _copy(t)  # an output that is an input or another output
        outs.append(t)
    func = te.create_prim_func(b.placeholders + outs)
    return KernelDef(node, label_of(node), func, b.params + list(node.outputs))
