"""Matrix ops: Gemm, MatMul, Einsum, Det.

The references accumulate narrow floats (float16, bfloat16) in float32 and
round once at the end, as onnxruntime's kernels do; NumPy's own float16
matmul would round after every multiply-add and drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import COMPLEX, OPAQUE, Attr, InferContext, define
from ..shapes import broadcast_shapes
from ..types import Dim, Shape, TensorType
from ._common import FLOAT_TYPES, check_dtype

# Element types of the ONNX schemas (newest opset).
_GEMM_TYPES = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16,
                         DType.U32, DType.U64, DType.I32, DType.I64})
_EINSUM_TYPES = _GEMM_TYPES | {DType.U8, DType.U16, DType.I8, DType.I16}
_DET_TYPES = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})


def accumulate(x: np.ndarray) -> np.ndarray:
    """``x`` in the type a matrix product accumulates in: float32 for narrow floats."""
    if x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        return x
    if x.dtype.kind in "iub":
        return x
    return x.astype(np.float32)  # float16, bfloat16, float8...


def _same_dtype(ctx: InferContext, indices: Sequence[int]) -> None:
    present = [i for i in indices if ctx.has_input(i)]
    first = ctx.dtype(present[0])
    for i in present[1:]:
        if ctx.dtype(i) != first:
            ctx.fail("inputs must share one element type", expected=first.short,
                     found=f"input {i} of type {ctx.dtype(i).short}")


def _dims_clash(a: Dim, b: Dim) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a != b


# ---------------------------------------------------------------------- Gemm
gemm = define("Gemm", inputs=["A", "B", "C?"], outputs=["Y"], kind=COMPLEX,
              attrs={"alpha": Attr.float(1.0), "beta": Attr.float(1.0),
                     "transA": Attr.int(0), "transB": Attr.int(0)},
              doc="Y = alpha * A' @ B' + beta * C, with C broadcast to (M, N).")


@gemm.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _GEMM_TYPES, "A")
    _same_dtype(ctx, [0, 1, 2])
    a, b = ctx.shape(0), ctx.shape(1)
    for i, s in ((0, a), (1, b)):
        if s is not None and len(s) != 2:
            ctx.fail(f"input {i} ({'AB'[i]}) must be a matrix", expected="rank 2",
                     found=str(ctx.input_type(i)))
    m = n = None
    if a is not None:
        m, ka = (a[1], a[0]) if ctx.attr("transA") else (a[0], a[1])
    if b is not None:
        kb, n = (b[1], b[0]) if ctx.attr("transB") else (b[0], b[1])
    if a is not None and b is not None and _dims_clash(ka, kb):
        ctx.fail("inner dimensions of A and B differ", expected="equal K",
                 found=f"{ctx.input_type(0)} and {ctx.input_type(1)} "
                       f"(transA={ctx.attr('transA')}, transB={ctx.attr('transB')})")
    out = (m, n)
    if ctx.has_input(2) and ctx.shape(2) is not None:
        c = ctx.shape(2)
        if len(c) > 2 or any(_dims_clash(x, y) and x != 1 for x, y in zip(c[::-1], out[::-1])):
            ctx.fail("C must broadcast to the (M, N) result", expected=f"a shape broadcastable to "
                     f"{TensorType(dt, out)}", found=str(ctx.input_type(2)))
        # C can pin down M or N where A and B leave them unknown.
        padded = (1,) * (2 - len(c)) + tuple(c)
        out = tuple(d if d is not None or p == 1 else p for d, p in zip(out, padded))
    return [TensorType(dt, out)]


@gemm.reference
def _(a: np.ndarray, b: np.ndarray, c: Optional[np.ndarray] = None, *, alpha: float, beta: float,
      transA: int, transB: int) -> np.ndarray:
    a2, b2 = accumulate(a), accumulate(b)
    if transA:
        a2 = a2.T
    if transB:
        b2 = b2.T
    y = a2 @ b2
    if alpha != 1.0:
        y = y * alpha
    if c is not None and beta != 0.0:
        y = y + (accumulate(c) * beta if beta != 1.0 else accumulate(c))
    return np.asarray(y).astype(a.dtype, copy=False)


# -------------------------------------------------------------------- MatMul
matmul = define("MatMul", inputs=["A", "B"], outputs=["Y"], kind=COMPLEX,
                doc="NumPy matmul: batched, broadcasting, 1-D operands promoted and squeezed.")


def matmul_shape(ctx: InferContext, a: Shape, b: Shape) -> Shape:
    """Result shape of ``numpy.matmul(a, b)``; fails when the inner dims clash."""
    if a is None or b is None:
        return None
    if len(a) == 0 or len(b) == 0:
        ctx.fail("matmul operands must have rank >= 1", found=f"shapes {a} and {b}")
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    if _dims_clash(a2[-1], b2[-2]):
        ctx.fail("inner dimensions differ", expected=f"A's last dim == B's "
                 f"{'only' if len(b) == 1 else 'second-to-last'} dim",
                 found=f"{ctx.input_type(0)} and {ctx.input_type(1)}")
    try:
        batch = broadcast_shapes(a2[:-2], b2[:-2])
    except Exception:
        ctx.fail("batch dimensions do not broadcast", found=f"{ctx.input_type(0)} and "
                 f"{ctx.input_type(1)}")
    out = tuple(batch) + ((a2[-2],) if len(a) > 1 else ()) + ((b2[-1],) if len(b) > 1 else ())
    return out


@matmul.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _GEMM_TYPES, "A")
    _same_dtype(ctx, [0, 1])
    return [TensorType(dt, matmul_shape(ctx, ctx.shape(0), ctx.shape(1)))]


@matmul.reference
def _(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.matmul(accumulate(a), accumulate(b))).astype(a.dtype, copy=False)


# -------------------------------------------------------------------- Einsum
einsum = define("Einsum", inputs=["Inputs..."], outputs=["Output"], kind=COMPLEX,
                attrs={"equation": Attr.string(required=True)},
                doc="Einstein summation; the equation is made explicit before evaluation.")


class EinsumError(ValueError):
    """A malformed equation (turned into a type error by the rule)."""


def parse_einsum(equation: str, ranks: Sequence[Optional[int]]) -> tuple[list[str], str]:
    """The operand terms and the explicit output term of ``equation``.

    An ellipsis is kept as ``.`` (one character per term); implicit mode
    outputs the ellipsis then the letters seen exactly once, in ASCII order.
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise EinsumError(f"equation has {len(terms)} operand terms for {len(ranks)} inputs")
    parsed = []
    for t in terms:
        if t.count("...") > 1 or t.replace("...", "").count(".") or \
                not all(ch.isalpha() for ch in t.replace("...", "")):
            raise EinsumError(f"bad term {t!r}")
        parsed.append(t.replace("...", "."))
    for term, rank in zip(parsed, ranks):
        letters = len(term.replace(".", ""))
        if rank is not None and (rank < letters or ("." not in term and rank != letters)):
            raise EinsumError(f"term {term.replace('.', '...')!r} does not fit an input of rank {rank}")
    if arrow:
        if rhs.count("...") > 1 or rhs.replace("...", "").count(".") or \
                not all(ch.isalpha() for ch in rhs.replace("...", "")):
            raise EinsumError(f"bad output term {rhs!r}")
        out = rhs.replace("...", ".")
        seen = set("".join(parsed))
        for ch in out:
            if ch != "." and ch not in seen:
                raise EinsumError(f"output letter {ch!r} is in no input term")
        if "." in out and not any("." in t for t in parsed):
            raise EinsumError("output has an ellipsis that no input has")
        if len(set(out)) != len(out):
            raise EinsumError(f"output term {rhs!r} repeats a letter")
    else:
        counts: dict[str, int] = {}
        for ch in "".join(parsed).replace(".", ""):
            counts[ch] = counts.get(ch, 0) + 1
        out = ("." if any("." in t for t in parsed) else "") + \
            "".join(sorted(ch for ch, n in counts.items() if n == 1))
    return parsed, out


