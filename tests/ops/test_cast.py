"""Cast, CastLike and BitCast against onnxruntime (ONNX's reference for the narrow types)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP

from ir.dtypes import DType
from ir.errors import CompilerError
from ir.ops.cast import cast_array, to_e8m0
from tests.ops.ortcheck import Const, check_op, make_model, run_ours

rng = np.random.default_rng(7)
f32 = np.float32

NUMERIC = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.uint16, np.int32,
           np.uint32, np.int64, np.uint64, np.bool_]
CODE = {np.dtype(t): DType.from_numpy(t).onnx for t in NUMERIC}


def values(dt) -> np.ndarray:
    """Interesting values of a NumPy type: signs, fractions, out-of-range for narrower types."""
    if dt == np.bool_:
        return np.array([[True, False, True], [False, False, True]])
    if np.issubdtype(dt, np.floating):
        return np.array([[0.0, -0.0, 1.5, -2.5, 2.7, -3.7], [100.25, 127.9, 255.5, 1e3, -7e3, 0.3]],
                        dt)
    info = np.iinfo(dt)
    v = np.array([0, 1, -1, 127, 128, 255, 256, -129, 40000, 70000, 2**31 + 5, -2**31],
                 np.int64)
    return np.clip(v, info.min, info.max).astype(dt).reshape(2, 6)


@pytest.mark.parametrize("src", NUMERIC, ids=lambda t: np.dtype(t).name)
def test_cast_between_numeric_types(src):
    x = values(src)
    for dst in NUMERIC:
        check_op("Cast", [x], {"to": CODE[np.dtype(dst)]})
    check_op("Cast", [Const(x)], {"to": TP.FLOAT})


def test_cast_special_floats_to_bool_and_float16():
    x = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, 7e4], f32)
    check_op("Cast", [x], {"to": TP.BOOL})
    check_op("Cast", [x], {"to": TP.FLOAT16})
    check_op("Cast", [x.astype(np.float64)], {"to": TP.FLOAT})


def test_cast_bfloat16():
    x = (rng.standard_normal((3, 4)) * 100).astype(f32)
    bf = check_op("Cast", [x], {"to": TP.BFLOAT16},
                  expected=[x.astype(ml_dtypes.bfloat16)])[0]
    check_op("Cast", [bf], {"to": TP.FLOAT}, expected=[bf.astype(f32)])
    check_op("Cast", [bf], {"to": TP.INT32}, expected=[bf.astype(f32).astype(np.int32)])


@pytest.mark.parametrize("src", [np.float32, np.float64, np.float16, np.int32, np.int64,
                                 np.uint8, np.bool_], ids=lambda t: np.dtype(t).name)
def test_cast_to_string(src):
    if np.issubdtype(src, np.floating):
        x = np.array([0.1, 1 / 3, 1e10, -2.5, np.nan, np.inf, -np.inf, 1e-7, 100.0,
                      123456789.0], np.float64)
        if src == np.float16:  # keep the infinities, drop what overflows float16
            x = np.where(np.isfinite(x), np.clip(x, -6e4, 6e4), x)
        x = x.astype(src)
    else:
        x = values(src)
    check_op("Cast", [x], {"to": TP.STRING})


@pytest.mark.parametrize("dst", [TP.FLOAT, TP.DOUBLE, TP.FLOAT16, TP.INT32, TP.INT64, TP.INT8,
                                 TP.UINT8, TP.BOOL])
def test_cast_from_string(dst):
    floaty = ["1.5", "-INF", "inf", "+INF", "NaN", "nan", "1e-5", "1E8", " 7", "0x10", "3",
              "-0.25"]
    inty = ["12", "-7", "300", "+4", " 9", "1.5", "1e3", "0", "-1"]
    x = np.array(inty if dst in (TP.INT32, TP.INT64, TP.INT8, TP.UINT8, TP.BOOL) else floaty,
                 dtype=object)
    check_op("Cast", [x], {"to": dst})


def test_cast_string_round_trip_and_identity():
    x = np.array(["a", "bc"], dtype=object)
    check_op("Cast", [x], {"to": TP.STRING})
    v = np.array([3.25, -1e-3], f32)
    s = cast_array(v, DType.STR)
    assert s.tolist() == ["3.25", "-0.001"]
    np.testing.assert_array_equal(cast_array(s, DType.F32), v)


F8 = [(TP.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn), (TP.FLOAT8E4M3FNUZ, ml_dtypes.float8_e4m3fnuz),
      (TP.FLOAT8E5M2, ml_dtypes.float8_e5m2), (TP.FLOAT8E5M2FNUZ, ml_dtypes.float8_e5m2fnuz)]


@pytest.mark.parametrize("to,np_t", F8, ids=lambda v: str(v))
@pytest.mark.parametrize("src", [np.float32, np.float16])
def test_cast_float8_saturate(to, np_t, src):
    x = np.array([0.3, 448, 460, 1e4, -1e4, np.inf, -np.inf, np.nan, 1e-9, -0.0, 57344],
                 f32).astype(src)
    m = float(ml_dtypes.finfo(np_t).max)
    sat = np.clip(x.astype(f32), -m, m).astype(np_t)
    check_op("Cast", [x], {"to": to}, expected=[sat])
    check_op("Cast", [x], {"to": to, "saturate": 0}, expected=[x.astype(f32).astype(np_t)])
    # onnxruntime agrees on values away from the rounding edge of the largest float
    y = np.array([0.3, 1e6, -1e6, np.inf, np.nan, 2.0, -17.0], f32)
    for s in (0, 1):
        _check_round_trip_with_ort(y, to, s)


def _check_round_trip_with_ort(x: np.ndarray, to: int, saturate: int) -> None:
    """Cast(to) then Cast(float) in both runtimes (onnxruntime cannot return float8 arrays)."""
    from onnx import helper
    from tests.ops.ortcheck import run_ort
    nodes = [helper.make_node("Cast", ["x"], ["m"], to=to, saturate=saturate),
             helper.make_node("Cast", ["m"], ["y"], to=TP.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TP.FLOAT, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    ours, theirs = run_ours(model, {"x": x})[0], run_ort(model, {"x": x})[0]
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("to,np_t", [(TP.INT4, ml_dtypes.int4), (TP.UINT4, ml_dtypes.uint4),
                                     (TP.INT2, ml_dtypes.int2), (TP.UINT2, ml_dtypes.uint2),
                                     (TP.FLOAT4E2M1, ml_dtypes.float4_e2m1fn)],
                         ids=["i4", "u4", "i2", "u2", "f4"])
def test_cast_sub_byte_types(to, np_t):
    x = np.arange(-9, 16).astype(f32).reshape(5, 5)
    y = check_op("Cast", [x], {"to": to}, opset=25, expected=[x.astype(np_t)])[0]
    check_op("Cast", [y], {"to": TP.FLOAT}, opset=25, expected=[y.astype(f32)])
    check_op("Cast", [y], {"to": TP.INT8}, opset=25, expected=[y.astype(f32).astype(np.int8)])
    i = np.array([-200, 200, 17, -9], np.int32)
    if to != TP.FLOAT4E2M1:  # integers wrap, like every integer narrowing
        check_op("Cast", [i], {"to": to}, opset=25, expected=[i.astype(np_t)])


@pytest.mark.parametrize("mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_float8e8m0(mode, saturate):
    x = np.array([0.0, 0.124, 0.25, 0.5, 1.1, 1.5, 2.0, 3.0, 4.0, 8.0, 1e-40, 3e38], f32)
    want = onnx.numpy_helper.to_float8e8m0(x, saturate=bool(saturate), round_mode=mode)
    check_op("Cast", [x], {"to": TP.FLOAT8E8M0, "saturate": saturate, "round_mode": mode},
             opset=24, expected=[want])
    h = x[:-1].astype(np.float16)  # (3e38 is Inf in float16: see below)
    check_op("Cast", [h], {"to": TP.FLOAT8E8M0}, opset=24,
             expected=[onnx.numpy_helper.to_float8e8m0(h)])
    # infinities: the spec's table (largest value when saturating, NaN otherwise)
    inf = to_e8m0(np.array([np.inf, np.nan], f32), bool(saturate), mode).view(np.uint8)
    assert inf.tolist() == ([0xFE, 0xFF] if saturate else [0xFF, 0xFF])


@pytest.mark.parametrize("opset", [6, 9, 13, 19, 21])
def test_cast_opsets(opset):
    x = (rng.standard_normal((2, 3)) * 50).astype(f32)
    check_op("Cast", [x], {"to": TP.INT16}, opset=opset)
    check_op("Cast", [Const(x)], {"to": TP.DOUBLE}, opset=opset)


@pytest.mark.parametrize("name,np_t", [("FLOAT", f32), ("int32", np.int32), ("Bool", np.bool_),
                                       ("DOUBLE", np.float64)])
def test_cast_v1_string_to(name, np_t):
    """Cast-1 (opsets 1-5) names the type with a string; the import rule maps it to a code."""
    x = np.array([[1.5, -2.0, 0.0]], f32)
    for opset in (1, 5):
        check_op("Cast", [x], {"to": name}, opset=opset, expected=[x.astype(np_t)])


@pytest.mark.parametrize("opset", [15, 19, 21])
def test_castlike(opset):
    x = (rng.standard_normal((3, 4)) * 10).astype(f32)
    for like in (np.zeros(1, np.float16), np.zeros((2, 2), np.int64), np.zeros(0, np.uint8),
                 np.zeros(3, np.float64)):
        check_op("CastLike", [x, like], opset=opset)
        check_op("CastLike", [x, Const(like)], opset=opset)
    check_op("CastLike", [np.array(["1.5", "-2"], dtype=object), np.zeros(1, f32)], opset=opset)


def test_castlike_saturate():
    x = np.array([1e6, -1e6, 0.5], f32)
    like = Const(np.zeros(1, ml_dtypes.float8_e4m3fn))
    check_op("CastLike", [x, like], {"saturate": 0}, opset=19,
             expected=[x.astype(ml_dtypes.float8_e4m3fn)])
    check_op("CastLike", [x, like], opset=19,
             expected=[np.array([448, -448, 0.5], f32).astype(ml_dtypes.float8_e4m3fn)])


@pytest.mark.parametrize("x,to", [
    (np.array([1.0, -2.5, np.inf], f32), TP.INT32),
    (np.array([[1, -1]], np.int64), TP.DOUBLE),
    (np.array([-1, 127, -128], np.int8), TP.UINT8),
    (np.array([True, False]), TP.INT8),
    (np.array(3.5, f32), TP.UINT32),
    (np.array([0x3C00, 0x7C00], np.uint16), TP.FLOAT16),
    (np.array([1.0, -3.0], np.float16), TP.BFLOAT16),
    (np.array([-1, 7, -8], np.int8).astype(ml_dtypes.int4), TP.UINT4),
])
def test_bitcast(x, to):
    want = x.view(DType.from_onnx(to).np) if x.ndim else x.reshape(1).view(
        DType.from_onnx(to).np).reshape(())
    check_op("BitCast", [x], {"to": to}, opset=26, expected=[want])
    check_op("BitCast", [Const(x)], {"to": to}, opset=26, expected=[want])


# ================================================================ negatives
def _expect_error(op, inputs, attrs, match, opset=21):
    with pytest.raises(CompilerError, match=match):
        model = make_model(op, inputs, attrs, opset=opset)
        run_ours(model, {f"in{i}": x for i, x in enumerate(inputs) if not isinstance(x, Const)})


def test_cast_errors():
    x = np.ones(3, f32)
    _expect_error("Cast", [x], {"to": 99}, "not a known element type")
    _expect_error("Cast", [x], {"to": TP.COMPLEX64}, "complex")
    _expect_error("Cast", [x], {"to": TP.FLOAT8E8M0, "round_mode": "sideways"}, "round_mode",
                  opset=24)
    _expect_error("Cast", [x], {"to": "FLAOT"}, "names no ONNX element type", opset=1)
    _expect_error("Cast", [np.array(["12", "abc"], dtype=object)], {"to": TP.INT32},
                  "not an integer")
    _expect_error("Cast", [np.array(["x1"], dtype=object)], {"to": TP.FLOAT}, "not a number")
    _expect_error("BitCast", [x], {"to": TP.INT64}, "same bit width", opset=26)
    _expect_error("BitCast", [x], {"to": TP.STRING}, "strings", opset=26)
