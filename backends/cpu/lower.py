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

    i32 nnc_run(i8* weights, i8** inputs, i8** outputs, i8* arena, i8* pool, i64 batch)

runs the kernels in order through ``nnc_parallel_for``; ``nnc_run_profiled``
does the same and writes each kernel's nanoseconds into an extra i64 array.
Nothing allocates: all memory comes from the caller.

``batch`` must be 1 unless the graph describes one sample of a batch
(``Graph.batch``, see ``ir/batch.py``).  Then each kernel runs over the
batch through ``nnc_parallel_for_batched``: sample b's buffers are the
one-sample ones moved by b times their stride (an input's or output's
one-sample size, the one-sample arena rounded up to ``ALIGNMENT``, 0 for
weights and unbatched inputs), and the batch x tasks calls share the
threads.  Every sample runs the same code on its own bytes, so a row's
result does not depend on the batch size.  The arena holds ``batch``
one-sample arenas.

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

from ir.batch import BatchSignature
from ir.errors import BackendError
from ir.graph import Graph, Node, Value
from ir.types import TensorType
from ir.memory import ALIGNMENT, MemoryPlan, aligned_buffer, plan_of
from ir.printer import Printer, tensor_digest
from ir.schedule import stale_schedule

from .codegen import I8P, I8PP, I32, I64, KernelBuilder, VOID, const_int, for_range
from .kernel_cache import KernelCache, code_digest, kernel_key, registry_digest
from .kernels import Kernel, find_generator
from .scheduling import kernel_kind

