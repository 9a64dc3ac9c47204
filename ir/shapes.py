"""Shape arithmetic shared by type rules and passes, aware of symbolic dims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from .errors import TypeInferenceError
from .types import Dim, Shape


def normalize_axis(axis: int, rank: int, *, what: str = "axis") -> int:
    """Map a possibly negative axis into ``[0, rank)``; raise if out of range."""
    if not -rank <= axis < rank:
        raise TypeInferenceError(f"{what} out of range", expected=f"in [{-rank}, {rank})",
                                 found=str(axis))
    return axis + rank if axis < 0 else axis


def normalize_axes(axes: Sequence[int], rank: int) -> list[int]:
    return [normalize_axis(int(a), rank) for a in axes]


def broadcast_dims(a: Dim, b: Dim) -> Dim:
    """The dim of ``broadcast(a, b)``; raises when two known sizes clash."""
    if a == 1:
        return b
    if b == 1:
        return a
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise TypeInferenceError("shapes do not broadcast", found=f"dims {a} and {b}")
        return a
    if a == b:
        return a
    if isinstance(a, int):  # b symbolic or unknown: a wins unless b turns out 1
        return a
    if isinstance(b, int):
        return b
    return None


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy-style multidirectional broadcasting over possibly symbolic shapes."""
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)  # type: ignore[arg-type]
    result: list[Dim] = [1] * rank
    for s in shapes:
        padded = (1,) * (rank - len(s)) + tuple(s)  # type: ignore[arg-type]
        result = [broadcast_dims(x, y) for x, y in zip(result, padded)]
    return tuple(result)


def prod(dims: Sequence[Dim]) -> Optional[int]:
    """Product of dims, or None if any is not a known integer."""
    p = 1
    for d in dims:
        if not isinstance(d, int):
            return None
        p *= d
    return p


def conv_output_dim(size: Dim, kernel: int, stride: int, pad_begin: int, pad_end: int,
                    dilation: int = 1, ceil_mode: bool = False) -> Dim:
    """Output length of a convolution or pooling window along one axis.

    With ``ceil_mode`` a last partial window counts, unless it would start
    inside the right padding (the rule of ONNX >= 19, PyTorch and onnxruntime).
    """
    if not isinstance(size, int):
        return None
    eff = (kernel - 1) * dilation + 1
    span = size + pad_begin + pad_end - eff
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out
