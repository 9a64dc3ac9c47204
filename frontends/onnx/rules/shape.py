"""Import rules for the shape family (see frontends/onnx/rules/__init__.py).

The IR ops take their newest ONNX form, where shapes, axes, pads, starts...
are inputs.  Older opsets held them in attributes; these rules turn such
attributes into constant inputs.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.graph import Value

from . import canonical_since, rule


def _ints_const(b, values, what: str) -> Value:
    """A constant int64 vector input built from an attribute."""
    return b.const(np.array(list(values), dtype=np.int64), name=f"{b.node.output[0]}_{what}")


def _drop_legacy(b) -> None:
    """Drop ``consumed_inputs``, an opset-1 attribute with no meaning at inference."""
    b.attrs.pop("consumed_inputs", None)


# ------------------------------------------------------------------ Reshape
@rule("Reshape", until=5)
def _reshape_v1(b) -> list:
    """Reshape-1: the target shape is the ``shape`` attribute."""
    _drop_legacy(b)
    shape = b.attrs.pop("shape", None)
    if shape is None:
        b.fail("Reshape-1 needs the 'shape' attribute")
    return b.default(inputs=[b.input(0), _ints_const(b, shape, "shape")], attrs={})


canonical_since("Reshape", 5)


# ------------------------------------------------------- Squeeze / Unsqueeze
@rule("Squeeze", until=13)
def _squeeze_v1(b) -> list:
    """Squeeze-1/11: optional ``axes`` attribute (no axes: drop every size-1 dim)."""
    axes = b.attrs.pop("axes", None)
    inputs = [b.input(0)] + ([] if axes is None else [_ints_const(b, axes, "axes")])
    return b.default(inputs=inputs, attrs={})


@rule("Unsqueeze", until=13)
def _unsqueeze_v1(b) -> list:
    """Unsqueeze-1/11: required ``axes`` attribute."""
    axes = b.attrs.pop("axes", None)
    if axes is None:
        b.fail("Unsqueeze before opset 13 needs the 'axes' attribute")
    return b.default(inputs=[b.input(0), _ints_const(b, axes, "axes")], attrs={})


canonical_since("Squeeze", 13)
canonical_since("Unsqueeze", 13)


# -------------------------------------------------------------------- Split
@rule("Split", until=18)
def _split_v1(b) -> list:
    """Split before 18: sizes in the ``split`` attribute (before 13) or input.

    Without sizes the node splits into equal parts, one per output; the IR
    form says so with ``num_outputs``.
    """
    attrs = dict(b.attrs)
    sizes_attr = attrs.pop("split", None)
    attrs.setdefault("axis", 0)
    sizes: Optional[Value] = b.input(1)
    if sizes is None and sizes_attr is not None:
        sizes = _ints_const(b, sizes_attr, "split")
    if sizes is None:
        attrs["num_outputs"] = b.num_outputs
        return b.default(inputs=[b.input(0)], attrs=attrs)
    return b.default(inputs=[b.input(0), sizes], attrs=attrs)


canonical_since("Split", 18)


# -------------------------------------------------------------------- Slice
@rule("Slice", until=10)
def _slice_v1(b) -> list:
    """Slice-1: ``starts``/``ends``/``axes`` attributes, no steps."""
    starts, ends = b.attrs.pop("starts", None), b.attrs.pop("ends", None)
    if starts is None or ends is None:
        b.fail("Slice-1 needs the 'starts' and 'ends' attributes")
    axes = b.attrs.pop("axes", None)
    inputs = [b.input(0), _ints_const(b, starts, "starts"), _ints_const(b, ends, "ends")]
    if axes is not None:
        inputs.append(_ints_const(b, axes, "axes"))
    return b.default(inputs=inputs, attrs={})


canonical_since("Slice", 10)


# ---------------------------------------------------------------------- Pad
@rule("Pad", until=11)
def _pad_v2(b) -> list:
    """Pad-1/2: ``pads`` (``paddings`` in opset 1) and a float ``value`` attribute."""
    pads = b.attrs.pop("pads", None)
    if pads is None:
        pads = b.attrs.pop("paddings", None)
    if pads is None:
        b.fail("Pad before opset 11 needs the 'pads' attribute")
    value = b.attrs.pop("value", 0.0)
    mode = b.attrs.pop("mode", "constant")
    data = b.input(0)
    inputs = [data, _ints_const(b, pads, "pads")]
    if mode == "constant" and value != 0.0:
        inputs.append(b.const(np.array(value, dtype=data.type.dtype.np),
                              name=f"{b.node.output[0]}_value"))
    return b.default(inputs=inputs, attrs={"mode": mode, **b.attrs})


canonical_since("Pad", 11)


# ------------------------------------------------------------------- Concat
@rule("Concat", until=4)
def _concat_v1(b) -> list:
    """Concat-1: ``axis`` was optional, defaulting to 1."""
    attrs = dict(b.attrs)
    attrs.setdefault("axis", 1)
    return b.default(attrs=attrs)


# --------------------------------------------------------------------- Tile
@rule("Tile", until=6)
def _tile_v1(b) -> list:
    """Tile-1: repeat ``tiles`` times along one ``axis`` (both constant scalar inputs)."""
    tiles, axis = b.const_value(1), b.const_value(2)
    data = b.input(0)
    if tiles is None or axis is None:
        b.fail("Tile-1 is supported only with constant 'tiles' and 'axis' inputs")
    rank = data.type.rank
    if rank is None:
        b.fail("Tile-1 needs an input of known rank")
    axis = int(np.asarray(axis).reshape(-1)[0])
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        b.fail("Tile-1 axis out of range", expected=f"in [0, {rank})", found=str(axis))
    repeats = [1] * rank
    repeats[axis] = int(np.asarray(tiles).reshape(-1)[0])
    return b.default(inputs=[data, _ints_const(b, repeats, "repeats")], attrs={})


canonical_since("Tile", 6)
