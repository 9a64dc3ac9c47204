"""Lowering a scheduled, planned graph to LLVM modules: one per distinct kernel, one for the entry points.

The graph must come with its pass results: the memory plan (``plan-memory``:
``Graph.memory`` and the values' placements, read through
``ir.memory.plan_of``) and a schedule on each kernel node that needs one
(``schedule``: ``Node.schedule``).  Nothing here recomputes them: a graph
without a plan, with an unplaced intermediate or with a stale schedule is
refused with a ``BackendError`` naming the pass to run.

Every top-level node becomes a kernel (task function) unless the memory plan
made it a view.  Every value gets a location: the i-th input or output buffer
the caller passes, the weights blob (constants, those of fused bodies
included), or an offset in the arena (the memory plan).  The entry point

    i32 nnc_run(i8* weights, i8** inputs, i8** outputs, i8* arena, i8* pool)

runs the kernels in order through ``nnc_parallel_for``; ``nnc_run_profiled``
does the same and writes each kernel's nanoseconds into an extra i64 array.
Nothing allocates: all memory comes from the caller.

Each kernel is generated into a module of its own, with a canonical name,
so that its text depends only on what the kernel computes (body, shapes,
schedule, target): the function is named after a hash of that text
(``nnc_k_<hash>``), kernels with the same text share one function (the
model is compiled once per distinct kernel), and the text is the key of
the on-disk kernel cache (``kernel_cache.py``).  The entry module declares
the kernel functions it calls; the objects are linked together afterwards.

Given the cache, a kernel whose generator input was seen before (its kernel
record: the node as printed, its inputs' types and constants, the generator,
the target and the code generators' sources, those of extensions included)
is not generated again: the record gives its symbol, task count and
buffers, the cache its object code (``Lowered.precompiled``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir.errors import BackendError
from ir.graph import Graph, Node, Value
from ir.types import TensorType
from ir.memory import ALIGNMENT, MemoryPlan, plan_of
from ir.printer import Printer, tensor_digest
from ir.schedule import stale_schedule

from .codegen import I8P, I8PP, I32, I64, KernelBuilder, VOID, const_int
from .kernel_cache import KernelCache, code_digest, kernel_key, registry_digest
from .kernels import Kernel, find_generator
from .scheduling import kernel_kind

ENTRY = "nnc_run"
ENTRY_PROFILED = "nnc_run_profiled"
KERNEL_PREFIX = "nnc_k_"
_PLACEHOLDER = "nnc_kernel"   # a kernel function's name while its text is hashed


@dataclass(frozen=True)
class Location:
    """Where a tensor lives: ``space`` is input, output, weights or arena; ``offset`` in bytes."""

    space: str
    index: int = 0
    offset: int = 0


@dataclass
class Lowered:
    """What the executable and the C bundle need from a lowered graph."""

    module: ir.Module                     # the entry points (nnc_run, nnc_run_profiled)
    kernels: list[Kernel]                 # one per kernel call, in order (names may repeat)
    weights: np.ndarray                   # the blob (uint8), 64-byte aligned entries
    weights_index: list[dict[str, Any]]   # name, dtype, shape, offset, nbytes per constant
    arena_bytes: int
    inputs: list[Value]
    outputs: list[Value]
    copies: list[tuple[Location, Location, int]] = field(default_factory=list)  # output copies
    functions: dict[str, str] = field(default_factory=dict)  # distinct kernel symbol -> its module's text
    precompiled: dict[str, bytes] = field(default_factory=dict)  # symbol -> object, from the kernel cache

    def units(self) -> list[tuple[str, str]]:
        """(name, LLVM IR text) of every module to compile: the distinct kernels, then the entry points."""
        return [*self.functions.items(), ("entry", str(self.module))]

    def ir_text(self) -> str:
        """All the generated LLVM IR, for reading and comparing."""
        return "\n".join(text for _, text in self.units())


def _nbytes(v: Value) -> int:
    t = v.type
    if not isinstance(t, TensorType) or not t.is_static:
        raise BackendError("the cpu target needs static shapes", subject=f"%{v.name}", found=str(t))
    return int(t.numel) * t.dtype.itemsize  # type: ignore[operator]


def pack_weights(graph: Graph) -> tuple[np.ndarray, list[dict[str, Any]], dict[int, int]]:
    """All constants (fused bodies' too) in one blob; returns (blob, index, id(value) -> offset)."""
    chunks, index, offsets, pos = [], [], {}, 0
    for key, v in graph.all_constants():
        arr = np.ascontiguousarray(v.const)
        if arr.dtype == object:
            continue
        pad = (-pos) % ALIGNMENT
        chunks.append(np.zeros(pad, np.uint8))
        pos += pad
        offsets[id(v)] = pos
        index.append({"name": key, "dtype": v.type.dtype.short, "shape": list(arr.shape),
                      "offset": pos, "nbytes": arr.nbytes})
        chunks.append(arr.view(np.uint8).reshape(-1))
        pos += arr.nbytes
    blob = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return blob, index, offsets


def current_plan(graph: Graph) -> MemoryPlan:
    """The graph's memory plan; a BackendError when it has none or it misses an intermediate."""
    plan = plan_of(graph)
    if plan is None:
        raise BackendError("the graph has no memory plan", subject=f"graph @{graph.name}",
                           hint="run the `plan-memory` pass last (it ends the cpu pipeline)")
    for n in graph.nodes:
        for o in n.outputs:
            if o.placement is None and not o.is_graph_output:
                raise BackendError("an intermediate has no place in the memory plan",
                                   subject=f"%{o.name} of {n.describe()}",
                                   hint="a pass rewrote the graph after planning: re-run `plan-memory` last")
    return plan


class Lowering:
    def __init__(self, graph: Graph, kb: KernelBuilder, cache: Optional[KernelCache] = None,
                 machine: Optional[tuple] = None, sink: Optional[Callable[[str, str], None]] = None) -> None:
        self.graph = graph
        self.sink = sink
        self.kb = kb
        self.cache = cache if machine is not None else None
        self.machine = machine
        self.precompiled: dict[str, bytes] = {}
        self._code = code_digest() + registry_digest() if self.cache is not None else ""
        self.plan = current_plan(graph)
        self.weights, self.weights_index, self.const_offsets = pack_weights(graph)
        self.locations: dict[int, Location] = {}
        self.functions: dict[str, str] = {}

    # ------------------------------------------------------------ locations
    def _locate_all(self) -> None:
        g = self.graph
        for i, v in enumerate(g.inputs):
            self.locations[id(v)] = Location("input", i)
        for k, v in enumerate(g.outputs):
            if v.producer is not None and id(v) not in self.locations:
                self.locations[id(v)] = Location("output", k)
        for key, v in g.all_constants():
            if id(v) in self.const_offsets:
                self.locations[id(v)] = Location("weights", offset=self.const_offsets[id(v)])
        by_name = {o.name: o for n in g.nodes for o in n.outputs}
        for name, entry in self.plan.entries.items():
            v = by_name.get(name)
            if v is not None and id(v) not in self.locations:
                self.locations[id(v)] = Location("arena", offset=entry.offset)

    def location(self, v: Value) -> Location:
        loc = self.locations.get(id(v))
        if loc is None:
            raise BackendError("value has no memory location (is the memory plan stale?)",
                               subject=f"%{v.name}")
        return loc

    def is_view(self, node: Node) -> bool:
        """A node the plan turned into a view: its output shares its input's bytes."""
        if len(node.outputs) != 1:
            return False
        entry = self.plan.entries.get(node.outputs[0].name)
        return entry is not None and entry.kind.startswith("view-of:")

    # -------------------------------------------------------------- kernels
    def lower(self) -> Lowered:
        self._locate_all()
        kernels: list[tuple[Kernel, Node]] = []
        missing = []
        from tqdm import tqdm
        todo = [n for n in self.graph.nodes if not self.is_view(n)]
        for node in tqdm(todo, desc="codegen", unit="kernel", disable=None, leave=False):
            kind = kernel_kind(node)
            gen, why = find_generator(kind, node)
            if gen is None:
                missing.append(f"{node.describe()}: {why}")
                continue
            stale = stale_schedule(node)
            if stale is not None:
                raise BackendError(f"the schedule is stale: {stale}", subject=node.describe(),
                                   hint="re-run the `schedule` pass after the last rewrite")
            kernels.append((self._emit(gen, node), node))
        if missing:
            raise BackendError("the cpu target cannot compile these nodes", found="; ".join(missing[:5]))
        copies = self._output_copies()
        self._entry(kernels, copies, profiled=False)
        self._entry(kernels, copies, profiled=True)
        return Lowered(self.kb.module, [k for k, _ in kernels], self.weights, self.weights_index,
                       self.plan.arena_bytes, list(self.graph.inputs), list(self.graph.outputs), copies,
                       self.functions, self.precompiled)

    def _emit(self, gen, node: Node) -> Kernel:
        """``node``'s kernel from its record in the cache, else generated (and recorded)."""
        rkey = self._record_key(gen, node) if self.cache is not None else None
        if rkey is not None:
            kernel = self._from_record(rkey, node)
            if kernel is not None:
                return kernel
        kernel, text = self._generate(gen, node)
        if rkey is not None:
            buffers = self._describe(kernel.buffers, node)
            if buffers is not None:
                self.cache.put_record(rkey, {"symbol": kernel.name, "n_tasks": kernel.n_tasks, "label": kernel.label,
                                             "buffers": buffers, "object": kernel_key(text, self.machine)})
        return kernel

    # ------------------------------------------------------- kernel records
    def _record_key(self, gen, node: Node) -> str:
        """Everything generating ``node``'s kernel depends on, hashed."""
        h = hashlib.sha256()
        for part in (self._code, repr(self.machine), repr(sorted(self.kb.target.to_json().items())),
                     f"{gen.emit.__module__}.{gen.emit.__qualname__}", Printer().node(node, "")):
            h.update(part.encode() + b"\0")
        for v in node.inputs:
            if v is None:
                h.update(b"none\0")
                continue
            h.update(f"{v.type} {v.placement}".encode() + b"\0")
            if v.const is not None:
                h.update(tensor_digest(np.asarray(v.const)).encode() + b"\0")
        return h.hexdigest()

    @staticmethod
    def _constants(node: Node) -> dict[str, Value]:
        """The constants of the node's subgraphs (a fused node's body), by key."""
        out: dict[str, Value] = {}
        for name, attr in node.attrs.items():
            if isinstance(attr, Graph):
                out.update(attr.all_constants(f"{name}/"))
        return out

    def _describe(self, buffers: list[Any], node: Node) -> Optional[list[list]]:
        """The buffers as ["in", i], ["out", i] or ["const", key]; None if one is something else."""
        where: dict[int, list] = {}
        for k, v in self._constants(node).items():
            where.setdefault(id(v), ["const", k])
        for i, v in enumerate(node.outputs):
            where[id(v)] = ["out", i]
        for i, v in reversed(list(enumerate(node.inputs))):
            if v is not None:
                where[id(v)] = ["in", i]
        out = [where.get(id(b)) for b in buffers]
        return None if any(d is None for d in out) else out

    def _from_record(self, rkey: str, node: Node) -> Optional[Kernel]:
        rec = self.cache.get_record(rkey)
        if rec is None:
            return None
        try:
            consts = self._constants(node)
            buffers = [node.inputs[i] if kind == "in" else node.outputs[i] if kind == "out" else consts[i]
                       for kind, i in rec["buffers"]]
            symbol, n_tasks, label, obj_key = rec["symbol"], int(rec["n_tasks"]), str(rec["label"]), rec["object"]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        if any(b is None for b in buffers) or not str(symbol).startswith(KERNEL_PREFIX):
            return None
        if symbol not in self.functions and symbol not in self.precompiled:
            obj = self.cache.get(obj_key)
            if obj is None:
                return None
            self.precompiled[symbol] = obj
        return Kernel(symbol, n_tasks, buffers, label)

    def _generate(self, gen, node: Node) -> tuple[Kernel, str]:
        """Generate ``node``'s kernel in a module of its own and name it after its text's hash."""
        kb = KernelBuilder(self.kb.target, "kernel")
        kernel = gen.emit(kb, node, node.schedule)
        fn = kb.module.globals[kernel.name]
        extra = [f.name for f in kb.module.functions if not f.is_declaration and f is not fn]
        if extra:
            raise BackendError("a kernel generator defined more than its task function",
                               subject=node.describe(), found=", ".join(extra))
        fn.linkage = ""  # the entry module, another object, calls it
        text = str(kb.module).replace(f'@"{kernel.name}"(', f'@"{_PLACEHOLDER}"(', 1)
        symbol = KERNEL_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:24]
        text = text.replace(f'@"{_PLACEHOLDER}"(', f'@"{symbol}"(', 1)
        if symbol not in self.functions and symbol not in self.precompiled:
            self.functions[symbol] = text
            if self.sink is not None:
                self.sink(symbol, text)
        kernel.name = symbol
        return kernel, text

    def _output_copies(self) -> list[tuple[Location, Location, int]]:
        """Outputs that are inputs, constants, views or repeated outputs are copied at the end."""
        copies = []
        for k, v in enumerate(self.graph.outputs):
            loc = self.location(v)
            if loc != Location("output", k):
                copies.append((loc, Location("output", k), _nbytes(v)))
        return copies

    # ---------------------------------------------------------------- entry
    def _entry(self, kernels: list[tuple[Kernel, Node]], copies, profiled: bool) -> None:
        kb = self.kb
        args = [I8P, I8PP, I8PP, I8P, I8P] + ([I64.as_pointer()] if profiled else [])
        fn = ir.Function(kb.module, ir.FunctionType(I32, args), ENTRY_PROFILED if profiled else ENTRY)
        weights, inputs, outputs, arena, pool = fn.args[:5]
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        task_ty = ir.FunctionType(VOID, [I8P, I64]).as_pointer()
        pfor = kb.declare("nnc_parallel_for", VOID, [I8P, task_ty, I8P, I64])
        now = kb.declare("nnc_now_ns", I64, []) if profiled else None
        max_slots = max([len(k.buffers) for k, _ in kernels] + [1])
        slots = b.alloca(I8P, size=const_int(max_slots, I32), name="buffers")

        def pointer(loc: Location) -> ir.Value:
            if loc.space == "input":
                return b.load(b.gep(inputs, [const_int(loc.index)]))
            if loc.space == "output":
                return b.load(b.gep(outputs, [const_int(loc.index)]))
            base = weights if loc.space == "weights" else arena
            return b.gep(base, [const_int(loc.offset)])

        for i, (kernel, node) in enumerate(kernels):
            for slot, key in enumerate(kernel.buffers):
                b.store(pointer(self.location(key)), b.gep(slots, [const_int(slot)]))
            t0 = b.call(now, []) if profiled else None
            task = kb.declare(kernel.name, VOID, [I8PP, I64])
            b.call(pfor, [pool, b.bitcast(task, task_ty), b.bitcast(slots, I8P), const_int(kernel.n_tasks)])
            if profiled:
                b.store(b.sub(b.call(now, []), t0), b.gep(fn.args[5], [const_int(i)]))
        memcpy = kb.declare("llvm.memcpy.p0i8.p0i8.i64", VOID, [I8P, I8P, I64, ir.IntType(1)])
        for src, dst, nbytes in copies:
            b.call(memcpy, [pointer(dst), pointer(src), const_int(nbytes), ir.Constant(ir.IntType(1), 0)])
        b.ret(const_int(0, I32))


def lower(graph: Graph, kb: KernelBuilder, cache: Optional[KernelCache] = None,
          machine: Optional[tuple] = None, sink: Optional[Callable[[str, str], None]] = None) -> Lowered:
    """Lower ``graph``; with a ``cache`` (and the ``machine`` its keys are for), reuse kernel records.

    ``sink(symbol, text)`` is called with each distinct kernel function as soon as it is generated
    (``UnitCompiler.add``: compiling starts before the lowering ends).
    """
    return Lowering(graph, kb, cache, machine, sink).lower()
