"""What a Gemm/MatMul kernel computes, normalized: strides, batch, epilogue.

Every gemm kernel computes, for each batch index ``bt`` and each ``(m, n)``::

    acc[m, n] = sum_k A[a_off(bt) + m*sam + k*sak] * B[b_off(bt) + k*sbk + n*sbn]
    out[(bt*M + m)*N + n] = epilogue(alpha * acc + beta * C[m, n])

``GemmProblem`` holds those sizes and element strides for Gemm (transA and
transB only swap strides) and MatMul (batch dims broadcast with stride 0,
1-D operands become M == 1 or N == 1).  When B has no batch dims a MatMul's
batch dims fold into M (the rows of A and of the output are contiguous), so
``X[b, s, K] @ W[K, N]`` is one big GEMM.

``Epilogue`` turns accumulators into stored outputs: alpha, beta*C and the
fused elementwise ops (bias, Relu, residual Add...) are evaluated on the
accumulator vectors by the ``Evaluator`` (``provided=`` injects the
accumulator as the anchor's value) right before the store.  Partial vectors
(the last columns when N is not a multiple of the vector width) are finished
lane by lane, so no load or store touches memory past a row's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node, Value

from ..codegen import I32, KernelBuilder, TaskFunction, const_int, llvm_type, splat, supported_dtype
from ..evaluator import Evaluator, broadcast_index, delinearize, shape_of, vector_ok
from ..expr import elementwise_support, store_convert
from . import body_and_keys, nodes_of


GEMM_DTYPES = (DType.F32, DType.F64)
GEMM_OPS = frozenset({"Gemm", "MatMul"})


@dataclass
class GemmProblem:
    """Sizes, strides (in elements) and epilogue inputs of one Gemm/MatMul kernel."""

    anchor: Node
    m: int
    n: int
    k: int
    batch: tuple[int, ...]            # batch dims the task grid walks (empty once folded into m)
    a_batch_strides: tuple[int, ...]  # A's element stride per batch dim (0: broadcast)
    b_batch_strides: tuple[int, ...]
    sam: int
    sak: int
    sbk: int
    sbn: int
    alpha: float
    beta: float
    c: Optional[Value]                # Gemm's C (broadcast to M x N), or None
    out_shape: tuple[int, ...]        # the anchor's output shape
    row_shape: tuple[int, ...]        # the output dims a row index m walks (folded batch dims + M)
    a_is_vector: bool                 # MatMul with 1-D A: the output has no M dim
    b_is_vector: bool                 # MatMul with 1-D B: the output has no N dim
    dtype: DType = DType.F32          # of A, B, C and the accumulators (f32 or f64)

    @property
    def elem(self) -> ir.Type:
        return llvm_type(self.dtype)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    def lanes(self, kb: KernelBuilder) -> int:
        """Elements per vector register (``kb.lanes`` counts f32)."""
        return max(1, kb.lanes * 4 // self.itemsize)

    @property
    def batch_count(self) -> int:
        return math.prod(self.batch)

    @property
    def macs(self) -> int:
        return self.batch_count * self.m * self.n * self.k

    @property
    def b_k_contiguous(self) -> bool:
        """B's rows along k are contiguous (Gemm transB=1, or a 1-D/N == 1 B)."""
        return self.sbk == 1

    def out_index(self, b: ir.IRBuilder, batch_idx: list[ir.Value], m: ir.Value, n: ir.Value) -> list[ir.Value]:
        """The anchor output's multi-index of element (batch, m, n)."""
        rows = delinearize(b, m, self.row_shape) if len(self.row_shape) > 1 else [m]
        if self.a_is_vector:
            rows = rows[:-1]
        return [*batch_idx, *rows, *([] if self.b_is_vector else [n])]


def _matrix_input(v: Optional[Value], what: str, dtypes: tuple = GEMM_DTYPES) -> Optional[str]:
    if v is None:
        return f"missing input {what}"
    t = v.type
    if not getattr(t, "is_static", False):
        return "the cpu target needs static shapes here"
    if t.dtype not in dtypes:
        return f"gemm on the cpu target supports float32 and float64 only ({what} is {t.dtype.short})"
    if getattr(t, "layout", None) is not None:
        return f"gemm operand {what} has a blocked layout ({t.layout})"
    return None