ENTRY = "nnc_run"
ERR_BATCH = -3      # the batch count is not 1 for an unbatched graph, or below 1
MAX_SLOTS = 256     # NNC_MAX_SLOTS of runtime/c/nnc_runtime.h: buffers one batched kernel may take
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
    arena_bytes: int                      # per sample when ``batch`` is set
    inputs: list[Value]
    outputs: list[Value]
    copies: list[tuple[Location, Location, int]] = field(default_factory=list)  # output copies
    functions: dict[str, str] = field(default_factory=dict)  # distinct kernel symbol -> its module's text
    precompiled: dict[str, bytes] = field(default_factory=dict)  # symbol -> object, from the kernel cache
    batch: Optional[BatchSignature] = None  # the entry points take the batch count at run time

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
    """All constants (fused bodies' too) in one aligned blob; returns (blob, index, id(value) -> offset).

    Each entry starts at a multiple of ``ALIGNMENT``; the blob is allocated once
    and filled in place (a 100 MB model is copied once, not three times).
    """
    entries, index, offsets, pos = [], [], {}, 0
    for key, v in graph.all_constants():
        arr = np.ascontiguousarray(v.const)
        if arr.dtype == object:
            continue
        pos += (-pos) % ALIGNMENT
        offsets[id(v)] = pos
        index.append({"name": key, "dtype": v.type.dtype.short, "shape": list(arr.shape),
                      "offset": pos, "nbytes": arr.nbytes})
        entries.append((arr, pos))
        pos += arr.nbytes
    blob = aligned_buffer(pos)
    for arr, offset in entries:
        blob[offset:offset + arr.nbytes] = arr.reshape(-1).view(np.uint8)
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
        self.batch = graph.batch
        self._stride_globals: dict[tuple[int, ...], ir.GlobalVariable] = {}
        if self.batch is not None and (len(self.batch.inputs) != len(graph.inputs)
                                       or len(self.batch.outputs) != len(graph.outputs)):
            raise BackendError("the graph's batch signature does not match its inputs and outputs",
                               subject=f"graph @{graph.name}")

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

    def arena_stride(self) -> int:
        """Bytes between two samples' arenas: the one-sample arena, aligned."""
        return -(-self.plan.arena_bytes // ALIGNMENT) * ALIGNMENT

    def stride(self, loc: Location) -> int:
        """Bytes between sample b's and sample b+1's copy of what lives at ``loc`` (batched graphs)."""
        assert self.batch is not None
        if loc.space == "input":
            return _nbytes(self.graph.inputs[loc.index]) if self.batch.inputs[loc.index] else 0
        if loc.space == "output":
            return _nbytes(self.graph.outputs[loc.index]) if self.batch.outputs[loc.index] else 0
        if loc.space == "arena":
            return self.arena_stride()
        return 0  # weights: shared

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
                       self.arena_stride() if self.batch else self.plan.arena_bytes, list(self.graph.inputs),
                       list(self.graph.outputs), copies, self.functions, self.precompiled, self.batch)

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
    def _strides_global(self, strides: list[int]) -> ir.GlobalVariable:
        """A constant i64 array of a kernel's buffer strides (one per distinct list, shared by both entries).

        A global, not stores into a stack array: LLVM would turn those stores
        into aligned vector loads from a constant pool, whose alignment the
        relocatable link of the C bundle does not keep.
        """
        key = tuple(strides)
        cached = self._stride_globals.get(key)
        if cached is None:
            ty = ir.ArrayType(I64, max(1, len(strides)))
            cached = ir.GlobalVariable(self.kb.module, ty, name=self.kb.unique("nnc_strides"))
            cached.initializer = ir.Constant(ty, list(strides) or [0])
            cached.global_constant = True
            cached.linkage = "internal"
            cached.align = 8
            self._stride_globals[key] = cached
        return cached

    def _entry(self, kernels: list[tuple[Kernel, Node]], copies, profiled: bool) -> None:
        kb = self.kb
        args = [I8P, I8PP, I8PP, I8P, I8P, I64] + ([I64.as_pointer()] if profiled else [])
        fn = ir.Function(kb.module, ir.FunctionType(I32, args), ENTRY_PROFILED if profiled else ENTRY)
        weights, inputs, outputs, arena, pool, batch = fn.args[:6]
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        run = fn.append_basic_block("run")
        refuse = fn.append_basic_block("bad_batch")
        ok = b.icmp_signed(">=", batch, const_int(1)) if self.batch else b.icmp_signed("==", batch, const_int(1))
        b.cbranch(ok, run, refuse)
        b.position_at_end(refuse)
        b.ret(const_int(ERR_BATCH, I32))
        b.position_at_end(run)
        task_ty = ir.FunctionType(VOID, [I8P, I64]).as_pointer()
        pfor = kb.declare("nnc_parallel_for", VOID, [I8P, task_ty, I8P, I64])
        pfor_batched = kb.declare("nnc_parallel_for_batched", VOID,
                                  [I8P, task_ty, I8PP, I64.as_pointer(), I64, I64, I64]) if self.batch else None
        now = kb.declare("nnc_now_ns", I64, []) if profiled else None
        max_slots = max([len(k.buffers) for k, _ in kernels] + [1])
        if self.batch and max_slots > MAX_SLOTS:
            raise BackendError(f"a kernel takes more than {MAX_SLOTS} buffers, too many to run over a batch",
                               found=str(max_slots))
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
            task = b.bitcast(kb.declare(kernel.name, VOID, [I8PP, I64]), task_ty)
            if pfor_batched is not None:
                strides = self._strides_global([self.stride(self.location(k)) for k in kernel.buffers])
                b.call(pfor_batched, [pool, task, slots, b.gep(strides, [const_int(0), const_int(0)]),
                                      const_int(len(kernel.buffers)), const_int(kernel.n_tasks), batch])
            else:
                b.call(pfor, [pool, task, b.bitcast(slots, I8P), const_int(kernel.n_tasks)])
            if profiled:
                b.store(b.sub(b.call(now, []), t0), b.gep(fn.args[6], [const_int(i)]))
        memcpy = kb.declare("llvm.memcpy.p0i8.p0i8.i64", VOID, [I8P, I8P, I64, ir.IntType(1)])
        for src, dst, nbytes in copies:
            if self.batch is None:
                b.call(memcpy, [pointer(dst), pointer(src), const_int(nbytes), ir.Constant(ir.IntType(1), 0)])
                continue
            with for_range(b, 0, batch, name="sample") as sample:
                to = b.gep(pointer(dst), [b.mul(sample, const_int(self.stride(dst)))])
                frm = b.gep(pointer(src), [b.mul(sample, const_int(self.stride(src)))])
                b.call(memcpy, [to, frm, const_int(nbytes), ir.Constant(ir.IntType(1), 0)])
        b.ret(const_int(0, I32))


def lower(graph: Graph, kb: KernelBuilder, cache: Optional[KernelCache] = None,
          machine: Optional[tuple] = None, sink: Optional[Callable[[str, str], None]] = None) -> Lowered:
    """Lower ``graph``; with a ``cache`` (and the ``machine`` its keys are for), reuse kernel records.

    ``sink(symbol, text)`` is called with each distinct kernel function as soon as it is generated
    (``UnitCompiler.add``: compiling starts before the lowering ends).
    """
    return Lowering(graph, kb, cache, machine, sink).lower()
