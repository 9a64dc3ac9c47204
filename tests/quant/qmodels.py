"""Small quantized ONNX models built with onnx.helper, for the quantization tests.

Each builder returns ``(model, feeds)``: a QDQ or QOperator model with random
int8/uint8 weights and the float (or integer) input it takes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]


def _t(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(nodes, inits, x_shape, x_type, y_type, y_shape=None) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", x_type, x_shape)],
                          [helper.make_tensor_value_info("y", y_type, y_shape)], inits)
    m = helper.make_model(g, opset_imports=OPSET)
    m.ir_version = 10
    return m


def _weights(rng, shape, wtype, per_channel: bool, axis: int):
    if wtype == "u8":
        w = rng.integers(0, 256, shape).astype(np.uint8)
        zp = rng.integers(100, 156, shape[axis] if per_channel else ()).astype(np.uint8)
    else:
        w = rng.integers(-127, 128, shape).astype(np.int8)
        zp = np.zeros(shape[axis] if per_channel else (), np.int8)
    scale = (rng.uniform(0.5, 1.5, shape[axis] if per_channel else ()) * 0.01).astype(np.float32)
    return w, scale, zp


def qdq_conv(seed: int = 0, *, c: int = 8, m: int = 16, hw: tuple[int, int] = (9, 11), k: int = 3,
             stride: int = 1, pad: int = 1, dilation: int = 1, group: int = 1, act: str = "s8",
             wtype: str = "s8", per_channel: bool = True, relu: Optional[str] = None, bias: bool = True,
             batch: int = 2):
    """x (float) -> Q -> DQ -> Conv(DQ(W), DQ(bias)) [-> Relu|Clip] -> Q -> DQ -> y."""
    rng = np.random.default_rng(seed)
    at = np.int8 if act == "s8" else np.uint8
    x_s, x_zp = np.float32(0.02), at(-3 if act == "s8" else 120)
    y_s, y_zp = np.float32(0.05), at(5 if act == "s8" else 128)
    w, w_s, w_zp = _weights(rng, (m, c // group, k, k), wtype, per_channel, 0)
    inits = [_t("xs", x_s), _t("xzp", x_zp), _t("ys", y_s), _t("yzp", y_zp), _t("w", w), _t("ws", w_s),
             _t("wzp", w_zp)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xzp"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wzp"], ["wd"], axis=0)]
    conv_in = ["xd", "wd"]
    if bias:
        bq = rng.integers(-2000, 2000, m).astype(np.int32)
        bs = (x_s * w_s).astype(np.float32)
        inits += [_t("b", bq), _t("bs", bs), _t("bzp", np.zeros(bs.shape, np.int32))]
        nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bzp"], ["bd"], axis=0))
        conv_in.append("bd")
    nodes.append(helper.make_node("Conv", conv_in, ["c"], kernel_shape=[k, k], strides=[stride] * 2,
                                  pads=[pad] * 4, dilations=[dilation] * 2, group=group))
    last = "c"
    if relu == "relu":
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        last = "r"
    elif relu == "clip":
        inits += [_t("lo", np.float32(-0.5)), _t("hi", np.float32(3.0))]
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["r"]))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "ys", "yzp"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yzp"], ["y"])]
    x = rng.uniform(-1.5, 2.5, (batch, c) + hw).astype(np.float32)
    return _model(nodes, inits, [batch, c, *hw], TensorProto.FLOAT, TensorProto.FLOAT), {"x": x}


def qdq_matmul(seed: int = 0, *, m: int = 3, k: int = 37, n: int = 21, gemm: bool = False,
               trans_b: bool = False, act: str = "u8", wtype: str = "s8", per_channel: bool = True,
               bias: bool = True, rank3: bool = False):
    """x -> Q -> DQ -> MatMul/Gemm(DQ(W)[, DQ(bias)]) -> Q -> DQ -> y."""
    rng = np.random.default_rng(seed)
    at = np.int8 if act == "s8" else np.uint8
    x_s, x_zp = np.float32(0.03), at(7 if act == "s8" else 110)
    y_s, y_zp = np.float32(0.2), at(-4 if act == "s8" else 131)
    wshape = (n, k) if trans_b else (k, n)
    w, w_s, w_zp = _weights(rng, wshape, wtype, per_channel, 0 if trans_b else 1)
    inits = [_t("xs", x_s), _t("xzp", x_zp), _t("ys", y_s), _t("yzp", y_zp), _t("w", w), _t("ws", w_s),
             _t("wzp", w_zp)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xzp"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wzp"], ["wd"], axis=0 if trans_b else 1)]
    ins = ["xd", "wd"]
    if gemm and bias:
        bq = rng.integers(-3000, 3000, n).astype(np.int32)
        bs = (x_s * w_s).astype(np.float32)
        inits += [_t("b", bq), _t("bs", bs), _t("bzp", np.zeros(bs.shape, np.int32))]
        nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bzp"], ["bd"], axis=0))
        ins.append("bd")
    if gemm:
        nodes.append(helper.make_node("Gemm", ins, ["c"], transB=int(trans_b)))
    else:
        nodes.append(helper.make_node("MatMul", ins, ["c"]))
    nodes += [helper.make_node("QuantizeLinear", ["c", "ys", "yzp"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yzp"], ["y"])]
    shape = [2, m, k] if rank3 and not gemm else [m, k]
    x = rng.uniform(-2.0, 3.0, shape).astype(np.float32)
    return _model(nodes, inits, shape, TensorProto.FLOAT, TensorProto.FLOAT), {"x": x}


def qlinear_conv(seed: int = 0, *, act: str = "u8", wtype: str = "s8"):
    """QLinearConv on integer input and output (QOperator form)."""
    rng = np.random.default_rng(seed)
    at = np.int8 if act == "s8" else np.uint8
    c, m = 6, 10
    w, w_s, w_zp = _weights(rng, (m, c, 3, 3), wtype, True, 0)
    inits = [_t("xs", np.float32(0.02)), _t("xzp", at(3)), _t("w", w), _t("ws", w_s), _t("wzp", w_zp),
             _t("ys", np.float32(0.07)), _t("yzp", at(9)), _t("b", rng.integers(-500, 500, m).astype(np.int32))]
    node = helper.make_node("QLinearConv", ["x", "xs", "xzp", "w", "ws", "wzp", "ys", "yzp", "b"], ["y"],
                            pads=[1, 1, 1, 1], strides=[2, 2])
    lo, hi = (-128, 128) if act == "s8" else (0, 256)
    x = rng.integers(lo, hi, (1, c, 10, 7)).astype(at)
    ty = TensorProto.INT8 if act == "s8" else TensorProto.UINT8
    return _model([node], inits, [1, c, 10, 7], ty, ty), {"x": x}


def matmul_integer(seed: int = 0, *, k: int = 30, n: int = 19):
    """MatMulInteger (uint8 x uint8 with zero points) -> int32."""
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 256, (k, n)).astype(np.uint8)
    inits = [_t("b", b), _t("azp", np.uint8(17)), _t("bzp", rng.integers(0, 256, n).astype(np.uint8))]
    node = helper.make_node("MatMulInteger", ["x", "b", "azp", "bzp"], ["y"])
    x = rng.integers(0, 256, (4, k)).astype(np.uint8)
    return _model([node], inits, [4, k], TensorProto.UINT8, TensorProto.INT32), {"x": x}


def conv_integer(seed: int = 0):
    """ConvInteger (uint8 x int8 weights) -> int32."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (5, 4, 3, 3)).astype(np.int8)
    inits = [_t("w", w), _t("xzp", np.uint8(100))]
    node = helper.make_node("ConvInteger", ["x", "w", "xzp"], ["y"], pads=[0, 1, 0, 1])
    x = rng.integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
    return _model([node], inits, [1, 4, 6, 6], TensorProto.UINT8, TensorProto.INT32), {"x": x}


