"""Quantization ops against onnxruntime (and ONNX's reference where onnxruntime has no kernel).

Also: the shared arithmetic in ``ir.quant``, and every quantized node of the
int8 models in /work/shared/data/int8, one node at a time, fed with
onnxruntime's intermediate values.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ir import quant
from ir.dtypes import DType
from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op, make_model, run_ours
from tests.conftest import SHARED_DATA

MS = "com.microsoft"
f32 = np.float32
rng = np.random.default_rng(1234)


def u8(*shape):
    return rng.integers(0, 256, shape).astype(np.uint8)


def i8(*shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(f32)


def onnx_ref(op, inputs, attrs=None, opset=21):
    """ONNX's reference implementation, for types onnxruntime cannot return (int4, float8...)."""
    model = make_model(op, inputs, attrs, opset=opset)
    feeds = {f"in{i}": np.asarray(x) for i, x in enumerate(inputs)
             if x is not None and not isinstance(x, Const)}
    with np.errstate(all="ignore"):  # inf -> int in ONNX's reference
        return ReferenceEvaluator(model).run(None, feeds)


# ============================================================ QuantizeLinear
@pytest.mark.parametrize("zp", [np.uint8(128), np.int8(-3), np.uint16(30000), np.int16(-7)])
@pytest.mark.parametrize("const", [False, True])
def test_quantize_per_tensor(zp, const):
    x = randn(2, 3, 5, scale=300.0)
    x[0, 0, :3] = [0.5, 1.5, -2.5]  # ties round to even
    scale = f32(0.5) if zp.dtype.itemsize == 1 else f32(0.004)
    wrap = Const if const else (lambda v: v)
    check_op("QuantizeLinear", [x, wrap(scale), wrap(zp)])


def test_quantize_per_axis_and_negative_axis():
    x = randn(2, 4, 3, scale=5.0)
    check_op("QuantizeLinear", [x, Const(np.array([0.1, 0.2, 0.05, 1.0], f32)),
                                Const(np.array([0, 10, -5, 3], np.int8))], {"axis": 1})
    check_op("QuantizeLinear", [x, Const(np.array([0.1, 0.2, 0.05], f32)),
                                Const(np.array([1, 2, 3], np.uint8))], {"axis": -1})


def test_quantize_blocked_and_output_dtype():
    x = randn(3, 8, scale=4.0)
    scale = np.abs(randn(3, 3)) + 0.05
    zp = rng.integers(-5, 5, (3, 3)).astype(np.int8)
    check_op("QuantizeLinear", [x, Const(scale), Const(zp)], {"axis": 1, "block_size": 3})
    # no zero point: the output type comes from output_dtype (default uint8)
    check_op("QuantizeLinear", [x, f32(0.03)], {"output_dtype": TP.INT8})
    check_op("QuantizeLinear", [x, f32(0.03)])
    special = np.array([np.nan, np.inf, -np.inf, 1.0], f32)
    check_op("QuantizeLinear", [special, f32(0.5), np.int8(-3)])


def test_quantize_float16_input_and_old_opsets():
    x = randn(4, 6, scale=10.0)
    check_op("QuantizeLinear", [x.astype(np.float16), np.float16(0.125), np.uint8(9)])
    for opset in (10, 13, 19):
        check_op("QuantizeLinear", [x, f32(0.07), np.int8(2)], opset=opset)
    check_op("QuantizeLinear", [x, np.full(6, 0.1, f32), np.zeros(6, np.uint8)],
             {"axis": 1}, opset=13)


@pytest.mark.parametrize("to", [TP.INT4, TP.UINT4, TP.FLOAT8E4M3FN, TP.FLOAT8E5M2,
                                TP.FLOAT8E4M3FNUZ])
@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_narrow_types(to, saturate):
    x = np.array([[0.0, 1.3, -2.6, 7.5, -9.0, 1e4, -1e6, np.inf]], f32)
    dt = DType.from_onnx(to)
    zp = np.array(0, dt.np)
    inputs = [x, f32(0.5), Const(zp)]
    expected = onnx_ref("QuantizeLinear", inputs, {"saturate": saturate})
    if dt in quant.INT_RANGES:
        x = x[:, :-1]  # inf -> int is undefined
        inputs[0] = x
        expected = onnx_ref("QuantizeLinear", inputs, {"saturate": saturate})
    check_op("QuantizeLinear", inputs, {"saturate": saturate}, expected=expected)


