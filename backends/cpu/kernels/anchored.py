"""The anchor op of a reduction or pooling kernel and the fused elementwise ops around it.

The fuse pass may put elementwise ops before the anchor (a *prologue*: the
``Exp`` of ``ReduceSum(Exp(x))``, the ``Relu`` of ``MaxPool(Relu(x))``) and
elementwise/broadcast ops after it (an *epilogue*: the ``Mul`` after a
Softmax, the ``Sub`` of ``x - ReduceMean(x)``).  A kernel reads its anchor's
input through ``Epilogue.input`` (the prologue is computed by the
``Evaluator`` at that index) and hands each anchor result to
``Epilogue.store``, which evaluates every kernel output that depends on it
in registers and stores it.

An output of the anchor's shape is stored at the anchor's index.  An
epilogue output may also be larger (``x - mean`` broadcasts the reduced
``mean`` back to ``x``'s shape): every element of it depends on one
anchor element (broadcasting maps indices right-aligned), so ``store``
loops over the output's extra dims right there, vectorized along its last
axis when that axis is one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import llvmlite.ir as ir

from ir.graph import Graph, Node, Value
from ir.anchor import anchor_of

from ..codegen import I32, KernelBuilder, TaskFunction, const_int, for_range, splat, store_vector, supported_dtype
from ..evaluator import Evaluator, broadcast_index, injective_support, linear_offset, remaps_index, shape_of, \
    vector_ok
from ..expr import elementwise_support, store_convert
from . import body_and_keys, nodes_of

Index = list


@dataclass
class Anchored:
    """A kernel's node seen as anchor + prologue + epilogue."""

    node: Node                  # the top-level node (a plain op or an nnc.Fused group)
    anchor: Node                # the reduction / pooling op (a body node when fused)
    body: Optional[Graph]
    keys: dict                  # id(body input) -> the node's input value
    outputs: list[Value]        # what the kernel stores (body outputs, or the node's outputs)
    targets: list[Value]        # the top-level values they are stored into
    members: list[Node]

    @classmethod
    def of(cls, node: Node) -> "Anchored":
        body, keys, outs = body_and_keys(node)
        if body is None:  # a plain op: its extra outputs (LayerNorm's Mean...) are the kernel's business
            return cls(node, node, None, keys, outs[:1], list(node.outputs[:1]), [node])
        return cls(node, anchor_of(node), body, keys, outs, list(node.outputs), nodes_of(node))

    @property
    def result(self) -> Value:
        """The anchor's (first) output."""
        return self.anchor.outputs[0]

    def downstream(self) -> set[int]:
        """ids of the member nodes that read the anchor's result, directly or not."""
        inside = {id(n) for n in self.members}
        seen: set[int] = set()
        stack = [self.result]
        while stack:
            v = stack.pop()
            for user in v.users:
                if id(user) in inside and id(user) not in seen:
                    seen.add(id(user))
                    stack.extend(user.outputs)
        return seen


def fused_support(node: Node, anchor_ops: frozenset) -> Optional[str]:
    """Checks shared by every reduction/pool kernel: the group's shape, ops, dtypes and shapes."""
    a = Anchored.of(node)
    if a.anchor.domain != "" or a.anchor.op not in anchor_ops:
        return f"no cpu kernel for {a.anchor.qualified_op}"
    after = a.downstream()
    for n in a.members:
        if n is a.anchor:
            continue
        if n.op == "Fused":
            return "nested fused groups"
        injective = remaps_index(n)
        if injective and id(n) in after:
            return f"{n.qualified_op} after a {a.anchor.op} in one fused kernel"
        why = injective_support(n) if injective else elementwise_support(n)
        if why is not None:
            return why
    producers = {id(o): n for n in a.members for o in n.outputs}
    for o in a.outputs:
        p = producers.get(id(o))
        if p is not a.anchor and (p is None or id(p) not in after):
            return "a fused output that does not depend on the reduction"
    for n in a.members:
        for v in list(n.inputs) + list(n.outputs):
            if v is None:
                continue
            t = v.type
            if not getattr(t, "is_static", False):
                return "the cpu target needs static shapes here"
            if not supported_dtype(t.dtype):
                return f"element type {t.dtype.short} is not supported by the cpu target"
            # Empty inputs are fine (a reduction over an empty set stores its identity); an empty
            # output leaves the kernel with nothing to do.
    return None


def path_values(roots: list[Value], members: list[Node], stop: tuple = ()) -> list[Value]:
    """The values ``roots`` are computed from inside the kernel (roots and leaves included)."""
    inside = {id(n) for n in members}
    stop_ids = {id(v) for v in stop}
    seen: dict[int, Value] = {}
    stack = [v for v in roots if v is not None]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen[id(v)] = v
        if id(v) in stop_ids:
            continue
        p = v.producer
        if p is not None and id(p) in inside:
            stack.extend(i for i in p.inputs if i is not None)
    return list(seen.values())


