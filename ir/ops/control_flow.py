"""Control flow: If, Loop and Scan, whose bodies are subgraphs.

Subgraphs are closed (see ``ir.graph``): an ONNX body that reads values of
the enclosing graph receives them as explicit extra inputs, appended to the
node's inputs and to the body's inputs in the same order.

* ``If(cond, *captures) {then_branch, else_branch}``: both branches take the
  same capture list (a branch that does not need a capture ignores it).
* ``Loop(M, cond, *v_initial, *captures) {body, num_captures}``: the body
  takes ``(iter, cond, *carried, *captures)`` and returns
  ``(cond, *carried, *scan_outputs)``.
* ``Scan(*initial_states, *scan_inputs, *captures) {body, num_scan_inputs,
  num_captures, ...}``: the Scan-9+ form; the body takes
  ``(*states, *scan_input_slices, *captures)``.

``num_captures`` is an IR-only attribute (not in ONNX): how many trailing
inputs are captured outer values.  Without it, carried values (Loop) or scan
inputs (Scan) could not be told apart from captures.  The ONNX import rules
(``frontends/onnx/rules/control_flow.py``) set it.

References run the bodies with ``ir.interpreter.run_subgraph``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..errors import ExecutionError
from ..graph import Graph, Value
from ..registry import Attr, InferContext, define
from ..types import OptionalType, SequenceType, TensorType, Type

# ------------------------------------------------------------------ helpers


def join_types(a: Type, b: Type) -> Optional[Type]:
    """A type describing values of both ``a`` and ``b``, or None when they clash.

    Element types must agree; dims known equal in both stay, others become
    unknown; a rank mismatch gives an unknown shape.  Used for the outputs of
    If (one type for both branches) and for loop-carried values.
    """
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        if a.dtype != b.dtype:
            return None
        if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
            return TensorType(a.dtype, None)
        return TensorType(a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))
    if isinstance(a, SequenceType) and isinstance(b, SequenceType):
        elem = join_types(a.elem, b.elem)
        return None if elem is None else SequenceType(elem)
    if isinstance(a, OptionalType) and isinstance(b, OptionalType):
        elem = join_types(a.elem, b.elem)
        return None if elem is None else OptionalType(elem)
    return None


def same_kind(a: Optional[Type], b: Optional[Type]) -> bool:
    """Whether two types could describe the same value (for body signature checks)."""
    if a is None or b is None:
        return True
    if isinstance(a, OptionalType) != isinstance(b, OptionalType):  # a value fits its optional
        a = a.elem if isinstance(a, OptionalType) else a
        b = b.elem if isinstance(b, OptionalType) else b
    return join_types(a, b) is not None


def pack_results(results: list[Any], num_outputs: int) -> Any:
    """Reference return value for a node with ``num_outputs`` outputs.

    One result is returned as itself (a list is then the sequence value, not
    a list of outputs); several as a tuple.
    """
    results = list(results)[:num_outputs]
    return results[0] if num_outputs == 1 else tuple(results)


def _check_scalar_input(ctx: InferContext, i: int, dtypes: frozenset, what: str) -> None:
    t = ctx.input_type(i)
    if t.dtype not in dtypes:
        ctx.fail(f"{what} has the wrong element type",
                 expected=" or ".join(sorted(d.short for d in dtypes)), found=t.dtype.short)
    if t.shape is not None and any(isinstance(d, int) and d != 1 for d in t.shape):
        ctx.fail(f"{what} must hold a single element", expected="a scalar", found=str(t))


def _body(ctx: InferContext, name: str) -> Graph:
    g = ctx.attr(name)
    if not isinstance(g, Graph):
        ctx.fail(f"attribute {name!r} must be a graph", found=type(g).__name__)
    return g


def _num_captures(ctx: InferContext, available: int) -> int:
    c = ctx.attr("num_captures")
    if not isinstance(c, int) or not 0 <= c <= available:
        ctx.fail("attribute 'num_captures' is out of range", expected=f"0..{available}", found=str(c))
    return c


def _check_body_inputs(ctx: InferContext, body: Graph, expected: list[Optional[Type]],
                       what: str) -> None:
    """The body must take ``len(expected)`` inputs of compatible types."""
    if len(body.inputs) != len(expected):
        ctx.fail(f"{what} takes the wrong number of inputs",
                 expected=str(len(expected)), found=str(len(body.inputs)))
    for i, (v, t) in enumerate(zip(body.inputs, expected)):
        if not same_kind(v.type, t):
            ctx.fail(f"{what} input {i} (%{v.name}) does not match the value passed to it",
                     expected=str(t), found=str(v.type))


def _trip_count_is_m(ctx: InferContext, body: Graph) -> bool:
    """True when a Loop runs exactly M times: its body's condition is always true."""
    outer_true = not ctx.has_input(1) or (ctx.const(1) is not None and bool(np.all(ctx.const(1))))
    return bool(body.outputs) and _always_true(body.outputs[0], body, outer_true)


