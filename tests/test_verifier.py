"""The verifier catches broken invariants and shows the IR around the fault."""

import numpy as np
import pytest

from ir import Graph, f32, i64, tensor, verify
from ir.errors import VerificationError


def graph():
    g = Graph("main")
    x = g.add_input("x", tensor(f32, (2, 3)))
    y = g.add("Relu", x)
    z = g.add("Neg", y)
    g.set_outputs([z])
    return g, x, y, z


def test_valid_graph_passes():
    verify(graph()[0])


def test_stale_use_list_is_caught_with_context():
    g, x, y, z = graph()
    y._uses.clear()  # simulate a pass that bypassed the Graph API
    with pytest.raises(VerificationError, match="use list of %relu") as info:
        verify(g)
    assert ">>" in str(info.value)  # the faulty node is marked in the printed context


def test_wrong_type_is_caught():
    g, x, y, z = graph()
    y.type = tensor(f32, (3, 2))
    with pytest.raises(VerificationError, match="rule gives"):
        verify(g)


def test_use_before_definition_is_caught():
    g, x, y, z = graph()
    g.nodes.reverse()
    with pytest.raises(VerificationError, match="before it is defined"):
        verify(g)


def test_unknown_attribute_is_caught():
    g, x, y, z = graph()
    y.producer.attrs["alpha"] = 1.0
    with pytest.raises(VerificationError, match="unknown attribute 'alpha'"):
        verify(g)


def test_wrong_input_count_is_caught():
    g, x, y, z = graph()
    g.set_input(y.producer, 1, x)
    with pytest.raises(VerificationError, match="wrong number of inputs"):
        verify(g)


def test_dangling_output_is_caught():
    g, x, y, z = graph()
    other = Graph("other")
    stray = other.add_input("stray", tensor(f32, (1,)))
    g.outputs.append(stray)
    with pytest.raises(VerificationError, match="not defined in the graph"):
        verify(g)


def test_constant_shape_mismatch_is_caught():
    g, x, y, z = graph()
    c = g.add_constant(np.zeros(3, np.int64), "c")
    c.type = tensor(i64, (4,))
    with pytest.raises(VerificationError, match="data shape"):
        verify(g)