# ========================================================== DequantizeLinear
@pytest.mark.parametrize("gen,zp", [(u8, np.uint8(100)), (i8, np.int8(-20)),
                                    (lambda *s: rng.integers(-40000, 40000, s).astype(np.int32),
                                     None)])
def test_dequantize(gen, zp):
    x = gen(3, 7)
    check_op("DequantizeLinear", [x, f32(0.021)] + ([] if zp is None else [zp]))
    check_op("DequantizeLinear", [Const(x), Const(f32(0.021))] + ([] if zp is None else
                                                                  [Const(zp)]))


def test_dequantize_per_axis_blocked_and_output_dtype():
    w = i8(4, 3, 3, 3)
    check_op("DequantizeLinear", [Const(w), Const(np.abs(randn(4)) + 0.01), Const(i8(4))],
             {"axis": 0})
    bias = rng.integers(-2**20, 2**20, 16).astype(np.int32)
    check_op("DequantizeLinear", [Const(bias), Const(np.abs(randn(16)) * 1e-3),
                                  Const(np.zeros(16, np.int32))], {"axis": 0})
    x = u8(2, 10)
    check_op("DequantizeLinear", [x, np.abs(randn(2, 4)) + 0.1, u8(2, 4)],
             {"axis": 1, "block_size": 3})
    check_op("DequantizeLinear", [x, np.float16(0.5), np.uint8(3)])
    check_op("DequantizeLinear", [x, f32(0.5), np.uint8(3)], {"output_dtype": TP.FLOAT16},
             opset=23, expected=[((x.astype(f32) - 3) * 0.5).astype(np.float16)])


@pytest.mark.parametrize("dt", [DType.I4, DType.U4, DType.F8E4M3FN, DType.F8E5M2, DType.F4E2M1])
def test_dequantize_narrow_types(dt):
    x = np.array([0, 1, -2, 3, 5, -6], f32)
    x = np.abs(x) if dt == DType.U4 else x
    xq = x.astype(dt.np)
    inputs = [Const(xq), f32(0.25), Const(np.array(0, dt.np))]
    check_op("DequantizeLinear", inputs, expected=onnx_ref("DequantizeLinear", inputs))


# ===================================================== DynamicQuantizeLinear
@pytest.mark.parametrize("x", [randn(3, 17, scale=4.0), np.abs(randn(40)) + 1.0,
                               -np.abs(randn(2, 5)), np.zeros((2, 3), f32)],
                         ids=["mixed", "positive", "negative", "zeros"])
def test_dynamic_quantize_linear(x):
    check_op("DynamicQuantizeLinear", [x], num_outputs=3)


# ============================================================ integer matmul
@pytest.mark.parametrize("ga,gb", [(u8, i8), (u8, u8), (i8, i8), (i8, u8)])
def test_matmul_integer(ga, gb):
    a, b = ga(5, 32), gb(32, 7)
    za, zb = ga(), gb()
    check_op("MatMulInteger", [a, b, za, zb])
    check_op("MatMulInteger", [a, Const(b)])
    check_op("MatMulInteger", [ga(2, 3, 5, 16), Const(gb(16, 4)), za, Const(gb(4))])


def test_matmul_integer_batched_and_vector():
    check_op("MatMulInteger", [u8(3, 4, 8), u8(3, 8, 2), np.uint8(1), np.uint8(200)])
    check_op("MatMulInteger", [u8(8), u8(8, 3)])
    check_op("MatMulInteger", [u8(4, 8), u8(8)])


def test_int_matmul_is_exact():
    a = np.full((1, 30000), 255, np.int32)  # sum far beyond float32's 2**24
    b = np.full((30000, 1), -255, np.int32)
    assert quant.int_matmul(a, b)[0, 0] == -255 * 255 * 30000
    big = np.full((1, 2), 2**30, np.int64)  # float64 would be inexact: int64 path
    assert quant.int_matmul(big, np.full((2, 1), 3, np.int64)).dtype == np.int32