def _einsum_shape(terms: list[str], out: str, shapes: list[Shape]) -> Shape:
    if any(s is None for s in shapes):
        return None
    sizes: dict[str, Dim] = {}
    ellipses: list[tuple] = []
    for term, shape in zip(terms, shapes):
        n_ell = len(shape) - len(term.replace(".", ""))
        k = 0
        for ch in term:
            if ch == ".":
                ellipses.append(tuple(shape[k:k + n_ell]))
                k += n_ell
                continue
            d = shape[k]
            k += 1
            prev = sizes.get(ch)
            if _dims_clash(prev, d) and 1 not in (prev, d):
                raise EinsumError(f"letter {ch!r} has sizes {prev} and {d}")
            # A size-1 dim broadcasts against the letter's other sizes (as in numpy).
            if prev is None or prev == 1 or (not isinstance(prev, int) and isinstance(d, int) and d != 1):
                sizes[ch] = d
    ell = broadcast_shapes(*ellipses) if ellipses else ()
    result: list[Dim] = []
    for ch in out:
        if ch == ".":
            result.extend(ell)  # type: ignore[arg-type]
        else:
            result.append(sizes[ch])
    return tuple(result)


@einsum.infer
def _(ctx: InferContext) -> list[TensorType]:
    if ctx.num_inputs < 1:
        ctx.fail("needs at least one input")
    dt = check_dtype(ctx, 0, _EINSUM_TYPES)
    _same_dtype(ctx, range(ctx.num_inputs))
    eq = ctx.attr("equation")
    try:
        terms, out = parse_einsum(eq, [ctx.rank(i) for i in range(ctx.num_inputs)])
        shape = _einsum_shape(terms, out, [ctx.shape(i) for i in range(ctx.num_inputs)])
    except Exception as exc:
        ctx.fail("bad einsum equation", expected="a valid equation for the inputs",
                 found=f"{eq!r}: {exc}")
    return [TensorType(dt, shape)]


@einsum.reference
def _(*xs: np.ndarray, equation: str) -> np.ndarray:
    terms, out = parse_einsum(equation, [x.ndim for x in xs])
    explicit = ",".join(t.replace(".", "...") for t in terms) + "->" + out.replace(".", "...")
    args = [accumulate(x) for x in xs]
    if xs[0].dtype.kind in "iu":
        y = np.einsum(explicit, *args)  # BLAS paths would go through float
    else:
        y = np.einsum(explicit, *args, optimize=len(xs) > 1)
    return np.asarray(y).astype(xs[0].dtype, copy=False)


# ----------------------------------------------------------------------- Det
det = define("Det", inputs=["X"], outputs=["Y"], kind=OPAQUE,
             doc="Determinant of each square matrix in the last two dims.")


@det.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _DET_TYPES & FLOAT_TYPES)
    s = ctx.shape(0)
    if s is None:
        return [TensorType(dt, None)]
    if len(s) < 2 or _dims_clash(s[-1], s[-2]):
        ctx.fail("input must be a batch of square matrices", expected="shape [*, M, M]",
                 found=str(ctx.input_type(0)))
    return [TensorType(dt, tuple(s[:-2]))]


@det.reference
def _(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.det(accumulate(x))).astype(x.dtype)
