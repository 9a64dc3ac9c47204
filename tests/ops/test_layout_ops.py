"""nnc.ToBlocked, nnc.FromBlocked and nnc.ConvNCHWc: layouts, packing, references, type rules.

The blocked convolution is checked two ways: against the ordinary Conv
(what the reference does), and against a direct loop over the blocked data
and packed weight written from the documented layout alone, which is what
a backend kernel computes.
"""

from __future__ import annotations

import numpy as np
import pytest

from ir import run_graph
from ir.dtypes import DType
from ir.errors import CompilerError
from ir.graph import Graph
from ir.ops.layout import (block_broadcast_constant, blocked_layout, from_blocked,
                           pack_conv_weight, to_blocked, unpack_conv_weight)
from ir.parser import parse_graph
from ir.printer import print_graph
from ir.registry import COMPLEX, get_schema
from ir.types import TensorType

RNG = np.random.default_rng(0)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------- layouts
@pytest.mark.parametrize("shape,block", [((2, 32, 3, 4), 16), ((1, 3, 5, 5), 3),
                                         ((2, 20, 3, 2), 8), ((1, 5, 7), 4),
                                         ((1, 9, 2, 3, 4), 8)])
def test_to_blocked_places_channel_c_at_block_c_over_b_lane_c_mod_b(shape, block):
    x = _rand(*shape)
    y = to_blocked(x, block)
    cb = -(-shape[1] // block)
    assert y.shape == (shape[0], cb, *shape[2:], block)
    for c in range(cb * block):
        got = y[:, c // block, ..., c % block]
        want = x[:, c] if c < shape[1] else np.zeros_like(x[:, 0])
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(from_blocked(y, shape[1]), x)


def test_layout_names_spell_the_spatial_axes():
    assert blocked_layout(2, 16) == "NCHW16c"
    assert blocked_layout(1, 8) == "NCW8c"
    assert blocked_layout(3, 8) == "NCDHW8c"


def _graph_with(op: str, x_type: TensorType, **attrs) -> Graph:
    g = Graph()
    x = g.add_input("x", x_type)
    g.set_outputs([g.add(op, x, domain="nnc", **attrs)])
    return g


def test_to_blocked_and_from_blocked_types_and_references():
    g = _graph_with("ToBlocked", TensorType(DType.F32, ("N", 20, 3, 3)), block=8)
    y = g.outputs[0]
    assert y.type == TensorType(DType.F32, ("N", 3, 3, 3, 8), layout="NCHW8c")
    x = _rand(2, 20, 3, 3)
    (yb,) = run_graph(g, {"x": x})
    np.testing.assert_array_equal(yb, to_blocked(x, 8))
    assert not yb[:, 2, ..., 4:].any()  # padding channels are zero

    h = _graph_with("FromBlocked", y.type, channels=20)
    assert h.outputs[0].type == TensorType(DType.F32, ("N", 20, 3, 3))
    (back,) = run_graph(h, {"x": yb})
    np.testing.assert_array_equal(back, x)


def test_from_blocked_rejects_channels_that_do_not_fit():
    with pytest.raises(CompilerError, match="channels does not fit"):
        _graph_with("FromBlocked", TensorType(DType.F32, (1, 3, 4, 4, 8)), channels=12)


def test_blocked_type_round_trips_through_text():
    g = _graph_with("ToBlocked", TensorType(DType.F32, (1, 3, 4, 4)), block=3)
    text = print_graph(g)
    assert "f32[1,1,4,4,3]<layout=NCHW3c> = nnc.ToBlocked(%x) {block=3}" in text
    assert print_graph(parse_graph(text)) == text


# ------------------------------------------------------------- packing
@pytest.mark.parametrize("cout,cin,group,ib,ob", [(32, 16, 1, 16, 16), (16, 3, 1, 3, 16),
                                                  (16, 20, 1, 8, 8), (32, 32, 32, 16, 16)])
def test_pack_conv_weight_follows_the_documented_layout(cout, cin, group, ib, ob):
    w = _rand(cout, cin // group, 3, 2)
    p = pack_conv_weight(w, group, ib, ob)
    wib = 1 if group > 1 else ib
    assert p.shape == (cout // ob, -(-(cin // group) // wib), 3, 2, wib, ob)
    for o in range(cout):
        for i in range(p.shape[1] * wib):
            got = p[o // ob, i // wib, :, :, i % wib, o % ob]
            want = w[o, i] if i < cin // group else 0
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(unpack_conv_weight(p, cin // group), w)


def test_pack_conv_weight_rejects_unsupported_shapes():
    with pytest.raises(ValueError, match="multiple of oc_block"):
        pack_conv_weight(_rand(12, 4, 1, 1), 1, 4, 8)
    with pytest.raises(ValueError, match="group 1 and depthwise"):
        pack_conv_weight(_rand(16, 4, 1, 1), 4, 4, 8)


def test_block_broadcast_constant_keeps_broadcasting_meaning():
    x = _rand(1, 16, 3, 3)
    for c in (_rand(16, 1, 1), _rand(1, 16, 1, 1), _rand(3), _rand(3, 3), _rand(1),
              _rand(1, 1, 3, 1)):
        cb = block_broadcast_constant(c, 8)
        np.testing.assert_array_equal(to_blocked(x, 8) * cb, to_blocked(x * c, 8))
    assert block_broadcast_constant(_rand(12, 1, 1), 8) is None


# -------------------------------------------------------- ConvNCHWc
def _direct_conv_nchwc(xb, wp, b, *, kernel, strides, pads, dilations, depthwise, ob):
    """Blocked convolution straight from the documented layouts (what kernels do)."""
    xpad = np.pad(xb, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)])
    oh = (xpad.shape[2] - (kernel[0] - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (xpad.shape[3] - (kernel[1] - 1) * dilations[1] - 1) // strides[1] + 1
    y = np.zeros((xb.shape[0], wp.shape[0], oh, ow, ob), np.float64)
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            h0, w0 = kh * dilations[0], kw * dilations[1]
            patch = xpad[:, :, h0:h0 + (oh - 1) * strides[0] + 1:strides[0],
                         w0:w0 + (ow - 1) * strides[1] + 1:strides[1], :]
            if depthwise:  # lane-wise: y[n, O, h, w, o] += x[n, O, h, w, o] * w[O, 0, kh, kw, 0, o]
                y += patch * wp[None, :, 0, kh, kw, 0, None, None, :]
            else:  # y[n, O, h, w, o] += sum_{c, i} x[n, c, h, w, i] * w[O, c, kh, kw, i, o]
                y += np.einsum("nchwi,Ocio->nOhwo", patch, wp[:, :, kh, kw])
    if b is not None:
        y += b.reshape(1, -1, 1, 1, ob)
    return y


def _conv_graph(x_type, w, b, **attrs) -> Graph:
    g = Graph()
    x = g.add_input("x", x_type)
    inputs = [x, g.add_constant(w, "w")] + ([g.add_constant(b, "b")] if b is not None else [])
    g.set_outputs([g.create_node("ConvNCHWc", inputs, attrs, domain="nnc").output])
    return g


CASES = [  # cin, cout, hw, kernel, strides, pads, dilations, group, ib, ob
    (16, 32, (7, 6), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 16, 16),
    (3, 16, (9, 9), (3, 3), (2, 2), (1, 0, 1, 1), (1, 1), 1, 3, 16),
    (20, 8, (5, 5), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, 8, 8),
    (8, 8, (8, 7), (2, 3), (2, 1), (0, 1, 1, 0), (2, 1), 1, 4, 4),
    (32, 32, (6, 6), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 32, 16, 16),
    (16, 16, (7, 7), (3, 3), (2, 2), (1, 1, 1, 1), (2, 2), 16, 8, 8),
]


@pytest.mark.parametrize("cin,cout,hw,kernel,strides,pads,dilations,group,ib,ob", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_nchwc_matches_conv_and_the_direct_blocked_loop(cin, cout, hw, kernel, strides, pads,
                                                             dilations, group, ib, ob, bias):
    x = _rand(2, cin, *hw)
    w = _rand(cout, cin // group, *kernel)
    b = _rand(cout) if bias else None
    plain = get_schema("Conv").reference_fn(x, w, b, auto_pad="NOTSET", dilations=dilations,
                                            group=group, kernel_shape=kernel, pads=pads,
                                            strides=strides)
    wp = pack_conv_weight(w, group, ib, ob)
    attrs = dict(channels_in=cin, channels_out=cout, kernel_shape=list(kernel),
                 strides=list(strides), pads=list(pads), dilations=list(dilations), group=group,
                 ic_block=ib, oc_block=ob)
    xb = to_blocked(x, ib)
    g = _conv_graph(TensorType(DType.F32, ("N",) + xb.shape[1:]), wp, b, **attrs)
    out_t = g.outputs[0].type
    assert out_t.layout == f"NCHW{ob}c"
    assert out_t.shape == ("N", cout // ob) + plain.shape[2:] + (ob,)
    (y,) = run_graph(g, {"x": xb})
    np.testing.assert_allclose(from_blocked(y, cout), plain, rtol=1e-5, atol=1e-5)
    direct = _direct_conv_nchwc(xb.astype(np.float64), wp.astype(np.float64), b, kernel=kernel,
                                strides=strides, pads=pads, dilations=dilations,
                                depthwise=group > 1, ob=ob)
    np.testing.assert_allclose(y, direct, rtol=1e-4, atol=1e-4)


def test_conv_nchwc_is_complex_so_epilogues_fuse():
    assert get_schema("ConvNCHWc", "nnc").kind == COMPLEX


def _conv_attrs(**over):
    attrs = dict(channels_in=16, channels_out=16, kernel_shape=[1, 1], ic_block=16, oc_block=16)
    attrs.update(over)
    return attrs


@pytest.mark.parametrize("w_shape,attrs,message", [
    ((1, 1, 1, 1, 16, 16), _conv_attrs(channels_out=24), "multiple of oc_block"),
    ((1, 1, 1, 1, 8, 16), _conv_attrs(), "packed shape"),
    ((1, 1, 1, 1, 16, 16), _conv_attrs(group=2), "group 1 and depthwise"),
    ((1, 1, 1, 1, 1, 16), _conv_attrs(group=16, ic_block=8), "group 1 and depthwise"),
    ((1, 1, 1, 1, 16, 16), _conv_attrs(pads=[1, 1]), "pads must have 4 values"),
])
def test_conv_nchwc_type_rule_rejects_bad_nodes(w_shape, attrs, message):
    w = np.zeros(w_shape, np.float32)
    with pytest.raises(CompilerError, match=message):
        _conv_graph(TensorType(DType.F32, (1, 1, 4, 4, 16)), w, None, **attrs)


def test_conv_nchwc_type_rule_checks_the_input_blocks():
    w = pack_conv_weight(np.zeros((16, 16, 1, 1), np.float32), 1, 16, 16)
    with pytest.raises(CompilerError, match="blocks do not match"):
        _conv_graph(TensorType(DType.F32, (1, 2, 4, 4, 8)), w, None, **_conv_attrs())
