"""cpu target: QLinearMatMul, MatMulInteger, QLinearConv, ConvInteger with run-time weights vs the reference.

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


CONVS = [
    dict(x=(1, 3, 9, 11), w=(4, 3, 3, 3), attrs={}),
    dict(x=(2, 4, 8, 37), w=(6, 2, 3, 2), attrs={"group": 2, "pads": [1, 0, 1, 1], "strides": [2, 1]}),
    dict(x=(1, 2, 10, 10), w=(3, 2, 3, 3), attrs={"dilations": [2, 2], "auto_pad": "SAME_UPPER"}),
    dict(x=(1, 3, 40), w=(2, 3, 4), attrs={"strides": [3], "pads": [2, 1]}),
]


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("xdt,wdt", [(np.uint8, np.uint8), (np.int8, np.int8), (np.uint8, np.int8)])
def test_conv_integer(case, xdt, wdt):
    m = case["w"][0]
    feeds = {"x": _q(case["x"], xdt), "w": _q(case["w"], wdt), "xzp": _q((), xdt), "wzp": _q((m,), wdt)}
    model = make_model([oh.make_node("ConvInteger", list(feeds), ["y"], **case["attrs"])],
                       {k: (list(v.shape), oh.np_dtype_to_tensor_dtype(v.dtype)) for k, v in feeds.items()},
                       {"y": 0}, opset=21)
    run_both(model, feeds, "ConvInteger")


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("xdt,wdt,ydt", [(np.uint8, np.uint8, np.uint8), (np.int8, np.int8, np.int8)])
@pytest.mark.parametrize("bias", [False, True])
def test_qlinear_conv(case, xdt, wdt, ydt, bias):
    m = case["w"][0]
    feeds = {"x": _q(case["x"], xdt), "xs": np.float32(0.02), "xzp": _q((), xdt), "w": _q(case["w"], wdt),
             "ws": RNG.uniform(0.01, 0.03, m).astype(np.float32), "wzp": _q((m,), wdt),
             "ys": np.float32(RNG.uniform(0.5, 3.0)), "yzp": _q((), ydt)}
    if bias:
        feeds["b"] = RNG.integers(-3000, 3000, m).astype(np.int32)
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    model = make_model([oh.make_node("QLinearConv", list(feeds), ["y"], **case["attrs"])],
                       {k: (list(v.shape), oh.np_dtype_to_tensor_dtype(v.dtype)) for k, v in feeds.items()},
                       {"y": 0}, opset=21)
    run_both(model, feeds, "QLinearConv")
