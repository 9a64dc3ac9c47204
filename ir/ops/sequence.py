"""Sequences and optionals.

At run time a sequence is a Python list of arrays and an absent optional is
None (a present one is its value).  References never mutate an input list:
sequence values may be read by several nodes.

``SequenceMap`` has a body subgraph; like ``Loop`` it takes the outer values
its body captures as trailing inputs, counted by the IR-only attribute
``num_captures`` (see ``ir/ops/control_flow.py``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..errors import ExecutionError
from ..graph import Graph
from ..registry import INJECTIVE, Attr, InferContext, define
from ..shapes import normalize_axis
from ..types import OptionalType, SequenceType, TensorType, Type
from .control_flow import _body, _check_body_inputs, _num_captures, join_types, run_subgraph

INDEX_TYPES = frozenset({DType.I32, DType.I64})


# ------------------------------------------------------------------ helpers
def _seq(ctx: InferContext, i: int) -> SequenceType:
    t = ctx.inputs[i] if ctx.has_input(i) else None
    if not isinstance(t, SequenceType):
        ctx.fail(f"input {i} must be a sequence", expected="a sequence", found=str(t))
    return t


def _seq_elem(ctx: InferContext, i: int) -> TensorType:
    """The element type of sequence input ``i`` (a tensor type)."""
    elem = _seq(ctx, i).elem
    if not isinstance(elem, TensorType):
        ctx.fail(f"input {i} must be a sequence of tensors", found=str(_seq(ctx, i)))
    return elem


def _check_position(ctx: InferContext, i: int) -> None:
    if not ctx.has_input(i):
        return
    t = ctx.input_type(i)
    if t.dtype not in INDEX_TYPES:
        ctx.fail("position must be an integer", expected="i32 or i64", found=t.dtype.short)
    # ONNX says scalar; onnxruntime (and ONNX's own tests) also take one-element tensors.
    if t.shape is not None and any(isinstance(d, int) and d != 1 for d in t.shape):
        ctx.fail("position must be a scalar", expected="rank 0", found=str(t))


def _position(pos: Optional[np.ndarray], length: int, default: int, *, inserting: bool) -> int:
    """A non-negative index from a possibly negative ``pos`` (checked against ``length``)."""
    p = default if pos is None else int(np.asarray(pos).reshape(-1)[0])
    hi = length if inserting else length - 1
    if not -length <= p <= hi:
        raise ExecutionError("sequence position out of range", expected=f"in [{-length}, {hi}]",
                             found=str(p))
    return p + length if p < 0 else p


# ------------------------------------------------------------ construction
seq_construct = define("SequenceConstruct", inputs=["inputs..."], outputs=["output_sequence"])


@seq_construct.infer
def _(ctx: InferContext) -> list[Type]:
    if ctx.num_inputs < 1:
        ctx.fail("needs at least one tensor", hint="use SequenceEmpty for an empty sequence")
    elem: Type = ctx.input_type(0)
    for i in range(1, ctx.num_inputs):
        t = ctx.input_type(i)
        joined = join_types(elem, t)
        if joined is None:
            ctx.fail("all tensors of a sequence must share one element type",
                     expected=elem.dtype.short, found=f"{t.dtype.short} (input {i})")
        elem = joined
    return [SequenceType(elem)]


@seq_construct.reference
def _(*xs: np.ndarray) -> list:
    return list(xs)


seq_empty = define("SequenceEmpty", inputs=[], outputs=["output"], attrs={"dtype": Attr.int(1)})


@seq_empty.infer
def _(ctx: InferContext) -> list[Type]:
    try:
        dtype = DType.from_onnx(int(ctx.attr("dtype")))
    except Exception:
        ctx.fail("attribute 'dtype' is not an ONNX element type", found=str(ctx.attr("dtype")))
    return [SequenceType(TensorType(dtype, None))]


@seq_empty.reference
def _(*, dtype: int) -> list:
    return []


# -------------------------------------------------------------- access
seq_at = define("SequenceAt", inputs=["input_sequence", "position"], outputs=["tensor"])


@seq_at.infer
def _(ctx: InferContext) -> list[Type]:
    elem = _seq_elem(ctx, 0)
    if not ctx.has_input(1):
        ctx.fail("position is required")
    _check_position(ctx, 1)
    return [elem]


@seq_at.reference
def _(seq: list, position: np.ndarray) -> np.ndarray:
    return seq[_position(position, len(seq), 0, inserting=False)]


seq_length = define("SequenceLength", inputs=["input_sequence"], outputs=["length"])


@seq_length.infer
def _(ctx: InferContext) -> list[Type]:
    _seq(ctx, 0)
    return [TensorType(DType.I64, ())]


@seq_length.reference
def _(seq: list) -> np.ndarray:
    return np.array(len(seq), np.int64)


# -------------------------------------------------------------- edits
seq_insert = define("SequenceInsert", inputs=["input_sequence", "tensor", "position?"],
                    outputs=["output_sequence"])


@seq_insert.infer
def _(ctx: InferContext) -> list[Type]:
    elem = _seq_elem(ctx, 0)
    t = ctx.input_type(1)
    _check_position(ctx, 2)
    joined = join_types(elem, t)
    if joined is None:
        ctx.fail("the tensor's element type differs from the sequence's",
                 expected=elem.dtype.short, found=t.dtype.short)
    return [SequenceType(joined)]


@seq_insert.reference
def _(seq: list, tensor: np.ndarray, position: Optional[np.ndarray] = None) -> list:
    p = _position(position, len(seq), len(seq), inserting=True)
    return seq[:p] + [tensor] + seq[p:]


seq_erase = define("SequenceErase", inputs=["input_sequence", "position?"],
                   outputs=["output_sequence"])


@seq_erase.infer
def _(ctx: InferContext) -> list[Type]:
    s = _seq(ctx, 0)
    _check_position(ctx, 1)
    return [s]


@seq_erase.reference
def _(seq: list, position: Optional[np.ndarray] = None) -> list:
    p = _position(position, len(seq), -1, inserting=False)
    return seq[:p] + seq[p + 1:]


# ---------------------------------------------------- tensors <-> sequences
concat_from_seq = define("ConcatFromSequence", inputs=["input_sequence"],
                         outputs=["concat_result"],
                         attrs={"axis": Attr.int(required=True), "new_axis": Attr.int(0)})


@concat_from_seq.infer
def _(ctx: InferContext) -> list[Type]:
    elem = _seq_elem(ctx, 0)
    if elem.shape is None:
        return [TensorType(elem.dtype, None)]
    new_axis = bool(ctx.attr("new_axis"))
    rank = len(elem.shape) + (1 if new_axis else 0)
    if rank == 0:
        ctx.fail("cannot concatenate scalars", hint="set new_axis=1 to stack them")
    try:
        axis = normalize_axis(int(ctx.attr("axis")), rank)
    except Exception:
        ctx.fail("axis out of range", expected=f"in [{-rank}, {rank})", found=str(ctx.attr("axis")))
    dims = list(elem.shape)
    if new_axis:
        dims.insert(axis, None)  # the sequence length
    else:
        dims[axis] = None  # the sum over elements, unknown
    return [TensorType(elem.dtype, tuple(dims))]


@concat_from_seq.reference
def _(seq: list, *, axis: int, new_axis: int) -> np.ndarray:
    if not seq:
        raise ExecutionError("cannot concatenate an empty sequence")
    return np.stack(seq, axis=axis) if new_axis else np.concatenate(seq, axis=axis)


split_to_seq = define("SplitToSequence", inputs=["input", "split?"], outputs=["output_sequence"],
                      attrs={"axis": Attr.int(0), "keepdims": Attr.int(1)},
                      kind=INJECTIVE, static_inputs=["split"])


@split_to_seq.infer
def _(ctx: InferContext) -> list[Type]:
    t = ctx.input_type(0)
    if ctx.has_input(1):
        st = ctx.input_type(1)
        if st.dtype not in INDEX_TYPES:
            ctx.fail("split must be integers", expected="i32 or i64", found=st.dtype.short)
        if st.rank is not None and st.rank > 1:
            ctx.fail("split must be a scalar or a 1-D tensor", found=str(st))
    if t.shape is None:
        return [SequenceType(TensorType(t.dtype, None))]
    rank = len(t.shape)
    try:
        axis = normalize_axis(int(ctx.attr("axis")), rank)
    except Exception:
        ctx.fail("axis out of range", expected=f"in [{-rank}, {rank})", found=str(ctx.attr("axis")))
    dims = list(t.shape)
    if not ctx.has_input(1):
        if ctx.attr("keepdims"):
            dims[axis] = 1
        else:
            del dims[axis]
    elif _drops_axis(ctx.const(1), ctx.attr("keepdims")):
        del dims[axis]
    elif ctx.const(1) is None and not ctx.attr("keepdims") and ctx.input_type(1).rank != 1:
        return [SequenceType(TensorType(t.dtype, None))]  # a split of 1 would drop the axis
    else:
        dims[axis] = _split_piece_dim(ctx, t.shape[axis])
    return [SequenceType(TensorType(t.dtype, tuple(dims)))]


def _drops_axis(split: Optional[np.ndarray], keepdims: int) -> bool:
    """Whether pieces lose the split axis although ``split`` is given.

    The spec ignores keepdims when split is given; onnxruntime applies
    keepdims=0 to a scalar split of 1 (and fails for other sizes), so we
    follow it there.
    """
    return (split is not None and not keepdims and np.ndim(split) == 0 and int(split) == 1)


def _split_piece_dim(ctx: InferContext, size: Any) -> Any:
    """The size of every piece along the axis when all pieces agree, else None."""
    split = ctx.const(1)
    if split is None:
        return None
    split = np.asarray(split)
    if split.ndim == 0:
        s = int(split)
        if s <= 0:
            ctx.fail("split must be positive", found=str(s))
        return s if isinstance(size, int) and size % s == 0 else None
    if (split < 0).any():
        ctx.fail("split sizes must not be negative", found=str(split.tolist()))
    if isinstance(size, int) and int(split.sum()) != size:
        ctx.fail("split sizes must add up to the axis length", expected=str(size),
                 found=f"{split.tolist()} (sum {int(split.sum())})")
    return int(split[0]) if split.size and (split == split[0]).all() else None


@split_to_seq.reference
def _(x: np.ndarray, split: Optional[np.ndarray] = None, *, axis: int, keepdims: int) -> list:
    size = x.shape[axis]
    if split is None:
        pieces = np.split(x, size, axis=axis) if size else []
        return [np.squeeze(p, axis=axis) for p in pieces] if not keepdims else pieces
    split = np.asarray(split)
    if split.ndim == 0:
        step = int(split)
        bounds = list(range(step, size, step))
    else:
        if int(split.sum()) != size:
            raise ExecutionError("split sizes must add up to the axis length",
                                 expected=str(size), found=str(split.tolist()))
        bounds = np.cumsum(split)[:-1].tolist()
    pieces = np.split(x, bounds, axis=axis)
    return [np.squeeze(p, axis=axis) for p in pieces] if _drops_axis(split, keepdims) else pieces


# ---------------------------------------------------------------- SequenceMap
seq_map = define("SequenceMap", inputs=["input_sequence", "additional_inputs...?"],
                 outputs=["out_sequence..."],
                 attrs={"body": Attr.graph(required=True), "num_captures": Attr.int(0)},
                 needs_num_outputs=True,
                 doc="Runs the body once per element.  The last num_captures inputs "
                     "(IR-only attribute) are outer values the body reads.")


@seq_map.infer
def _(ctx: InferContext) -> list[Type]:
    body = _body(ctx, "body")
    c = _num_captures(ctx, ctx.num_inputs - 1)
    n = ctx.num_inputs - c
    _seq(ctx, 0)
    per_item: list[Optional[Type]] = []
    for i in range(n):
        t = ctx.inputs[i]
        per_item.append(t.elem if isinstance(t, SequenceType) else t)
    _check_body_inputs(ctx, body, [*per_item, *ctx.inputs[n:]], "body")
    if ctx.num_outputs > len(body.outputs):
        ctx.fail("more outputs than the body produces", expected=f"at most {len(body.outputs)}",
                 found=str(ctx.num_outputs))
    types = []
    for j, v in enumerate(body.outputs):
        if not isinstance(v.type, TensorType):
            ctx.fail(f"body output {j} must be a tensor", found=str(v.type))
        types.append(SequenceType(v.type))
    return types


@seq_map.reference
def _(seq: list, *rest: Any, body: Graph, num_captures: int, num_outputs: int) -> Any:
    n = len(rest) - num_captures
    extra, captures = rest[:n], list(rest[n:])
    for x in extra:
        if isinstance(x, list) and len(x) != len(seq):
            raise ExecutionError("sequences of a SequenceMap differ in length",
                                 expected=str(len(seq)), found=str(len(x)))
    results: list[list[np.ndarray]] = [[] for _ in range(num_outputs)]
    for i, item in enumerate(seq):
        args = [item, *(x[i] if isinstance(x, list) else x for x in extra), *captures]
        for acc, y in zip(results, run_subgraph(body, args)):
            acc.append(np.asarray(y))
    return results[0] if num_outputs == 1 else tuple(results)


# ------------------------------------------------------------------ optionals
optional = define("Optional", inputs=["input?"], outputs=["output"], attrs={"type": Attr.any()},
                  doc="Wraps a value (or nothing, of the element type given by `type`).")


@optional.infer
def _(ctx: InferContext) -> list[Type]:
    if ctx.has_input(0):
        t = ctx.inputs[0]
        if isinstance(t, OptionalType):
            ctx.fail("input must be a tensor or a sequence", found=str(t))
        return [OptionalType(t)]
    elem = ctx.attr("type")
    if not isinstance(elem, (TensorType, SequenceType)):
        ctx.fail("an Optional without input needs the 'type' attribute",
                 expected="a tensor or sequence type", found=str(elem))
    return [OptionalType(elem)]


@optional.reference
def _(x: Any = None, *, type: Any) -> Any:
    return x


opt_has = define("OptionalHasElement", inputs=["input?"], outputs=["output"])


@opt_has.infer
def _(ctx: InferContext) -> list[Type]:
    return [TensorType(DType.BOOL, ())]


@opt_has.reference
def _(x: Any = None) -> np.ndarray:
    return np.array(x is not None)


opt_get = define("OptionalGetElement", inputs=["input"], outputs=["output"])


@opt_get.infer
def _(ctx: InferContext) -> list[Type]:
    if not ctx.has_input(0):
        ctx.fail("input is required")
    t = ctx.inputs[0]
    return [t.elem if isinstance(t, OptionalType) else t]


@opt_get.reference
def _(x: Any) -> Any:
    if x is None:
        raise ExecutionError("the optional holds no value",
                             hint="check it with OptionalHasElement first")
    return x
