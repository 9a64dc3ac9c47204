"""Einsum on the cpu target, as an index map that sums over the contracted letters.

The equation is made explicit with the reference's parser
(``ir.ops.linalg.parse_einsum``) and every ellipsis dim gets a letter of its
own.  Each output element is then

    y[out letters] = sum over the other letters of prod_i x_i[its letters]

emitted as a loop nest over the contracted letters (register accumulators,
``codegen.loop_carry``) around one load per operand.  An operand dim of size
1 under a larger letter broadcasts (index 0), a letter repeated within a term
reads a diagonal.  Einsum is COMPLEX for fusion, so elementwise epilogues
join it in one kernel; the elementwise kernel runs it, vectorized along the
output's last axis when that letter indexes the operands.
"""

from __future__ import annotations

from typing import Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node
from ir.ops.linalg import parse_einsum

from ..codegen import const_int, loop_carry, splat
from ..evaluator import Evaluator, index_map, shape_of
from ..expr import compute_type, constant, is_float

_TYPES = {DType.F32, DType.F64, DType.F16, DType.I32, DType.I64, DType.U32, DType.U64, DType.I8, DType.U8,
          DType.I16, DType.U16}
MAX_REDUCTION = 1 << 24  # contracted iterations per output element, beyond which this form is unfit


def explicit_terms(node: Node) -> tuple[list[str], str, dict[str, int]]:
    """Operand terms and output term with one letter per dim (ellipsis dims included), and letter sizes."""
    shapes = [shape_of(v) for v in node.inputs]
    terms, out = parse_einsum(node.attr("equation"), [len(s) for s in shapes])
    n_ell = max((len(s) - len(t.replace(".", "")) for t, s in zip(terms, shapes) if "." in t), default=0)
    ell = [chr(0x100 + i) for i in range(n_ell)]  # letters no equation uses
    expanded = []
    for t, s in zip(terms, shapes):
        k = len(s) - len(t.replace(".", ""))
        expanded.append(t.replace(".", "".join(ell[n_ell - k:])))
    out = out.replace(".", "".join(ell))
    sizes: dict[str, int] = {}
    for t, s in zip(expanded, shapes):
        for ch, d in zip(t, s):
            if sizes.get(ch, 1) == 1:
                sizes[ch] = d
    return expanded, out, sizes


def einsum_support(node: Node) -> Optional[str]:
    dtype = node.inputs[0].type.dtype
    if dtype not in _TYPES:
        return f"Einsum on {dtype.short} is not supported by the cpu target"
    if not all(getattr(v.type, "is_static", False) for v in node.inputs):
        return "the cpu target needs static shapes here"
    terms, out, sizes = explicit_terms(node)
    work = 1
    for ch in sizes:
        if ch not in out:
            work *= sizes[ch]
    if work > MAX_REDUCTION:
        return f"Einsum summing {work} products per output element (at most {MAX_REDUCTION})"
    return None


def _like(b: ir.IRBuilder, v: ir.Value, other: ir.Value) -> tuple[ir.Value, ir.Value]:
    vv, ov = isinstance(v.type, ir.VectorType), isinstance(other.type, ir.VectorType)
    if ov and not vv:
        return splat(b, v, other.type.count), other
    if vv and not ov:
        return v, splat(b, other, v.type.count)
    return v, other


@index_map("Einsum", check=einsum_support)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    b = ev.b
    terms, out, sizes = explicit_terms(node)
    contracted = [ch for ch in dict.fromkeys("".join(terms)) if ch not in out]
    ct = compute_type(node.inputs[0].type.dtype)
    flt = is_float(ct)
    vector = any(ev.ix.is_vector(i) for i in idx)
    zero = ir.Constant(ct, 0.0 if flt else 0)
    if vector:
        zero = ir.Constant(ir.VectorType(ct, ev.lanes), [0.0 if flt else 0] * ev.lanes)

    def product(at: dict) -> ir.Value:
        acc = None
        for t, v in zip(terms, node.inputs):
            shape = shape_of(v)
            sub = [const_int(0) if d == 1 and sizes[ch] != 1 else at[ch] for ch, d in zip(t, shape)]
            x = ev._at(v, sub)
            if acc is None:
                acc = x
            else:
                acc, x = _like(b, acc, x)
                acc = b.fmul(acc, x) if flt else b.mul(acc, x)
        return acc

    def nest(level: int, at: dict, accs: list) -> list:
        if level == len(contracted):
            p, a = _like(b, product(at), accs[0])
            return [b.fadd(a, p) if flt else b.add(a, p)]
        ch = contracted[level]

        def body(i, vals):
            return nest(level + 1, dict(at, **{ch: i}), vals)
        return loop_carry(b, 0, sizes[ch], 1, accs, body, name=f"e{level}")

    at = dict(zip(out, idx))
    if not contracted:
        return product(at)
    with ev.inner_scope():  # the loop nest over the contracted letters
        return nest(0, at, [zero])[0]


__all__ = ["einsum_support", "explicit_terms"]