# ============================================================== convolution
CONV_CASES = [
    ({"pads": [1, 1, 1, 1]}, (1, 3, 8, 8), (4, 3, 3, 3)),
    ({"strides": [2, 2], "pads": [0, 1, 2, 1]}, (2, 4, 9, 7), (6, 4, 3, 2)),
    ({"dilations": [2, 1], "pads": [2, 1, 2, 0]}, (1, 2, 7, 7), (3, 2, 3, 3)),
    ({"auto_pad": "SAME_UPPER"}, (1, 2, 7, 7), (3, 2, 4, 3)),
    ({"auto_pad": "SAME_LOWER", "strides": [2, 2]}, (1, 2, 6, 5), (2, 2, 2, 2)),
    ({"group": 4, "pads": [1, 1, 1, 1]}, (1, 4, 5, 5), (4, 1, 3, 3)),  # depthwise
    ({"group": 2, "auto_pad": "VALID"}, (1, 4, 6, 6), (6, 2, 3, 3)),
    ({"strides": [2], "pads": [1, 2]}, (2, 3, 11), (5, 3, 4)),  # 1-D
]


@pytest.mark.parametrize("attrs,xs,ws", CONV_CASES)
def test_conv_integer(attrs, xs, ws):
    x, w = u8(*xs), i8(*ws) if ws[0] % 2 else u8(*ws)
    check_op("ConvInteger", [x, Const(w), np.uint8(7), Const(np.array(1, w.dtype))], attrs)
    check_op("ConvInteger", [x, w], attrs)


def test_conv_integer_per_channel_weight_zero_point():
    # onnxruntime only accepts scalar zero points here; ONNX's reference is the oracle.
    inputs = [u8(1, 3, 6, 6), Const(u8(4, 3, 3, 3)), Const(np.uint8(5)), Const(u8(4))]
    check_op("ConvInteger", inputs, {"pads": [1, 1, 1, 1]},
             expected=onnx_ref("ConvInteger", inputs, {"pads": [1, 1, 1, 1]}))


@pytest.mark.parametrize("attrs,xs,ws", CONV_CASES)
@pytest.mark.parametrize("signed", [False, True])
def test_qlinear_conv(attrs, xs, ws, signed):
    gen, dt = (i8, np.int8) if signed else (u8, np.uint8)
    m = ws[0]
    x, w = gen(*xs), i8(*ws)
    bias = rng.integers(-3000, 3000, m).astype(np.int32)
    w_scale = (np.abs(randn(m)) * 0.01 + 0.002).astype(f32)
    inputs = [x, f32(0.05), dt(3), Const(w), Const(w_scale), Const(np.zeros(m, np.int8)),
              f32(0.3), dt(-4 if signed else 120), Const(bias)]
    check_op("QLinearConv", inputs, attrs)
    # per-tensor weights, no bias
    check_op("QLinearConv", inputs[:4] + [f32(0.004), np.int8(0), f32(0.25), dt(1)], attrs)


# ============================================================ QLinearMatMul
@pytest.mark.parametrize("gen,dt", [(u8, np.uint8), (i8, np.int8)])
def test_qlinear_matmul(gen, dt):
    a, b = gen(2, 4, 16), gen(16, 5)
    check_op("QLinearMatMul", [a, f32(0.02), dt(3), Const(b), Const(f32(0.01)), Const(dt(1)),
                               f32(0.05), dt(2)])
    check_op("QLinearMatMul", [a[0], f32(0.02), dt(3), b, np.abs(randn(5)) * 0.01 + 0.001,
                               np.zeros(5, dt), f32(0.05), dt(2)])
    check_op("QLinearMatMul", [a[0], f32(0.02), dt(3), b, f32(0.01), dt(0), f32(0.05), dt(2)],
             opset=10)


# ===================================================================== QGemm
@pytest.mark.parametrize("adt", [np.uint8, np.int8])
def test_qgemm_like_the_qop_models(adt):
    """QGemm exactly as onnxruntime's quantizer writes it: per-channel int8 weights, int32 bias."""
    gen = u8 if adt == np.uint8 else i8
    n = 10
    inputs = [gen(3, 64), f32(0.0517), adt(-3 if adt == np.int8 else 130), Const(i8(n, 64)),
              Const((np.abs(randn(n)) * 0.01 + 1e-3).astype(f32)), Const(np.zeros(n, np.int8)),
              Const(rng.integers(-5000, 5000, n).astype(np.int32)), f32(0.173),
              adt(5 if adt == np.int8 else 100)]
    check_op("QGemm", inputs, {"alpha": 1.0, "transB": 1}, domain=MS)


