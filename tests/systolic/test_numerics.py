"""The array's arithmetic against the reference interpreter: fp32 within tolerance, integers bit-exact.

Models are built with onnx.helper (random weights) and compiled through ``--target systolic``;
every case runs under all three dataflows, whose K chunking differs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
FLOWS = ("os", "ws", "is")


def _model(nodes, inputs, outputs, inits, opset=17, ms=False) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "t", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    return helper.make_model(g, opset_imports=ops)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _compare(model, feeds, dataflow, exact=False, **options):
    sys_m = compiler.compile(model, target="systolic", options={"dataflow": dataflow, "rows": 4, "cols": 8,
                                                                 **options})
    ref_m = compiler.compile(model, target="ref")
    got, want = sys_m.run(feeds), ref_m.run(feeds)
    for k in want:
        if exact:
            assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
        else:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4 * float(np.abs(want[k]).max() + 1))
    return sys_m


CONVS = {  # name: (x shape, w shape, attrs)
    "plain": ((1, 3, 9, 9), (5, 3, 3, 3), {}),
    "strided_padded": ((2, 3, 11, 10), (6, 3, 3, 3), {"strides": [2, 2], "pads": [1, 0, 2, 1]}),
    "grouped": ((1, 8, 7, 7), (12, 4, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),
    "depthwise": ((2, 6, 8, 8), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "dilated": ((1, 4, 12, 12), (7, 4, 3, 3), {"dilations": [2, 2]}),
    "pointwise_big_k": ((1, 70, 5, 5), (9, 70, 1, 1), {}),
    "conv1d": ((3, 5, 17), (4, 5, 3), {"pads": [1, 1]}),
    "conv3d": ((1, 3, 6, 7, 5), (4, 3, 3, 3, 3), {"pads": [1] * 6, "strides": [1, 2, 1]}),
}


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("case", list(CONVS))
def test_float_conv(case, flow):
    xs, ws, attrs = CONVS[case]
    rng = np.random.default_rng(0)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs)
    relu = helper.make_node("Relu", ["c"], ["y"])
    m = _model([node, relu], [_vi("x", TensorProto.FLOAT, xs)], [_vi("y", TensorProto.FLOAT, None)],
               {"w": w, "b": b})
    _compare(m, {"x": rng.standard_normal(xs).astype(np.float32)}, flow)


@pytest.mark.parametrize("flow", FLOWS)
def test_float_gemm_matmul_and_residual(flow):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 24)).astype(np.float32)   # transA: A is K x M
    w = rng.standard_normal((17, 40)).astype(np.float32)
    c = rng.standard_normal((17,)).astype(np.float32)
    bm = rng.standard_normal((3, 17, 9)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["g"], transA=1, transB=1, alpha=0.5, beta=2.0),
             helper.make_node("Add", ["g", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"]),
             helper.make_node("MatMul", ["y", "bm"], ["z"]),             # broadcast: (24,17) @ (3,17,9)
             helper.make_node("MatMul", ["q", "k"], ["att"])]            # batched both sides
    m = _model(nodes, [_vi("a", TensorProto.FLOAT, (40, 24)), _vi("r", TensorProto.FLOAT, (24, 17)),
                       _vi("q", TensorProto.FLOAT, (2, 3, 5, 7)), _vi("k", TensorProto.FLOAT, (2, 3, 7, 6))],
               [_vi("z", TensorProto.FLOAT, None), _vi("att", TensorProto.FLOAT, None)], {"w": w, "c": c, "bm": bm})
    sysm = _compare(m, {"a": a, "r": rng.standard_normal((24, 17)).astype(np.float32),
                        "q": rng.standard_normal((2, 3, 5, 7)).astype(np.float32),
                        "k": rng.standard_normal((2, 3, 7, 6)).astype(np.float32)}, flow)
    kinds = [layer.kind for layer in sysm.executable.program.layers]
    assert kinds.count("gemm") == 3


def _q(rng, shape, dtype):
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("xdt", [np.uint8, np.int8])
def test_qlinear_conv_per_channel_is_bit_exact(flow, xdt):
    rng = np.random.default_rng(2)
    xs, ws = (2, 8, 9, 9), (12, 4, 3, 3)
    elem = TensorProto.UINT8 if xdt == np.uint8 else TensorProto.INT8
    inits = {"xs": np.float32(0.05), "xz": np.array(7 if xdt == np.uint8 else -3, xdt),
             "w": _q(rng, ws, np.int8), "wsc": rng.uniform(0.001, 0.01, 12).astype(np.float32),
             "wz": np.zeros(12, np.int8), "ys": np.float32(0.2), "yz": np.array(5, xdt),
             "b": rng.integers(-2000, 2000, 12).astype(np.int32)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "wsc", "wz", "ys", "yz", "b"], ["y"],
                            group=2, strides=[2, 1], pads=[1, 1, 0, 1])
    m = _model([node], [_vi("x", elem, xs)], [_vi("y", elem, None)], inits)
    _compare(m, {"x": _q(rng, xs, xdt)}, flow, exact=True)


@pytest.mark.parametrize("flow", FLOWS)
def test_integer_ops_are_bit_exact(flow):
    rng = np.random.default_rng(3)
    inits = {"w": _q(rng, (6, 3, 3, 3), np.int8), "wz": np.array(2, np.int8), "xz": np.array(100, np.uint8),
             "b": _q(rng, (45, 11), np.int8), "bz": np.array(-1, np.int8),
             "as": np.float32(0.02), "bs": np.float32(0.03), "ys": np.float32(0.5), "yz": np.array(-4, np.int8),
             "az": np.array(3, np.int8)}
    nodes = [helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["mm"]),
             helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["qm"])]
    m = _model(nodes, [_vi("x", TensorProto.UINT8, (2, 3, 6, 6)), _vi("a", TensorProto.INT8, (7, 45))],
               [_vi("c", TensorProto.INT32, None), _vi("mm", TensorProto.INT32, None),
                _vi("qm", TensorProto.INT8, None)], inits)
    _compare(m, {"x": _q(rng, (2, 3, 6, 6), np.uint8), "a": _q(rng, (7, 45), np.int8)}, flow, exact=True)


def _qdq_conv_matmul_model(rng, relu_zp: int) -> onnx.ModelProto:
    """float -> Q -> DQ -> Conv (per-channel int8 weights, int32 bias; grouped, strided, padded) -> Relu -> Q
    -> DQ -> Flatten -> Q -> DQ -> MatMul (per-column weights) -> Q -> DQ: the QDQ form quantizers write."""
    cout, cin, group = 12, 8, 2
    w = _q(rng, (cout, cin // group, 3, 3), np.int8)
    wsc = rng.uniform(0.002, 0.02, cout).astype(np.float32)
    xs = np.float32(0.04)
    b = rng.integers(-3000, 3000, cout).astype(np.int32)
    flat = cout * 5 * 4
    mw = _q(rng, (flat, 7), np.int8)
    msc = rng.uniform(0.001, 0.01, 7).astype(np.float32)
    ys = np.float32(0.1)
    inits = {"xs": xs, "xz": np.array(3, np.int8), "w": w, "wsc": wsc, "wz": np.zeros(cout, np.int8),
             "b": b, "bsc": (xs * wsc).astype(np.float32), "bz": np.zeros(cout, np.int32),
             "ys": ys, "yz": np.array(relu_zp, np.int8), "mw": mw, "msc": msc, "mz": np.zeros(7, np.int8),
             "os": np.float32(0.3), "oz": np.array(-2, np.int8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "wsc", "wz"], ["wd"], axis=0),
             helper.make_node("DequantizeLinear", ["b", "bsc", "bz"], ["bd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], group=group, strides=[2, 2], pads=[1, 0, 1, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "ys", "yz"], ["rd"]),
             helper.make_node("Flatten", ["rd"], ["f"]),
             helper.make_node("QuantizeLinear", ["f", "ys", "yz"], ["fq"]),
             helper.make_node("DequantizeLinear", ["fq", "ys", "yz"], ["fd"]),
             helper.make_node("DequantizeLinear", ["mw", "msc", "mz"], ["mwd"], axis=1),
             helper.make_node("MatMul", ["fd", "mwd"], ["mm"]),
             helper.make_node("QuantizeLinear", ["mm", "os", "oz"], ["mq"]),
             helper.make_node("DequantizeLinear", ["mq", "os", "oz"], ["y"])]
    return _model(nodes, [_vi("x", TensorProto.FLOAT, (2, cin, 9, 8))],
                  [_vi("y", TensorProto.FLOAT, None), _vi("rd", TensorProto.FLOAT, None)],
                  inits, opset=19)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("relu_zp", [-128, -5])
def test_qdq_graph_runs_as_int8_gemms_bit_exact(flow, relu_zp):
    """fold-qdq turns the QDQ chains into nnc.QConv/nnc.QMatMul (Relu as saturation bounds), which the
    array computes in int8 x int8 -> int32 with the shared requantization: equal to ``ref``'s float QDQ."""
    rng = np.random.default_rng(200 + relu_zp)
    m = _qdq_conv_matmul_model(rng, relu_zp)
    x = rng.normal(0, 2.0, (2, 8, 9, 8)).astype(np.float32)
    sys_m = _compare(m, {"x": x}, flow, exact=True)
    exe = sys_m.executable
    anchors = [layer.gemm().fields["anchor"] for layer in exe.program.layers if layer.kind == "gemm"]
    assert anchors == ["nnc.QConv", "nnc.QMatMul"], anchors
    assert not [layer for layer in exe.program.layers if layer.kind == "host"]
    rep = exe.report()
    assert rep.config.word == "int8" and "int8 words" in rep.table()
    assert "quantize/dequantize at the integer boundaries" in rep.table()
    # int8 words: SRAM capacity in words is the byte size, and DRAM bytes equal DRAM words.
    assert rep.config.word_bytes == 1 and rep.config.sram_words("ifmap") == rep.config.ifmap_sram_kb * 1024


