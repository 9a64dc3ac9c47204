"""cpu target: QLinearMatMul and MatMulInteger with a run-time B against the reference.

int8/uint8 operands, zero points and scales per tensor, per row of A and per
column of B, float16/float64 scales, batched and broadcast operands, and
accumulators that saturate the output.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)


def _q(shape, dtype):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, shape).astype(dtype)


def run_both(model, feeds, op):
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    assert any(op in label for label in module.executable.description["kernels"])
    assert_close(got, want, 0, 0)


def _model(op, feeds):
    names = list(feeds)
    return make_model([oh.make_node(op, names, ["y"])],
                      {k: (list(v.shape), oh.np_dtype_to_tensor_dtype(v.dtype)) for k, v in feeds.items()},
                      {"y": 0}, opset=21)


@pytest.mark.parametrize("adt,bdt,ydt", [(np.uint8, np.uint8, np.uint8), (np.int8, np.int8, np.int8),
                                         (np.uint8, np.int8, np.int8)])
@pytest.mark.parametrize("per", ["tensor", "channel"])
@pytest.mark.parametrize("shapes", [((5, 19), (19, 33)), ((3, 4, 17), (3, 17, 6)), ((2, 1, 4, 9), (3, 9, 5))])
@pytest.mark.parametrize("sdt", [np.float32, np.float16])
def test_qlinear_matmul(adt, bdt, ydt, per, shapes, sdt):
    (sa, sb) = shapes
    m, n = sa[-2], sb[-1]
    feeds = {"a": _q(sa, adt),
             "as": RNG.uniform(0.01, 0.05, m if per == "channel" else ()).astype(sdt),
             "azp": _q(m if per == "channel" else (), adt),
             "b": _q(sb, bdt),
             "bs": RNG.uniform(0.01, 0.05, n if per == "channel" else ()).astype(sdt),
             "bzp": _q(n if per == "channel" else (), bdt),
             "ys": np.asarray(RNG.uniform(0.5, 2.0), sdt), "yzp": _q((), ydt)}
    run_both(_model("QLinearMatMul", feeds), feeds, "QLinearMatMul")


@pytest.mark.parametrize("zps", [False, True])
@pytest.mark.parametrize("adt,bdt", [(np.uint8, np.uint8), (np.int8, np.uint8), (np.uint8, np.int8)])
def test_matmul_integer(zps, adt, bdt):
    feeds = {"a": _q((2, 7, 40), adt), "b": _q((40, 21), bdt)}
    if zps:
        feeds["azp"] = _q((7,), adt)
        feeds["bzp"] = _q((21,), bdt)
    run_both(_model("MatMulInteger", feeds), feeds, "MatMulInteger")
