"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss against onnxruntime."""

import numpy as np
import pytest

from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op

rng = np.random.default_rng(0)


def _case(shape=(3, 5, 2)):
    scores = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, shape[1], size=(shape[0],) + shape[2:]).astype(np.int64)
    return scores, labels


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("shape", [(4, 3), (3, 5, 2), (2, 4, 3, 2)])
def test_nll_loss(reduction, shape):
    x, t = _case(shape)
    check_op("NegativeLogLikelihoodLoss", [x, t], {"reduction": reduction}, opset=22)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_nll_loss_weights_and_ignore_index(reduction):
    x, t = _case((4, 3, 2))
    t[0, 0] = -1
    w = np.array([0.2, 1.0, 3.0], np.float32)
    check_op("NegativeLogLikelihoodLoss", [x, t, Const(w)], {"reduction": reduction, "ignore_index": -1},
             opset=22)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_softmax_cross_entropy_with_log_prob(reduction):
    x, t = _case((3, 5, 2))
    w = rng.random(5).astype(np.float32)
    check_op("SoftmaxCrossEntropyLoss", [x, t, w], {"reduction": reduction}, opset=13, num_outputs=2)


def test_label_shape_mismatch_is_rejected():
    x, _ = _case((3, 5, 2))
    with pytest.raises(CompilerError, match="labels"):
        check_op("NegativeLogLikelihoodLoss", [x, np.zeros((3, 4), np.int64)], opset=22)


def test_unknown_reduction_is_rejected():
    x, t = _case((3, 5))
    with pytest.raises(CompilerError, match="unknown reduction"):
        check_op("NegativeLogLikelihoodLoss", [x, t], {"reduction": "max"}, opset=22)
