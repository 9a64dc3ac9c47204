"""Reads the textual IR written by ``ir.printer`` back into a ``Graph``.

``parse_graph(text)`` returns a graph that prints to the same text.  Elided
constants (printed as a digest) are filled from the ``weights`` mapping when
given (name -> array, checked against the digest); otherwise parsing fails
for them unless ``allow_elided=True``, which keeps a zero-filled placeholder
(good for inspecting structure, wrong for running).

Pass results read back as the printer writes them (see ``ir.printer``):

* ``schedule{kind="gemm", params={kc=128, mr=8}, vector="n:16", parallel=1,
  est_cycles=512, source="model", dataflow="ws", for="1a2b3c4d"}`` after a
  node's attributes sets ``Node.schedule`` (``kind`` and ``params`` are
  required; the others default as in ``ir.schedule.Schedule``);
* ``@mem(offset=0, nbytes=256)``, ``@mem(..., view_of=%a)`` or
  ``@mem(..., inplace_of=%a)`` after the type in a definition sets
  ``Value.placement`` (the aliased value must be defined earlier);
* ``batch{symbol="N", inputs="1", outputs="1"}`` after a graph's inputs
  sets ``Graph.batch`` (one flag per input and output);
* ``memory{arena_bytes=512, alignment=64, naive_bytes=768,
  peak_live_bytes=512, algorithm="..."}`` between a graph's inputs and its
  body sets ``Graph.memory`` (``arena_bytes`` required).

The parser checks syntax only; ``ir.verifier`` checks that a schedule fits
its node and a plan its graph.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from .dtypes import DType
from .errors import IRParseError
from .graph import Graph, Value
from .batch import BatchSignature
from .memory import ALIGNMENT, Arena, Placement
from .printer import tensor_digest
from .schedule import Schedule
from .types import QuantParams, SequenceType, OptionalType, TensorType, Type

_TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<name>%(?:"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.$/\-]+))
  | (?P<gname>@(?:"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.$/\-]+))
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<complex>\((?:[^()%]*)j\))
  | (?P<number>-?(?:inf|nan)\b|-?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[()\[\]{}<>,:=?*])
""", re.VERBOSE)


class _Tokens:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                self.error_at(pos, f"unexpected character {text[pos]!r}")
            kind = m.lastgroup
            if kind != "ws":
                self.toks.append((kind, m.group(), pos))  # type: ignore[arg-type]
            pos = m.end()
        self.i = 0

    def error_at(self, pos: int, msg: str):
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        src = self.text.splitlines()[line - 1] if self.text.splitlines() else ""
        raise IRParseError(msg, subject=f"line {line}, column {col}", found=src.strip()[:80])

    def peek(self, k: int = 0) -> tuple[str, str, int]:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("eof", "", len(self.text))

    def next(self) -> tuple[str, str, int]:
        t = self.peek()
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        kind, text, pos = self.next()
        if text != value:
            self.error_at(pos, f"expected {value!r}, got {text or 'end of input'!r}")

    def accept(self, value: str) -> bool:
        if self.peek()[1] == value:
            self.i += 1
            return True
        return False

    def expect_kind(self, kind: str) -> str:
        k, text, pos = self.next()
        if k != kind:
            self.error_at(pos, f"expected {kind}, got {text or 'end of input'!r}")
        return text


def _unquote_name(tok: str) -> str:
    body = tok[1:]
    return json.loads(body) if body.startswith('"') else body


def _parse_float(text: str) -> float:
    return float(text)


def _parse_float_attr(text: str) -> float:
    """A float attribute: the float32 value when the text is that value's float32 spelling.

    The printer writes float32-exact attributes (ONNX's are float32) with
    their shortest float32 text, so reading that text as float32 gives the
    same value back, and the same text when printed again.
    """
    from .printer import format_float
    value = float(text)
    as32 = float(np.float32(value))
    if value == value and format_float(as32, np.float32) == text:
        return as32
    return value


