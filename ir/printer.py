"""Deterministic textual form of a graph; ``ir.parser`` reads it back.

Example::

    graph @main(%x: f32[1,3,224,224]) {
      %w0: f32[64,3,7,7] = constant elided "sha256:4a1f0c2e9b3d5a77"
      %shape: i64[2] = constant [1, -1]
      %0: f32[1,64,112,112] = Conv(%x, %w0) {pads=[3,3,3,3], strides=[2,2]}
      %1: f32[1,64,112,112] = Relu(%0)
      return %1
    }

Constants with more than ``inline_limit`` elements are printed as a SHA-256
digest (``elided``) by default, or in full as base64 of their little-endian
bytes with ``constants="inline"``.  Attributes are sorted by name.  Floats
print as the shortest text that reads back to the same bits.

Pass results are printed with the IR they describe (and read back by
``ir.parser``):

* a kernel's schedule (``Node.schedule``) after the node's attributes::

      %y: f32[8,64] = Gemm(%a, %b) schedule{kind="gemm", params={kc=128, mc=8, mr=8, nr=32},
          vector="n:16", parallel=1, est_cycles=512, source="model", for="1a2b3c4d"}

  ``params`` sorted by name; ``vector`` (axis:lanes) only when set,
  ``dataflow`` only for systolic schedules, ``for`` (the fingerprint of the
  node it was chosen for, ``ir.schedule.kernel_fingerprint``) only when known;

* a value's place in the memory plan (``Value.placement``) after its type in
  its definition, ``view_of``/``inplace_of`` naming the value it aliases::

      %r: f32[64] @mem(offset=0, nbytes=256, view_of=%a) = Reshape(%a, %shape)

* a one-sample graph's batch signature (``Graph.batch``, ``ir/batch.py``) in
  the graph header, before the arena: ``batch{symbol="N", inputs="1", outputs="1"}``;
* the plan's arena (``Graph.memory``) in the graph header::

      graph @main(%x: f32[4,16]) memory{arena_bytes=512, alignment=64, naive_bytes=768,
          peak_live_bytes=512, algorithm="greedy-by-size/best-fit"} {

(Each is one line in the real output; wrapped here.)
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from .digest import array_digest
from .dtypes import DType
from .graph import Graph, Node, Value
from .schedule import Schedule
from .types import OptionalType, SequenceType, TensorType

if TYPE_CHECKING:
    from .batch import BatchSignature
    from .memory import Arena, Placement

_BARE_NAME = re.compile(r"^[A-Za-z0-9_.$/\-]+$")
INLINE_LIMIT = 16


def format_name(name: str) -> str:
    """``%name``, quoted when it holds characters the parser splits on."""
    if _BARE_NAME.match(name):
        return "%" + name
    return "%" + json.dumps(name)


def format_scalar(x: Any, dtype: DType) -> str:
    """One element, printed so that parsing gives back the same bits."""
    if dtype is DType.BOOL:
        return "true" if bool(x) else "false"
    if dtype is DType.STR:
        if isinstance(x, bytes):
            x = x.decode("utf-8", errors="surrogateescape")
        return json.dumps(str(x))
    if dtype.is_int:
        return str(int(x))
    if dtype in (DType.C64, DType.C128):
        c = complex(x)
        return f"({format_float(c.real)}{'+' if c.imag >= 0 or c.imag != c.imag else ''}{format_float(c.imag)}j)"
    if dtype is DType.F32:
        return format_float(float(x), np.float32)
    if dtype is DType.F16:
        return format_float(float(x), np.float16)
    return format_float(float(x))


def format_float(x: float, np_type=None) -> str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    text = str(np_type(x)) if np_type is not None else repr(x)
    if not any(c in text for c in ".en"):
        text += ".0"
    return text


def tensor_digest(arr: np.ndarray) -> str:
    return "sha256:" + array_digest(arr)[:16]


def format_payload(arr: np.ndarray, dtype: DType, constants: str, inline_limit: int) -> str:
    """The data part of a tensor literal: ``[...]``, ``"base64"`` or ``elided "..."``."""
    if arr.size <= inline_limit or dtype is DType.STR:  # strings have no byte form: always inline
        return "[" + ", ".join(format_scalar(x, dtype) for x in np.asarray(arr).ravel()) + "]"
    if constants == "inline":
        data = np.ascontiguousarray(arr)
        if data.dtype.byteorder == ">":
            data = data.byteswap().view(data.dtype.newbyteorder("<"))
        return json.dumps(base64.b64encode(data.tobytes()).decode("ascii"))
    return "elided " + json.dumps(tensor_digest(arr))


class Printer:
    """Prints graphs; options choose how constants and locations appear."""

    def __init__(self, *, constants: str = "elide", inline_limit: int = INLINE_LIMIT,
                 locations: bool = False) -> None:
        if constants not in ("elide", "inline"):
            raise ValueError("constants must be 'elide' or 'inline'")
        self.constants = constants
        self.inline_limit = inline_limit
        self.locations = locations

    def graph(self, g: Graph, indent: str = "") -> str:
        args = ", ".join(self.definition(v) for v in g.inputs)
        batch = f" {format_batch(g.batch)}" if g.batch is not None else ""
        memory = f" {format_arena(g.memory)}" if g.memory is not None else ""
        lines = [f"graph @{_graph_name(g.name)}({args}){batch}{memory} {{"]
        inner = indent + "  "
        for c in g.constants.values():
            payload = format_payload(c.const, c.type.dtype, self.constants, self.inline_limit)
            lines.append(f"{inner}{self.definition(c)} = constant {payload}")
        for n in g.nodes:
            lines.append(inner + self.node(n, inner))
        rets = ", ".join(format_name(v.name) for v in g.outputs)
        lines.append(f"{inner}return {rets}".rstrip())
        lines.append(indent + "}")
        return "\n".join(lines)

    def definition(self, v: Value) -> str:
        """``%name: type``, then the value's placement when it has one."""
        text = f"{format_name(v.name)}: {v.type}"
        if v.placement is not None:
            text += " " + format_placement(v.placement)
        return text

    def node(self, n: Node, indent: str) -> str:
        outs = ", ".join(self.definition(v) for v in n.outputs)
        ins = ", ".join("none" if v is None else format_name(v.name) for v in n.inputs)
        text = f"{outs} = {n.qualified_op}({ins})"
        if n.attrs:
            items = ", ".join(f"{k}={self.attr(n.attrs[k], indent)}" for k in sorted(n.attrs))
            text += " {" + items + "}"
        if n.schedule is not None:
            text += " " + format_schedule(n.schedule)
        if self.locations and n.name:
            text += f" loc({json.dumps(n.name)})"
        return text

    def attr(self, v: Any, indent: str) -> str:
        if isinstance(v, Graph):
            return self.graph(v, indent)
        if isinstance(v, np.ndarray):
            dtype = DType.from_numpy(v.dtype)
            shape = ",".join(str(d) for d in v.shape)
            payload = format_payload(v, dtype, self.constants, self.inline_limit)
            return f"dense<{dtype.short}[{shape}]: {payload}>"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            # ONNX float attributes are float32: print the shortest float32 text when exact.
            exact32 = v != v or float(np.float32(v)) == v
            return format_float(v, np.float32 if exact32 else None)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bytes):
            return json.dumps(v.decode("utf-8", errors="surrogateescape"))
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(self.attr(x, indent) for x in v) + "]"
        if isinstance(v, DType):
            return v.short
        if isinstance(v, (TensorType, SequenceType, OptionalType)):
            return f"type<{v}>"
        raise TypeError(f"cannot print attribute value of type {type(v).__name__}")


