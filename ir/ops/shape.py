"""Shape manipulation: ops that move data without computing on it.

Identity, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split,
Expand, Tile, DepthToSpace and SpaceToDepth live here; the slicing, padding
and tensor-generating ops (Slice, Pad, CenterCropPad, Shape, Size,
ConstantOfShape, Range, EyeLike, Trilu) are in ``shape_gen.py``, imported at
the bottom of this file.

Type rules keep symbolic dims (``"N"``) flowing: a dim copied, reordered or
split off unchanged stays symbolic, and ``Reshape``'s ``-1`` is solved over
products of symbols (``[N, 3, 4] -> [-1, 12]`` gives ``N``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..errors import TypeInferenceError
from ..registry import ELEMENTWISE, INJECTIVE, Attr, InferContext, define
from ..shapes import broadcast_shapes
from ..types import Dim, TensorType, merge_dims
from ._common import check_dtype

I64 = frozenset({DType.I64})
INDEX_TYPES = frozenset({DType.I32, DType.I64})


# ------------------------------------------------------------------ helpers
def const_ints(ctx: InferContext, i: int) -> Optional[list[int]]:
    """Input ``i``'s constant value as a flat list of ints, or None when not constant."""
    if not ctx.has_input(i):
        return None
    value = ctx.const(i)
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def vector_length(ctx: InferContext, i: int, what: str, *,
                  allow_scalar: bool = False) -> Optional[int]:
    """The static length of the 1-D input ``i`` (None when unknown); fails if not 1-D.

    ``allow_scalar`` accepts a 0-D input as one value (onnxruntime takes scalar axes).
    """
    shape = ctx.shape(i)
    if shape is None:
        return None
    if allow_scalar and len(shape) == 0:
        return 1
    if len(shape) != 1:
        ctx.fail(f"{what} must be a 1-D tensor", found=str(ctx.input_type(i)))
    return shape[0] if isinstance(shape[0], int) else None


def norm_axis(ctx: InferContext, axis: int, rank: int, what: str = "axis", *,
              inclusive: bool = False) -> int:
    """``axis`` in ``[0, rank)`` (``[0, rank]`` with ``inclusive``), failing clearly."""
    top = rank if inclusive else rank - 1
    if not -rank <= axis <= top:
        ctx.fail(f"{what} is out of range for a rank-{rank} input",
                 expected=f"a value in [{-rank}, {top}]", found=str(axis))
    return axis + rank if axis < 0 else axis


