"""LLVM IR building blocks for CPU kernels (llvmlite.ir).

A compiled graph is one LLVM module.  Each kernel is a *task function*::

    void kernel(i8** buffers, i64 task)

``buffers`` holds one pointer per tensor the kernel touches (inputs,
outputs, weights), in the order the kernel asked for them; ``task`` is which
slice of the parallel loop this call computes.  The entry function calls
``nnc_parallel_for(pool, kernel, buffers, n_tasks)`` for each kernel in turn.

``KernelBuilder`` hands a generator its task function and the pointers it
asks for; the loop helpers (``for_range``) and vector helpers keep generators
short.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import llvmlite.ir as ir

from ir.target import TargetInfo
from ir.dtypes import DType
from ir.errors import BackendError
from ir.graph import Value
from ir.types import TensorType

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
VOID = ir.VoidType()
I8P = I8.as_pointer()
I8PP = I8P.as_pointer()

# IR element type used to hold each dtype in memory (bool is a byte).
_ELEM = {
    DType.F32: F32, DType.F64: F64, DType.F16: F16,
    DType.I8: I8, DType.U8: I8, DType.BOOL: I8,
    DType.I16: I16, DType.U16: I16, DType.I32: I32, DType.U32: I32,
    DType.I64: I64, DType.U64: I64,
    # Narrow types as ml_dtypes stores them (backends/cpu/narrow.py computes on them).
    DType.BF16: I16, DType.F8E4M3FN: I8, DType.F8E4M3FNUZ: I8, DType.F8E5M2: I8, DType.F8E5M2FNUZ: I8,
    DType.F8E8M0: I8, DType.F4E2M1: I8, DType.I4: I8, DType.U4: I8, DType.I2: I8, DType.U2: I8,
}


def llvm_type(dtype: DType) -> ir.Type:
    """The LLVM type a tensor element of ``dtype`` is stored as."""
    try:
        return _ELEM[dtype]
    except KeyError:
        raise BackendError("element type not supported by the cpu target", found=dtype.short) from None


def supported_dtype(dtype: DType) -> bool:
    return dtype in _ELEM


def const_int(value: int, ty: ir.IntType = I64) -> ir.Constant:
    return ir.Constant(ty, int(value))


@dataclass
class TaskFunction:
    """One kernel's task function being built, and the buffers it reads and writes."""

    kb: KernelBuilder
    fn: ir.Function
    builder: ir.IRBuilder
    task: ir.Value
    buffers: list[Any] = field(default_factory=list)  # keys, in slot order
    _ptrs: dict[Any, ir.Value] = field(default_factory=dict)
    _entry: Optional[ir.Block] = None

    def pointer(self, key: Any, elem: ir.Type) -> ir.Value:
        """Typed pointer to the buffer of ``key`` (a Value, usually); allocates a slot on first use.

        Loads of the pointer are emitted in the entry block so loops can reuse them.
        """
        cached = self._ptrs.get((id(key), str(elem)))
        if cached is not None:
            return cached
        if key not in self.buffers:
            self.buffers.append(key)
        slot = self.buffers.index(key)
        with self.builder.goto_block(self._entry):  # (positions before the entry's branch)
            raw = self.builder.load(self.builder.gep(self.fn.args[0], [const_int(slot)]))
            typed = self.builder.bitcast(raw, elem.as_pointer())
        self._ptrs[(id(key), str(elem))] = typed
        return typed

    def value_pointer(self, value: Value) -> ir.Value:
        """Typed pointer to an IR value's tensor."""
        return self.pointer(value, llvm_type(value.type.dtype))


