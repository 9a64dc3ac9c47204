"""QuantizeLinear/DequantizeLinear beyond int8 on the cpu target, bit for bit against the reference.

int4/uint4/int2/uint2, int16/uint16, float8 and float4 data; float16 and
bfloat16 scales; per-tensor, per-axis and blocked parameters.
"""

import ml_dtypes
import numpy as np
import pytest

import compiler
from ir.dtypes import DType
from tests.cpu.helpers import one_op
from tests.cpu.test_narrow_types import _assert_same_bits
from tests.ops.ortcheck import Const

rng = np.random.default_rng(3)
QTYPES = [DType.I4, DType.U4, DType.I2, DType.U2, DType.I16, DType.U16, DType.F8E4M3FN, DType.F8E4M3FNUZ,
          DType.F8E5M2, DType.F8E5M2FNUZ, DType.F4E2M1]


def _zero_point(qdt: DType, shape) -> np.ndarray:
    if qdt.is_int:
        lo, hi = {DType.I4: (-8, 7), DType.U4: (0, 15), DType.I2: (-2, 1), DType.U2: (0, 3),
                  DType.I16: (-300, 300), DType.U16: (0, 600)}[qdt]
        return rng.integers(lo, hi + 1, shape).astype(qdt.np)
    return np.zeros(shape, np.float32).astype(qdt.np)  # ONNX: float zero points are 0


def _params(layout: str, x: np.ndarray, sdtype):
    if layout == "tensor":
        return np.array(0.37, sdtype), {}, ()
    if layout == "axis":
        return (rng.uniform(0.05, 2, x.shape[1])).astype(sdtype), {"axis": 1}, (x.shape[1],)
    shape = (x.shape[0], -(-x.shape[1] // 4), x.shape[2])
    return rng.uniform(0.05, 2, shape).astype(sdtype), {"axis": 1, "block_size": 4}, shape


def _run(model, feeds):
    ref = compiler.compile(model, target="ref").run(feeds)["out0"]
    cpu = compiler.compile(model, target="cpu").run(feeds)["out0"]
    _assert_same_bits(cpu, ref)


@pytest.mark.parametrize("sdtype", [np.float32, pytest.param(np.float16, marks=pytest.mark.slow),
                                    pytest.param(ml_dtypes.bfloat16, marks=pytest.mark.slow)], ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("layout", ["tensor", "axis", "block"])
@pytest.mark.parametrize("qdt", QTYPES, ids=lambda t: t.short)
def test_quantize_dequantize(qdt, layout, sdtype):
    """Round trip through both ops (half-precision scales in the slow run)."""
    x = (rng.standard_normal((2, 10, 7)) * 40).astype(np.float32)
    x[0, 0, :3] = [np.nan, np.inf, -np.inf]
    x = x.astype(sdtype)  # the data has the scale's type
    scale, attrs, pshape = _params(layout, x, sdtype)
    zp = _zero_point(qdt, pshape)
    model, feeds = one_op("QuantizeLinear", [x, Const(scale), Const(zp)], attrs, opset=25)
    _run(model, feeds)
    q = compiler.compile(model, target="ref").run(feeds)["out0"]
    model, feeds = one_op("DequantizeLinear", [q, Const(scale), Const(zp)], attrs, opset=25)
    _run(model, feeds)


@pytest.mark.parametrize("qdt", [DType.F8E4M3FN, DType.F8E5M2], ids=lambda t: t.short)
def test_quantize_float8_without_saturation(qdt):
    x = (rng.standard_normal((3, 50)) * 1e5).astype(np.float32)
    zp = np.zeros((), np.float32).astype(qdt.np)
    model, feeds = one_op("QuantizeLinear", [x, Const(np.array(2.0, np.float32)), Const(zp)], {"saturate": 0},
                          opset=25)
    _run(model, feeds)