def test_an_int32_matmul_runs_on_the_host():
    rng = np.random.default_rng(4)
    m = _model([helper.make_node("MatMul", ["i", "j"], ["ij"])],
               [_vi("i", TensorProto.INT32, (3, 4)), _vi("j", TensorProto.INT32, (4, 2))],
               [_vi("ij", TensorProto.INT32, None)], {})
    sysm = _compare(m, {"i": rng.integers(-9, 9, (3, 4)).astype(np.int32),
                        "j": rng.integers(-9, 9, (4, 2)).astype(np.int32)}, "ws", exact=True)
    (layer,) = sysm.executable.program.layers
    assert layer.kind == "host" and "int8" in layer.instructions[0].fields["reason"]


def test_int32_accumulators_wrap_like_hardware():
    from backends.systolic.numerics import array_matmul
    a = np.full((1, 70000), 127, np.int32)
    b = np.full((70000, 1), 127, np.int32) * 2
    exact = 70000 * 127 * 254
    got = array_matmul(a, b, 8, integer=True)
    assert got.dtype == np.int32 and int(got[0, 0]) == (exact + 2**31) % 2**32 - 2**31


# -------------------------------------------------------------- the digits models
def _digits(n=32):
    d = np.load(DATA / "digits_test.npz")
    return d["x_test"][:n].astype(np.float32)