def _always_true(v: Optional[Value], body: Graph, outer_true: bool, depth: int = 0) -> bool:
    """Whether a body's condition value is provably true on every iteration.

    Recognizes constants, the body's own cond input passed through (true when
    the outer cond is), and Identity/Or/And over such values.
    """
    if v is None or depth > 8:
        return False
    if v.const is not None:
        return bool(np.all(v.const))
    if len(body.inputs) > 1 and v is body.inputs[1]:
        return outer_true
    node = v.producer
    if node is None or node.domain != "":
        return False
    args = [_always_true(x, body, outer_true, depth + 1) for x in node.inputs]
    if node.op in ("Identity", "And"):
        return all(args)
    if node.op == "Or":
        return any(args)
    return False


def _stacked(ctx: InferContext, t: Type, count: Any, axis: int, what: str) -> TensorType:
    """Type of per-iteration values ``t`` stacked along ``axis`` (``count`` of them)."""
    if not isinstance(t, TensorType):
        ctx.fail(f"{what} must be a tensor", found=str(t))
    if t.shape is None:
        return TensorType(t.dtype, None)
    rank = len(t.shape) + 1
    if not -rank <= axis < rank:
        ctx.fail(f"{what}: axis out of range", expected=f"in [{-rank}, {rank})", found=str(axis))
    axis = axis + rank if axis < 0 else axis
    dims = list(t.shape)
    dims.insert(axis, count)
    return TensorType(t.dtype, tuple(dims))


def _empty_stack(t: Type, axis: int) -> np.ndarray:
    """The stack of zero per-iteration values of type ``t`` (unknown dims count as 0)."""
    if not isinstance(t, TensorType):
        raise ExecutionError("a scan output must be a tensor", found=str(t))
    dims = [d if isinstance(d, int) else 0 for d in (t.shape or ())]
    rank = len(dims) + 1
    dims.insert(axis + rank if axis < 0 else axis, 0)
    return np.zeros(dims, dtype=t.dtype.np)


def _carried_types(ctx: InferContext, initial: list[Optional[Type]], body_out: list[Value],
                   what: str) -> list[Type]:
    """Final types of loop-carried values: their initial types joined with the body's."""
    types = []
    for i, (t0, v) in enumerate(zip(initial, body_out)):
        if t0 is None:
            types.append(v.type)
            continue
        t = join_types(t0, v.type)
        if t is None and isinstance(t0, OptionalType) and not isinstance(v.type, OptionalType):
            # An optional initial value the body unwraps (ONNX allows it, as onnxruntime
            # does): after the first iteration the value is the body's kind.
            t = join_types(t0.elem, v.type)
        if t is None:
            ctx.fail(f"{what} {i} changes type in the body", expected=str(t0), found=str(v.type))
        types.append(t)
    return types


def _as_bool(x: Any) -> bool:
    return bool(np.asarray(x).reshape(-1)[0])


# ----------------------------------------------------------------------- If
if_ = define("If", inputs=["cond", "captures...?"], outputs=["outputs..."],
             attrs={"then_branch": Attr.graph(required=True),
                    "else_branch": Attr.graph(required=True)},
             needs_num_outputs=True,
             doc="Runs one of two branches; extra inputs are the outer values they capture.")


@if_.infer
def _(ctx: InferContext) -> list[Type]:
    _check_scalar_input(ctx, 0, frozenset({DType.BOOL}), "cond")
    then_g, else_g = _body(ctx, "then_branch"), _body(ctx, "else_branch")
    captures = ctx.inputs[1:]
    _check_body_inputs(ctx, then_g, captures, "then_branch")
    _check_body_inputs(ctx, else_g, captures, "else_branch")
    if len(then_g.outputs) != len(else_g.outputs):
        ctx.fail("the branches return different numbers of values",
                 expected=f"{len(then_g.outputs)} (then_branch)",
                 found=f"{len(else_g.outputs)} (else_branch)")
    if ctx.num_outputs > len(then_g.outputs):
        ctx.fail("more outputs than the branches return",
                 expected=f"at most {len(then_g.outputs)}", found=str(ctx.num_outputs))
    types = []
    for i, (a, b) in enumerate(zip(then_g.outputs, else_g.outputs)):
        t = join_types(a.type, b.type)
        if t is None:
            ctx.fail(f"output {i} has different types in the two branches",
                     expected=f"{a.type} (then_branch)", found=f"{b.type} (else_branch)")
        types.append(t)
    return types