class KernelBuilder:
    """Owns the LLVM module of one compiled graph."""

    def __init__(self, target: TargetInfo, name: str = "model") -> None:
        import llvmlite.binding as llvm
        self.target = target
        self.module = ir.Module(name)
        self.module.triple = target.triple or llvm.get_process_triple()
        self._intrinsics: dict[str, ir.Function] = {}
        self._names: set[str] = set()

    @property
    def lanes(self) -> int:
        """f32 lanes of one vector register."""
        return self.target.vector_lanes_f32

    def unique(self, name: str) -> str:
        base, k = "".join(c if c.isalnum() or c == "_" else "_" for c in name), 0
        cand = base
        while cand in self._names:
            k += 1
            cand = f"{base}_{k}"
        self._names.add(cand)
        return cand

    # --------------------------------------------------------- functions
    def task_function(self, name: str) -> TaskFunction:
        """Start ``void name(i8** buffers, i64 task)``; the builder sits in its body."""
        fn = ir.Function(self.module, ir.FunctionType(VOID, [I8PP, I64]), self.unique(name))
        fn.attributes.add("nounwind")
        fn.linkage = "internal"  # only the entry points are exported (two models can link together)
        entry = fn.append_basic_block("entry")
        body = fn.append_basic_block("body")
        b = ir.IRBuilder(entry)
        b.branch(body)
        b.position_at_end(body)
        return TaskFunction(self, fn, b, fn.args[1], _entry=entry)

    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        """An external or intrinsic function, declared once."""
        fn = self._intrinsics.get(name)
        if fn is None:
            fn = self.module.globals.get(name)
            if fn is None:
                fn = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
            self._intrinsics[name] = fn
        return fn

    def intrinsic(self, base: str, ty: ir.Type, nargs: int = 1) -> ir.Function:
        """``llvm.<base>.<suffix>`` for a scalar or vector float/int type (fma, sqrt, exp...)."""
        return self.declare(f"llvm.{base}.{type_suffix(ty)}", ty, [ty] * nargs)


def type_suffix(ty: ir.Type) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{type_suffix(ty.element)}"
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.DoubleType):
        return "f64"
    if isinstance(ty, ir.HalfType):
        return "f16"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    raise BackendError(f"no intrinsic suffix for {ty}")


# -------------------------------------------------------------------- loops
def _loop_open(b: ir.IRBuilder, start: Union[int, ir.Value], stop: Union[int, ir.Value], step: int,
               name: str, carried: Sequence[ir.Value] = ()):
    """Header of a counted i64 loop (with loop-carried ``carried`` values as phis); the builder is left in the body."""
    start_v = const_int(start) if isinstance(start, int) else start
    stop_v = const_int(stop) if isinstance(stop, int) else stop
    fn = b.function
    header = fn.append_basic_block(f"{name}.head")
    body = fn.append_basic_block(f"{name}.body")
    exit_ = fn.append_basic_block(f"{name}.end")
    pre = b.block
    b.branch(header)
    b.position_at_end(header)
    i = b.phi(I64, name=name)
    i.add_incoming(start_v, pre)
    phis = []
    for v in carried:
        phi = b.phi(v.type)
        phi.add_incoming(v, pre)
        phis.append(phi)
    b.cbranch(b.icmp_signed("<" if step > 0 else ">", i, stop_v), body, exit_)
    b.position_at_end(body)
    return i, phis, header, exit_


def _loop_close(b: ir.IRBuilder, i: ir.Value, step: int, header: ir.Block, exit_: ir.Block,
                phis: Sequence[ir.Value] = (), values: Sequence[ir.Value] = ()) -> None:
    """Latch of a loop from ``_loop_open``: step ``i``, feed ``values`` back into ``phis``."""
    latch = b.block
    i.add_incoming(b.add(i, const_int(step), name=f"{i.name}.next"), latch)
    for phi, v in zip(phis, values):
        phi.add_incoming(v, latch)
    b.branch(header)
    b.position_at_end(exit_)


@contextlib.contextmanager
def for_range(b: ir.IRBuilder, start: Union[int, ir.Value], stop: Union[int, ir.Value],
              step: int = 1, name: str = "i") -> Iterator[ir.Value]:
    """``for i in range(start, stop, step)`` (i64); yields ``i``."""
    i, _, header, exit_ = _loop_open(b, start, stop, step, name)
    yield i
    _loop_close(b, i, step, header, exit_)


def loop_carry(b: ir.IRBuilder, start: Union[int, ir.Value], stop: Union[int, ir.Value], step: int,
               init: Sequence[ir.Value], body: Callable[[ir.Value, list[ir.Value]], list[ir.Value]],
               name: str = "k") -> list[ir.Value]:
    """``for i in range(start, stop, step): vals = body(i, vals)``; returns the final values.

    The values (register accumulators) are threaded through phis so they stay
    in registers.  Emits nothing when the trip count is statically zero, and
    straight-line code for a single iteration.
    """
    if isinstance(start, int) and isinstance(stop, int):
        if start >= stop:
            return list(init)
        if start + step >= stop:
            return body(const_int(start), list(init))
    i, phis, header, exit_ = _loop_open(b, start, stop, step, name, init)
    new = body(i, list(phis))
    _loop_close(b, i, step, header, exit_, phis, new)
    return list(phis)


