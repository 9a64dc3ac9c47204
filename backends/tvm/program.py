"""The graph as a kernel program: which PrimFunc runs, in our order, on which memory.

``lower_graph`` reads the pass results and never recomputes them: the memory
plan (``plan-memory``) gives each intermediate its offset in the one arena,
views (Reshape and the like, aliased by the plan) cost no kernel, constants
(fused bodies' too) are packed into one weights blob, and every other
top-level node becomes one kernel call.  Identical kernels (same PrimFunc
structure: ResNet's repeated blocks) share one function in the library.

A ``Program`` is plain data, saved as JSON beside the library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

import numpy as np
import tvm_ffi

from ir.errors import BackendError
from ir.graph import Graph, Node, Value
from ir.memory import ALIGNMENT, plan_of
from ir.types import TensorType

from .kernel import KernelDef, build_kernel
from .rules import NARROW_INTS, tvm_dtype


@dataclass(frozen=True)
class Slot:
    """Where one kernel argument lives: ``space`` is input, output, weights or arena."""

    space: str
    index: int
    offset: int
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    elem: str = ""  # a model output's narrow element type (DType name, e.g. I4) held as ``dtype``

    @staticmethod
    def from_json(d: dict[str, Any]) -> Slot:
        return Slot(d["space"], int(d["index"]), int(d["offset"]), tuple(d["shape"]), d["dtype"], int(d["nbytes"]),
                    d.get("elem", ""))


@dataclass
class Call:
    symbol: str
    label: str
    args: list[Slot]


@dataclass
class Program:
    calls: list[Call]
    inputs: list[Slot]
    outputs: list[Slot]
    arena_bytes: int
    weights_bytes: int
    copies: list[tuple[Slot, Slot]] = field(default_factory=list)  # (from, to) after the kernels

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> Program:
        calls = [Call(c["symbol"], c["label"], [Slot.from_json(a) for a in c["args"]]) for c in d["calls"]]
        return Program(calls, [Slot.from_json(s) for s in d["inputs"]], [Slot.from_json(s) for s in d["outputs"]],
                       int(d["arena_bytes"]), int(d["weights_bytes"]),
                       [(Slot.from_json(a), Slot.from_json(b)) for a, b in d.get("copies", [])])


@dataclass
class Lowered:
    program: Program
    weights: np.ndarray               # uint8 blob
    functions: dict[str, Any]         # symbol -> unscheduled PrimFunc
    kernels: list[KernelDef]


def _static(v: Value) -> tuple[tuple[int, ...], int]:
    t = v.type
    if not isinstance(t, TensorType) or not t.is_static:
        raise BackendError("the tvm target needs static shapes", subject=f"%{v.name}", found=str(t),
                           hint="the driver compiles one static specialization per input signature")
    shape = tuple(int(d) for d in t.shape)
    return shape, int(np.prod(shape, dtype=np.int64)) * t.dtype.itemsize


def pack_weights(graph: Graph) -> tuple[np.ndarray, dict[int, int]]:
    """Every constant (fused bodies' too) in one blob, 64-byte aligned; id(value) -> offset."""
    chunks, offsets, pos = [], {}, 0
    for _, v in graph.all_constants():
        arr = np.asarray(v.const)
        if arr.dtype == object:
            continue
        if v.type.dtype in NARROW_INTS:  # held as byte-sized values in kernels
            arr = arr.astype(NARROW_INTS[v.type.dtype][0])
        pad = (-pos) % ALIGNMENT
        chunks.append(np.zeros(pad, np.uint8))
        pos += pad
        offsets[id(v)] = pos
        chunks.append(np.frombuffer(arr.tobytes(order="C"), np.uint8))
        pos += arr.nbytes
    blob = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return blob, offsets


class _Locator:
    def __init__(self, graph: Graph, const_offsets: dict[int, int]) -> None:
        plan = plan_of(graph)
        if plan is None:
            raise BackendError("the graph has no memory plan", subject=f"graph @{graph.name}",
                               hint="run the `plan-memory` pass last (it ends the tvm pipeline)")
        self.plan = plan
        self.where: dict[int, tuple[str, int, int]] = {}
        for i, v in enumerate(graph.inputs):
            self.where[id(v)] = ("input", i, 0)
        for k, v in enumerate(graph.outputs):
            if v.producer is not None and id(v) not in self.where:
                self.where[id(v)] = ("output", k, 0)
        for _, v in graph.all_constants():
            if id(v) in const_offsets:
                self.where[id(v)] = ("weights", 0, const_offsets[id(v)])
        for n in graph.nodes:
            for o in n.outputs:
                if id(o) in self.where or o is None:
                    continue
                entry = plan.entries.get(o.name)
                if entry is None:
                    raise BackendError("an intermediate has no place in the memory plan",
                                       subject=f"%{o.name} of {n.describe()}",
                                       hint="a pass rewrote the graph after planning: re-run `plan-memory` last")
                self.where[id(o)] = ("arena", 0, entry.offset)

    def slot(self, v: Value) -> Slot:
        loc = self.where.get(id(v))
        if loc is None:
            raise BackendError("value has no memory location (is the memory plan stale?)", subject=f"%{v.name}")
        shape, nbytes = _static(v)
        return Slot(loc[0], loc[1], loc[2], shape, tvm_dtype(v.type), nbytes)

    def is_view(self, node: Node) -> bool:
        if len(node.outputs) != 1:
            return False
        entry = self.plan.entries.get(node.outputs[0].name)
        return entry is not None and entry.kind.startswith("view-of:")


def lower_graph(graph: Graph, gpu: bool = False) -> Lowered:
    """Kernels and the program that runs them (unscheduled PrimFuncs, deduplicated).

    ``gpu``: max/min reductions use TVM's finite identities, which GPU cross-thread
    reduction needs (a row of -inf then reduces to the lowest float, not -inf)."""
    weights, offsets = pack_weights(graph)
    loc = _Locator(graph, offsets)
    calls: list[Call] = []
    functions: dict[str, Any] = {}
    by_hash: dict[int, list[tuple[Any, str]]] = {}
    kernels: list[KernelDef] = []
    for node in graph.nodes:
        if loc.is_view(node) or all(o is None or _static(o)[1] == 0 for o in node.outputs):
            continue  # a view costs nothing; an empty result has nothing to compute
        k = build_kernel(node, exact_extremes=not gpu)
        kernels.append(k)
        symbol = _dedup(k, by_hash, functions)
        calls.append(Call(symbol, k.label, [loc.slot(v) for v in k.params]))
    inputs = [loc.slot(v) for v in graph.inputs]
    outputs = []
    copies = []
    for k, v in enumerate(graph.outputs):
        shape, nbytes = _static(v)
        out = Slot("output", k, 0, shape, tvm_dtype(v.type), nbytes,
                   v.type.dtype.name if v.type.dtype in NARROW_INTS else "")
        outputs.append(out)
        src = loc.slot(v)
        if src != replace(out, elem=""):
            copies.append((src, out))
    program = Program(calls, inputs, outputs, loc.plan.arena_bytes, int(weights.nbytes), copies)
    return Lowered(program, weights, functions, kernels)


def _dedup(k: KernelDef, by_hash: dict[int, list[tuple[Any, str]]], functions: dict[str, Any]) -> str:
    h = tvm_ffi.structural_hash(k.func)
    for func, symbol in by_hash.get(h, []):
        if tvm_ffi.structural_equal(func, k.func):
            return symbol
    tag = "".join(ch if ch.isalnum() else "_" for ch in k.label.split(" ")[0].lower())[:40]
    symbol = f"nnc_k{len(functions)}_{tag}"
    functions[symbol] = k.func
    by_hash.setdefault(h, []).append((k.func, symbol))
    return symbol


