"""The graph IR: types, values, nodes, graphs, the op registry, text form, interpreter.

Typical use::

    from ir import Graph, tensor, f32
    g = Graph("main")
    x = g.add_input("x", tensor(f32, ("N", 16)))
    y = g.add("Relu", x)
    g.set_outputs([y])
    print(g)                       # textual IR
    run_graph(g, {"x": data})      # reference interpreter
"""

from .dtypes import DType, bf16, boolean, f16, f32, f64, i8, i16, i32, i64, string, u8, u16, u32, u64
from .errors import CompilerError
from .graph import Graph, Node, Use, Value
from .infer import infer_graph, infer_node
from .interpreter import Interpreter, run_graph
from .parser import parse_graph
from .printer import print_graph
from .registry import Attr, InferContext, OpSchema, all_schemas, define, get_schema, has_schema
from .types import OptionalType, QuantParams, SequenceType, TensorType, tensor
from .verifier import verify

__all__ = [
    "Attr", "CompilerError", "DType", "Graph", "InferContext", "Interpreter", "Node", "OpSchema",
    "OptionalType", "QuantParams", "SequenceType", "TensorType", "Use", "Value", "all_schemas",
    "bf16", "boolean", "define", "f16", "f32", "f64", "get_schema", "has_schema", "i8", "i16",
    "i32", "i64", "infer_graph", "infer_node", "parse_graph", "print_graph", "run_graph", "string",
    "tensor", "u8", "u16", "u32", "u64", "verify",
]