def task_range(b: ir.IRBuilder, task: ir.Value, n_tasks: int, total: int) -> tuple[ir.Value, ir.Value]:
    """The [start, stop) share of ``total`` iterations for ``task`` of ``n_tasks`` (balanced split)."""
    base, extra = divmod(total, max(1, n_tasks))
    # start = task*base + min(task, extra); stop = start + base + (task < extra)
    lt = b.icmp_signed("<", task, const_int(extra))
    start = b.add(b.mul(task, const_int(base)), b.select(lt, task, const_int(extra)))
    stop = b.add(start, b.add(const_int(base), b.zext(lt, I64)))
    return start, stop


# ------------------------------------------------------------------ vectors
def splat(b: ir.IRBuilder, scalar: ir.Value, lanes: int) -> ir.Value:
    """A vector with ``scalar`` in every lane."""
    vty = ir.VectorType(scalar.type, lanes)
    one = b.insert_element(ir.Constant(vty, ir.Undefined), scalar, const_int(0, I32))
    return b.shuffle_vector(one, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def match_lanes(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``x`` and ``y`` with a scalar splatted to the other operand's vector width (for a binary op)."""
    xv, yv = isinstance(x.type, ir.VectorType), isinstance(y.type, ir.VectorType)
    if xv and not yv:
        return x, splat(b, y, x.type.count)
    if yv and not xv:
        return splat(b, x, y.type.count), y
    return x, y


def const_vector(elem: ir.Type, lanes: int, value: Any) -> ir.Constant:
    return ir.Constant(ir.VectorType(elem, lanes), [value] * lanes)


def load_vector(b: ir.IRBuilder, base: ir.Value, index: ir.Value, lanes: int, align: int = 4) -> ir.Value:
    """``lanes`` consecutive elements starting at ``base[index]``."""
    ptr = b.bitcast(b.gep(base, [index]), ir.VectorType(base.type.pointee, lanes).as_pointer())
    return b.load(ptr, align=align)


def store_vector(b: ir.IRBuilder, value: ir.Value, base: ir.Value, index: ir.Value, align: int = 4) -> None:
    ptr = b.bitcast(b.gep(base, [index]), value.type.as_pointer())
    b.store(value, ptr, align=align)


def lane_mask(b: ir.IRBuilder, count: ir.Value, lanes: int) -> ir.Value:
    """<lanes x i1> with the first ``count`` lanes set (for tails)."""
    idx = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
    return b.icmp_signed("<", idx, splat(b, count, lanes))


def masked_load(kb: KernelBuilder, b: ir.IRBuilder, base: ir.Value, index: ir.Value, mask: ir.Value,
                lanes: int) -> ir.Value:
    elem = base.type.pointee
    vty = ir.VectorType(elem, lanes)
    fn = kb.declare(f"llvm.masked.load.{type_suffix(vty)}.p0{type_suffix(vty)}", vty,
                    [vty.as_pointer(), I32, mask.type, vty])
    ptr = b.bitcast(b.gep(base, [index]), vty.as_pointer())
    return b.call(fn, [ptr, const_int(4, I32), mask, ir.Constant(vty, [0] * lanes if isinstance(elem, ir.IntType)
                                                             else [0.0] * lanes)])


def masked_store(kb: KernelBuilder, b: ir.IRBuilder, value: ir.Value, base: ir.Value, index: ir.Value,
                 mask: ir.Value) -> None:
    vty = value.type
    fn = kb.declare(f"llvm.masked.store.{type_suffix(vty)}.p0{type_suffix(vty)}", VOID,
                    [vty, vty.as_pointer(), I32, mask.type])
    ptr = b.bitcast(b.gep(base, [index]), vty.as_pointer())
    b.call(fn, [value, ptr, const_int(4, I32), mask])


def fma(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value, y: ir.Value, acc: ir.Value) -> ir.Value:
    """x * y + acc with one rounding (vfmadd on x86)."""
    return b.call(kb.intrinsic("fma", acc.type, 3), [x, y, acc])


def static_shape(v: Value) -> tuple[int, ...]:
    t = v.type
    if not isinstance(t, TensorType) or not t.is_static:
        raise BackendError("the cpu target needs static shapes here", subject=f"%{v.name}", found=str(t))
    return tuple(t.shape)  # type: ignore[arg-type]


def strides_of(shape: Sequence[int]) -> list[int]:
    """Row-major element strides."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return list(reversed(out))
