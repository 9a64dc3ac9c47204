"""bfloat16, float8, float4, float8e8m0 and int4/int2 on the cpu target, bit for bit against the reference.

Conversions must give exactly the reference's bits (float8/bfloat16 NaNs have
the reference's sign and payload too; float16/32/64 NaNs only need to be NaN).
Inputs are runtime inputs, so a cpu kernel computes every case (nothing folds).
"""

import ml_dtypes
import numpy as np
import pytest

import compiler
from ir.dtypes import DType
from tests.cpu.helpers import one_op

rng = np.random.default_rng(7)

FLOAT8 = [DType.F8E4M3FN, DType.F8E4M3FNUZ, DType.F8E5M2, DType.F8E5M2FNUZ]
NARROW_FLOATS = FLOAT8 + [DType.BF16, DType.F4E2M1, DType.F8E8M0]
NARROW_INTS = [DType.I4, DType.U4, DType.I2, DType.U2]


def _special_floats(dtype=np.float32) -> np.ndarray:
    """Ties, overflow, subnormals, infinities and NaNs of every narrow format, both signs, plus noise."""
    ties = []
    for t in NARROW_FLOATS:
        if t is DType.F8E8M0:
            continue
        codes = np.arange(256 if t is not DType.BF16 else 65536, dtype=np.uint8 if t is not DType.BF16
                          else np.uint16)
        if t is DType.F4E2M1:
            codes = codes[:16]
        with np.errstate(all="ignore"):
            vals = np.unique(np.abs(codes.view(t.np).astype(np.float64)))
        vals = vals[np.isfinite(vals)]
        if t is DType.BF16:
            vals = vals[rng.integers(0, vals.size, 300)]
            vals = np.unique(vals)
        mids = (vals[:-1] + vals[1:]) / 2
        ties += [vals, mids, np.nextafter(mids.astype(np.float32), np.inf), np.nextafter(mids.astype(np.float32), 0),
                 vals * 1.01, vals * 1.5]
    base = np.concatenate(ties + [np.array([0.0, np.inf, np.nan, 1e-30, 1e30, 3e38, 1e-40, 65504.0, 70000.0,
                                            2.0 ** -127, 2.0 ** 127, 3 * 2.0 ** 126])])
    base = np.concatenate([base, -base, rng.standard_normal(500) * 100, rng.standard_normal(500)])
    with np.errstate(all="ignore"):
        return base.astype(dtype)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16 if a.dtype.itemsize == 2 else np.uint8 if a.dtype.itemsize == 1 else
                  np.uint32 if a.dtype.itemsize == 4 else np.uint64)


def _run_both(model, feeds):
    ref = compiler.compile(model, target="ref").run(feeds)
    exe = compiler.compile(model, target="cpu")
    cpu = exe.run(feeds)
    return ref, cpu, exe


def _assert_same_bits(cpu: np.ndarray, ref: np.ndarray) -> None:
    """Same bits; NaNs of float16/32/64 results only need to be NaN (hardware quiets signalling ones)."""
    assert cpu.dtype == ref.dtype and cpu.shape == ref.shape
    with np.errstate(invalid="ignore"):
        nan = np.isnan(ref.astype(np.float32)) if ref.dtype.kind not in "iub" and \
            DType.from_numpy(ref.dtype).is_float else np.zeros(ref.shape, bool)
    if nan.any():
        assert np.isnan(cpu[nan].astype(np.float32)).all()
    wide_nan = nan if ref.dtype.kind == "f" else np.zeros_like(nan)
    bad = np.nonzero((_bits(cpu) != _bits(ref)) & ~wide_nan)
    if bad[0].size:
        i = bad[0][:8]
        raise AssertionError(f"{bad[0].size} elements differ: cpu {_bits(cpu)[i]} vs ref {_bits(ref)[i]}")


def _cast(x: np.ndarray, to: DType, **attrs):
    model, feeds = one_op("Cast", [x], {"to": to.onnx, **attrs}, opset=25)
    ref, cpu, _ = _run_both(model, feeds)
    _assert_same_bits(cpu["out0"], ref["out0"])
    return cpu["out0"]


