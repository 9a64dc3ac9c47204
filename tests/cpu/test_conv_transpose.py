"""ConvTranspose on the cpu target, lowered to Conv by lower-conv-transpose."""

import numpy as np
import pytest

from tests.cpu.helpers import compare_cpu, one_op
from tests.ops.ortcheck import Const

rng = np.random.default_rng(0)


@pytest.mark.parametrize("attrs", [
    {},
    {"strides": [2, 2]},
    {"strides": [2, 3], "pads": [1, 0, 1, 2], "output_padding": [1, 1]},
    {"strides": [2, 2], "dilations": [2, 1]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [3, 2], "output_shape": [10, 8]},
    {"group": 2},
])
@pytest.mark.parametrize("constant_weight", [True, False])
def test_conv_transpose_matches_reference(attrs, constant_weight):
    x = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    cin, group = 4, attrs.get("group", 1)
    w = rng.standard_normal((cin, 6 // group, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    compare_cpu(*one_op("ConvTranspose", [x, Const(w) if constant_weight else w, Const(b)], attrs))


@pytest.mark.parametrize("kernel,attrs", [
    (2, {"strides": [2, 2]}),  # the U-Net's up-convolution
    (4, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # the DCGAN one: phases overlap, pads crop
    (4, {"strides": [2, 2], "pads": [0, 2, 1, 3]}),
    (3, {"strides": [3, 3]}),
    (6, {"strides": [3, 3], "auto_pad": "SAME_LOWER"}),
])
@pytest.mark.parametrize("bias", [True, False])
def test_phase_form_matches_reference(kernel, attrs, bias):
    x = rng.standard_normal((2, 5, 4, 6)).astype(np.float32)
    w = rng.standard_normal((5, 32, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    compare_cpu(*one_op("ConvTranspose", [x, Const(w)] + ([Const(b)] if bias else []), attrs))


def test_phase_form_is_one_conv_and_depth_to_space():
    from backends.base import get_backend
    from frontends.onnx import import_model
    from passes.manager import PassContext, PassManager
    model, _ = one_op("ConvTranspose", [rng.standard_normal((1, 2, 4, 4)).astype(np.float32),
                                        Const(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))],
                      {"strides": [2, 2], "pads": [1, 1, 1, 1]})
    g = import_model(model)
    backend = get_backend("cpu")
    ctx = PassContext(target=backend.target_info, backend=backend)
    PassManager("lower-conv-transpose").run(g, ctx)
    assert [n.op for n in g.nodes] == ["Conv", "DepthToSpace", "Slice"]
    assert g.nodes[0].inputs[1].type.shape == (12, 2, 2, 2)


def test_the_pass_rewrites_into_conv():
    from backends.base import get_backend
    from frontends.onnx import import_model
    from passes.manager import PassContext, PassManager
    model, _ = one_op("ConvTranspose", [rng.standard_normal((1, 2, 4, 4)).astype(np.float32),
                                        Const(rng.standard_normal((2, 3, 3, 3)).astype(np.float32))],
                      {"strides": [2, 2]})
    g = import_model(model)
    backend = get_backend("cpu")
    ctx = PassContext(target=backend.target_info, backend=backend)
    PassManager("lower-conv-transpose").run(g, ctx)
    assert [n.op for n in g.nodes] == ["Reshape", "Pad", "Reshape", "Slice", "Conv"]
    assert any(d["decision"] == "lower ConvTranspose to Conv" for d in ctx.log)


@pytest.mark.parametrize("skip_conv", [True, False], ids=["blocked-skip", "plain-skip"])
def test_phase_form_into_the_skip_concat(skip_conv):
    """The U-Net's up-convolution then skip Concat.  With a blocked skip (a conv's output, as in the
    U-Net) DepthToSpace moves whole channel blocks with no conversion; with a plain one it stays plain."""
    import compiler
    from onnx import TensorProto as T, helper as oh, numpy_helper as nh
    x = rng.standard_normal((1, 64, 6, 5)).astype(np.float32)
    skip = rng.standard_normal((1, 32, 12, 10)).astype(np.float32)
    inits = [nh.from_array(rng.standard_normal((64, 32, 2, 2)).astype(np.float32), "w_up"),
             nh.from_array(rng.standard_normal((16, 64, 3, 3)).astype(np.float32) * 0.1, "w"),
             nh.from_array(rng.standard_normal((32, 32, 1, 1)).astype(np.float32) * 0.1, "w_skip")]
    nodes = [oh.make_node("ConvTranspose", ["x", "w_up"], ["up"], strides=[2, 2]),
             oh.make_node("Concat", ["skip1" if skip_conv else "skip", "up"], ["cat"], axis=1),
             oh.make_node("Conv", ["cat", "w"], ["y"], pads=[1, 1, 1, 1])]
    if skip_conv:
        nodes.insert(0, oh.make_node("Conv", ["skip", "w_skip"], ["skip1"]))
    graph = oh.make_graph(nodes, "unet_up", [oh.make_tensor_value_info("x", T.FLOAT, x.shape),
                                             oh.make_tensor_value_info("skip", T.FLOAT, skip.shape)],
                          [oh.make_tensor_value_info("y", T.FLOAT, None)], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    feeds = {"x": x, "skip": skip}
    module = compiler.compile(model, target="cpu")
    np.testing.assert_allclose(module.run(feeds)["y"], compiler.compile(model, target="ref").run(feeds)["y"],
                               rtol=1e-4, atol=1e-4)
    labels = list(module.executable.description["kernels"])
    assert any("DepthToSpace" in k for k in labels) != skip_conv, labels
    assert any("Transpose" in k for k in labels) == skip_conv, labels
