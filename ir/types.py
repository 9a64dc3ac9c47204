"""Types of IR values.

A ``TensorType`` is an element type plus a shape.  Each dimension is an
``int`` (known), a ``str`` (a named symbolic dimension such as a batch ``N``),
or ``None`` (unknown).  A shape of ``None`` means even the rank is unknown.

Two optional annotations are carried for later passes and backends:

* ``layout``: the physical layout of a tensor whose logical shape differs from
  ONNX's, e.g. ``"NCHW16c"`` after the layout pass blocks channels by 16.
* ``quant``: quantization parameters (scale, zero point, axis) of an integer
  tensor, set by the quantization passes.

Types are immutable; passes build new ones with ``with_shape`` & co.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Union

from .dtypes import DType

Dim = Union[int, str, None]
Shape = Optional[tuple[Dim, ...]]


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: ``real = scale * (q - zero_point)``.

    Per-tensor when ``axis`` is None (one scale and zero point), otherwise
    per-channel along ``axis``.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: Optional[int] = None

    def __str__(self) -> str:
        if self.axis is None and len(self.scale) == 1:
            return f"scale={self.scale[0]!r},zero_point={self.zero_point[0]}"
        sc = ",".join(repr(s) for s in self.scale)
        zp = ",".join(str(z) for z in self.zero_point)
        return f"scale=[{sc}],zero_point=[{zp}],axis={self.axis}"


@dataclass(frozen=True)
class TensorType:
    """Element type, shape and optional layout/quantization of a tensor value."""

    dtype: DType
    shape: Shape = None
    layout: Optional[str] = None
    quant: Optional[QuantParams] = field(default=None)

    # ------------------------------------------------------------ queries
    @property
    def rank(self) -> Optional[int]:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        """True when every dimension is a known integer."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self) -> Optional[int]:
        if not self.is_static:
            return None
        return math.prod(self.shape)  # type: ignore[arg-type]

    @property
    def nbytes(self) -> Optional[int]:
        n = self.numel
        return None if n is None else n * self.dtype.itemsize

    def dim(self, i: int) -> Dim:
        assert self.shape is not None
        return self.shape[i]

    # ------------------------------------------------------------ builders
    def with_shape(self, shape: Shape) -> TensorType:
        return replace(self, shape=None if shape is None else tuple(shape))

    def with_layout(self, layout: Optional[str]) -> TensorType:
        return replace(self, layout=layout)

    def with_quant(self, quant: Optional[QuantParams]) -> TensorType:
        return replace(self, quant=quant)

    # ------------------------------------------------------------ printing
    def __str__(self) -> str:
        if self.shape is None:
            dims = "*"
        else:
            dims = ",".join(_dim_str(d) for d in self.shape)
        text = f"{self.dtype.short}[{dims}]"
        extras = []
        if self.layout is not None:
            extras.append(f"layout={self.layout}")
        if self.quant is not None:
            extras.append(str(self.quant))
        if extras:
            text += "<" + ",".join(extras) + ">"
        return text


def _dim_str(d: Dim) -> str:
    if d is None:
        return "?"
    return str(d)


def tensor(dtype: DType, shape: Shape = None) -> TensorType:
    """Shorthand constructor: ``tensor(f32, (1, 3, 224, 224))``."""
    return TensorType(dtype, None if shape is None else tuple(shape))


def merge_dims(a: Dim, b: Dim) -> Dim:
    """Most precise of two descriptions of the same dimension."""
    if isinstance(a, int):
        return a
    if isinstance(b, int):
        return b
    return a if a is not None else b


def merge_shapes(a: Shape, b: Shape) -> Shape:
    """Combine two descriptions of the same shape, keeping the more precise dims."""
    if a is None:
        return b
    if b is None or len(a) != len(b):
        return a
    return tuple(merge_dims(x, y) for x, y in zip(a, b))


@dataclass(frozen=True)
class SequenceType:
    """An ONNX sequence: an ordered list of tensors of one element type."""

    elem: "Type"

    def __str__(self) -> str:
        return f"seq<{self.elem}>"


@dataclass(frozen=True)
class OptionalType:
    """An ONNX optional: a value that may be absent."""

    elem: "Type"

    def __str__(self) -> str:
        return f"opt<{self.elem}>"


Type = Union[TensorType, SequenceType, OptionalType]
