"""NonMaxSuppression against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op


def random_boxes(batches, n, *, center=False, seed=0, flip=False):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, (batches, n, 2))
    wh = rng.uniform(0.5, 4, (batches, n, 2))
    if center:
        return np.concatenate([xy + wh / 2, wh], -1).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], -1)
    if flip:  # the other diagonal: (y2, x2, y1, x1)
        boxes = boxes[..., [2, 3, 0, 1]]
    return boxes.astype(np.float32)


def scalars(k, iou, score):
    return [None if k is None else np.array([k], np.int64),
            None if iou is None else np.array([iou], np.float32),
            None if score is None else np.array([score], np.float32)]


@pytest.mark.parametrize("batches,classes,n", [(1, 1, 30), (2, 3, 50), (3, 2, 7)])
@pytest.mark.parametrize("k,iou,score", [(5, 0.5, None), (100, 0.3, 0.4), (3, 0.0, 0.9), (50, 0.7, 0.0)])
def test_random(batches, classes, n, k, iou, score):
    boxes = random_boxes(batches, n, seed=n)
    scores = np.random.default_rng(k).uniform(0, 1, (batches, classes, n)).astype(np.float32)
    check_op("NonMaxSuppression", [boxes, scores, *scalars(k, iou, score)], {}, opset=11)


@pytest.mark.parametrize("center", [0, 1])
def test_center_point_box_and_flipped(center):
    boxes = random_boxes(2, 40, center=bool(center), flip=not center, seed=3)
    scores = np.random.default_rng(4).uniform(0, 1, (2, 2, 40)).astype(np.float32)
    check_op("NonMaxSuppression", [boxes, scores, *scalars(10, 0.4, 0.2)],
             {"center_point_box": center}, opset=11)


def test_tied_scores_and_identical_boxes():
    boxes = np.tile(np.array([[0, 0, 1, 1]], np.float32), (1, 6, 1))
    boxes[0, 3:] += 5
    scores = np.full((1, 1, 6), 0.5, np.float32)
    out = check_op("NonMaxSuppression", [boxes, scores, *scalars(6, 0.5, None)], {}, opset=11)
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [0, 0, 3]])


def test_optional_inputs_omitted():
    boxes, scores = random_boxes(1, 10), np.ones((1, 1, 10), np.float32)
    out = check_op("NonMaxSuppression", [boxes, scores], {}, opset=11)
    assert out[0].shape == (0, 3)  # no max_output_boxes_per_class: nothing selected
    check_op("NonMaxSuppression", [boxes, scores, np.array([4], np.int64)], {}, opset=11)
    check_op("NonMaxSuppression", [boxes, scores, np.array([4], np.int64), None,
                                   np.array([0.5], np.float32)], {}, opset=11)


def test_constant_thresholds_and_opset10():
    boxes = random_boxes(1, 25, seed=8)
    scores = np.random.default_rng(9).uniform(0, 1, (1, 2, 25)).astype(np.float32)
    check_op("NonMaxSuppression", [boxes, scores, Const(np.array(7, np.int64)),
                                   Const(np.array(0.25, np.float32)), Const(np.array(0.1, np.float32))],
             {}, opset=10)


def test_degenerate_boxes_never_suppress():
    boxes = np.array([[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2.1]]], np.float32)
    scores = np.array([[[0.9, 0.8, 0.7, 0.6]]], np.float32)
    out = check_op("NonMaxSuppression", [boxes, scores, *scalars(10, 0.5, None)], {}, opset=11)
    np.testing.assert_array_equal(out[0][:, 2], [0, 1, 2])


# ------------------------------------------------------------------ errors
def test_boxes_need_four_coordinates():
    with pytest.raises(CompilerError, match="spatial_dimension, 4"):
        check_op("NonMaxSuppression", [np.zeros((1, 5, 3), np.float32), np.zeros((1, 1, 5), np.float32)],
                 {}, opset=11, expected=[np.zeros((0, 3), np.int64)])


def test_mismatched_box_counts():
    with pytest.raises(CompilerError, match="disagree on spatial_dimension"):
        check_op("NonMaxSuppression", [np.zeros((1, 5, 4), np.float32), np.zeros((1, 1, 6), np.float32)],
                 {}, opset=11, expected=[np.zeros((0, 3), np.int64)])


def test_float16_boxes_rejected():
    with pytest.raises(CompilerError, match="boxes"):
        check_op("NonMaxSuppression", [np.zeros((1, 5, 4), np.float16), np.zeros((1, 1, 5), np.float32)],
                 {}, opset=11, expected=[np.zeros((0, 3), np.int64)])
