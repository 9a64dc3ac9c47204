"""The textual IR prints deterministically and parses back exactly."""

import numpy as np
import pytest

from ir import Graph, QuantParams, TensorType, f32, i8, i64, parse_graph, print_graph, tensor
from ir.errors import IRParseError

TEXT = """graph @main(%x: f32[N,3,8,8], %"odd name:1": i64[2]) {
  %small: f32[3] = constant [0.5, -1.0, inf]
  %ints: i64[2,2] = constant [1, -2, 3, 9223372036854775807]
  %0: f32[N,3,8,8] = Relu(%x)
  %1: f32[N,3,8,8] = LeakyRelu(%0) {alpha=0.1}
  %2: bool[N,3,8,8] = Greater(%1, %small)
  %3: f32[N,3,8,8] = Clip(%1, none, %small)
  return %3, %2
}"""


def test_round_trip_is_exact():
    g = parse_graph(TEXT)
    assert print_graph(g) == TEXT
    assert print_graph(parse_graph(print_graph(g))) == TEXT


def test_large_constants_elide_and_inline():
    g = Graph()
    x = g.add_input("x", tensor(f32, (64,)))
    w = g.add_constant(np.random.default_rng(0).standard_normal(64).astype(np.float32), "w")
    g.set_outputs([g.add("Add", x, w)])
    elided = print_graph(g)
    assert 'constant elided "sha256:' in elided
    inline = print_graph(g, constants="inline")
    g2 = parse_graph(inline)
    np.testing.assert_array_equal(g2.value("w").const, w.const)
    assert print_graph(g2) == elided
    # Elided text parses when the weights are supplied, and checks them.
    g3 = parse_graph(elided, weights={"w": w.const})
    np.testing.assert_array_equal(g3.value("w").const, w.const)
    with pytest.raises(IRParseError, match="do not match"):
        parse_graph(elided, weights={"w": w.const + 1})
    with pytest.raises(IRParseError, match="elided and no weights"):
        parse_graph(elided)


def test_float_attributes_round_trip_bit_exact():
    g = Graph()
    x = g.add_input("x", tensor(f32, (2,)))
    alpha = float(np.float32(0.02))  # what an ONNX float attribute holds
    g.set_outputs([g.add("LeakyRelu", x, alpha=alpha)])
    text = print_graph(g)
    assert "alpha=0.02" in text
    g2 = parse_graph(text)
    assert np.float32(g2.nodes[0].attrs["alpha"]) == np.float32(alpha)


def test_types_with_layout_and_quantization_round_trip():
    t = TensorType(i8, (1, 4, 8, 8, 16), layout="NCHW16c",
                   quant=QuantParams((0.5,), (3,)))
    text = f"graph @g(%x: {t}) {{\n  return %x\n}}"
    g = parse_graph(text)
    assert g.inputs[0].type == t
    assert print_graph(g) == text


def test_unknown_rank_and_unknown_dims():
    text = "graph @g(%x: f32[*], %y: f32[?,3]) {\n  %0: f32[?,3] = Relu(%y)\n  return %0, %x\n}"
    assert print_graph(parse_graph(text)) == text


def test_locations_round_trip():
    text = 'graph @g(%x: f32[2]) {\n  %0: f32[2] = Relu(%x) loc("conv1/relu")\n  return %0\n}'
    g = parse_graph(text)
    assert g.nodes[0].name == "conv1/relu"
    assert print_graph(g, locations=True) == text


@pytest.mark.parametrize("bad, where", [
    ("graph @g(%x: f32[2]) {\n  %0: f32[2] = Relu(%y)\n  return %0\n}", "undefined value %y"),
    ("graph @g(%x: f32[2]) {\n  %0: f32[2] = Relu(%x\n  return %0\n}", "line 3"),
    ("graph @g(%x: q9[2]) {\n  return %x\n}", "unknown element type"),
    ("graph @g(%x: f32[2]) {\n  %x: f32[2] = Relu(%x)\n  return %x\n}", "defined twice"),
    ("graph @g(%x: f32[2]) {\n  %c: f32[3] = constant [1.0]\n  return %x\n}", "1 elements"),
])
def test_parse_errors_name_the_place(bad, where):
    with pytest.raises(IRParseError, match=where):
        parse_graph(bad)


def test_string_and_bool_constants():
    g = Graph()
    g.add_constant(np.array(["a", 'q"uote'], dtype=object), "s")
    g.add_constant(np.array([True, False]), "b")
    x = g.add_input("x", tensor(i64, (1,)))
    g.set_outputs([x])
    text = print_graph(g)
    g2 = parse_graph(text)
    assert list(g2.value("s").const) == ["a", 'q"uote']
    assert print_graph(g2) == text


# A test-only op with tensor and graph attributes (domain keeps it out of the real registry).
from ir.registry import Attr, define  # noqa: E402

_probe = define("Probe", domain="test.text", inputs=["X"], outputs=["Y"],
                attrs={"t": Attr.tensor(), "body": Attr.graph(), "names": Attr.strings(),
                       "scales": Attr.floats()})
_probe.infer(lambda ctx: [ctx.input_type(0)])


def test_tensor_and_graph_attributes_round_trip():
    text = """graph @main(%x: f32[2]) {
  %0: f32[2] = test.text.Probe(%x) {body=graph @body(%a: f32[2]) {
    %0: f32[2] = Relu(%a)
    return %0
  }, names=["a", "b"], scales=[1.0, 0.25], t=dense<i64[2]: [3, 4]>}
  return %0
}"""
    g = parse_graph(text)
    node = g.nodes[0]
    assert node.domain == "test.text" and node.op == "Probe"
    assert isinstance(node.attrs["body"], Graph)
    np.testing.assert_array_equal(node.attrs["t"], [3, 4])
    assert print_graph(g) == text
    assert print_graph(g.clone()) == text


def test_type_attributes_round_trip():
    text = """graph @main() {
  %0: opt<seq<f32[*]>> = Optional() {type=type<seq<f32[*]>>}
  return %0
}"""
    g = parse_graph(text)
    assert print_graph(g) == text