def qdq_add(seed: int = 0, *, act: str = "s8", relu: bool = False, shape=(2, 16, 7, 9), b_shape=None,
            same_scales: bool = False):
    """Two quantized inputs -> DQ + DQ -> Add [-> Relu] -> Q -> DQ (a residual add)."""
    rng = np.random.default_rng(seed)
    at = np.int8 if act == "s8" else np.uint8
    b_shape = tuple(shape) if b_shape is None else tuple(b_shape)
    zps = (at(-5), at(9), at(-128 if relu else 3)) if act == "s8" else (at(120), at(131), at(0 if relu else 128))
    scales = (np.float32(0.031),) * 3 if same_scales else (np.float32(0.031), np.float32(0.017), np.float32(0.043))
    inits = []
    for i, nm in enumerate("abc"):
        inits += [_t(nm + "s", scales[i]), _t(nm + "zp", zps[i])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "as", "azp"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "as", "azp"], ["ad"]),
             helper.make_node("QuantizeLinear", ["x2", "bs", "bzp"], ["bq"]),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bzp"], ["bd"]),
             helper.make_node("Add", ["ad", "bd"], ["s"])]
    last = "s"
    if relu:
        nodes.append(helper.make_node("Relu", ["s"], ["r"]))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "cs", "czp"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "cs", "czp"], ["y"])]
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape)),
                                       helper.make_tensor_value_info("x2", TensorProto.FLOAT, list(b_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=OPSET)
    m.ir_version = 10
    feeds = {"x": rng.uniform(-3, 3, shape).astype(np.float32), "x2": rng.uniform(-2, 2, b_shape).astype(np.float32)}
    return m, feeds


def qdq_maxpool(seed: int = 0, *, act: str = "s8", same_params: bool = True):
    """x -> Q -> DQ -> MaxPool(3x3, stride 2, pad 1) -> Q -> DQ."""
    rng = np.random.default_rng(seed)
    at = np.int8 if act == "s8" else np.uint8
    zp = at(-7) if act == "s8" else at(118)
    ys, yzp = (np.float32(0.02), zp) if same_params else (np.float32(0.05), at(1))
    inits = [_t("xs", np.float32(0.02)), _t("xzp", zp), _t("ys", ys), _t("yzp", yzp)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xzp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xzp"], ["xd"]),
             helper.make_node("MaxPool", ["xd"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["p", "ys", "yzp"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yzp"], ["y"])]
    x = rng.uniform(-2, 2, (1, 8, 13, 17)).astype(np.float32)
    return _model(nodes, inits, [1, 8, 13, 17], TensorProto.FLOAT, TensorProto.FLOAT), {"x": x}
