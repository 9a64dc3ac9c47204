"""ONNX model -> IR graph.

Steps: check every node's op is importable (and report all that are not at
once), convert initializers to constants, convert nodes through their import
rules (``frontends.onnx.rules``) or one-to-one, infer types with the IR's own
rules, then refine unknown dims with ONNX's shape inference.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import onnx
import onnx.defs
import onnx.inliner
import onnx.shape_inference

from ir.errors import CompilerError, ImportError_, InputError, UnsupportedOpError, VerificationError
from ir.graph import Graph, Value
from ir.infer import check_tensor_sizes, refine_types
from ir.verifier import verify
from ir.registry import has_schema
from ir.types import TensorType, merge_shapes

from . import rules
from .attributes import decode_attribute
from .builder import NodeBuilder
from .types import onnx_type_to_ir
from .validate import check_text


@dataclass
class ImportOptions:
    """How to import a model.

    ``inputs_with_initializers_as_constants``: an ONNX graph input that also
    has an initializer is a default value the caller may override; we treat
    it as a constant (what every inference runtime does for exported models).
    ``onnx_shape_inference``: refine dims our rules leave unknown with ONNX's
    own shape inference (data propagation on).
    """

    inputs_with_initializers_as_constants: bool = True
    onnx_shape_inference: bool = True
    input_shapes: dict[str, tuple] = field(default_factory=dict)
    # Values for symbolic dimensions by name (``--dim seq=128``), in every input that uses them.
    dims: dict[str, int] = field(default_factory=dict)


def schema_version(op: str, domain: str, opset: int) -> int:
    """The since-version of ``op``'s schema in effect at ``opset``."""
    try:
        return onnx.defs.get_schema(op, opset, domain).since_version
    except Exception:  # not an ONNX-defined op (custom domain): use the opset itself
        return opset


def _node_label(node: onnx.NodeProto) -> str:
    if node.name:
        return node.name
    outs = [o for o in node.output if o]
    return f"<output {outs[0]}>" if outs else "<unnamed>"


class ModelImporter:
    """Imports one ModelProto; ``run()`` returns the main graph."""

    def __init__(self, model: onnx.ModelProto, options: Optional[ImportOptions] = None) -> None:
        self.options = options or ImportOptions()
        check_text(model, "model")  # names that are bytes (invalid UTF-8) would break every lookup
        if model.functions:
            model = onnx.inliner.inline_local_functions(model)
        self.model = model
        self.opsets: dict[str, int] = {}
        for imp in model.opset_import:
            self.opsets["" if imp.domain in ("", "ai.onnx") else imp.domain] = imp.version
        self.ir_version = model.ir_version

    def version_of(self, node: onnx.NodeProto) -> int:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        opset = self.opsets.get(domain)
        if opset is None:
            raise ImportError_("node uses a domain the model does not import", subject=_node_label(node),
                               found=repr(node.domain))
        return schema_version(node.op_type, domain, opset)

    # ------------------------------------------------------------- support
    def check_support(self) -> None:
        """Raise one ``UnsupportedOpError`` naming every op we cannot import."""
        missing: dict[tuple[str, str, int], list[str]] = {}
        for node in _walk_nodes(self.model.graph):
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            if domain not in self.opsets:
                continue  # reported by version_of during import, with the node
            version = self.version_of(node)
            if rules.find_rule(node.op_type, domain, version) is not None:
                continue
            if has_schema(node.op_type, domain) and not rules.needs_rule(node.op_type, domain, version):
                continue
            missing.setdefault((domain, node.op_type, version), []).append(_node_label(node))
        if missing:
            raise UnsupportedOpError(_missing_message(missing), ops=missing,
                                     hint="see `python -m compiler ops` for what is supported")

    # -------------------------------------------------------------- import
    def run(self) -> Graph:
        self.check_support()
        gi = GraphImporter(self, self.model.graph, parent=None, name="main")
        graph = gi.import_graph(top_level=True)
        graph.meta.update({
            "opset_imports": dict(self.opsets), "ir_version": self.ir_version,
            "producer": f"{self.model.producer_name} {self.model.producer_version}".strip(),
        })
        if self.options.onnx_shape_inference:
            refine_with_onnx_shapes(self.model, graph)
        self._check_declared_types(graph)
        check_tensor_sizes(graph, ImportError_)
        return graph

    @staticmethod
    def _check_declared_types(graph: Graph) -> None:
        """Shapes the model declares (its outputs', ONNX's inference) must fit every node's type rule.

        A declared dim refines a symbolic one after the node was imported (an
        output declared [1,1,5,5] fixes a weight input's symbolic dim); a rule
        that then rejects its node means the model contradicts itself: refuse it
        here, naming the node, rather than let a later pass find the IR invalid.
        """
        rejected: list = []
        refine_types(graph, rejected)
        if rejected:
            node, exc = rejected[0]
            raise ImportError_("the model's declared shapes contradict a node", subject=node.describe(),
                               found=getattr(exc, "message", None) or str(exc))
        try:  # the same for subgraphs (Loop/If/Scan bodies), whose declared types the verifier compares
            verify(graph)
        except VerificationError as exc:
            raise ImportError_("the model's declared shapes contradict a node",
                               found=str(exc).splitlines()[0]) from None


