"""Import rules for the resize family (see frontends/onnx/rules/__init__.py).

* Resize-10 (X, scales) and every Upsample become Resize with asymmetric
  coordinates; their nearest rounding is floor when upsampling and ceil when
  downsampling (onnxruntime's rule), i.e. nearest_mode floor / ceil when the
  constant scales tell which, the legacy value "simple" otherwise.
* Resize-11/13/18 attributes are subsets of Resize-19 with the same
  meaning (Resize-11's empty roi/scales tensors are read as absent by the op).
* GridSample-16 spelled its modes bilinear / bicubic (linear / cubic since 20).
* RoiAlign-10 had no coordinate_transformation_mode and behaved like
  "output_half_pixel" (16 made "half_pixel" the default).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.dtypes import DType

from . import canonical_since, rule

_LEGACY_MODES = {"nearest": "nearest", "linear": "linear", "bilinear": "linear"}


def _legacy_resize(b, scales, mode: str) -> list:
    """Emit Resize(X, scales) with the pre-Resize-11 coordinate and rounding rules."""
    if mode not in _LEGACY_MODES:
        b.fail("unknown mode", expected="nearest or linear", found=repr(mode))
    attrs = {"mode": _LEGACY_MODES[mode], "coordinate_transformation_mode": "asymmetric"}
    if attrs["mode"] == "nearest":
        attrs["nearest_mode"] = _nearest_mode(scales.const if scales is not None else None)
    return b.emit("Resize", [b.input(0), None, scales, None], attrs)


def _nearest_mode(scales: Optional[np.ndarray]) -> str:
    if scales is None:
        return "simple"
    changed = [float(s) for s in scales.reshape(-1) if s != 1]
    if all(s > 1 for s in changed):
        return "floor"
    if all(s < 1 for s in changed):
        return "ceil"
    return "simple"


@rule("Resize", until=11)
def _(b) -> list:
    return _legacy_resize(b, b.input(1), b.attrs.pop("mode", "nearest"))


canonical_since("Resize", 11)


@rule("Upsample", until=7)
def _(b) -> list:
    x = b.input(0)
    if x.type.rank is not None and x.type.rank != 4:
        b.fail("Upsample-1 scales only 4-D inputs", found=str(x.type))
    h, w = b.attrs.pop("height_scale", None), b.attrs.pop("width_scale", None)
    if h is None or w is None:
        b.fail("Upsample-1 needs height_scale and width_scale")
    scales = b.const(np.array([1, 1, h, w], np.float32), dtype=DType.F32)
    return _legacy_resize(b, scales, b.attrs.pop("mode", "nearest"))


@rule("Upsample", since=7, until=9)
def _(b) -> list:
    values = b.attrs.pop("scales", None)
    if values is None:
        b.fail("Upsample-7 needs the scales attribute")
    scales = b.const(np.array(values, np.float32), dtype=DType.F32)
    return _legacy_resize(b, scales, b.attrs.pop("mode", "nearest"))


@rule("Upsample", since=9)
def _(b) -> list:
    return _legacy_resize(b, b.input(1), b.attrs.pop("mode", "nearest"))


canonical_since("Upsample", 9)


@rule("GridSample", until=20)
def _(b) -> list:
    mode = b.attrs.get("mode", "bilinear")
    b.attrs["mode"] = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    return b.default()


canonical_since("GridSample", 20)


@rule("RoiAlign", until=16)
def _(b) -> list:
    b.attrs.setdefault("coordinate_transformation_mode", "output_half_pixel")
    return b.default()


canonical_since("RoiAlign", 16)