class Parser:
    def __init__(self, text: str, weights: Optional[Mapping[str, np.ndarray]] = None,
                 allow_elided: bool = False) -> None:
        self.t = _Tokens(text)
        self.weights = weights or {}
        self.allow_elided = allow_elided
        self.prefix = ""  # key prefix of constants in the subgraph being parsed (see Graph.all_constants)

    # ----------------------------------------------------------- graphs
    def parse(self) -> Graph:
        g = self.graph()
        if self.t.peek()[0] != "eof":
            self.t.error_at(self.t.peek()[2], "text after the end of the graph")
        return g

    def graph(self) -> Graph:
        self.t.expect("graph")
        name_tok = self.t.expect_kind("gname")
        g = Graph(_unquote_name(name_tok))
        self.t.expect("(")
        if not self.t.accept(")"):
            while True:
                name = _unquote_name(self.t.expect_kind("name"))
                self.t.expect(":")
                typ = self.type()
                placement = self.placement(g)
                v = g.add_input(name, typ)
                v.placement = placement
                if self.t.accept(")"):
                    break
                self.t.expect(",")
        if self.t.peek()[1] == "batch":
            g.batch = self.batch_signature(len(g.inputs))
        if self.t.peek()[1] == "memory":
            g.memory = self.arena()
        self.t.expect("{")
        while True:
            kind, text, pos = self.t.peek()
            if text == "return":
                self.t.next()
                outs = []
                if self.t.peek()[0] == "name":
                    outs.append(self.lookup(g, self.t.next()))
                    while self.t.accept(","):
                        outs.append(self.lookup(g, self.t.next()))
                g.set_outputs(outs)
                self.t.expect("}")
                return g
            if kind != "name":
                self.t.error_at(pos, f"expected a definition or 'return', got {text!r}")
            self.statement(g)

    def lookup(self, g: Graph, tok: tuple[str, str, int]) -> Value:
        kind, text, pos = tok
        if kind != "name":
            self.t.error_at(pos, f"expected a value name, got {text!r}")
        name = _unquote_name(text)
        if not g.has_value(name):
            self.t.error_at(pos, f"use of undefined value %{name}")
        return g.value(name)

    def statement(self, g: Graph) -> None:
        results: list[tuple[str, Type, int]] = []
        placements: list[Optional[Placement]] = []
        while True:
            kind, text, pos = self.t.next()
            name = _unquote_name(text)
            self.t.expect(":")
            results.append((name, self.type(), pos))
            placements.append(self.placement(g))
            if not self.t.accept(","):
                break
        self.t.expect("=")
        kind, text, pos = self.t.next()
        if text == "constant":
            if len(results) != 1:
                self.t.error_at(pos, "a constant defines exactly one value")
            name, typ, _ = results[0]
            if not isinstance(typ, TensorType):
                self.t.error_at(pos, "constants must be tensors")
            arr = self.payload(typ, name)  # type: ignore[arg-type]
            v = g.add_constant(arr, name, dtype=typ.dtype)  # type: ignore[union-attr]
            self._check_name(v, name, pos)
            if v.type != typ:
                v.type = typ
            v.placement = placements[0]
            return
        if kind != "ident":
            self.t.error_at(pos, f"expected an op name, got {text!r}")
        domain, _, op = text.rpartition(".")
        self.t.expect("(")
        inputs: list[Optional[Value]] = []
        if not self.t.accept(")"):
            while True:
                tok = self.t.next()
                if tok[1] == "none":
                    inputs.append(None)
                else:
                    inputs.append(self.lookup(g, tok))
                if self.t.accept(")"):
                    break
                self.t.expect(",")
        attrs: dict[str, Any] = {}
        if self.t.accept("{"):
            if not self.t.accept("}"):
                while True:
                    key = self.t.expect_kind("ident")
                    self.t.expect("=")
                    outer = self.prefix
                    self.prefix = f"{outer}{results[0][0]}.{key}/"
                    try:
                        attrs[key] = self.attr_value()
                    finally:
                        self.prefix = outer
                    if self.t.accept("}"):
                        break
                    self.t.expect(",")
        schedule = None
        if self.t.peek()[1] == "schedule" and self.t.peek(1)[1] == "{":
            schedule = self.schedule()
        loc = ""
        if self.t.peek()[1] == "loc":
            self.t.next()
            self.t.expect("(")
            loc = json.loads(self.t.expect_kind("string"))
            self.t.expect(")")
        node = g.create_node(op, inputs, attrs, domain=domain, name=loc,
                             output_names=[r[0] for r in results],
                             output_types=[r[1] for r in results])
        for out, (name, _, p) in zip(node.outputs, results):
            self._check_name(out, name, p)
        for out, placement in zip(node.outputs, placements):
            out.placement = placement
        node.schedule = schedule

    def _check_name(self, v: Value, name: str, pos: int) -> None:
        if v.name != name:
            self.t.error_at(pos, f"value %{name} is defined twice")

    # ------------------------------------------------------- pass results
    def fields(self, what: str, parse_value) -> dict[str, Any]:
        """``{key=value, ...}`` (the opening brace next); ``parse_value(key)`` reads each value."""
        self.t.expect("{")
        fields: dict[str, Any] = {}
        if self.t.accept("}"):
            return fields
        while True:
            kind, key, pos = self.t.next()
            if kind != "ident":
                self.t.error_at(pos, f"expected a {what} field name, got {key!r}")
            if key in fields:
                self.t.error_at(pos, f"{what} field {key!r} is given twice")
            self.t.expect("=")
            fields[key] = parse_value(key, pos)
            if self.t.accept("}"):
                return fields
            self.t.expect(",")

    def int_value(self) -> int:
        kind, text, pos = self.t.next()
        if kind != "number" or not re.fullmatch(r"-?\d+", text):
            self.t.error_at(pos, f"expected an integer, got {text!r}")
        return int(text)

    def string_value(self) -> str:
        return json.loads(self.t.expect_kind("string"))

    def schedule(self) -> Schedule:
        """``schedule{kind="...", params={...}, ...}`` (see the module docstring)."""
        kind, text, start = self.t.next()  # "schedule"
        ints = ("parallel", "est_cycles")
        strings = ("kind", "vector", "source", "dataflow", "for")

        def value(key: str, pos: int) -> Any:
            if key == "params":
                return self.fields("schedule parameter", lambda k, p: self.int_value())
            if key in ints:
                return self.int_value()
            if key in strings:
                return self.string_value()
            self.t.error_at(pos, f"unknown schedule field {key!r}",)

        f = self.fields("schedule", value)
        for required in ("kind", "params"):
            if required not in f:
                self.t.error_at(start, f"schedule without {required!r}")
        s = Schedule(f["kind"], f["params"], parallel=f.get("parallel", 1), est_cycles=f.get("est_cycles", 0),
                     source=f.get("source", "model"), dataflow=f.get("dataflow", ""),
                     fingerprint=f.get("for", ""))
        if "vector" in f:
            axis, sep, width = f["vector"].rpartition(":")
            if not sep or not re.fullmatch(r"\d+", width):
                self.t.error_at(start, f"schedule vector must be \"axis:lanes\", got {f['vector']!r}")
            s.vector_axis, s.vector_width = axis, int(width)
        return s

    def placement(self, g: Graph) -> Optional[Placement]:
        """``@mem(offset=..., nbytes=...[, view_of=%v | inplace_of=%v])`` if next, else None."""
        kind, text, start = self.t.peek()
        if kind != "gname" or text != "@mem":
            return None
        self.t.next()
        self.t.expect("(")
        f: dict[str, Any] = {}
        while True:
            key_kind, key, pos = self.t.next()
            if key in f:
                self.t.error_at(pos, f"@mem field {key!r} is given twice")
            self.t.expect("=")
            if key in ("offset", "nbytes"):
                f[key] = self.int_value()
            elif key in ("view_of", "inplace_of"):
                f[key] = self.lookup(g, self.t.next())
            else:
                self.t.error_at(pos, f"unknown @mem field {key!r}")
            if self.t.accept(")"):
                break
            self.t.expect(",")
        if "offset" not in f or "nbytes" not in f:
            self.t.error_at(start, "@mem needs offset and nbytes")
        aliases = [k for k in ("view_of", "inplace_of") if k in f]
        if len(aliases) > 1:
            self.t.error_at(start, "@mem names both view_of and inplace_of")
        if not aliases:
            return Placement(f["offset"], f["nbytes"])
        return Placement(f["offset"], f["nbytes"], aliases[0][:-3], f[aliases[0]])

    def batch_signature(self, n_inputs: int) -> BatchSignature:
        """``batch{symbol="N", inputs="10", outputs="1"}`` (see ``ir.printer.format_batch``)."""
        kind, text, start = self.t.next()  # "batch"

        def value(key: str, pos: int) -> Any:
            if key in ("symbol", "inputs", "outputs"):
                return self.string_value()
            self.t.error_at(pos, f"unknown batch field {key!r}")

        f = self.fields("batch", value)
        if set(f) != {"symbol", "inputs", "outputs"} or not re.fullmatch(r"[01]*", f["inputs"] + f["outputs"]):
            self.t.error_at(start, "batch needs symbol, and inputs and outputs as strings of 0 and 1")
        if len(f["inputs"]) != n_inputs:
            self.t.error_at(start, f"batch gives {len(f['inputs'])} input flags for {n_inputs} inputs")
        return BatchSignature(f["symbol"], tuple(c == "1" for c in f["inputs"]),
                              tuple(c == "1" for c in f["outputs"]))

    def arena(self) -> Arena:
        """``memory{arena_bytes=..., alignment=..., ...}`` (see the module docstring)."""
        kind, text, start = self.t.next()  # "memory"
        ints = ("arena_bytes", "alignment", "naive_bytes", "peak_live_bytes")

        def value(key: str, pos: int) -> Any:
            if key in ints:
                return self.int_value()
            if key == "algorithm":
                return self.string_value()
            self.t.error_at(pos, f"unknown memory field {key!r}")

        f = self.fields("memory", value)
        if "arena_bytes" not in f:
            self.t.error_at(start, "memory without 'arena_bytes'")
        return Arena(f["arena_bytes"], f.get("alignment", ALIGNMENT), f.get("naive_bytes", 0),
                     f.get("peak_live_bytes", 0), f.get("algorithm", ""))

    # ------------------------------------------------------------ types
    def type(self) -> Type:
        kind, text, pos = self.t.next()
        if text in ("seq", "opt"):
            self.t.expect("<")
            elem = self.type()
            self.t.expect(">")
            return SequenceType(elem) if text == "seq" else OptionalType(elem)
        if kind != "ident":
            self.t.error_at(pos, f"expected a type, got {text!r}")
        try:
            dtype = DType.from_short(text)
        except Exception:
            self.t.error_at(pos, f"unknown element type {text!r}")
        self.t.expect("[")
        shape: Optional[list] = []
        if self.t.accept("*"):
            shape = None
            self.t.expect("]")
        elif not self.t.accept("]"):
            while True:
                k, dt, dp = self.t.next()
                if k == "number":
                    shape.append(int(dt))  # type: ignore[union-attr]
                elif dt == "?":
                    shape.append(None)  # type: ignore[union-attr]
                elif k == "ident":
                    shape.append(dt)  # type: ignore[union-attr]
                else:
                    self.t.error_at(dp, f"bad dimension {dt!r}")
                if self.t.accept("]"):
                    break
                self.t.expect(",")
        t = TensorType(dtype, None if shape is None else tuple(shape))
        if self.t.peek()[1] == "<":
            t = self.type_extras(t)
        return t

    def type_extras(self, t: TensorType) -> TensorType:
        self.t.expect("<")
        fields: dict[str, Any] = {}
        while True:
            key = self.t.expect_kind("ident")
            self.t.expect("=")
            if key == "layout":
                fields[key] = self.t.expect_kind("ident")
            else:
                fields[key] = self.attr_value()
            if self.t.accept(">"):
                break
            self.t.expect(",")
        if "layout" in fields:
            t = t.with_layout(fields["layout"])
        if "scale" in fields:
            sc, zp = fields["scale"], fields.get("zero_point", 0)
            sc = tuple(float(x) for x in sc) if isinstance(sc, tuple) else (float(sc),)
            zp = tuple(int(x) for x in zp) if isinstance(zp, tuple) else (int(zp),)
            t = t.with_quant(QuantParams(sc, zp, fields.get("axis")))
        return t

    # ------------------------------------------------------- attributes
    def attr_value(self) -> Any:
        kind, text, pos = self.t.peek()
        if text == "graph":
            return self.graph()
        if text == "dense":
            return self.dense()
        if text == "type" and self.t.peek(1)[1] == "<":
            self.t.next()
            self.t.expect("<")
            typ = self.type()
            self.t.expect(">")
            return typ
        self.t.next()
        if kind == "number":
            if re.fullmatch(r"-?\d+", text):
                return int(text)
            return _parse_float_attr(text)
        if kind == "string":
            return json.loads(text)
        if text in ("true", "false"):
            return text == "true"
        if text == "[":
            items = []
            if self.t.accept("]"):
                return ()
            while True:
                items.append(self.attr_value())
                if self.t.accept("]"):
                    return tuple(items)
                self.t.expect(",")
        if kind == "ident":
            try:
                return DType.from_short(text)
            except Exception:
                pass
        self.t.error_at(pos, f"bad attribute value {text!r}")

    def dense(self) -> np.ndarray:
        self.t.expect("dense")
        self.t.expect("<")
        typ = self.type()
        self.t.expect(":")
        arr = self.payload(typ, None)  # type: ignore[arg-type]
        self.t.expect(">")
        return arr

    def payload(self, typ: TensorType, name: Optional[str]) -> np.ndarray:
        if not typ.is_static:
            self.t.error_at(self.t.peek()[2], "tensor literals need a static shape")
        shape = tuple(typ.shape)  # type: ignore[arg-type]
        dtype = typ.dtype
        kind, text, pos = self.t.next()
        if text == "[":
            vals = []
            if not self.t.accept("]"):
                while True:
                    vals.append(self.scalar(dtype))
                    if self.t.accept("]"):
                        break
                    self.t.expect(",")
            arr = np.array(vals, dtype=dtype.np) if vals else np.zeros(0, dtype=dtype.np)
            if arr.size != int(np.prod(shape)):
                self.t.error_at(pos, f"literal has {arr.size} elements, type says {typ}")
            return arr.reshape(shape)
        if kind == "string":
            raw = base64.b64decode(json.loads(text))
            arr = np.frombuffer(raw, dtype=dtype.np.newbyteorder("<") if dtype.np.itemsize > 1 else dtype.np)
            return arr.astype(dtype.np).reshape(shape)
        if text == "elided":
            digest = json.loads(self.t.expect_kind("string"))
            key = None if name is None else self.prefix + name
            if key is not None and key in self.weights:
                arr = np.asarray(self.weights[key])
                if tensor_digest(arr) != digest or arr.shape != shape:
                    self.t.error_at(pos, f"weights for %{name} do not match the digest in the text")
                return arr
            if self.allow_elided:
                return np.zeros(shape, dtype=dtype.np)
            self.t.error_at(pos, f"constant {('%' + name) if name else ''} is elided and no weights were given")
        self.t.error_at(pos, f"bad tensor payload {text!r}")

    def scalar(self, dtype: DType) -> Any:
        kind, text, pos = self.t.next()
        if dtype is DType.BOOL:
            if text not in ("true", "false"):
                self.t.error_at(pos, f"expected true/false, got {text!r}")
            return text == "true"
        if dtype is DType.STR:
            return json.loads(text)
        if kind == "complex":
            return complex(text.replace(" ", ""))
        if kind != "number":
            self.t.error_at(pos, f"expected a number, got {text!r}")
        if dtype.is_int:
            return int(text)
        return float(text)


def parse_graph(text: str, *, weights: Optional[Mapping[str, np.ndarray]] = None,
                allow_elided: bool = False) -> Graph:
    """Parse textual IR; see the module docstring for ``weights``/``allow_elided``."""
    return Parser(text, weights, allow_elided).parse()