def format_schedule(s: Schedule) -> str:
    """``schedule{kind=..., params={...}, ...}`` (see the module docstring)."""
    params = ", ".join(f"{k}={int(v)}" for k, v in sorted(s.params.items()))
    items = [f"kind={json.dumps(s.kind)}", f"params={{{params}}}"]
    if s.vector_axis or s.vector_width != 1:
        items.append(f"vector={json.dumps(f'{s.vector_axis}:{s.vector_width}')}")
    items += [f"parallel={s.parallel}", f"est_cycles={s.est_cycles}", f"source={json.dumps(s.source)}"]
    if s.dataflow:
        items.append(f"dataflow={json.dumps(s.dataflow)}")
    if s.fingerprint:
        items.append(f"for={json.dumps(s.fingerprint)}")
    return "schedule{" + ", ".join(items) + "}"


def format_placement(p: Placement) -> str:
    """``@mem(offset=..., nbytes=...[, view_of=%base | inplace_of=%base])``."""
    text = f"@mem(offset={p.offset}, nbytes={p.nbytes}"
    if p.kind != "arena":
        base = format_name(p.base.name) if p.base is not None else "none"
        text += f", {p.kind}_of={base}"
    return text + ")"


def format_batch(b: "BatchSignature") -> str:
    """``batch{symbol="N", inputs="10", outputs="1"}``: one 0/1 flag per graph input and output."""
    flags = lambda fs: json.dumps("".join("1" if f else "0" for f in fs))
    return f"batch{{symbol={json.dumps(b.symbol)}, inputs={flags(b.inputs)}, outputs={flags(b.outputs)}}}"


def format_arena(a: Arena) -> str:
    """``memory{arena_bytes=..., alignment=..., naive_bytes=..., peak_live_bytes=..., algorithm="..."}``."""
    return (f"memory{{arena_bytes={a.arena_bytes}, alignment={a.alignment}, naive_bytes={a.naive_bytes}, "
            f"peak_live_bytes={a.peak_live_bytes}, algorithm={json.dumps(a.algorithm)}}}")


def _graph_name(name: str) -> str:
    return name if _BARE_NAME.match(name) else json.dumps(name)


def print_graph(g: Graph, *, constants: str = "elide", inline_limit: int = INLINE_LIMIT,
                locations: bool = False) -> str:
    """The graph as text (see the module docstring for the format)."""
    return Printer(constants=constants, inline_limit=inline_limit, locations=locations).graph(g)
