"""Index arithmetic on scalars and lane vectors, tracking contiguous runs.

In vector mode a kernel computes ``lanes`` consecutive elements along the
output's last axis at once, so that axis's index is a vector
``start + [0, 1, ..., lanes-1]``.  Mapping it through injective ops (reshape,
transpose, slice, layout conversions...) gives, at each leaf tensor, a vector
of element offsets.  ``IndexMath`` does that arithmetic on any mix of scalar
and vector i64 values and remembers which vectors are still an affine run
``base + stride * lane``: a leaf offset with stride 1 is one vector load, a
scalar offset is one load and a broadcast, anything else is a gather.
"""

from __future__ import annotations

from typing import Optional, Union

import llvmlite.ir as ir

from .codegen import I64, const_int, splat

IValue = ir.Value  # an i64 or a <lanes x i64>


class IndexMath:
    def __init__(self, b: ir.IRBuilder, lanes: int) -> None:
        self.b = b
        self.lanes = lanes
        self._affine: dict[int, tuple[ir.Value, int]] = {}  # id(vector) -> (scalar base, stride)

    # ---------------------------------------------------------- queries
    @staticmethod
    def is_vector(v: IValue) -> bool:
        return isinstance(v.type, ir.VectorType)

    def affine(self, v: IValue) -> Optional[tuple[ir.Value, int]]:
        """(base, stride) when ``v`` is base + stride*lane; (v, 0) for a scalar."""
        if not self.is_vector(v):
            return v, 0
        return self._affine.get(id(v))

    def _track(self, v: IValue, base: ir.Value, stride: int) -> IValue:
        self._affine[id(v)] = (base, stride)
        return v

    def _vec(self, v: IValue) -> IValue:
        return v if self.is_vector(v) else splat(self.b, v, self.lanes)

    # ------------------------------------------------------------- makers
    def iota(self, start: ir.Value) -> IValue:
        """start + [0, 1, ..., lanes-1]."""
        lanes = ir.Constant(ir.VectorType(I64, self.lanes), list(range(self.lanes)))
        return self._track(self.b.add(splat(self.b, start, self.lanes), lanes), start, 1)

    # ---------------------------------------------------------- arithmetic
    def add(self, x: Union[IValue, int], y: Union[IValue, int]) -> IValue:
        x, y = self._as_value(x), self._as_value(y)
        if not self.is_vector(x) and not self.is_vector(y):
            return self.b.add(x, y)
        ax, ay = self.affine(x), self.affine(y)
        out = self.b.add(self._vec(x), self._vec(y))
        if ax is not None and ay is not None:
            self._track(out, self.b.add(ax[0], ay[0]), ax[1] + ay[1])
        return out

    def sub(self, x: Union[IValue, int], y: Union[IValue, int]) -> IValue:
        x, y = self._as_value(x), self._as_value(y)
        if not self.is_vector(x) and not self.is_vector(y):
            return self.b.sub(x, y)
        ax, ay = self.affine(x), self.affine(y)
        out = self.b.sub(self._vec(x), self._vec(y))
        if ax is not None and ay is not None:
            self._track(out, self.b.sub(ax[0], ay[0]), ax[1] - ay[1])
        return out

    def mul(self, x: IValue, k: int) -> IValue:
        """x * k for a compile-time integer k."""
        if k == 1:
            return x
        if not self.is_vector(x):
            return self.b.mul(x, const_int(k))
        ax = self.affine(x)
        out = self.b.mul(x, splat(self.b, const_int(k), self.lanes))
        if ax is not None:
            self._track(out, self.b.mul(ax[0], const_int(k)), ax[1] * k)
        return out

    def div(self, x: IValue, k: int) -> IValue:
        """Floor of x / k for non-negative x (indices)."""
        if k == 1:
            return x
        if not self.is_vector(x):
            return self.b.sdiv(x, const_int(k))
        ax = self.affine(x)
        if ax is not None and ax[1] == 0:
            return self.b.sdiv(ax[0], const_int(k))
        return self.b.sdiv(x, splat(self.b, const_int(k), self.lanes))

    def rem(self, x: IValue, k: int) -> IValue:
        """x mod k for non-negative x (indices)."""
        if k == 1:
            return const_int(0)
        if not self.is_vector(x):
            return self.b.srem(x, const_int(k))
        return self.b.srem(x, splat(self.b, const_int(k), self.lanes))

    def floor_mod(self, x: IValue, k: int) -> IValue:
        """x mod k in [0, k) for any sign of x."""
        r = self.rem(x, k)
        return self.rem(self.add(r, k), k)

    def cmp(self, pred: str, x: Union[IValue, int], y: Union[IValue, int]) -> ir.Value:
        x, y = self._as_value(x), self._as_value(y)
        if self.is_vector(x) or self.is_vector(y):
            return self.b.icmp_signed(pred, self._vec(x), self._vec(y))
        return self.b.icmp_signed(pred, x, y)

    def select(self, cond: ir.Value, x: Union[IValue, int], y: Union[IValue, int]) -> IValue:
        x, y = self._as_value(x), self._as_value(y)
        if isinstance(cond.type, ir.VectorType) or self.is_vector(x) or self.is_vector(y):
            cond = cond if isinstance(cond.type, ir.VectorType) else splat(self.b, cond, self.lanes)
            return self.b.select(cond, self._vec(x), self._vec(y))
        return self.b.select(cond, x, y)

    def clamp(self, x: IValue, lo: int, hi: int) -> IValue:
        """x limited to [lo, hi]."""
        return self.select(self.cmp("<", x, lo), lo, self.select(self.cmp(">", x, hi), hi, x))

    def and_(self, p: ir.Value, q: ir.Value) -> ir.Value:
        if isinstance(p.type, ir.VectorType) != isinstance(q.type, ir.VectorType):
            p = p if isinstance(p.type, ir.VectorType) else splat(self.b, p, self.lanes)
            q = q if isinstance(q.type, ir.VectorType) else splat(self.b, q, self.lanes)
        return self.b.and_(p, q)

    def _as_value(self, v: Union[IValue, int]) -> IValue:
        return const_int(v) if isinstance(v, int) else v