def has_injective(values: list[Value], members: list[Node]) -> bool:
    inside = {id(n) for n in members}
    for v in values:
        p = v.producer
        if p is not None and id(p) in inside and remaps_index(p):
            return True
    return False


def collapsible(values: list[Value], ref: tuple, axes: range) -> bool:
    """Can the adjacent ``axes`` of ``ref`` be walked as one flat axis?

    True when every value (broadcasting right-aligned to ``ref``) has either
    all of those dims or size 1 in all of them: then an index holding the
    flat position at the run's last axis and 0 at its other axes addresses
    every value correctly (``linear_offset`` is linear in the index).
    """
    rank = len(ref)
    full = [ref[a] for a in axes]
    for v in values:
        s = shape_of(v)
        lead = rank - len(s)
        if lead < 0:
            return False
        dims = [s[a - lead] if a - lead >= 0 else 1 for a in axes]
        if dims != full and any(d != 1 for d in dims):
            return False
    return True


class Provider:
    """Hands the anchor's current result to the Evaluator (``provided=``), as scalar or vector."""

    def __init__(self, b: ir.IRBuilder, lanes: int) -> None:
        self.b = b
        self.lanes = lanes
        self.value: Optional[ir.Value] = None
        self.base: Optional[ir.Value] = None  # index (last axis) of lane 0 when value is a vector

    def set(self, value: ir.Value, base: Optional[ir.Value] = None) -> None:
        self.value, self.base = value, base

    def __call__(self, idx: Index, vector: bool) -> ir.Value:
        v = self.value
        is_vec = isinstance(v.type, ir.VectorType)
        if vector and not is_vec:
            return splat(self.b, v, self.lanes)
        if not vector and is_vec:
            lane = self.b.trunc(self.b.sub(idx[-1], self.base), I32)
            return self.b.extract_element(v, lane)
        return v


