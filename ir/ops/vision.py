"""Detection post-processing: NonMaxSuppression.

ImageDecoder is not implemented: decoding JPEG, WebP, TIFF or JPEG 2000
needs an image library, which the reference interpreter does not depend on.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType
from ._common import check_dtype

nms = define("NonMaxSuppression",
             inputs=["boxes", "scores", "max_output_boxes_per_class?", "iou_threshold?",
                     "score_threshold?"],
             outputs=["selected_indices"], kind=OPAQUE, attrs={"center_point_box": Attr.int(0)},
             doc="Greedy per-class box selection; rows of (batch, class, box) indices.")


@nms.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, {DType.F32}, "boxes")
    check_dtype(ctx, 1, {DType.F32}, "scores")
    boxes, scores = ctx.shape(0), ctx.shape(1)
    if boxes is not None and (len(boxes) != 3 or (isinstance(boxes[2], int) and boxes[2] != 4)):
        ctx.fail("boxes must be [num_batches, spatial_dimension, 4]", found=str(ctx.input_type(0)))
    if scores is not None and len(scores) != 3:
        ctx.fail("scores must be [num_batches, num_classes, spatial_dimension]",
                 found=str(ctx.input_type(1)))
    if boxes is not None and scores is not None:
        for a, b, what in ((boxes[0], scores[0], "num_batches"), (boxes[1], scores[2], "spatial_dimension")):
            if isinstance(a, int) and isinstance(b, int) and a != b:
                ctx.fail(f"boxes and scores disagree on {what}",
                         found=f"boxes {ctx.input_type(0)}, scores {ctx.input_type(1)}")
    for i, dt, what in ((2, DType.I64, "max_output_boxes_per_class"), (3, DType.F32, "iou_threshold"),
                        (4, DType.F32, "score_threshold")):
        if ctx.has_input(i):
            check_dtype(ctx, i, {dt}, what)
            if ctx.rank(i) not in (None, 0, 1):
                ctx.fail(f"{what} must be a scalar", found=str(ctx.input_type(i)))
    if ctx.attr("center_point_box") not in (0, 1):
        ctx.fail("center_point_box must be 0 or 1", found=str(ctx.attr("center_point_box")))
    return [TensorType(DType.I64, (None, 3))]


def _corners(boxes: np.ndarray, center_point_box: int) -> np.ndarray:
    """[..., 4] boxes -> [..., 4] as (y_min, x_min, y_max, x_max), in float32.

    Corner boxes may give either diagonal; centre boxes are (x, y, w, h).
    """
    b = boxes.astype(np.float32)
    if center_point_box:
        half_w, half_h = b[..., 2] / np.float32(2), b[..., 3] / np.float32(2)
        return np.stack([b[..., 1] - half_h, b[..., 0] - half_w,
                         b[..., 1] + half_h, b[..., 0] + half_w], axis=-1)
    return np.stack([np.minimum(b[..., 0], b[..., 2]), np.minimum(b[..., 1], b[..., 3]),
                     np.maximum(b[..., 0], b[..., 2]), np.maximum(b[..., 1], b[..., 3])], axis=-1)


def _overlaps(box: np.ndarray, others: np.ndarray, threshold: np.float32) -> np.ndarray:
    """Which ``others`` have IoU with ``box`` above ``threshold`` (float32, as onnxruntime).

    Boxes without area, or not intersecting, never suppress.
    """
    ih = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    iw = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    inter = ih * iw
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    valid = (ih > 0) & (iw > 0) & (inter > 0) & (area > 0) & (areas > 0) & (union > 0)
    iou = inter / np.where(valid, union, np.float32(1))
    return valid & (iou > threshold)


def _select(corners: np.ndarray, scores: np.ndarray, limit: int, iou: np.float32,
            score_threshold: Optional[np.float32]) -> list[int]:
    """Greedy NMS for one (batch, class): highest score first, ties by lower index."""
    candidates = np.arange(len(scores)) if score_threshold is None else \
        np.nonzero(scores > score_threshold)[0]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    selected: list[int] = []
    while len(order) and len(selected) < limit:
        best, order = order[0], order[1:]
        selected.append(int(best))
        order = order[~_overlaps(corners[best], corners[order], iou)]
    return selected


def _scalar(x: Optional[np.ndarray], default):
    return default if x is None or np.size(x) == 0 else np.asarray(x).reshape(-1)[0]


@nms.reference
def _(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None, *,
      center_point_box: int) -> np.ndarray:
    limit = int(_scalar(max_output_boxes_per_class, 0))  # ONNX: absent or 0 selects nothing
    iou = np.float32(_scalar(iou_threshold, 0.0))
    s_thr = None if score_threshold is None else np.float32(_scalar(score_threshold, 0.0))
    corners = _corners(boxes, center_point_box)
    rows = []
    if limit > 0:
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                rows.extend((b, c, i) for i in _select(corners[b], scores[b, c], limit, iou, s_thr))
    return np.array(rows, np.int64).reshape(-1, 3)