@pytest.mark.parametrize("src", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("to", NARROW_FLOATS, ids=lambda t: t.short)
def test_cast_float_to_narrow_float(src, to):
    _cast(_special_floats(src), to)


@pytest.mark.parametrize("to", FLOAT8, ids=lambda t: t.short)
def test_cast_to_float8_without_saturation(to):
    _cast(_special_floats(np.float32), to, saturate=0)
    _cast(_special_floats(np.float16), to, saturate=0)


@pytest.mark.parametrize("mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_to_e8m0_round_modes(mode, saturate):
    x = np.abs(_special_floats(np.float32))
    _cast(x, DType.F8E8M0, round_mode=mode, saturate=saturate)


@pytest.mark.parametrize("src", [np.int32, np.int64, np.uint64] + [pytest.param(t, marks=pytest.mark.slow) for t in
                                 (np.int8, np.uint8, np.int16, np.uint32, np.bool_)])
@pytest.mark.parametrize("to", NARROW_FLOATS + NARROW_INTS, ids=lambda t: t.short)
def test_cast_int_to_narrow(src, to):
    info = np.iinfo(src) if src is not np.bool_ else None
    if info is None:
        x = rng.integers(0, 2, 64).astype(bool)
    else:
        # Values around every power of two (double-rounding traps) and the extremes.
        p = [2 ** k + d for k in range(min(info.bits, 63)) for d in (-1, 0, 1, 2 ** max(0, k - 9) + 1)]
        x = np.array([v for v in p + [-v for v in p] + [info.min, info.max, 0] if info.min <= v <= info.max],
                     dtype=object).astype(src)
    _cast(x, to)


@pytest.mark.parametrize("src", NARROW_FLOATS + NARROW_INTS, ids=lambda t: t.short)
@pytest.mark.parametrize("to", [DType.F32, DType.F16, DType.I8] + [pytest.param(t, marks=pytest.mark.slow) for t in
                                 (DType.F64, DType.U8, DType.I32, DType.I64, DType.BOOL)], ids=lambda t: t.short)
def test_cast_from_narrow(src, to):
    n = 16 if src in NARROW_INTS or src is DType.F4E2M1 else 256
    codes = np.arange(n, dtype=np.uint8) if src is not DType.BF16 else \
        rng.integers(0, 65536, 2000).astype(np.uint16)
    x = codes.view(src.np)
    if to.is_int and src in NARROW_FLOATS:
        with np.errstate(invalid="ignore"):
            x = x[np.isfinite(x.astype(np.float32)) & (np.abs(x.astype(np.float32)) < 100)]  # C-undefined otherwise
    _cast(x, to)


@pytest.mark.parametrize("pair", [(DType.F8E4M3FN, DType.F8E5M2), (DType.BF16, DType.F8E4M3FNUZ),
                                  (DType.I4, DType.U2), (DType.F4E2M1, DType.BF16), (DType.U4, DType.F8E4M3FN)],
                         ids=lambda p: f"{p[0].short}-{p[1].short}")
def test_cast_narrow_to_narrow(pair):
    src, to = pair
    n = 16 if src in NARROW_INTS or src is DType.F4E2M1 else 256
    codes = np.arange(n, dtype=np.uint8) if src is not DType.BF16 else rng.integers(0, 65536, 2000).astype(np.uint16)
    _cast(codes.view(src.np), to)


def test_bf16_arithmetic_rounds_per_op():
    """A fused bf16 chain gives the reference's bits: each op is rounded to bf16."""
    import onnx
    from onnx import helper
    x = rng.standard_normal((4, 37)).astype(ml_dtypes.bfloat16)
    y = rng.standard_normal((37,)).astype(ml_dtypes.bfloat16)
    nodes = [helper.make_node("Mul", ["x", "y"], ["m"]), helper.make_node("Add", ["m", "x"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Sub", ["r", "y"], ["out"])]
    bf = onnx.TensorProto.BFLOAT16
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", bf, [4, 37]),
                                           helper.make_tensor_value_info("y", bf, [37])],
                              [helper.make_tensor_value_info("out", bf, [4, 37])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    ref, cpu, _ = _run_both(model, {"x": x, "y": y})
    _assert_same_bits(cpu["out"], ref["out"])


def test_float8_arithmetic_is_refused_by_name():
    x = np.arange(8, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)
    model, feeds = one_op("Add", [x, x], opset=21)
    with pytest.raises(Exception, match="Add on f8e4m3fn is not supported"):
        compiler.compile(model, target="cpu")


@pytest.mark.parametrize("to", [DType.BF16, DType.F8E4M3FN, DType.I4], ids=lambda t: t.short)
def test_cast_fused_into_a_conv_epilogue(to):
    """Conv + Relu + Cast in one kernel stores the narrow type with the reference's bits."""
    from onnx import helper, numpy_helper
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=to.onnx)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", to.onnx, [1, 8, 16, 16])],
                              initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    feeds = {"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)}
    ref, cpu, exe = _run_both(model, feeds)
    _assert_same_bits(cpu["y"], ref["y"])
    # The Cast is stored by the kernel before it (the conv's epilogue, or the conversion out of the
    # blocked layout when layout-nchwc pads the 8 channels to a block), never a kernel of its own.
    casts = [label for label, _ in exe.profile(feeds) if "Cast" in label]
    assert len(casts) == 1 and "+Cast" in casts[0], casts