def problem_support(node: Node, dtypes: tuple = GEMM_DTYPES) -> Optional[str]:
    """None when the gemm kernels can compile ``node`` (plain or fused), else why not.

    ``dtypes``: the operand types the asking kernel computes on (``gemm_narrow``: float16/bfloat16).
    """
    from ir.anchor import anchor_of
    anchor = anchor_of(node)
    if anchor.domain != "" or anchor.op not in GEMM_OPS:
        return f"{anchor.qualified_op} is not a Gemm or MatMul"
    for i, what in enumerate("AB"):
        why = _matrix_input(anchor.input(i), what, dtypes)
        if why:
            return why
    if anchor.op == "Gemm" and anchor.input(2) is not None:
        why = _matrix_input(anchor.input(2), "C", dtypes)
        if why:
            return why
    anchor_shape = anchor.outputs[0].type.shape
    for n in nodes_of(node):
        if n is anchor:
            continue
        if n.op == "Fused":
            return "nested fused groups"
        if n.schema.kind not in ("elementwise", "broadcast"):
            return f"{n.qualified_op} cannot be fused after a {anchor.op} on the cpu target"
        why = elementwise_support(n)
        if why is not None:
            return why
    for out in node.outputs:
        t = out.type
        if not getattr(t, "is_static", False):
            return "the cpu target needs static shapes here"
        if not supported_dtype(t.dtype):
            return f"element type {t.dtype.short} is not supported by the cpu target"
        if tuple(t.shape) != tuple(anchor_shape):
            return (f"a fused epilogue output {t} differs from the {anchor.op} result's shape "
                    f"{tuple(anchor_shape)} (it broadcasts to a larger shape)")
    return None


def make_problem(anchor: Node) -> GemmProblem:
    """Normalize a Gemm or MatMul (shapes and types checked by ``problem_support``)."""
    p = _normalize(anchor)
    p.dtype = anchor.inputs[0].type.dtype
    return p


def _normalize(anchor: Node) -> GemmProblem:
    a_shape, b_shape = shape_of(anchor.inputs[0]), shape_of(anchor.inputs[1])
    out_shape = shape_of(anchor.outputs[0])
    if anchor.op == "Gemm":
        ta, tb = bool(anchor.attr("transA")), bool(anchor.attr("transB"))
        m, k = (a_shape[1], a_shape[0]) if ta else a_shape
        n = b_shape[0] if tb else b_shape[1]
        sam, sak = (1, m) if ta else (k, 1)
        sbk, sbn = (1, k) if tb else (n, 1)
        c = anchor.input(2)
        return GemmProblem(anchor, m, n, k, (), (), (), sam, sak, sbk, sbn, float(anchor.attr("alpha")),
                           float(anchor.attr("beta")) if c is not None else 0.0, c, out_shape, (m,),
                           False, False)
    a_vec, b_vec = len(a_shape) == 1, len(b_shape) == 1
    a2 = (1, *a_shape) if a_vec else a_shape
    b2 = (*b_shape, 1) if b_vec else b_shape
    m, k = a2[-2:]
    n = b2[-1]
    batch = tuple(out_shape[:len(out_shape) - (0 if a_vec else 1) - (0 if b_vec else 1)])
    sbk, sbn = (1, 1) if b_vec else (n, 1)
    b_batch = b2[:-2]
    if math.prod(b_batch) == 1 and len(a2) > 2:
        # Fold A's batch dims into M: one big (batch*M) x K @ K x N product.
        rows = math.prod(a2[:-1])
        row_shape = out_shape if b_vec else out_shape[:-1]
        return GemmProblem(anchor, rows, n, k, (), (), (), k, 1, sbk, sbn, 1.0, 0.0, None, out_shape,
                           tuple(row_shape), a_vec, b_vec)
    a_strides = _batch_strides(a2[:-2], batch, m * k)
    b_strides = _batch_strides(b_batch, batch, k * n)
    return GemmProblem(anchor, m, n, k, batch, a_strides, b_strides, k, 1, sbk, sbn, 1.0, 0.0, None,
                       out_shape, (m,), a_vec, b_vec)


def _batch_strides(dims: tuple[int, ...], batch: tuple[int, ...], matrix: int) -> tuple[int, ...]:
    """Element strides of an operand's batch dims aligned to the output's (0 where broadcast)."""
    padded = (1,) * (len(batch) - len(dims)) + tuple(dims)
    strides, acc = [], matrix
    for d in reversed(padded):
        strides.append(acc if d != 1 else 0)
        acc *= d
    return tuple(reversed(strides))


