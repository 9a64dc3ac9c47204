"""BitCast on the cpu target: an elementwise op that reinterprets each element's bits.

The operand arrives in its compute type (float16 widened to float32, bool as
i1); it goes back to its storage type, is bit-cast to the target's storage
type of the same width, and widened to the target's compute type.  As an
elementwise emitter it runs in the elementwise kernel and fuses with its
neighbours.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ir.dtypes import DType

from ..codegen import llvm_type
from ..expr import elementwise_op, load_convert, store_convert


def _with_elem(like: ir.Value, elem: ir.Type) -> ir.Type:
    return ir.VectorType(elem, like.type.count) if isinstance(like.type, ir.VectorType) else elem


@elementwise_op("BitCast", ints=True)
def _(kb, b, node, xs):
    src: DType = node.inputs[0].type.dtype
    dst: DType = node.outputs[0].type.dtype
    raw = store_convert(b, xs[0], src)  # the stored bits (f16, i8 for bool...)
    target = _with_elem(raw, llvm_type(dst))
    bits = raw if raw.type == target else b.bitcast(raw, target)
    return load_convert(b, bits, dst)