def test_qgemm_variants():
    a, b = u8(4, 12), i8(12, 6)
    # float output (no y_scale / y_zero_point), alpha, (M, N) bias, per-tensor B zero point
    check_op("QGemm", [a, f32(0.05), np.uint8(3), Const(b), Const(f32(0.01)), Const(np.int8(2)),
                       Const(rng.integers(-99, 99, (4, 6)).astype(np.int32))],
             {"alpha": 0.5}, domain=MS)
    # transA, (M, 1) bias, no bias
    check_op("QGemm", [a.T.copy(), f32(0.05), np.uint8(3), Const(b), Const(f32(0.01)),
                       Const(np.int8(0)), Const(np.arange(4, dtype=np.int32).reshape(4, 1)),
                       f32(0.2), np.uint8(7)], {"transA": 1}, domain=MS)
    check_op("QGemm", [a, f32(0.05), np.uint8(3), b, f32(0.01), np.int8(0), None, f32(0.2),
                       np.uint8(7)], domain=MS)


# ======================================================= contrib elementwise
@pytest.mark.parametrize("gen,dt", [(u8, np.uint8), (i8, np.int8)])
@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_qlinear_binary(op, gen, dt):
    a = gen(2, 9, 33)
    for b in (gen(2, 9, 33), gen(33), gen(1)):
        check_op(op, [a, f32(0.05), dt(3), b, f32(0.07), dt(5), f32(0.11), dt(7)], domain=MS)
    check_op(op, [a, f32(0.05), dt(0), Const(gen(33)), f32(0.07), Const(dt(1)), f32(0.11), dt(2)],
             domain=MS)


@pytest.mark.parametrize("gen,dt", [(u8, np.uint8), (i8, np.int8)])
def test_qlinear_unary_and_pool(gen, dt):
    x = gen(2, 5, 4, 6)
    check_op("QLinearLeakyRelu", [x, f32(0.05), dt(3), f32(0.03), dt(9)], {"alpha": 0.1},
             domain=MS)
    y_zp = dt(-128 if dt == np.int8 else 0)
    check_op("QLinearSigmoid", [x, f32(0.05), dt(3), f32(1 / 256), y_zp], domain=MS)
    for last in (0, 1):
        check_op("QLinearGlobalAveragePool", [x, f32(0.05), dt(3), f32(0.02), dt(4)],
                 {"channels_last": last}, domain=MS)
    check_op("QLinearConcat", [f32(0.05), dt(3), gen(2, 3, 4), f32(0.05), dt(3), gen(2, 5, 4),
                               f32(0.09), dt(7), Const(gen(2, 1, 4)), f32(0.02), dt(1)],
             {"axis": 1}, domain=MS)


def test_matmul_integer_to_float_and_dynamic_quantize_matmul():
    check_op("MatMulIntegerToFloat", [u8(5, 16), i8(16, 7), f32(0.05), np.abs(randn(7)) * 0.1,
                                      np.uint8(3), i8(7), randn(7)], domain=MS)
    check_op("MatMulIntegerToFloat", [u8(2, 5, 16), Const(u8(16, 7)), f32(0.05), f32(0.1),
                                      np.uint8(3), Const(np.uint8(9))], domain=MS)
    check_op("DynamicQuantizeMatMul", [randn(5, 16), Const(i8(16, 7)),
                                       Const(np.abs(randn(7)) * 0.1), Const(i8(7)),
                                       Const(randn(7))], domain=MS)
    check_op("DynamicQuantizeMatMul", [randn(2, 5, 16), Const(u8(16, 7)), Const(f32(0.1)),
                                       Const(np.uint8(128))], domain=MS)