# ------------------------------------------------------------------ epilogue
class Epilogue:
    """Stores accumulators through alpha/beta*C and the fused elementwise ops."""

    def __init__(self, kb: KernelBuilder, tf: TaskFunction, node: Node, p: GemmProblem) -> None:
        self.kb, self.tf, self.b, self.p = kb, tf, tf.builder, p
        body, keys, outputs = body_and_keys(node)
        self.outputs = list(zip(outputs, node.outputs))  # (body value, node value)
        self.anchor_out = p.anchor.outputs[0]
        self._current: Optional[ir.Value] = None
        self.lanes = p.lanes(kb)
        self.ev = Evaluator(kb, tf, body, self.lanes, provided={id(self.anchor_out): self._provide},
                            leaf_keys=keys, members=nodes_of(node))
        self.vector = body is None or vector_ok(body, outputs, provided=[self.anchor_out],
                                                members=nodes_of(node))
        if p.b_is_vector:
            self.vector = False

    def _provide(self, idx: list[ir.Value], vector: bool) -> ir.Value:
        """The anchor's value at ``idx``: alpha * acc + beta * C (acc is the element being stored)."""
        b, p = self.b, self.p
        acc = self._current
        if vector and not isinstance(acc.type, ir.VectorType):
            acc = splat(b, acc, self.lanes)
        if p.alpha != 1.0:
            acc = b.fmul(acc, _const_like(acc, p.alpha))
        if p.c is not None and p.beta != 0.0:
            c_shape = shape_of(p.c)
            sub = broadcast_index(b, idx, self.p.out_shape, c_shape)
            along_n = vector and len(c_shape) > 0 and c_shape[-1] != 1
            cv = self.ev.value_at(p.c, sub, along_n)
            if vector and not along_n:
                cv = splat(b, cv, self.lanes)
            if p.beta != 1.0:
                cv = b.fmul(cv, _const_like(cv, p.beta))
            acc = b.fadd(acc, cv)
        return acc

    def begin(self) -> None:
        """Call at the start of each tile's epilogue (memoized loads belong to one block)."""
        self.ev.forget()

    def _store(self, idx: list[ir.Value], offset: ir.Value, acc: ir.Value, vector: bool) -> None:
        self._current = acc
        for body_out, node_out in self.outputs:
            value = self.ev.value_at(body_out, idx, vector)
            ptr = self.tf.value_pointer(node_out)
            value = store_convert(self.b, value, node_out.type.dtype)
            target = self.b.gep(ptr, [offset])
            if vector:
                target = self.b.bitcast(target, value.type.as_pointer())
            self.b.store(value, target, align=4)
        self._current = None

    def store(self, batch: tuple[ir.Value, list[ir.Value]], m: ir.Value, n: ir.Value, acc: ir.Value,
              count: int) -> None:
        """Store ``count`` columns of ``acc`` (a vector, or a scalar when count == 0) at (batch, m, n...)."""
        b = self.b
        bt, batch_idx = batch
        row = b.mul(b.add(b.mul(bt, const_int(self.p.m)), m), const_int(self.p.n)) if self.p.batch \
            else b.mul(m, const_int(self.p.n))
        if not isinstance(acc.type, ir.VectorType):
            self._store(self.p.out_index(b, batch_idx, m, n), b.add(row, n), acc, False)
            return
        lanes = acc.type.count
        if count == lanes and self.vector:
            self._store(self.p.out_index(b, batch_idx, m, n), b.add(row, n), acc, True)
            return
        for j in range(count):
            col = b.add(n, const_int(j))
            lane = b.extract_element(acc, const_int(j, I32))
            self._store(self.p.out_index(b, batch_idx, m, col), b.add(row, col), lane, False)


def _const_like(v: ir.Value, x: float) -> ir.Value:
    if isinstance(v.type, ir.VectorType):
        return ir.Constant(v.type, [x] * v.type.count)
    return ir.Constant(v.type, x)


def batch_offsets(b: ir.IRBuilder, bt: ir.Value, p: GemmProblem) -> tuple[list[ir.Value], ir.Value, ir.Value]:
    """(batch multi-index, A element offset, B element offset) of batch index ``bt``."""
    if not p.batch:
        return [], const_int(0), const_int(0)
    idx = delinearize(b, bt, p.batch)
    a_off, b_off = const_int(0), const_int(0)
    for i, sa, sb in zip(idx, p.a_batch_strides, p.b_batch_strides):
        if sa:
            a_off = b.add(a_off, b.mul(i, const_int(sa)))
        if sb:
            b_off = b.add(b_off, b.mul(i, const_int(sb)))
    return idx, a_off, b_off