class Epilogue:
    """Evaluates the anchor's input (with the prologue) and stores the kernel's outputs."""

    def __init__(self, kb: KernelBuilder, tf: TaskFunction, a: Anchored, lanes: int) -> None:
        self.kb, self.tf, self.a, self.lanes = kb, tf, a, lanes
        self.b = tf.builder
        self.provider = Provider(self.b, lanes)
        self.ev = Evaluator(kb, tf, a.body, lanes, provided={id(a.result): self.provider},
                            leaf_keys=a.keys, members=a.members)
        self.shape = shape_of(a.result)
        self.direct = [(o, t) for o, t in zip(a.outputs, a.targets) if shape_of(o) == self.shape]
        self.expanded = [(o, t) for o, t in zip(a.outputs, a.targets) if shape_of(o) != self.shape]

    def set_lanes(self, lanes: int) -> None:
        """Vector width of what follows (``rows`` runs some loops on several registers' worth)."""
        self.ev.forget()
        self.lanes = self.ev.lanes = self.provider.lanes = lanes

    @property
    def plain(self) -> bool:
        """True when the only output is the anchor's result itself (no epilogue)."""
        return not self.expanded and len(self.direct) == 1 and self.direct[0][0] is self.a.result

    def raw_pointer(self) -> ir.Value:
        """Typed pointer to the (only) output's buffer, for kernels that keep partial results there."""
        return self.tf.value_pointer(self.direct[0][1])

    # ------------------------------------------------------------ inputs
    def input(self, idx: Index, vector: bool, k: int = 0) -> ir.Value:
        """The anchor's k-th input at ``idx`` (prologue ops computed)."""
        return self.ev.value_at(self.a.anchor.inputs[k], idx, vector)

    def operand(self, v: Value, idx: Index, full: tuple, vector: bool) -> ir.Value:
        """``v`` (broadcasting to ``full``) at the index ``idx`` of ``full``; vectors along the last axis."""
        s = shape_of(v)
        sub = broadcast_index(self.b, idx, full, s)
        if vector and (not s or s[-1] == 1):
            return splat(self.b, self.ev.value_at(v, sub, False), self.lanes)
        return self.ev.value_at(v, sub, vector)

    def forget(self) -> None:
        self.ev.forget()

    # ----------------------------------------------------------- vector legality
    def input_vector_ok(self, extra: tuple = ()) -> bool:
        """Can the anchor's inputs be read ``lanes`` at a time along their last axis?"""
        roots = [v for v in list(self.a.anchor.inputs[:1]) + list(extra) if v is not None]
        return vector_ok(self.a.body, roots, members=self.a.members) and \
            not has_injective(path_values(roots, self.a.members), self.a.members)

    def output_vector_ok(self, outputs: Optional[list] = None) -> bool:
        """Can the epilogue outputs be computed ``lanes`` at a time along their last axis?"""
        outs = [o for o, _ in (outputs if outputs is not None else self.direct)]
        if not outs:
            return True
        vals = path_values(outs, self.a.members, stop=(self.a.result,))
        return vector_ok(self.a.body, outs, provided=[self.a.result], members=self.a.members) and \
            not has_injective(vals, self.a.members)

    def reads_activations(self) -> bool:
        """Does the epilogue read a kernel input (not a constant) besides the anchor's result?"""
        for v in self.epilogue_values(self.direct + self.expanded):
            if v is not self.a.result and v.producer is None and v.const is None:
                return True
        return False

    def epilogue_values(self, outputs: list) -> list[Value]:
        return path_values([o for o, _ in outputs], self.a.members, stop=(self.a.result,))

    # ------------------------------------------------------------- stores
    def store(self, idx: Index, value: ir.Value, vector: bool, base: Optional[ir.Value] = None,
              vector_out: bool = True) -> None:
        """Store every output at anchor index ``idx`` given the anchor's ``value`` there.

        ``value`` is a vector of ``lanes`` elements along the last axis from
        ``base`` (= ``idx[-1]``) when ``vector``; ``vector_out`` False makes
        vector values go out one lane at a time (epilogue not vectorizable).
        """
        b = self.b
        self.ev.forget()
        self.provider.set(value, base if base is not None else (idx[-1] if idx else None))
        for out, target in self.direct:
            if vector and not vector_out:
                for lane in range(self.lanes):
                    self.ev.forget()
                    sub = list(idx[:-1]) + [b.add(idx[-1], const_int(lane))]
                    self._store_one(out, target, sub, False)
            else:
                self._store_one(out, target, idx, vector)
        for out, target in self.expanded:
            self._store_expanded(out, target, idx, value, vector, vector_out)
        self.ev.forget()

    def _store_one(self, out: Value, target: Value, idx: Index, vector: bool) -> None:
        b = self.b
        v = self.ev.value_at(out, idx, vector)
        dst = self.tf.value_pointer(target)
        off = linear_offset(b, idx, shape_of(out))
        v = store_convert(b, v, target.type.dtype)
        if vector:
            store_vector(b, v, dst, off)
        else:
            b.store(v, b.gep(dst, [off]))

    def _store_expanded(self, out: Value, target: Value, idx: Index, value: ir.Value, vector: bool,
                        vector_out: bool) -> None:
        """An output that broadcasts the anchor's result: loop over its extra dims here."""
        b = self.b
        es = shape_of(out)
        lead = len(es) - len(self.shape)
        fixed: list = []
        loops: list[int] = []
        for j, d in enumerate(es):
            k = j - lead
            if k >= 0 and self.shape[k] == d:
                fixed.append(idx[k])
            else:
                fixed.append(None)
                if d > 1:
                    loops.append(j)
                else:
                    fixed[j] = const_int(0)
        last = len(es) - 1
        vec_ok = self.output_vector_ok([(out, target)])
        if vector and (not vec_ok or not vector_out):
            # A vector result whose epilogue cannot run in vectors: one lane at a time.
            for lane in range(self.lanes):
                sub = list(idx[:-1]) + [b.add(idx[-1], const_int(lane))]
                self.provider.set(value, idx[-1])
                self._store_expanded(out, target, sub, value, False, False)
            return
        vec_last = (not vector and loops and loops[-1] == last and es[last] >= self.lanes and vec_ok
                    and vector_out)

        def nest(depth: int, cur: list) -> None:
            if depth == len(loops):
                self.ev.forget()
                self._store_one(out, target, list(cur), vector)
                return
            j = loops[depth]
            if depth == len(loops) - 1 and vec_last:
                full = es[j] // self.lanes * self.lanes
                with for_range(b, 0, full, self.lanes, name="ev") as i:
                    cur[j] = i
                    self.ev.forget()
                    self._store_one(out, target, list(cur), True)
                self.ev.forget()
                if full < es[j]:
                    with for_range(b, full, es[j], name="et") as i:
                        cur[j] = i
                        self.ev.forget()
                        self._store_one(out, target, list(cur), False)
                    self.ev.forget()
                return
            with for_range(b, 0, es[j], name=f"e{j}") as i:
                cur[j] = i
                nest(depth + 1, cur)
            self.ev.forget()

        nest(0, fixed)


def task_count(total_elements: int, outer: int, min_task: int = 1 << 14) -> int:
    """Tasks for ``outer`` independent slices of ``total_elements`` work: ~min_task elements each."""
    return max(1, min(outer, total_elements // min_task))


def numel(shape) -> int:
    return int(math.prod(shape)) if shape else 1


__all__ = ["Anchored", "Epilogue", "Provider", "collapsible", "fused_support", "has_injective", "numel",
           "path_values", "task_count"]
