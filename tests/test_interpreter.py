"""The reference interpreter runs graphs and checks results against static types."""

import numpy as np
import pytest

from ir import Graph, Interpreter, f32, run_graph, tensor
from ir.errors import ExecutionError, InputError


def test_runs_in_order_and_frees_dead_values():
    g = Graph()
    x = g.add_input("x", tensor(f32, ("N", 3)))
    a = g.add("Neg", x)
    b = g.add("Relu", a)
    c = g.add("Add", a, b)
    g.set_outputs([c])
    data = np.array([[1, -2, 3]], np.float32)
    (out,) = run_graph(g, {"x": data})
    np.testing.assert_array_equal(out, -data + np.maximum(-data, 0))
    interp = Interpreter(g, keep_all=True)
    interp.run({"x": data})
    assert set(interp.env) == {"neg", "relu", "add"}


def test_missing_input_is_an_input_error():
    g = Graph()
    x = g.add_input("x", tensor(f32, (1,)))
    g.set_outputs([g.add("Relu", x)])
    with pytest.raises(InputError, match="missing input"):
        run_graph(g, {})


def test_type_check_catches_a_wrong_reference():
    g = Graph()
    x = g.add_input("x", tensor(f32, (2,)))
    y = g.add("Relu", x)
    g.set_outputs([y])
    y.type = tensor(f32, (3,))  # a wrong static type: the run must notice
    with pytest.raises(ExecutionError, match="wrong shape"):
        run_graph(g, {"x": np.zeros(2, np.float32)})


def test_reference_failures_name_the_node():
    g = Graph()
    x = g.add_input("x", tensor(f32, (None,)))
    y = g.add_input("y", tensor(f32, (None,)))
    g.set_outputs([g.add("Add", x, y, name="bad_add")])
    with pytest.raises(ExecutionError, match="bad_add"):
        run_graph(g, {"x": np.zeros(2, np.float32), "y": np.zeros(4, np.float32)}, check_types=False)


def test_subclass_can_observe_nodes():
    g = Graph()
    x = g.add_input("x", tensor(f32, (2,)))
    g.set_outputs([g.add("Exp", g.add("Neg", x))])
    seen = []

    class Spy(Interpreter):
        def run_node(self, node, inputs):
            seen.append(node.op)
            return super().run_node(node, inputs)

    Spy(g).run({"x": np.zeros(2, np.float32)})
    assert seen == ["Neg", "Exp"]
