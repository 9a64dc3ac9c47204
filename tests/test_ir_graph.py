"""Graph construction and mutation keep use-lists and order right."""

import numpy as np
import pytest

from ir import Graph, f32, i64, tensor, verify
from ir.errors import CompilerError


def small_graph():
    g = Graph("main")
    x = g.add_input("x", tensor(f32, ("N", 4)))
    b = g.add_constant(np.ones(4, np.float32), "b")
    y = g.add("Add", x, b)
    z = g.add("Relu", y)
    g.set_outputs([z])
    return g, x, b, y, z


def test_uses_and_producers_are_tracked():
    g, x, b, y, z = small_graph()
    assert [u.node.op for u in x.uses] == ["Add"]
    assert y.producer.op == "Add" and y.index == 0
    assert z.is_graph_output and not y.is_graph_output
    assert b.is_constant and x.is_graph_input
    verify(g)


def test_inferred_types_follow_broadcasting():
    g, x, b, y, z = small_graph()
    assert str(y.type) == "f32[N,4]"
    assert str(z.type) == "f32[N,4]"


def test_replace_all_uses_updates_readers_and_outputs():
    g, x, b, y, z = small_graph()
    w = g.add("Sigmoid", y)
    g.replace_all_uses(z, w)
    assert g.outputs == [w]
    assert w.name == "relu"  # the output keeps its interface name
    verify(g)


def test_remove_node_refuses_used_outputs():
    g, x, b, y, z = small_graph()
    with pytest.raises(CompilerError, match="still used"):
        g.remove_node(y.producer)


def test_remove_node_drops_uses():
    g, x, b, y, z = small_graph()
    extra = g.add("Neg", x)
    g.remove_node(extra.producer)
    assert len(x.uses) == 1
    verify(g)


def test_can_replace_protects_output_names():
    g, x, b, y, z = small_graph()
    assert not g.can_replace(z, x)  # would rename the model's output to the input's name
    assert g.can_replace(y, x)


def test_fresh_names_are_unique():
    g, x, *_ = small_graph()
    names = {g.add("Neg", x).name for _ in range(5)}
    assert len(names) == 5


def test_topological_sort_restores_order():
    g, x, b, y, z = small_graph()
    g.nodes.reverse()
    with pytest.raises(CompilerError):
        verify(g)
    g.topological_sort()
    verify(g)
    assert [n.op for n in g.nodes] == ["Add", "Relu"]


def test_clone_is_deep_and_equal():
    g, *_ = small_graph()
    c = g.clone()
    assert str(c) == str(g)
    c.add("Neg", c.inputs[0])
    assert len(g.nodes) == 2


def test_values_from_another_graph_are_rejected():
    g, x, *_ = small_graph()
    other = Graph("other")
    with pytest.raises(CompilerError, match="another graph"):
        other.add("Relu", x)


def test_constant_arrays_are_frozen():
    g = Graph()
    c = g.add_constant(np.arange(3), "c")
    assert c.type.dtype is i64
    with pytest.raises(ValueError):
        c.const[0] = 5