def norm_axes(ctx: InferContext, axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    """Normalized axes; fails on duplicates or out-of-range values."""
    out = [norm_axis(ctx, int(a), rank, what) for a in axes]
    if len(set(out)) != len(out):
        ctx.fail(f"{what} must not repeat an axis", found=str(list(axes)))
    return out


def symbolic_product(dims: Sequence[Dim]) -> Optional[tuple[int, Counter]]:
    """A product of dims as (integer factor, multiset of symbols); None if a dim is unknown."""
    factor, symbols = 1, Counter()
    for d in dims:
        if d is None:
            return None
        if isinstance(d, int):
            factor *= d
        else:
            symbols[d] += 1
    return factor, symbols


def product_dim(dims: Sequence[Dim]) -> Dim:
    """The product of ``dims`` as one dim: an int, a lone symbol (``N * 1``), or None."""
    p = symbolic_product(dims)
    if p is None:
        return None
    factor, symbols = p
    if factor == 0:
        return 0
    if not symbols:
        return factor
    if factor == 1 and sum(symbols.values()) == 1:
        return next(iter(symbols))
    return None


def quotient_dim(total: Sequence[Dim], part: Sequence[Dim]) -> Dim:
    """``prod(total) / prod(part)`` as one dim, when the symbols cancel out exactly."""
    t, p = symbolic_product(total), symbolic_product(part)
    if t is None or p is None:
        return None
    (tf, ts), (pf, ps) = t, p
    if tf == 0 and not ts:
        return 0 if pf != 0 else None
    if pf == 0 or tf % pf != 0 or any(ps[s] > ts[s] for s in ps):
        return None
    rest = ts - ps
    return product_dim([tf // pf, *rest.elements()])


def data_type(ctx: InferContext, shape: Any) -> list[TensorType]:
    """Output list with input 0's dtype and the given shape."""
    return [TensorType(ctx.dtype(0), None if shape is None else tuple(shape))]


# ------------------------------------------------------------------ Identity
identity = define("Identity", inputs=["input"], outputs=["output"], kind=ELEMENTWISE, view=True,
                  doc="Returns its input; works on tensors, sequences and optionals.")


@identity.infer
def _(ctx: InferContext) -> list:
    if not ctx.has_input(0):
        ctx.fail("input 0 is required")
    return [ctx.inputs[0]]


@identity.reference
def _(x: Any) -> Any:
    return x


# ------------------------------------------------------------------- Reshape
reshape = define("Reshape", inputs=["data", "shape"], outputs=["reshaped"], kind=INJECTIVE, view=True,
                 attrs={"allowzero": Attr.int(0)}, static_inputs=["shape"])


def resolve_reshape(ctx: InferContext, in_shape, target: list[int], allowzero: int) -> list[Dim]:
    """Output dims of Reshape: 0 copies the input dim (unless allowzero), -1 is inferred."""
    dims: list[Dim] = []
    minus_one = None
    for i, d in enumerate(target):
        if d == -1:
            if minus_one is not None:
                ctx.fail("shape may contain at most one -1", found=str(target))
            minus_one = i
            dims.append(None)
        elif d == 0 and not allowzero:
            if in_shape is not None and i >= len(in_shape):
                ctx.fail(f"shape[{i}] is 0 (copy the input dim) but the input has rank "
                         f"{len(in_shape)}", found=str(target))
            dims.append(None if in_shape is None else in_shape[i])
        elif d < -1:
            ctx.fail("shape values must be >= -1", found=str(target))
        else:
            dims.append(d)
    if allowzero and minus_one is not None and 0 in target:
        ctx.fail("with allowzero=1, shape cannot hold both 0 and -1", found=str(target))
    if in_shape is None:
        return dims
    if minus_one is not None:
        dims[minus_one] = quotient_dim(in_shape, dims[:minus_one] + dims[minus_one + 1:])
        rest = symbolic_product(dims[:minus_one] + dims[minus_one + 1:])
        total = symbolic_product(in_shape)
        if rest and total and not rest[1] and not total[1] and rest[0] and total[0] % rest[0]:
            ctx.fail("cannot reshape: the element count is not divisible by the given dims",
                     expected=f"a divisor of {total[0]}", found=f"shape {target}")
    else:
        a, b = symbolic_product(in_shape), symbolic_product(dims)
        if a and b and not a[1] and not b[1] and a[0] != b[0]:
            ctx.fail("cannot reshape: element counts differ",
                     expected=f"{a[0]} elements", found=f"shape {target} ({b[0]} elements)")
    return dims


@reshape.infer
def _(ctx: InferContext) -> list[TensorType]:
    data = ctx.input_type(0)
    check_dtype(ctx, 1, I64, "shape")
    n = vector_length(ctx, 1, "shape")
    target = const_ints(ctx, 1)
    if target is None:
        return data_type(ctx, None if n is None else (None,) * n)
    return data_type(ctx, resolve_reshape(ctx, data.shape, target, ctx.attr("allowzero")))


@reshape.reference
def _(data: np.ndarray, shape: np.ndarray, allowzero: int = 0) -> np.ndarray:
    target = [int(d) for d in shape]
    if not allowzero:
        target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return data.reshape(target)


# ------------------------------------------------------------------- Flatten
flatten = define("Flatten", inputs=["input"], outputs=["output"], kind=INJECTIVE, view=True,
                 attrs={"axis": Attr.int(1)})


@flatten.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    if shape is None:
        return data_type(ctx, (None, None))
    axis = norm_axis(ctx, ctx.attr("axis"), len(shape), inclusive=True)
    return data_type(ctx, (product_dim(shape[:axis]), product_dim(shape[axis:])))


@flatten.reference
def _(x: np.ndarray, axis: int = 1) -> np.ndarray:
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))


# ----------------------------------------------------------- Squeeze/Unsqueeze
squeeze = define("Squeeze", inputs=["data", "axes?"], outputs=["squeezed"], kind=INJECTIVE, view=True,
                 static_inputs=["axes"])


@squeeze.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    if ctx.has_input(1):
        check_dtype(ctx, 1, I64, "axes")
        axes = const_ints(ctx, 1)
        if axes is None:  # only the number of removed axes may be known
            n = vector_length(ctx, 1, "axes", allow_scalar=True)
            known = shape is not None and n is not None
            return data_type(ctx, (None,) * (len(shape) - n) if known else None)
    else:
        axes = None
    if shape is None:
        return data_type(ctx, None)
    if axes is None:  # remove every dim of size 1: needs every dim known
        if not all(isinstance(d, int) for d in shape):
            return data_type(ctx, None)
        return data_type(ctx, [d for d in shape if d != 1])
    axes = norm_axes(ctx, axes, len(shape))
    for a in axes:
        if isinstance(shape[a], int) and shape[a] != 1:
            ctx.fail(f"cannot squeeze axis {a}: its size is not 1", found=str(ctx.input_type(0)))
    return data_type(ctx, [d for i, d in enumerate(shape) if i not in axes])


@squeeze.reference
def _(data: np.ndarray, axes: Optional[np.ndarray] = None) -> np.ndarray:
    if axes is None:
        return data.reshape([d for d in data.shape if d != 1])
    return np.squeeze(data, axis=tuple(int(a) for a in np.asarray(axes).reshape(-1)))


unsqueeze = define("Unsqueeze", inputs=["data", "axes"], outputs=["expanded"], kind=INJECTIVE, view=True,
                   static_inputs=["axes"])


@unsqueeze.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    check_dtype(ctx, 1, I64, "axes")
    axes = const_ints(ctx, 1)
    if axes is None or shape is None:
        n = len(axes) if axes is not None else vector_length(ctx, 1, "axes", allow_scalar=True)
        return data_type(ctx, None if shape is None or n is None else (None,) * (len(shape) + n))
    rank = len(shape) + len(axes)
    axes = norm_axes(ctx, axes, rank)
    rest = iter(shape)
    return data_type(ctx, [1 if i in axes else next(rest) for i in range(rank)])


@unsqueeze.reference
def _(data: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return np.expand_dims(data, tuple(int(a) for a in np.asarray(axes).reshape(-1)))


# ----------------------------------------------------------------- Transpose
transpose = define("Transpose", inputs=["data"], outputs=["transposed"], kind=INJECTIVE,
                   attrs={"perm": Attr.ints()})


@transpose.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    perm = ctx.attr("perm")
    if perm is None:
        return data_type(ctx, None if shape is None else shape[::-1])
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(len(perm))):
        ctx.fail("perm must be a permutation of 0..rank-1", found=str(perm))
    if shape is None:
        return data_type(ctx, (None,) * len(perm))
    if len(perm) != len(shape):
        ctx.fail("perm must have one entry per input dim",
                 expected=f"{len(shape)} entries", found=str(perm))
    return data_type(ctx, [shape[p] for p in perm])


@transpose.reference
def _(data: np.ndarray, perm: Optional[Sequence[int]] = None) -> np.ndarray:
    return np.transpose(data, None if perm is None else tuple(perm))


# -------------------------------------------------------------------- Concat
concat = define("Concat", inputs=["inputs..."], outputs=["concat_result"], kind=INJECTIVE,
                attrs={"axis": Attr.int(required=True)})


@concat.infer
def _(ctx: InferContext) -> list[TensorType]:
    if ctx.num_inputs < 1:
        ctx.fail("needs at least one input")
    types = [ctx.input_type(i) for i in range(ctx.num_inputs)]
    if len({t.dtype for t in types}) > 1:
        ctx.fail("inputs must share one element type", found=", ".join(str(t) for t in types))
    shapes = [t.shape for t in types if t.shape is not None]
    if not shapes:
        return data_type(ctx, None)
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        ctx.fail("inputs must have the same rank", found=", ".join(str(t) for t in types))
    if rank == 0:
        ctx.fail("cannot concatenate scalars", found=", ".join(str(t) for t in types))
    axis = norm_axis(ctx, ctx.attr("axis"), rank)
    out: list[Dim] = []
    for i in range(rank):
        if i == axis:
            known = len(shapes) == len(types)
            out.append(product_sum([s[i] for s in shapes]) if known else None)
            continue
        d: Dim = None
        for s in shapes:
            if isinstance(d, int) and isinstance(s[i], int) and d != s[i]:
                ctx.fail(f"inputs differ in dim {i} (only the axis {axis} may differ)",
                         found=", ".join(str(t) for t in types))
            d = merge_dims(d, s[i])
        out.append(d)
    return data_type(ctx, out)


def product_sum(dims: Sequence[Dim]) -> Dim:
    """Sum of dims: an int when all are known; a symbol plus zeros stays that symbol."""
    nonzero = [d for d in dims if d != 0]
    if all(isinstance(d, int) for d in nonzero):
        return sum(nonzero)  # type: ignore[arg-type]
    return nonzero[0] if len(nonzero) == 1 else None


@concat.reference
def _(*inputs: np.ndarray, axis: int) -> np.ndarray:
    return np.concatenate(inputs, axis=axis)


# --------------------------------------------------------------------- Split
split = define("Split", inputs=["input", "split?"], outputs=["outputs..."], kind=INJECTIVE,
               attrs={"axis": Attr.int(0), "num_outputs": Attr.int()},
               static_inputs=["split"], needs_num_outputs=True,
               doc="Without a split input, splits into num_outputs parts "
                   "(the last one smaller when uneven), num_outputs being the node's output count.")


def even_split(ctx: InferContext, dim: int, parts: int) -> list[int]:
    """Sizes of ``parts`` chunks of ``dim``: ceil(dim/parts) each, the last one smaller."""
    chunk = -(-dim // parts)
    sizes = [chunk] * (parts - 1) + [dim - chunk * (parts - 1)]
    if sizes[-1] < 0:
        ctx.fail(f"cannot split a dim of {dim} into {parts} parts of ceil({dim}/{parts})",
                 hint="give explicit split sizes")
    return sizes


@split.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    n = ctx.num_outputs
    num_outputs = ctx.attr("num_outputs")
    if num_outputs is not None and num_outputs != n:
        ctx.fail("num_outputs must equal the number of outputs",
                 expected=str(n), found=f"num_outputs={num_outputs}")
    sizes = None
    if ctx.has_input(1):
        check_dtype(ctx, 1, I64, "split")
        if num_outputs is not None:
            ctx.fail("give either the split input or num_outputs, not both")
        sizes = const_ints(ctx, 1)
        if sizes is not None and len(sizes) != n:
            ctx.fail("split must have one size per output", expected=f"{n} sizes", found=str(sizes))
        if sizes is not None and any(s < 0 for s in sizes):
            ctx.fail("split sizes must be >= 0", found=str(sizes))
    if shape is None:
        return [TensorType(ctx.dtype(0), None)] * n
    axis = norm_axis(ctx, ctx.attr("axis"), len(shape))
    dim = shape[axis]
    if sizes is not None:
        if isinstance(dim, int) and sum(sizes) != dim:
            ctx.fail(f"split sizes must add up to the size of axis {axis}",
                     expected=str(dim), found=f"{sizes} (sum {sum(sizes)})")
        parts: list[Dim] = list(sizes)
    elif ctx.has_input(1):  # sizes given at run time only
        parts = [None] * n
    elif isinstance(dim, int):
        parts = list(even_split(ctx, dim, n))
    else:
        parts = [dim if n == 1 else None] * n
    return [TensorType(ctx.dtype(0), shape[:axis] + (p,) + shape[axis + 1:]) for p in parts]


@split.reference
def _(x: np.ndarray, split: Optional[np.ndarray] = None, *, axis: int = 0,
      num_outputs: int = 1) -> tuple[np.ndarray, ...]:
    dim = x.shape[axis]
    if split is None:
        chunk = -(-dim // num_outputs)
        sizes = [chunk] * (num_outputs - 1) + [dim - chunk * (num_outputs - 1)]
    else:
        sizes = [int(s) for s in np.asarray(split).reshape(-1)]
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


# -------------------------------------------------------------------- Expand
expand = define("Expand", inputs=["input", "shape"], outputs=["output"], kind=INJECTIVE,
                static_inputs=["shape"])


@expand.infer
def _(ctx: InferContext) -> list[TensorType]:
    in_shape = ctx.shape(0)
    check_dtype(ctx, 1, I64, "shape")
    n = vector_length(ctx, 1, "shape")
    target = const_ints(ctx, 1)
    if target is None:
        if in_shape is None or n is None:
            return data_type(ctx, None)
        # A known input dim other than 1 survives whatever the target holds there.
        rank = max(len(in_shape), n)
        padded = (1,) * (rank - len(in_shape)) + tuple(in_shape)
        return data_type(ctx, [d if isinstance(d, int) and d != 1 else None for d in padded])
    if any(d < 0 for d in target):
        ctx.fail("shape values must be >= 0", found=str(target))
    if in_shape is None:
        return data_type(ctx, (None,) * len(target))
    try:
        return data_type(ctx, broadcast_shapes(in_shape, tuple(target)))
    except TypeInferenceError as exc:
        ctx.fail("input does not broadcast to the shape", expected=f"a shape compatible with "
                 f"{ctx.input_type(0)}", found=f"{target} ({exc.found})")


@expand.reference
def _(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    out_shape = np.broadcast_shapes(x.shape, tuple(int(d) for d in shape))
    return np.array(np.broadcast_to(x, out_shape))


# ---------------------------------------------------------------------- Tile
tile = define("Tile", inputs=["input", "repeats"], outputs=["output"], kind=INJECTIVE,
              static_inputs=["repeats"])


def tiled_dim(d: Dim, r: int) -> Dim:
    if r == 1 or r == 0:
        return d if r == 1 else 0
    return d * r if isinstance(d, int) else None


@tile.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    check_dtype(ctx, 1, I64, "repeats")
    n = vector_length(ctx, 1, "repeats")
    reps = const_ints(ctx, 1)
    if shape is not None and n is not None and n != len(shape):
        ctx.fail("repeats must have one entry per input dim",
                 expected=f"{len(shape)} entries", found=f"{n}")
    if reps is None or shape is None:
        rank = len(shape) if shape is not None else n
        return data_type(ctx, None if rank is None else (None,) * rank)
    if any(r < 0 for r in reps):
        ctx.fail("repeats must be >= 0", found=str(reps))
    return data_type(ctx, [tiled_dim(d, r) for d, r in zip(shape, reps)])


@tile.reference
def _(x: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    return np.tile(x, tuple(int(r) for r in repeats))


# ------------------------------------------------------ DepthToSpace & back
depth_to_space = define("DepthToSpace", inputs=["input"], outputs=["output"], kind=INJECTIVE,
                        attrs={"blocksize": Attr.int(required=True), "mode": Attr.string("DCR")})
space_to_depth = define("SpaceToDepth", inputs=["input"], outputs=["output"], kind=INJECTIVE,
                        attrs={"blocksize": Attr.int(required=True), "mode": Attr.string("DCR")})


def block_args(ctx: InferContext) -> tuple[int, Optional[tuple]]:
    """(blocksize, NCHW shape) after checking the mode, the blocksize and the rank."""
    b, mode = ctx.attr("blocksize"), ctx.attr("mode")
    if mode not in ("DCR", "CRD"):
        ctx.fail("unknown mode", expected="DCR or CRD", found=repr(mode))
    if b < 1:
        ctx.fail("blocksize must be >= 1", found=str(b))
    shape = ctx.shape(0)
    if shape is not None and len(shape) != 4:
        ctx.fail("input must be 4-D (N, C, H, W)", found=str(ctx.input_type(0)))
    return b, shape


def scaled(d: Dim, b: int) -> Dim:
    return d if b == 1 else (d * b if isinstance(d, int) else None)


def divided(ctx: InferContext, d: Dim, k: int, what: str) -> Dim:
    if k == 1:
        return d
    if not isinstance(d, int):
        return None
    if d % k:
        ctx.fail(f"{what} must be divisible by {k}", found=str(ctx.input_type(0)))
    return d // k


@depth_to_space.infer
def _(ctx: InferContext) -> list[TensorType]:
    b, shape = block_args(ctx)
    if shape is None:
        return data_type(ctx, (None,) * 4)
    n, c, h, w = shape
    return data_type(ctx, (n, divided(ctx, c, b * b, "channels"), scaled(h, b), scaled(w, b)))


@depth_to_space.reference
def _(x: np.ndarray, blocksize: int, mode: str = "DCR") -> np.ndarray:
    n, c, h, w = x.shape
    b = blocksize
    if mode == "DCR":
        tmp = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        tmp = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return tmp.reshape(n, c // (b * b), h * b, w * b)


@space_to_depth.infer
def _(ctx: InferContext) -> list[TensorType]:
    b, shape = block_args(ctx)
    if shape is None:
        return data_type(ctx, (None,) * 4)
    n, c, h, w = shape
    return data_type(ctx, (n, scaled(c, b * b), divided(ctx, h, b, "height"),
                           divided(ctx, w, b, "width")))


@space_to_depth.reference
def _(x: np.ndarray, blocksize: int, mode: str = "DCR") -> np.ndarray:
    n, c, h, w = x.shape
    b = blocksize
    tmp = x.reshape(n, c, h // b, b, w // b, b)
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    return tmp.transpose(perm).reshape(n, c * b * b, h // b, w // b)

