"""Col2Im on the cpu target: an index map summing the column entries that land on a pixel.

Strides, pads, dilations and the block and image shapes are constants, so
for each image position along each spatial axis the (kernel offset, block
position) pairs that cover it are known when the kernel is generated
(``taps``; at most ceil(block / stride) of them, padded with invalid
entries).  An output pixel is the sum, over one pair per axis, of the
input at channel ``c * prod(block) + flat(kernel offsets)`` and column
``flat(block positions)`` — a gather, so no scatter and no zero-fill.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node
from ir.ops._window import window_output_dims

from ..codegen import I8, I64, splat
from ..evaluator import Evaluator, index_map, shape_of
from ..expr import constant, is_float
from .resample import constant_table, table_at


def _attrs(node: Node) -> tuple[list[int], list[int], list[int], list[int], list[int], list[int]]:
    image = [int(v) for v in np.asarray(node.inputs[1].const).reshape(-1)]
    block = [int(v) for v in np.asarray(node.inputs[2].const).reshape(-1)]
    d = len(image)
    strides = list(node.attr("strides") or [1] * d)
    dilations = list(node.attr("dilations") or [1] * d)
    pads = list(node.attr("pads") or [0] * (2 * d))
    blocks = [int(v) for v in window_output_dims(image, block, strides, dilations, pads)]
    return image, block, strides, dilations, pads, blocks


def taps(size: int, k: int, stride: int, dilation: int, pad: int, blocks: int) -> np.ndarray:
    """(size, T, 3) int64: per image position, (kernel offset, block position, valid) of each tap."""
    per = []
    for y in range(size):
        hits = []
        for kk in range(k):
            pos = y + pad - kk * dilation
            if pos >= 0 and pos % stride == 0 and pos // stride < blocks:
                hits.append((kk, pos // stride, 1))
        per.append(hits)
    width = max(1, max(len(h) for h in per))
    out = np.zeros((size, width, 3), np.int64)
    for y, hits in enumerate(per):
        for t, hit in enumerate(hits):
            out[y, t] = hit
    return out


def col2im_support(node: Node) -> Optional[str]:
    if node.inputs[1].const is None or node.inputs[2].const is None:
        return "Col2Im with a run-time image or block shape (specialize first)"
    if node.inputs[0].type.dtype is DType.BOOL:
        return "Col2Im on bool is not supported by the cpu target"
    return None


@index_map("Col2Im", check=col2im_support)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    b, ix = ev.b, ev.ix
    x = node.inputs[0]
    image, block, strides, dilations, pads, blocks = _attrs(node)
    d = len(image)
    n, c, pos = idx[0], idx[1], list(idx[2:])
    per_axis = []
    for a in range(d):
        t = taps(image[a], block[a], strides[a], dilations[a], pads[a], blocks[a])
        width = t.shape[1]
        kt = constant_table(ev.kb, t[:, :, 0], I64, f"col2im_k{a}")
        lt = constant_table(ev.kb, t[:, :, 1], I64, f"col2im_l{a}")
        vt = constant_table(ev.kb, t[:, :, 2].astype(np.int8), I8, f"col2im_v{a}")
        at = ix.mul(pos[a], width)
        per_axis.append([(table_at(ev, kt, ix.add(at, j)), table_at(ev, lt, ix.add(at, j)),
                          table_at(ev, vt, ix.add(at, j))) for j in range(width)])
    kstrides = [math.prod(block[a + 1:]) for a in range(d)]
    lstrides = [math.prod(blocks[a + 1:]) for a in range(d)]
    total = None
    for combo in itertools.product(*per_axis):
        ch = ix.mul(c, math.prod(block))
        col = ir.Constant(I64, 0)
        valid = None
        for a, (k, l, v) in enumerate(combo):
            ch = ix.add(ch, ix.mul(k, kstrides[a]))
            col = ix.add(col, ix.mul(l, lstrides[a]))
            ok = b.icmp_unsigned("!=", v, constant(v, 0))
            valid = ok if valid is None else ix.and_(valid, ok)
        val = ev._at(x, [n, ch, col])
        if isinstance(valid.type, ir.VectorType) and not isinstance(val.type, ir.VectorType):
            val = splat(b, val, valid.type.count)
        if isinstance(val.type, ir.VectorType) and not isinstance(valid.type, ir.VectorType):
            valid = splat(b, valid, val.type.count)
        val = b.select(valid, val, constant(val, 0))
        if total is not None:
            if isinstance(total.type, ir.VectorType) != isinstance(val.type, ir.VectorType):
                if isinstance(total.type, ir.VectorType):
                    val = splat(b, val, total.type.count)
                else:
                    total = splat(b, total, val.type.count)
            val = b.fadd(total, val) if is_float(val.type) else b.add(total, val)
        total = val
    return total
