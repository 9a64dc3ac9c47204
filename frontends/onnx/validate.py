"""Validation of a loaded ONNX model before import, in the spirit of onnxruntime's.

onnxruntime refuses a model whose nodes break their op's schema (wrong
attribute types, missing required attributes, wrong input counts), whose
tensors' data do not match their dims, or whose opset it does not know.
We check the same with ONNX's own checker, node by node and tensor by
tensor, plus rules of our own (duplicate graph output names, the opset range).

ONNX's ``check_model`` is not used whole: it also insists on things
onnxruntime (and we) accept, namely a ``shape`` on every declared tensor type
(an output of unknown rank is common), nodes in topological order (some
exporters forget; the importer sorts them) and a registered schema for every
op (an op we cannot import gets the importer's one error listing them all).
"""

from __future__ import annotations

from collections import Counter

import onnx
import onnx.checker
import onnx.defs

from ir.errors import ModelLoadError

# The default domain's opsets we import: from the first (older forms are rewritten by the
# import rules in ``rules/``) to the newest this ONNX release defines.
MIN_OPSET = 1
MAX_OPSET = onnx.defs.onnx_opset_version()

_ONNX_DOMAINS = ("", "ai.onnx")


def _one_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines)[:400] or type(exc).__name__


def _node_label(node: onnx.NodeProto) -> str:
    if node.name:
        return f"{node.op_type} node {node.name!r}"
    outs = [o for o in node.output if o]
    return f"{node.op_type} node <output {outs[0]!r}>" if outs else f"{node.op_type} node <unnamed>"


def check_opsets(model: onnx.ModelProto, name: str) -> dict[str, int]:
    """The model's opset imports by domain; the default domain's must be in the supported range."""
    opsets: dict[str, int] = {}
    for imp in model.opset_import:
        domain = "" if imp.domain in _ONNX_DOMAINS else imp.domain
        if domain in opsets and opsets[domain] != imp.version:
            raise ModelLoadError("model imports one domain at two opset versions",
                                 subject=name, found=f"{imp.domain or 'ai.onnx'} {opsets[domain]} and {imp.version}")
        if domain and not 1 <= imp.version < 2 ** 31:  # the default domain's range is checked below
            raise ModelLoadError("invalid opset version", subject=name,
                                 found=f"{imp.domain or 'ai.onnx'} {imp.version}", expected="1 or more")
        opsets[domain] = imp.version
    version = opsets.get("")
    if version is not None and not MIN_OPSET <= version <= MAX_OPSET:
        raise ModelLoadError("unsupported ONNX opset", subject=name,
                             expected=f"ai.onnx opset {MIN_OPSET} to {MAX_OPSET}", found=f"opset {version}",
                             hint="convert the model with onnx.version_converter" if version > MAX_OPSET
                             else None)
    return opsets