def test_com_microsoft_quantize_dequantize_and_qlinear_conv():
    """onnxruntime's com.microsoft copies import as the ONNX ops."""
    x = randn(2, 3, 4, scale=3.0)
    check_op("QuantizeLinear", [x, Const(np.array([0.1, 0.2, 0.3], f32)),
                                Const(np.array([0, 5, -3], np.int16))], {"axis": 1}, domain=MS)
    check_op("DequantizeLinear", [u8(2, 3), f32(0.1), np.uint8(4)], domain=MS)
    inputs = [u8(1, 2, 5, 5), f32(0.05), np.uint8(3), Const(u8(3, 2, 3, 3)), f32(0.01),
              np.uint8(100), f32(0.2), np.uint8(5)]
    check_op("QLinearConv", inputs, {"pads": [1, 1, 1, 1], "channels_last": 0}, domain=MS)
    _expect_error("QLinearConv", inputs, {"channels_last": 1}, match="channels_last", domain=MS)


# ============================================================ ir.quant units
def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0, np.nan], f32)
    q = quant.quantize(x, f32(1.0), np.int8(0), DType.I8)
    assert q.dtype == np.int8
    assert q.tolist() == [0, 2, 2, 0, -2, 127, -128, -128]  # NaN -> lowest
    assert quant.quantize(x[:5], f32(1.0), np.uint8(10), DType.U8).tolist() == [10, 12, 12, 10, 8]


def test_expand_param_and_dequantize_per_axis():
    q = np.arange(12, dtype=np.int8).reshape(2, 3, 2)
    out = quant.dequantize(q, np.array([1, 2, 4], f32), np.array([0, 1, 2], np.int8), axis=1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :, 0], [0, 2 * (2 - 1), 4 * (4 - 2)])
    blocked = quant.expand_param(np.array([[1.0, 2.0]], f32), (1, 5), axis=1, block_size=3)
    np.testing.assert_array_equal(blocked, [[1, 1, 1, 2, 2]])
    with pytest.raises(CompilerError, match="wrong length"):
        quant.expand_param(np.ones(4, f32), (2, 3), axis=1)


def test_quantize_multiplier_round_trip():
    m = np.array([0.0, 1e-6, 0.000123, 0.25, 0.7071, 0.99999999, 1.0, 3.5], np.float64)
    mant, shift = quant.quantize_multiplier(m)
    assert mant.dtype == np.int32 and shift.dtype == np.int32
    nz = m > 0
    assert np.all((mant[nz] >= 2**30) & (mant[nz] < 2**31))
    back = mant.astype(np.float64) * np.exp2(shift.astype(np.float64) - 31)
    np.testing.assert_allclose(back, m, rtol=2.0**-30)


def test_requantize_fixed_matches_float_path():
    acc = rng.integers(-2**20, 2**20, 20000).astype(np.int32)
    mult = np.float32(0.000734)
    ref = quant.requantize(acc, mult, np.int8(-3), DType.I8)
    mant, shift = quant.quantize_multiplier(float(mult))
    for rounding in ("half_even", "half_up", "half_away", "gemmlowp"):
        got = quant.requantize_fixed(acc, mant, shift, -3, DType.I8, rounding)
        assert got.dtype == np.int8
        assert np.max(np.abs(got.astype(int) - ref.astype(int))) <= 1, rounding
    exact = quant.requantize_fixed(acc, mant, shift, -3, DType.I8, "half_even")
    assert np.mean(exact == ref) > 0.999


def test_rounding_shift_right_modes():
    x = np.array([5, 6, 7, -5, -6, -7, 4], np.int64)  # / 4: 1.25 1.5 1.75 -1.25 -1.5 -1.75 1
    assert quant.rounding_shift_right(x, 2, "half_even").tolist() == [1, 2, 2, -1, -2, -2, 1]
    assert quant.rounding_shift_right(x, 2, "half_up").tolist() == [1, 2, 2, -1, -1, -2, 1]
    assert quant.rounding_shift_right(x, 2, "half_away").tolist() == [1, 2, 2, -1, -2, -2, 1]
    assert quant.rounding_shift_right(x, 0).tolist() == x.tolist()


def test_gemmlowp_rounding_reference_values():
    # TFLite MultiplyByQuantizedMultiplier(x, 2**30 (=0.5), shift -1): x * 0.25, ties away.
    x = np.array([2, 6, -2, -6, 10], np.int64)
    got = quant.requantize_fixed(x, 2**30, -1, 0, DType.I8, "gemmlowp")
    assert got.tolist() == [1, 2, -1, -2, 3]