@if_.reference
def _(cond: np.ndarray, *captures: Any, then_branch: Graph, else_branch: Graph,
      num_outputs: int) -> Any:
    branch = then_branch if _as_bool(cond) else else_branch
    return pack_results(run_subgraph(branch, list(captures)), num_outputs)


# --------------------------------------------------------------------- Loop
loop = define("Loop", inputs=["M?", "cond?", "v_initial...?"],
              outputs=["v_final_and_scan_outputs..."],
              attrs={"body": Attr.graph(required=True), "num_captures": Attr.int(0)},
              static_inputs=["M", "cond"],  # they decide the scan outputs' length
              needs_num_outputs=True,
              doc="Generic loop.  The last num_captures inputs (IR-only attribute) are "
                  "outer values the body reads; they follow the loop-carried values.")


def _loop_parts(ctx: InferContext) -> tuple[Graph, list[Optional[Type]], list[Optional[Type]]]:
    """The body, the carried values' types and the captures' types."""
    body = _body(ctx, "body")
    rest = ctx.inputs[2:]
    c = _num_captures(ctx, len(rest))
    return body, list(rest[:len(rest) - c]), list(rest[len(rest) - c:])


@loop.infer
def _(ctx: InferContext) -> list[Type]:
    body, carried, captures = _loop_parts(ctx)
    if not ctx.has_input(0) and not ctx.has_input(1):
        ctx.fail("a Loop needs a trip count M or a condition, or it never ends")
    if ctx.has_input(0):
        _check_scalar_input(ctx, 0, frozenset({DType.I64}), "trip count M")
    if ctx.has_input(1):
        _check_scalar_input(ctx, 1, frozenset({DType.BOOL}), "cond")
    n = len(carried)
    _check_body_inputs(ctx, body, [TensorType(DType.I64, None), TensorType(DType.BOOL, None),
                                   *carried, *captures], "body")
    if len(body.outputs) < 1 + n:
        ctx.fail("the body returns too few values", expected=f"at least {1 + n} (cond and "
                 f"{n} carried)", found=str(len(body.outputs)))
    k = len(body.outputs) - 1 - n
    if ctx.num_outputs > n + k:
        ctx.fail("more outputs than the body produces", expected=f"at most {n + k}",
                 found=str(ctx.num_outputs))
    trip = None
    m = ctx.const(0) if ctx.has_input(0) else None
    if m is not None and _trip_count_is_m(ctx, body):
        trip = max(int(np.asarray(m).reshape(-1)[0]), 0)
    types = _carried_types(ctx, carried, body.outputs[1:1 + n], "loop-carried value")
    for j, v in enumerate(body.outputs[1 + n:]):
        types.append(_stacked(ctx, v.type, trip, 0, f"scan output {j}"))
    return types


@loop.reference
def _(m: Optional[np.ndarray] = None, cond: Optional[np.ndarray] = None, *rest: Any, body: Graph,
      num_captures: int, num_outputs: int) -> Any:
    n = len(rest) - num_captures
    carried, captures = list(rest[:n]), list(rest[n:])
    max_trip = None if m is None else int(np.asarray(m).reshape(-1)[0])
    keep = True if cond is None else _as_bool(cond)
    scans: list[list[np.ndarray]] = [[] for _ in range(len(body.outputs) - 1 - n)]
    i = 0
    while keep and (max_trip is None or i < max_trip):
        outs = run_subgraph(body, [np.array(i, np.int64), np.array(keep), *carried, *captures])
        keep = _as_bool(outs[0])  # onnxruntime reads the body's cond even without a cond input
        carried = outs[1:1 + n]
        for acc, x in zip(scans, outs[1 + n:]):
            acc.append(np.asarray(x))
        i += 1
    stacked = [np.stack(acc) if acc else _empty_stack(v.type, 0)
               for acc, v in zip(scans, body.outputs[1 + n:])]
    return pack_results(carried + stacked, num_outputs)


# --------------------------------------------------------------------- Scan
scan = define("Scan", inputs=["initial_state_and_scan_inputs..."],
              outputs=["final_state_and_scan_outputs..."],
              attrs={"body": Attr.graph(required=True),
                     "num_scan_inputs": Attr.int(required=True),
                     "scan_input_axes": Attr.ints(), "scan_input_directions": Attr.ints(),
                     "scan_output_axes": Attr.ints(), "scan_output_directions": Attr.ints(),
                     "num_captures": Attr.int(0)},
              needs_num_outputs=True,
              doc="Scan-9+ form.  The last num_captures inputs (IR-only attribute) are outer "
                  "values the body reads; they follow the scan inputs.")