INT8_MODELS = sorted(p.name[:-5] for p in (DATA / "int8").glob("*.onnx"))


@pytest.mark.skipif(not INT8_MODELS, reason="shared int8 models not found")
@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_digits_models_match_the_reference_bit_for_bit(name):
    """Every int8 digits variant (QDQ, QOperator, dynamic): the convolutions and matmuls run on the array
    as int8 GEMMs (fold-qdq's nnc.QConv/nnc.QMatMul), bit-exact with ``ref``.  The float-output variants
    end in a float Gemm, computed in fp32 on the array (so their word is fp32): within fp32 tolerance."""
    from backends.systolic.api import build
    path = DATA / "int8" / f"{name}.onnx"
    x = _digits()
    ref = compiler.compile(str(path), target="ref")
    feeds = {ref.input_names[0]: x if "cnn" in name else x.reshape(len(x), -1)}
    sysm = compiler.compile(str(path), target="systolic")
    got, want = sysm.run(feeds), ref.run(feeds)
    # Through the driver (a symbolic batch: generic pipeline, then one static program per signature).
    assert ("fp32 words" if "fp32out" in name else "int8 words") in sysm.profile_table(feeds).splitlines()[0]
    for k in want:
        if "fp32out" in name:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5 * float(np.abs(want[k]).max()))
        else:
            assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
    exe = build(str(path), batch=len(x))
    anchors = [layer.gemm().fields["anchor"] for layer in exe.program.layers if layer.kind == "gemm"]
    integer = [a for a in anchors if a in ("nnc.QConv", "nnc.QMatMul")]
    assert len(integer) >= (len(anchors) - 1 if "fp32out" in name else len(anchors)) >= 2, anchors
    assert not [layer for layer in exe.program.layers if layer.kind == "host"]
    assert exe.report().config.word == ("fp32" if "fp32out" in name else "int8")


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp"])
def test_fp32_digits_models(name):
    x = _digits(64)
    x = x if "cnn" in name else x.reshape(len(x), -1)
    path = str(DATA / f"{name}.onnx")
    ref = compiler.compile(path, target="ref")
    sysm = compiler.compile(path, target="systolic", options={"preset": "edge8"})
    feeds = {ref.input_names[0]: x}
    got, want = sysm.run(feeds), ref.run(feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)
    logits = list(got.values())[0]
    labels = np.load(DATA / "digits_test.npz")["y_test"][:64]
    assert (logits.argmax(1) == labels).mean() > 0.9