def test_dynamic_qparams():
    scale, zp = quant.dynamic_qparams(np.array([-1.0, 3.0], f32))
    assert scale == np.float32(4.0 / 255) and zp == 64
    assert quant.dynamic_qparams(np.zeros(3, f32)) == (np.float32(1.0), 0)


# ================================================================ negatives
def _expect_error(op, inputs, attrs=None, match="", domain=""):
    with pytest.raises(CompilerError, match=match):
        run_ours(make_model(op, inputs, attrs, domain=domain),
                 {f"in{i}": x for i, x in enumerate(inputs)
                  if x is not None and not isinstance(x, Const)})


def test_errors():
    x = randn(2, 3)
    _expect_error("QuantizeLinear", [x, Const(np.ones(4, f32))], {"axis": 1},
                  match="per-axis scale length")
    _expect_error("QuantizeLinear", [x, f32(0.1), np.uint8(1)], {"output_dtype": TP.INT8},
                  match="output_dtype and the zero point")
    _expect_error("QuantizeLinear", [x, Const(np.ones((2, 3), f32))], {"block_size": 2},
                  match="blocked scale has the wrong size")
    _expect_error("DequantizeLinear", [u8(2), f32(0.1), np.int8(0)],
                  match="zero point must have the data's element type")
    _expect_error("MatMulInteger", [u8(2, 3), u8(4, 5)], match="inner dimensions")
    _expect_error("MatMulInteger", [x, u8(3, 5)], match="unsupported element type")
    _expect_error("ConvInteger", [u8(1, 3, 5, 5), u8(2, 4, 3, 3)], match="input channels")
    _expect_error("QLinearConv", [u8(1, 3, 5, 5), f32(0.1), np.uint8(0), u8(2, 3, 3, 3),
                                  Const(np.ones(3, f32)), np.uint8(0), f32(0.1), np.uint8(0)],
                  match="w_scale has the wrong length")
    _expect_error("QGemm", [u8(2, 3), f32(0.1), np.uint8(0), i8(4, 5), f32(0.1), np.int8(0)],
                  match="inner dimensions", domain=MS)
    _expect_error("QLinearAdd", [u8(2), f32(0.1), np.uint8(0), i8(2), f32(0.1), np.int8(0),
                                 f32(0.1), np.uint8(0)], match="share one element type",
                  domain=MS)


# ======================================================= the int8 models
INT8_DIR = os.path.join(SHARED_DATA, "int8")
OURS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
        "QLinearMatMul", "ConvInteger", "MatMulInteger", "Cast", "QGemm"}


def _intermediates(model: onnx.ModelProto, x: np.ndarray) -> dict:
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for o in node.output:
            if o and o not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    vals = sess.run(None, {"input": x})
    return {o.name: v for o, v in zip(sess.get_outputs(), vals)} | {"input": x}


@pytest.mark.skipif(not os.path.isdir(INT8_DIR), reason="int8 models not available")
@pytest.mark.parametrize("path", sorted(glob.glob(f"{INT8_DIR}/*.onnx")),
                         ids=lambda p: os.path.basename(p))
def test_int8_model_nodes(path):
    """Every quantization node of the model, alone, equals onnxruntime on real activations."""
    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    x = np.load(os.path.join(SHARED_DATA, "digits_test.npz"))["x_test"][:3].astype(f32)
    x = x.reshape((3,) + tuple(d.dim_value for d in dims[1:]))
    values = _intermediates(model, x)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    checked = 0
    for node in model.graph.node:
        if node.op_type not in OURS:
            continue
        inputs = [None if not n else Const(inits[n]) if n in inits else values[n]
                  for n in node.input]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        ours = check_op(node.op_type, inputs, attrs, opset=17, domain=node.domain,
                        num_outputs=len(node.output), rtol=1e-6, atol=1e-6)
        # and the node's output in the whole onnxruntime run (ints exactly, floats closely)
        for name, got in zip(node.output, ours):
            want = values[name]
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"{node.op_type} {name}")
        checked += 1
    assert checked > 0