def _per_input(ctx: InferContext, name: str, count: int, default: int) -> list[int]:
    values = ctx.attr(name)
    if values is None:
        return [default] * count
    if len(values) != count:
        ctx.fail(f"attribute {name!r} needs one value per scanned tensor",
                 expected=str(count), found=str(len(values)))
    return [int(v) for v in values]


@scan.infer
def _(ctx: InferContext) -> list[Type]:
    body = _body(ctx, "body")
    m = ctx.attr("num_scan_inputs")
    c = _num_captures(ctx, ctx.num_inputs)
    n = ctx.num_inputs - c - (m if isinstance(m, int) else 0)
    if not isinstance(m, int) or m < 1 or n < 0:
        ctx.fail("num_scan_inputs is out of range", expected=f"1..{ctx.num_inputs - c}", found=str(m))
    in_axes = _per_input(ctx, "scan_input_axes", m, 0)
    _per_input(ctx, "scan_input_directions", m, 0)
    states = list(ctx.inputs[:n])
    slices, length = [], None
    for j in range(m):
        t = ctx.input_type(n + j)
        if t.shape is None:
            slices.append(TensorType(t.dtype, None))
            continue
        r = len(t.shape)
        if not -r <= in_axes[j] < r:
            ctx.fail(f"scan_input_axes[{j}] out of range", expected=f"in [{-r}, {r})",
                     found=str(in_axes[j]))
        axis = in_axes[j] % r
        d = t.shape[axis]
        if isinstance(d, int) and isinstance(length, int) and d != length:
            ctx.fail("scan inputs have different sequence lengths", found=f"{length} and {d}")
        if length is None or isinstance(d, int):
            length = d
        slices.append(TensorType(t.dtype, t.shape[:axis] + t.shape[axis + 1:]))
    _check_body_inputs(ctx, body, [*states, *slices, *ctx.inputs[n + m:]], "body")
    if len(body.outputs) < n:
        ctx.fail("the body returns too few values", expected=f"at least {n} (the states)",
                 found=str(len(body.outputs)))
    k = len(body.outputs) - n
    out_axes = _per_input(ctx, "scan_output_axes", k, 0)
    _per_input(ctx, "scan_output_directions", k, 0)
    types = _carried_types(ctx, states, body.outputs[:n], "state")
    for j, v in enumerate(body.outputs[n:]):
        types.append(_stacked(ctx, v.type, length, out_axes[j], f"scan output {j}"))
    return types


@scan.reference
def _(*inputs: Any, body: Graph, num_scan_inputs: int, scan_input_axes, scan_input_directions,
      scan_output_axes, scan_output_directions, num_captures: int, num_outputs: int) -> Any:
    m, c = num_scan_inputs, num_captures
    n = len(inputs) - m - c
    states, xs, captures = list(inputs[:n]), inputs[n:n + m], list(inputs[n + m:])
    in_axes = scan_input_axes or [0] * m
    in_dirs = scan_input_directions or [0] * m
    # Put each scanned axis first (reversed when scanning backwards) so step t is xs[j][t].
    xs = [_scan_order(np.moveaxis(x, a, 0), d) for x, a, d in zip(xs, in_axes, in_dirs)]
    length = xs[0].shape[0]
    if any(x.shape[0] != length for x in xs):
        raise ExecutionError("scan inputs have different sequence lengths",
                             found=", ".join(str(x.shape[0]) for x in xs))
    k = len(body.outputs) - n
    scans: list[list[np.ndarray]] = [[] for _ in range(k)]
    for t in range(length):
        outs = run_subgraph(body, [*states, *(x[t] for x in xs), *captures])
        states = outs[:n]
        for acc, y in zip(scans, outs[n:]):
            acc.append(np.asarray(y))
    out_axes = scan_output_axes or [0] * k
    out_dirs = scan_output_directions or [0] * k
    results = list(states)
    for acc, v, a, d in zip(scans, body.outputs[n:], out_axes, out_dirs):
        if not acc:
            results.append(_empty_stack(v.type, a))
            continue
        y = _scan_order(np.stack(acc), d)
        results.append(np.moveaxis(y, 0, a % y.ndim))
    return pack_results(results, num_outputs)


def _scan_order(x: np.ndarray, direction: int) -> np.ndarray:
    """``x`` itself, or reversed along axis 0 for the reverse direction (1)."""
    return x[::-1] if direction else x


def run_subgraph(graph: Graph, args: list[Any]) -> list[Any]:
    """Run a body with the reference interpreter (imported late: it imports the registry)."""
    from ..interpreter import run_subgraph as run
    return run(graph, args)