def check_text(model: onnx.ModelProto, name: str) -> None:
    """Every name, op type and domain is text: protobuf hands invalid UTF-8 back as ``bytes``."""
    def bad(value, what: str) -> None:
        if not isinstance(value, str):
            raise ModelLoadError(f"{what} is not valid UTF-8 text", subject=name, found=repr(value)[:80])

    for imp in model.opset_import:
        bad(imp.domain, "an opset domain")
    stack = [model.graph]
    while stack:
        g = stack.pop()
        bad(g.name, "a graph name")
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            bad(vi.name, "a value name")
        for t in g.initializer:
            bad(t.name, "a tensor name")
        for node in g.node:
            for value, what in ((node.op_type, "an op type"), (node.domain, "a node's domain"),
                                (node.name, "a node name")):
                bad(value, what)
            for v in list(node.input) + list(node.output):
                bad(v, "a value name")
            for a in node.attribute:
                bad(a.name, "an attribute name")
                bad(a.ref_attr_name, "an attribute reference")
                if a.type == onnx.AttributeProto.GRAPH:
                    stack.append(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(a.graphs)
    for f in model.functions:
        for value, what in ((f.name, "a function name"), (f.domain, "a function domain")):
            bad(value, what)
        for node in f.node:
            bad(node.op_type, "an op type")
            bad(node.domain, "a node's domain")


def validate_model(model: onnx.ModelProto, name: str) -> None:
    """Raise ``ModelLoadError`` (one line naming the node, tensor or value) for an invalid model."""
    check_text(model, name)
    opsets = check_opsets(model, name)
    ctx = onnx.checker.C.CheckerContext()
    ctx.ir_version = model.ir_version
    ctx.opset_imports = {("" if d in _ONNX_DOMAINS else d): v for d, v in opsets.items()}
    _check_graph(model.graph, ctx, opsets, name, "main graph")


def _check_graph(graph: onnx.GraphProto, ctx, opsets: dict[str, int], name: str, where: str) -> None:
    dup = [n for n, k in Counter(o.name for o in graph.output).items() if k > 1]
    if dup:
        raise ModelLoadError(f"{where} lists an output name twice", subject=name, found=repr(dup[0]))
    empty = [i for i, o in enumerate(graph.output) if not o.name]
    if empty:
        raise ModelLoadError(f"{where} output {empty[0]} has no name", subject=name)
    dup = [n for n, k in Counter(i.name for i in graph.input).items() if k > 1]
    if dup:
        raise ModelLoadError(f"{where} lists an input name twice", subject=name, found=repr(dup[0]))
    defined: set[str] = set()
    for n, k in Counter(t.name for t in graph.initializer).items():
        if k > 1:
            raise ModelLoadError(f"{where} has two initializers of one name", subject=name, found=repr(n))
    for t in graph.initializer:
        _check_tensor(t, ctx, name)
    defined |= {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        for out in node.output:
            if out and out in defined:
                raise ModelLoadError("value is defined twice (ONNX graphs assign each name once)",
                                     subject=f"{name}: {_node_label(node)}", found=repr(out))
            if out:
                defined.add(out)
        _check_node(node, ctx, opsets, name)


def _check_attribute_names(node: onnx.NodeProto, schema, name: str) -> None:
    """Each attribute is one the op's schema declares, of the declared kind; required ones are there."""
    A = onnx.AttributeProto
    for a in node.attribute:
        spec = schema.attributes.get(a.name)
        if spec is None:
            raise ModelLoadError(f"invalid node: unrecognized attribute {a.name!r}", subject=f"{name}: {_node_label(node)}",
                                 expected=", ".join(sorted(schema.attributes)) or "no attributes")
        if not a.ref_attr_name and a.type != int(spec.type.value):
            raise ModelLoadError(f"invalid node: attribute {a.name!r} has the wrong kind",
                                 subject=f"{name}: {_node_label(node)}",
                                 expected=A.AttributeType.Name(int(spec.type.value)), found=str(a.type))
    given = {a.name for a in node.attribute}
    missing = [n for n, spec in schema.attributes.items() if spec.required and n not in given]
    if missing:
        raise ModelLoadError(f"invalid node: required attribute {missing[0]!r} is missing",
                             subject=f"{name}: {_node_label(node)}")


def _check_tensor(t: onnx.TensorProto, ctx, name: str) -> None:
    if t.data_location == onnx.TensorProto.EXTERNAL:
        return  # read (and its size checked) from its file by the loader
    _checked(onnx.checker.check_tensor, t, ctx, "tensor", f"{name}: tensor {t.name!r}")


def _checked(check, proto, ctx, what: str, subject: str) -> None:
    """Run one of ONNX's checkers; its refusal becomes a ModelLoadError about ``subject``."""
    try:
        check(proto, ctx)
    except onnx.checker.ValidationError as exc:
        raise ModelLoadError(f"invalid {what}: {_one_line(exc)}", subject=subject) from None
    except UnicodeDecodeError:  # the checker's message quotes bytes that are not UTF-8
        raise ModelLoadError(f"invalid {what} (ONNX's checker refused it; its names are not valid UTF-8)",
                             subject=subject) from None


def _check_node(node: onnx.NodeProto, ctx, opsets: dict[str, int], name: str) -> None:
    subgraphs = [a for a in node.attribute if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)]
    for a in subgraphs:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            _check_graph(g, ctx, opsets, name, f"subgraph {a.name!r} of {_node_label(node)}")
    for a in node.attribute:
        if a.type == onnx.AttributeProto.TENSOR:
            _check_tensor(a.t, ctx, name)
    domain = "" if node.domain in _ONNX_DOMAINS else node.domain
    version = opsets.get(domain)
    if version is None:
        return  # an unknown domain is the importer's to report
    if subgraphs:
        # The checker would check the bodies again, insisting on shapes for their outputs; they were
        # checked above, so only the node's own attributes are left.
        if onnx.defs.has(node.op_type, version, domain):
            _check_attribute_names(node, onnx.defs.get_schema(node.op_type, version, domain), name)
        return
    if not onnx.defs.has(node.op_type, version, domain):
        if domain == "" and onnx.defs.has(node.op_type, domain):
            since = min(s.since_version for s in onnx.defs.get_all_schemas_with_history()
                        if s.name == node.op_type and s.domain == domain)
            raise ModelLoadError(f"{node.op_type} does not exist in opset {version}", subject=f"{name}: "
                                 f"{_node_label(node)}", expected=f"opset {since} or later (where ONNX added it)")
        return  # not an ONNX op: the importer reports every op it cannot import at once
    if onnx.defs.get_schema(node.op_type, version, domain).deprecated:
        return  # the checker refuses deprecated forms outright; the import rules rewrite them (as for opset 1)
    _checked(onnx.checker.check_node, node, ctx, "node", f"{name}: {_node_label(node)}")