def _walk_nodes(g: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in g.node:
        yield node
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _walk_nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    yield from _walk_nodes(sub)


def _missing_message(missing: dict[tuple[str, str, int], list[str]]) -> str:
    parts = []
    for (domain, op, version), names in sorted(missing.items()):
        qual = f"{domain}.{op}" if domain else op
        shown = ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")
        parts.append(f"{qual} (opset {version}; used by {shown})")
    n = len(missing)
    return f"model uses {n} unsupported op{'s' if n > 1 else ''}: " + "; ".join(parts)


class GraphImporter:
    """Imports one GraphProto (the main graph or a subgraph) into an IR graph."""

    def __init__(self, model: ModelImporter, proto: onnx.GraphProto,
                 parent: Optional[GraphImporter], name: str) -> None:
        self.model = model
        self.proto = proto
        self.parent = parent
        self.graph = Graph(name)
        self.scope: dict[str, Value] = {}
        self.captured: list[Value] = []  # outer values, in the order of the capture inputs
        self.capture_inputs: list[Value] = []  # the subgraph inputs standing for them
        self._reserved = self._collect_names(proto)

    @staticmethod
    def _collect_names(proto: onnx.GraphProto) -> set[str]:
        names = {i.name for i in proto.input} | {i.name for i in proto.initializer}
        for n in proto.node:
            names.update(n.output)
        return names

    def unique_hint(self, hint: str) -> str:
        """A name for a helper value that clashes with no ONNX name in this graph."""
        base, k = hint, 0
        while hint in self._reserved or self.graph.has_value(hint):
            k += 1
            hint = f"{base}_{k}"
        return hint

    # ------------------------------------------------------------- scoping
    def resolve(self, name: str, user: str) -> Value:
        if name in self.scope:
            return self.scope[name]
        if self.parent is not None:
            outer = self.parent.resolve(name, user)
            inner = self.graph.add_input(self.unique_hint(name), outer.type)
            self.captured.append(outer)
            self.capture_inputs.append(inner)
            self.scope[name] = inner
            return inner
        raise ImportError_("node reads a value that is never defined", subject=user,
                           found=repr(name))

    def output_names(self, node: onnx.NodeProto, n: int) -> list[str]:
        names = []
        first = next((o for o in node.output if o), node.op_type.lower())
        for i in range(n):
            if i < len(node.output) and node.output[i]:
                names.append(node.output[i])
            else:
                names.append(self.unique_hint(f"{first}_unused{i}"))
        return names

    # -------------------------------------------------------------- import
    def import_graph(self, top_level: bool) -> Graph:
        opts = self.model.options
        g = self.graph
        initializers = {t.name: t for t in self.proto.initializer}
        if top_level:
            self._check_input_shapes(initializers)
        for inp in self.proto.input:
            if inp.name in initializers and (self.model.ir_version < 4 or
                                             opts.inputs_with_initializers_as_constants):
                continue
            t = onnx_type_to_ir(inp.type, f"input {inp.name!r}")
            if top_level and inp.name in opts.input_shapes and isinstance(t, TensorType):
                t = t.with_shape(tuple(opts.input_shapes[inp.name]))
            if top_level and opts.dims and isinstance(t, TensorType) and t.shape is not None:
                t = t.with_shape(tuple(opts.dims.get(d, d) if isinstance(d, str) else d for d in t.shape))
            self.scope[inp.name] = g.add_input(inp.name, t)
        for name, tensor in initializers.items():
            if name in self.scope:
                continue
            self.scope[name] = g.add_constant(_to_array(tensor), name)
        for node in self._ordered_nodes():
            self.import_node(node)
        outputs = []
        for out in self.proto.output:
            v = self.resolve(out.name, f"graph output {out.name!r}")
            outputs.append(self._name_output(v, out.name))
            if (out.type.HasField("tensor_type") and out.type.tensor_type.elem_type
                    and isinstance(v.type, TensorType)):
                declared = onnx_type_to_ir(out.type, f"output {out.name!r}")
                if isinstance(declared, TensorType):
                    outputs[-1].type = outputs[-1].type.with_shape(
                        merge_shapes(outputs[-1].type.shape, _drop_unk(declared.shape)))
        g.set_outputs(outputs)
        return g

    def _check_input_shapes(self, initializers: dict[str, onnx.TensorProto]) -> None:
        """``ImportOptions.input_shapes`` (``--input-shape``) must name inputs and give valid dims;
        ``ImportOptions.dims`` (``--dim``) must name a symbolic dimension of some input."""
        opts = self.model.options
        declared_symbols = {d.dim_param for i in self.proto.input if i.type.HasField("tensor_type")
                            for d in i.type.tensor_type.shape.dim if d.dim_param}
        declared_symbols |= {d for dims in opts.input_shapes.values() for d in dims if isinstance(d, str)}
        for name, value in opts.dims.items():
            if name not in declared_symbols:
                raise InputError("--dim names no symbolic dimension of the model's inputs", subject=repr(name),
                                 expected="one of " + ", ".join(map(repr, sorted(declared_symbols)))
                                 if declared_symbols else "no symbolic dimensions")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError("--dim needs a size of 0 or more", subject=repr(name), found=repr(value))
        names = [i.name for i in self.proto.input
                 if not (i.name in initializers and (self.model.ir_version < 4 or
                                                     opts.inputs_with_initializers_as_constants))]
        for name, dims in opts.input_shapes.items():
            if name not in names:
                raise InputError("--input-shape names no input of the model", subject=repr(name),
                                 expected="one of " + ", ".join(map(repr, names)) if names else "no inputs")
            for d in dims:
                if isinstance(d, bool) or not (d is None or isinstance(d, str) or isinstance(d, int)):
                    raise InputError("bad dimension in --input-shape", subject=f"input {name!r}", found=repr(d))
                if isinstance(d, int) and d < 0:
                    raise InputError("dimensions in --input-shape must be 0 or more", subject=f"input {name!r}",
                                     found=",".join(str(x) for x in dims),
                                     hint="use a name or ? to keep a dimension symbolic")
            inp = next(i for i in self.proto.input if i.name == name)
            declared = onnx_type_to_ir(inp.type, f"input {name!r}")
            if not isinstance(declared, TensorType):
                raise InputError("--input-shape applies to tensor inputs only", subject=f"input {name!r}",
                                 found=str(declared))
            if declared.shape is not None and len(declared.shape) != len(dims):
                raise InputError("--input-shape gives the wrong number of dimensions", subject=f"input {name!r}",
                                 expected=f"{len(declared.shape)} (the model declares {declared})",
                                 found=str(len(dims)))

    def _name_output(self, v: Value, name: str) -> Value:
        """Make the value returned under ONNX name ``name`` carry that name."""
        if v.name == name:
            return v
        if v.producer is not None and not v.is_graph_output and not self.graph.has_value(name):
            self.graph.rename(v, name)
            return v
        # An input, a constant or an already-named value: keep it and add an Identity.
        if self.graph.has_value(name):  # the name is taken by another value: move that one aside
            self.graph.rename(self.graph.value(name), self.unique_hint(name + "_orig"))
        node = self.graph.create_node("Identity", [v], {}, output_names=[name])
        return node.output

    def _ordered_nodes(self) -> list[onnx.NodeProto]:
        """Nodes in a topological order (ONNX requires it; some exporters forget)."""
        defined = set(self.scope) | set(self._outer_names())
        nodes = list(self.proto.node)
        ordered: list[onnx.NodeProto] = []
        pending = nodes
        while pending:
            progress = False
            rest = []
            for n in pending:
                needed = [i for i in n.input if i] + _subgraph_free_names(n)
                if all(i in defined for i in needed):
                    ordered.append(n)
                    defined.update(o for o in n.output if o)
                    progress = True
                else:
                    rest.append(n)
            if not progress:
                # Undefined names: import in file order and let resolve() report the first one.
                return ordered + rest
            pending = rest
        return ordered

    def _outer_names(self) -> set[str]:
        names: set[str] = set()
        p = self.parent
        while p is not None:
            names |= set(p.scope) | p._reserved
            p = p.parent
        return names

    def import_node(self, node: onnx.NodeProto) -> None:
        label = _node_label(node)
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        version = self.model.version_of(node)
        inputs = [self.resolve(i, f"{node.op_type} node {label!r}") if i else None for i in node.input]
        _check_attribute_kinds(node, domain, self.model.opsets.get(domain))
        attrs = {a.name: decode_attribute(a) for a in node.attribute}
        b = NodeBuilder(self, node, inputs, attrs, version)
        found = rules.find_rule(node.op_type, domain, version)
        try:
            if found is not None:
                outs = found.fn(b)
            else:
                _check_plain_attrs(b)
                outs = b.default()
        except CompilerError as exc:
            if exc.subject is None or "node" not in exc.subject:
                exc.subject = b.describe() + (f": {exc.subject}" if exc.subject else "")
                exc.args = (exc.format(),)
            raise
        for i, name in enumerate(node.output):
            if name:
                if i >= len(outs) or outs[i] is None:
                    b.fail(f"import rule produced no value for output {i} ({name!r})")
                self.scope[name] = outs[i]

    def import_subgraph(self, proto: onnx.GraphProto) -> tuple[Graph, list[Value]]:
        child = GraphImporter(self.model, proto, parent=self, name=proto.name or "body")
        g = child.import_graph(top_level=False)
        # Captured inputs were appended as they were found; they must follow the declared ones.
        captures = {id(v) for v in child.capture_inputs}
        g.inputs = [v for v in g.inputs if id(v) not in captures] + child.capture_inputs
        return g, list(child.captured)


def _subgraph_free_names(node: onnx.NodeProto) -> list[str]:
    """Outer names a node's subgraphs read (so ordering waits for them)."""
    names: list[str] = []
    for a in node.attribute:
        subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in subs:
            local = {i.name for i in g.input} | {i.name for i in g.initializer}
            for n in _walk_nodes(g):
                local.update(n.output)
            for n in _walk_nodes(g):
                names.extend(i for i in n.input if i and i not in local)
            names.extend(o.name for o in g.output if o.name not in local)
    return names


def _check_attribute_kinds(node: onnx.NodeProto, domain: str, opset: Optional[int]) -> None:
    """Attributes of ONNX-defined ops have their schema's kind, required ones are present.

    ``load_model`` checks this with ONNX's checker; ``import_model`` may be
    handed a proto directly, and the import rules rely on it.
    """
    if opset is None or not 1 <= opset < 2 ** 31 or not onnx.defs.has(node.op_type, opset, domain):
        return
    schema = onnx.defs.get_schema(node.op_type, opset, domain)
    A = onnx.AttributeProto
    for a in node.attribute:
        spec = schema.attributes.get(a.name)
        if spec is None or a.ref_attr_name:
            continue
        if a.type != int(spec.type.value):
            found = A.AttributeType.Name(a.type) if a.type in A.AttributeType.values() else str(a.type)
            raise ImportError_(f"attribute {a.name!r} has the wrong kind",
                               subject=f"{node.op_type} node {_node_label(node)}",
                               expected=A.AttributeType.Name(int(spec.type.value)), found=found)
    given = {a.name for a in node.attribute}
    missing = [n for n, spec in schema.attributes.items() if spec.required and n not in given]
    if missing:
        raise ImportError_(f"required attribute {missing[0]!r} is missing", subject=f"{node.op_type} node "
                           f"{_node_label(node)}")
    # Arity, as the opset's schema states it (trailing empty names are omitted optionals).
    for what, names, low, high in (("inputs", node.input, schema.min_input, schema.max_input),
                                   ("outputs", node.output, schema.min_output, schema.max_output)):
        count = len(names)
        while count and not names[count - 1]:
            count -= 1
        if not low <= count <= high and not (count <= len(names) and low <= len(names) <= high):
            expected = f"{low}" if low == high else f"{low} to {high if high < 2 ** 31 - 1 else 'any'}"
            raise ImportError_(f"the node has the wrong number of {what}",
                               subject=f"{node.op_type} node {_node_label(node)}",
                               expected=expected, found=str(len(names)))


def _check_plain_attrs(b: NodeBuilder) -> None:
    """One-to-one import: every attribute must be one the IR op knows."""
    from ir.registry import get_schema
    schema = get_schema(b.op_type, b.domain)
    for name, value in b.attrs.items():
        if name not in schema.attrs:
            b.fail(f"attribute {name!r} is not supported", hint=f"{schema.qualified_name} takes "
                   f"{', '.join(sorted(schema.attrs)) or 'no attributes'}")
        if isinstance(value, onnx.GraphProto):
            b.fail(f"graph attribute {name!r} needs an import rule")


def _to_array(tensor: onnx.TensorProto) -> np.ndarray:
    from .attributes import tensor_to_array
    return tensor_to_array(tensor)


def _drop_unk(shape):
    if shape is None:
        return None
    return tuple(None if isinstance(d, str) and d.startswith("unk__") else d for d in shape)


def refine_with_onnx_shapes(model: onnx.ModelProto, graph: Graph) -> None:
    """Fill dims our own rules left unknown from ONNX's shape inference.

    Only adds precision: a dim we know is never changed, and a failure of
    ONNX's inference (it rejects some valid models) leaves our types as they are.
    """
    if not any(isinstance(v.type, TensorType) and (v.type.shape is None or not v.type.is_static)
               for v in graph.values()):
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - ONNX's inference is only a second source
        graph.meta.setdefault("import_notes", []).append(f"ONNX shape inference failed: {exc}")
        return
    known: dict[str, Any] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.type.HasField("tensor_type"):
            try:
                known[vi.name] = onnx_type_to_ir(vi.type, vi.name)
            except CompilerError:
                continue
    for node in graph.nodes:
        refine_node_types(node)
        for out in node.outputs:
            t = known.get(out.name)
            if isinstance(t, TensorType) and isinstance(out.type, TensorType) and t.dtype == out.type.dtype:
                out.type = out.type.with_shape(merge_shapes(out.type.shape, _drop_unk(t.shape)))


def refine_node_types(node) -> None:
    """Re-run a node's type rule (its inputs may be more precise now), keeping known dims."""
    from ir.registry import InferContext, get_schema
    if all(isinstance(o.type, TensorType) and o.type.is_static for o in node.outputs):
        return
    schema = get_schema(node.op, node.domain)
    try:
        types = schema.infer_fn(InferContext(node, schema))
    except CompilerError:
        return
    for out, t in zip(node.outputs, types):
        if isinstance(t, TensorType) and isinstance(out.type, TensorType) and t.dtype == out.type.dtype:
            out.type = out.type.with_shape(merge_shapes(t.shape, out.type.shape))


def import_model(model: onnx.ModelProto, options: Optional[ImportOptions] = None) -> Graph:
    """Convert a loaded ONNX model into an IR graph."""
    return ModelImporter(model, options).run()
