"""Convolution kernels of the cpu target against the reference interpreter.

One-Conv models (and small fused patterns) built with onnx.helper and random
weights, compiled with target="cpu" (the pipeline does the blocked layout and
the fusion) and compared with target="ref".  Each case also checks which
kernel kind ran, so a case meant for the blocked kernel cannot silently
fall back to the plain one.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from ir.errors import CompilerError
from backends.cpu.scheduling import kernel_kind

RTOL, ATOL = 1e-4, 1e-4
FALLBACK_PIPELINE = ("fold-constants,remove-identity,cse,dce,layout-nchwc,fold-constants,dce,fuse,dce,"
                     "schedule,plan-memory")


def _pipeline() -> Optional[str]:
    """The cpu pipeline, or the short one while some of its passes are not merged yet."""
    from passes.manager import get_pass
    from backends.cpu import PIPELINE as CPU_PIPELINE
    try:
        for name in CPU_PIPELINE.split(","):
            get_pass(name.split("(")[0].strip())
        return None
    except Exception:  # noqa: BLE001 - an unknown pass
        return FALLBACK_PIPELINE


PIPELINE = _pipeline()


class Model:
    """A small ONNX graph under construction: input x, constants, nodes."""

    def __init__(self, x_shape: Sequence[int], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.x_shape = tuple(x_shape)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, arr: np.ndarray) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, kernel: Sequence[int], group: int = 1, bias: bool = True,
             **attrs) -> str:
        w = self.const(self.rng.standard_normal((cout, cin // group, *kernel)) / np.sqrt(cin * np.prod(kernel)))
        ins = [x, w] + ([self.const(self.rng.standard_normal(cout))] if bias else [])
        return self.op("Conv", ins, group=group, **attrs)

    def build(self, y: str) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("Identity", [y], ["y"]))
        graph = helper.make_graph(self.nodes, "conv",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(self.x_shape))],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def plain_pipeline() -> str:
    """The cpu pipeline without layout-nchwc: every conv on the plain NCHW kernel."""
    from backends.cpu import PIPELINE as CPU_PIPELINE
    return ",".join(p for p in (PIPELINE or CPU_PIPELINE).split(",") if p.strip() != "layout-nchwc")


def check(model: onnx.ModelProto, x_shape: Sequence[int], kinds: Sequence[str] = (), seed: int = 1,
          passes: Optional[str] = None) -> None:
    """cpu == ref on random input; ``kinds`` must all be among the compiled kernels' kinds."""
    x = np.random.default_rng(seed).standard_normal(x_shape).astype(np.float32)
    passes = passes or PIPELINE
    kw = {"passes": passes} if passes else {}
    result = compiler.build(model, target="cpu", **kw)
    compiled = {kernel_kind(n) for n in result.graph.nodes}
    for kind in kinds:
        assert kind in compiled, f"expected a {kind} kernel, got {sorted(compiled)}"
    got = result.module.run({"x": x})["y"]
    want = compiler.compile(model, target="ref").run({"x": x})["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def conv_relu(x_shape, cout, kernel, kind, group=1, passes=None, **attrs):
    m = Model(x_shape)
    y = m.op("Relu", [m.conv("x", x_shape[1], cout, kernel, group=group, **attrs)])
    check(m.build(y), x_shape, [kind], passes=passes)


# ------------------------------------------------------------ conv2d_nchwc
@pytest.mark.parametrize("x_shape,cout,k,attrs", [
    ((1, 32, 14, 14), 32, 3, dict(pads=[1, 1, 1, 1])),                       # interior + borders
    ((1, 16, 15, 17), 32, 3, dict(pads=[1, 1, 1, 1], strides=[2, 2])),       # stride 2, odd sizes
    ((1, 64, 7, 7), 32, 1, {}),                                              # 1x1, flattened row
    ((1, 32, 14, 13), 64, 1, dict(strides=[2, 2])),                          # 1x1 stride 2
    ((1, 3, 30, 29), 16, 7, dict(pads=[3, 3, 3, 3], strides=[2, 2])),        # RGB stem: ic_block 3
    ((1, 16, 13, 11), 16, 3, dict(pads=[2, 2, 2, 2], dilations=[2, 2])),     # dilation
    ((1, 16, 12, 12), 32, 3, dict(pads=[0, 2, 1, 0])),                       # asymmetric pads
    ((2, 24, 9, 10), 16, 3, dict(pads=[1, 1, 1, 1])),                        # Cin padded to the block, batch 2
    ((1, 16, 5, 5), 48, 5, dict(pads=[2, 2, 2, 2])),                         # row narrower than a tile
    ((1, 16, 40, 3), 16, 3, dict(pads=[1, 1, 1, 1], strides=[1, 2])),        # tall and thin
    ((1, 512, 13, 13), 32, 1, {}),                    # 1x1 in input-channel chunks, flat row with a tail
    ((1, 256, 6, 6), 128, 3, dict(pads=[1, 1, 1, 1])),  # weights beyond L2/4: oc groups outermost
    ((2, 32, 9, 11), 48, 3, dict(pads=[1, 1, 1, 1])),   # 3 output blocks: oc_unroll 3
    ((1, 64, 13, 13), 144, 1, {}),                      # 9 output blocks, flat row: oc_unroll 3
], ids=["3x3", "3x3s2-odd", "1x1", "1x1s2", "7x7s2-rgb", "dilated", "asym-pads", "cin24-batch2", "narrow",
        "thin-stride-w", "1x1-chunked", "big-weights", "odd-blocks-3x3", "odd-blocks-1x1"])
def test_conv_nchwc(x_shape, cout, k, attrs):
    conv_relu(x_shape, cout, (k, k), "conv2d_nchwc", **attrs)


def test_conv_nchwc_no_bias_no_epilogue():
    m = Model((1, 32, 10, 9))
    check(m.build(m.conv("x", 32, 16, (3, 3), bias=False, pads=[1, 1, 1, 1])), (1, 32, 10, 9), ["conv2d_nchwc"])


def test_conv_nchwc_residual_relu():
    """Conv -> Add(x) -> Relu: the residual is read in the epilogue (maybe in place)."""
    m = Model((1, 32, 12, 12))
    c = m.conv("x", 32, 32, (3, 3), pads=[1, 1, 1, 1])
    check(m.build(m.op("Relu", [m.op("Add", [c, "x"])])), (1, 32, 12, 12), ["conv2d_nchwc"])


def test_conv_nchwc_bias_add_scale_clip():
    """Conv (no bias) -> Add([C,1,1]) -> Mul([C,1,1]) -> Add -> Clip: per-channel epilogue constants."""
    m = Model((1, 16, 11, 11))
    c = m.conv("x", 16, 32, (3, 3), bias=False, pads=[1, 1, 1, 1])
    c = m.op("Add", [c, m.const(m.rng.standard_normal((32, 1, 1)))])
    c = m.op("Mul", [c, m.const(m.rng.standard_normal((32, 1, 1)))])
    c = m.op("Add", [c, m.const(m.rng.standard_normal((1, 32, 1, 1)))])
    y = m.op("Clip", [c, m.const(np.float32(-0.5)), m.const(np.float32(1.0))])
    check(m.build(y), (1, 16, 11, 11), ["conv2d_nchwc"])


def test_bottleneck_block():
    """ResNet bottleneck: 1x1 -> 3x3 -> 1x1 + residual, blocked all the way."""
    m = Model((1, 64, 14, 14))
    a = m.op("Relu", [m.conv("x", 64, 16, (1, 1))])
    a = m.op("Relu", [m.conv(a, 16, 16, (3, 3), pads=[1, 1, 1, 1])])
    a = m.conv(a, 16, 64, (1, 1))
    check(m.build(m.op("Relu", [m.op("Add", [a, "x"])])), (1, 64, 14, 14), ["conv2d_nchwc"])


def test_conv_nchwc_batchnorm_sigmoid():
    m = Model((1, 16, 9, 9))
    c = m.conv("x", 16, 16, (3, 3), pads=[1, 1, 1, 1])
    bn = [m.const(m.rng.standard_normal(16)), m.const(m.rng.standard_normal(16)),
          m.const(m.rng.standard_normal(16)), m.const(m.rng.uniform(0.5, 2.0, 16))]
    c = m.op("BatchNormalization", [c] + bn)
    check(m.build(m.op("Sigmoid", [c])), (1, 16, 9, 9), ["conv2d_nchwc"])


# ---------------------------------------------------------- dwconv2d_nchwc
@pytest.mark.parametrize("x_shape,k,attrs", [
    ((1, 32, 14, 14), 3, dict(pads=[1, 1, 1, 1])),
    ((2, 16, 15, 13), 3, dict(pads=[1, 1, 1, 1], strides=[2, 2])),
    ((1, 16, 11, 12), 5, dict(pads=[2, 2, 2, 2])),
    ((1, 32, 10, 10), 3, dict(pads=[2, 2, 2, 2], dilations=[2, 2])),
    ((1, 16, 7, 30), 3, {}),
], ids=["3x3", "3x3s2-batch2", "5x5", "dilated", "no-pad"])
def test_dwconv_nchwc(x_shape, k, attrs):
    # Followed by a 1x1 conv, as in MobileNet: the layout pass blocks the depthwise conv only then.
    c = x_shape[1]
    m = Model(x_shape)
    y = m.op("Relu", [m.conv("x", c, c, (k, k), group=c, **attrs)])
    check(m.build(m.conv(y, c, c, (1, 1))), x_shape, ["dwconv2d_nchwc", "conv2d_nchwc"])


def test_dwconv_residual():
    m = Model((1, 32, 9, 9))
    c = m.conv("x", 32, 32, (3, 3), group=32, pads=[1, 1, 1, 1])
    y = m.op("Add", [c, "x"])
    check(m.build(m.conv(y, 32, 16, (1, 1))), (1, 32, 9, 9), ["dwconv2d_nchwc"])


def test_isolated_dwconv_stays_nchw():
    """ShuffleNet's depthwise convs sit between grouped convs: plain NCHW beats two conversions."""
    conv_relu((1, 32, 14, 14), 32, (3, 3), "conv2d", group=32, pads=[1, 1, 1, 1])


# -------------------------------------------------------------- conv2d (NCHW)
@pytest.mark.parametrize("x_shape,cout,kernel,group,attrs", [
    ((1, 24, 13, 13), 1000, (1, 1), 1, {}),                                   # SqueezeNet classifier
    ((2, 12, 17, 19), 24, (3, 3), 3, dict(pads=[1, 1, 1, 1])),                # grouped
    ((1, 240, 7, 7), 60, (1, 1), 3, {}),                                      # ShuffleNet grouped 1x1
    ((1, 8, 20, 21), 12, (3, 3), 1, dict(strides=[2, 2], pads=[1, 0, 1, 2])),  # stride 2, asymmetric
    ((1, 6, 30), 10, (5,), 2, dict(pads=[2, 2], dilations=[2])),              # 1-D
    ((1, 4, 6, 7, 8), 6, (3, 3, 3), 1, dict(pads=[1, 1, 1, 1, 1, 1])),        # 3-D
    ((1, 5, 9, 40), 7, (3, 3), 1, dict(auto_pad="SAME_UPPER", strides=[1, 3])),  # auto_pad, stride 3
    ((1, 3, 20, 37), 24, (3, 3), 1, dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    ((1, 8, 6, 6), 20, (2, 2), 1, dict(auto_pad="VALID")),
    ((1, 3, 6, 300), 10, (3, 3), 1, dict(pads=[1, 1, 1, 1], strides=[2, 2])),  # stride-2 interior tiles
    ((1, 2, 5, 400), 6, (3, 3), 1, dict(strides=[1, 3])),                     # stride-3 interior tiles
], ids=["1x1-1000", "grouped", "grouped-1x1", "s2-asym", "1d", "3d", "same-upper-s3", "same-lower-s2",
        "valid", "s2-wide", "s3-wide"])
def test_conv_nchw(x_shape, cout, kernel, group, attrs):
    # Without layout-nchwc (the 2-D group-1 cases would be blocked, their channels padded).
    conv_relu(x_shape, cout, kernel, "conv2d", group=group, passes=plain_pipeline(), **attrs)


@pytest.mark.parametrize("x_shape,cout,kernel,attrs", [
    ((1, 24, 13, 13), 1000, (1, 1), {}),                                   # SqueezeNet classifier: 1000 = 62.5 blocks
    ((2, 3, 20, 37), 24, (3, 3), dict(auto_pad="SAME_LOWER", strides=[2, 2])),  # MobileNetV2's 24 channels, batch 2
    ((1, 8, 6, 6), 20, (2, 2), dict(auto_pad="VALID")),
], ids=["1x1-1000", "24-s2", "20-valid"])
def test_conv_nchwc_padded_output_channels(x_shape, cout, kernel, attrs):
    conv_relu(x_shape, cout, kernel, "conv2d_nchwc", **attrs)


def test_padded_channels_through_depthwise_and_pointwise():
    """MobileNetV2's 24-channel bottleneck: 1x1 expand (24 -> 40, padded), depthwise 3x3, 1x1 project."""
    m = Model((1, 24, 10, 10))
    a = m.op("Clip", [m.conv("x", 24, 40, (1, 1)), m.const(np.float32(0.0)), m.const(np.float32(6.0))])
    a = m.op("Clip", [m.conv(a, 40, 40, (3, 3), group=40, pads=[1, 1, 1, 1]), m.const(np.float32(0.0)),
                      m.const(np.float32(6.0))])
    check(m.build(m.op("Add", [m.conv(a, 40, 24, (1, 1)), "x"])), (1, 24, 10, 10), ["conv2d_nchwc", "dwconv2d_nchwc"])


def test_conv_nchw_residual_and_scale():
    """Plain-layout conv with a residual, a per-channel scale and an [H, W] constant."""
    m = Model((1, 24, 9, 20))
    c = m.conv("x", 24, 24, (3, 3), group=2, pads=[1, 1, 1, 1])
    c = m.op("Mul", [c, m.const(m.rng.standard_normal((24, 1, 1)))])
    c = m.op("Add", [c, "x"])
    c = m.op("Add", [c, m.const(m.rng.standard_normal((9, 20)))])
    check(m.build(m.op("Relu", [c])), (1, 24, 9, 20), ["conv2d"], passes=plain_pipeline())


@pytest.mark.parametrize("kernel,pads", [((1, 1), [0, 0, 0, 0]), ((3, 3), [1, 1, 1, 1])], ids=["1x1", "3x3"])
def test_conv_nchw_batchnorm(kernel, pads):
    """A grouped conv + BatchNormalization left in NCHW: BN's [C] parameters run along the channels."""
    m = Model((1, 24, 9, 20))
    c = m.conv("x", 24, 12, kernel, group=4, pads=pads)
    bn = [m.const(m.rng.standard_normal(12)), m.const(m.rng.standard_normal(12)),
          m.const(m.rng.standard_normal(12)), m.const(m.rng.uniform(0.5, 2.0, 12))]
    c = m.op("BatchNormalization", [c] + bn)
    check(m.build(m.op("Relu", [c])), (1, 24, 9, 20), ["conv2d"], passes=plain_pipeline())


def test_conv_nchw_flat_epilogue_row_constant():
    """A 1x1 conv (one flat row of pixels) whose epilogue reads a per-row constant: lane by lane."""
    m = Model((1, 8, 6, 10))
    c = m.conv("x", 8, 12, (1, 1))
    c = m.op("Add", [c, m.const(m.rng.standard_normal((6, 1)))])
    check(m.build(m.op("Relu", [c])), (1, 8, 6, 10), ["conv2d"], passes=plain_pipeline())


def test_conv_epilogue_through_injective_operand():
    """The residual comes through a Transpose fused into the group: the epilogue runs lane by lane."""
    m = Model((1, 12, 10, 10))
    c = m.conv("x", 12, 12, (3, 3), pads=[1, 1, 1, 1])
    t = m.op("Transpose", ["x"], perm=[0, 1, 3, 2])
    check(m.build(m.op("Relu", [m.op("Add", [c, t])])), (1, 12, 10, 10), ["conv2d"], passes=plain_pipeline())


# ------------------------------------------------------------------ refusals
def test_f16_conv_is_refused_with_a_reason():
    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float16), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    kw = {"passes": PIPELINE} if PIPELINE else {}
    with pytest.raises(CompilerError, match="f32 only"):
        compiler.build(model, target="cpu", **kw)


# ------------------------------------------------------------------- heavier
@pytest.mark.slow
@pytest.mark.parametrize("x_shape,cout,k,attrs", [
    ((1, 64, 56, 56), 64, 3, dict(pads=[1, 1, 1, 1])),
    ((1, 3, 224, 224), 64, 7, dict(pads=[3, 3, 3, 3], strides=[2, 2])),
    ((1, 256, 14, 14), 256, 3, dict(pads=[1, 1, 1, 1])),
    ((1, 512, 28, 28), 256, 1, dict(strides=[2, 2])),
    ((2, 64, 56, 56), 256, 1, {}),
])
def test_conv_nchwc_resnet_layers(x_shape, cout, k, attrs):
    conv_relu(x_shape, cout, (k, k), "conv2d_nchwc", **attrs)


LIGHT_MODELS = ["resnet50", "squeezenet", "shufflenet", "inception_v1", "inception_v2", "densenet121",
                "vgg19", "bvlc_alexnet", "zfnet512"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_convs(name):
    """Every distinct Conv of onnx's light models (shapes and attributes as in the model, random weights)."""
    import os
    from onnx import shape_inference
    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")
    if not os.path.exists(path):
        pytest.skip(f"{path} not found")
    model = shape_inference.infer_shapes(onnx.load(path))
    infos = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in infos}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    seen = set()
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        x_shape, w_shape = shapes[node.input[0]], shapes[node.input[1]]
        key = (tuple(x_shape), tuple(w_shape), str(node.attribute))
        if key in seen:
            continue
        seen.add(key)
        m = Model(x_shape)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        group = attrs.pop("group", 1)
        attrs.pop("kernel_shape", None)
        c = m.conv("x", x_shape[1], w_shape[0], w_shape[2:], group=group,
                   bias=len(node.input) > 2 and bool(node.input[2]), **attrs)
        check(m.build(m.op("Relu", [c])), x_shape)
