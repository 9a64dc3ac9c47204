"""The op registry: one schema per op, with its type rule and NumPy reference.

An op is defined once, in ``ir/ops/<family>.py``::

    relu = define("Relu", inputs=["X"], outputs=["Y"], kind=ELEMENTWISE)

    @relu.infer
    def _(ctx: InferContext) -> list[TensorType]:
        return [ctx.input_type(0)]

    @relu.reference
    def _(x):
        return np.maximum(x, 0)

Inputs and outputs are given as names with a suffix: ``"B?"`` is optional,
``"inputs..."`` is variadic.  Attributes are ``Attr`` specs (ONNX names and
defaults); the reference receives every attribute as a keyword argument, with
defaults filled in.  ``kind`` tells fusion, scheduling, the memory planner and
backends how the op indexes its data (see the constants below); every pass
and backend reads an op's class from here, and orders kinds by ``KIND_RANK``.
``view=True`` marks an op whose output is its first input's bytes read in
another shape (a row-major reinterpretation: Reshape, Flatten, Squeeze,
Unsqueeze, Identity), which the memory planner may alias instead of copying.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .discovery import Discovery
from .dtypes import DType
from .errors import TypeInferenceError, UnsupportedOpError
from .types import TensorType, Type

if TYPE_CHECKING:
    from .graph import Node

# Op kinds, from the most to the least fusable (the TVM fusion taxonomy).
ELEMENTWISE = "elementwise"  # out[i] = f(in[i]) for same-shape operands
BROADCAST = "broadcast"      # elementwise after numpy broadcasting
INJECTIVE = "injective"      # each output element reads one input element (reshape, transpose...)
REDUCTION = "reduction"      # reduces over axes (pooling, reductions, softmax)
COMPLEX = "complex"          # conv / matmul: heavy op whose elementwise epilogue can fuse
OPAQUE = "opaque"            # anything else: never fused

# The one order of the kinds (fusion keeps a group's heaviest kind; a fused kernel's anchor is
# its heaviest op).  Ranks, not positions: room is left for kinds between COMPLEX and OPAQUE.
KIND_RANK = {ELEMENTWISE: 0, BROADCAST: 1, INJECTIVE: 2, REDUCTION: 3, COMPLEX: 4, OPAQUE: 8}
KINDS = tuple(KIND_RANK)

_REQUIRED = object()


@dataclass(frozen=True)
class Attr:
    """An attribute spec: its ONNX kind, default, and whether it is required."""

    kind: str  # int, float, string, ints, floats, strings, tensor, graph, graphs, any
    default: Any = None
    required: bool = False

    @staticmethod
    def int(default: Any = None, required: bool = False) -> Attr:
        return Attr("int", default, required)

    @staticmethod
    def float(default: Any = None, required: bool = False) -> Attr:
        return Attr("float", default, required)

    @staticmethod
    def string(default: Any = None, required: bool = False) -> Attr:
        return Attr("string", default, required)

    @staticmethod
    def ints(default: Any = None, required: bool = False) -> Attr:
        return Attr("ints", None if default is None else tuple(default), required)

    @staticmethod
    def floats(default: Any = None, required: bool = False) -> Attr:
        return Attr("floats", None if default is None else tuple(default), required)

    @staticmethod
    def strings(default: Any = None, required: bool = False) -> Attr:
        return Attr("strings", None if default is None else tuple(default), required)

    @staticmethod
    def tensor(required: bool = False) -> Attr:
        return Attr("tensor", None, required)

    @staticmethod
    def graph(required: bool = False) -> Attr:
        return Attr("graph", None, required)

    @staticmethod
    def any(default: Any = None, required: bool = False) -> Attr:
        return Attr("any", default, required)


@dataclass(frozen=True)
class Port:
    """One input or output position of an op."""

    name: str
    optional: bool = False
    variadic: bool = False

    @staticmethod
    def parse(spec: str) -> Port:
        """``"X"`` required, ``"B?"`` optional, ``"xs..."`` one or more, ``"xs...?"`` zero or more."""
        if spec.endswith("...?"):
            return Port(spec[:-4], optional=True, variadic=True)
        if spec.endswith("..."):
            return Port(spec[:-3], variadic=True)
        if spec.endswith("?"):
            return Port(spec[:-1], optional=True)
        return Port(spec)


@dataclass
class OpSchema:
    """Everything the compiler knows about one op."""

    name: str
    domain: str
    inputs: list[Port]
    outputs: list[Port]
    attrs: dict[str, Attr]
    kind: str = OPAQUE
    view: bool = False  # output = input 0's bytes in another shape (see the module docstring)
    static_inputs: tuple[str, ...] = ()
    pure: bool = True
    doc: str = ""
    needs_num_outputs: bool = False
    infer_fn: Optional[Callable[[InferContext], list[Type]]] = field(default=None, repr=False)
    reference_fn: Optional[Callable[..., Any]] = field(default=None, repr=False)

    # -------------------------------------------------------- decorators
    def infer(self, fn: Callable[[InferContext], list[Type]]) -> Callable:
        """Register the shape/type rule."""
        self.infer_fn = fn
        return fn

    def reference(self, fn: Callable[..., Any]) -> Callable:
        """Register the NumPy reference implementation."""
        self.reference_fn = fn
        return fn

    # ----------------------------------------------------------- queries
    @property
    def qualified_name(self) -> str:
        return f"{self.domain}.{self.name}" if self.domain else self.name

    @property
    def min_inputs(self) -> int:
        """Inputs a node must have: up to the last required one (a required variadic needs one)."""
        n = 0
        for i, p in enumerate(self.inputs):
            if not p.optional:
                n = i + 1
        return n

    @property
    def max_inputs(self) -> Optional[int]:
        if self.inputs and self.inputs[-1].variadic:
            return None
        return len(self.inputs)

    @property
    def max_outputs(self) -> Optional[int]:
        if self.outputs and self.outputs[-1].variadic:
            return None
        return len(self.outputs)

    def input_index(self, name: str) -> int:
        for i, p in enumerate(self.inputs):
            if p.name == name:
                return i
        raise KeyError(name)

    def static_input_indices(self) -> list[int]:
        """Positions of inputs whose values backends need at compile time."""
        return [self.input_index(n) for n in self.static_inputs]

    def attr_default(self, name: str) -> Any:
        spec = self.attrs.get(name)
        return None if spec is None else spec.default

    def resolve_attrs(self, given: dict[str, Any]) -> dict[str, Any]:
        """All attributes of the schema: the given ones, defaults for the rest."""
        out = {k: spec.default for k, spec in self.attrs.items()}
        out.update(given)
        return out


class InferContext:
    """What a type rule sees: input types, resolved attributes, constant inputs."""

    def __init__(self, node: Node, schema: OpSchema) -> None:
        self.node = node
        self.schema = schema
        self.inputs: list[Optional[Type]] = [None if v is None else v.type for v in node.inputs]
        self.attrs = schema.resolve_attrs(node.attrs)
        self.num_outputs = len(node.outputs)

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def input_type(self, i: int) -> TensorType:
        if not self.has_input(i):
            self.fail(f"input {i} is required")
        t = self.inputs[i]
        if not isinstance(t, TensorType):
            self.fail(f"input {i} must be a tensor", found=str(t))
        return t  # type: ignore[return-value]

    def dtype(self, i: int) -> DType:
        return self.input_type(i).dtype

    def shape(self, i: int):
        return self.input_type(i).shape

    def rank(self, i: int) -> Optional[int]:
        return self.input_type(i).rank

    def const(self, i: int) -> Optional[np.ndarray]:
        """The input's value when it is a constant, else None."""
        v = self.node.input(i)
        if v is None:
            return None
        return v.const

    def attr(self, name: str) -> Any:
        return self.attrs.get(name)

    def fail(self, message: str, *, expected: Optional[str] = None,
             found: Optional[str] = None, hint: Optional[str] = None):
        raise TypeInferenceError(message, subject=self.node.describe(),
                                 expected=expected, found=found, hint=hint)


_REGISTRY: dict[tuple[str, str], OpSchema] = {}
_DOMAIN_ALIASES = {"ai.onnx": ""}


def normalize_domain(domain: str) -> str:
    return _DOMAIN_ALIASES.get(domain, domain)


def define(
    name: str,
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = ("Y",),
    attrs: Optional[dict[str, Attr]] = None,
    domain: str = "",
    kind: str = OPAQUE,
    view: bool = False,
    static_inputs: Sequence[str] = (),
    pure: bool = True,
    needs_num_outputs: bool = False,
    doc: str = "",
) -> OpSchema:
    """Register an op schema; attach its rules with ``@schema.infer`` / ``@schema.reference``."""
    key = (normalize_domain(domain), name)
    if key in _REGISTRY:
        raise ValueError(f"op {name!r} (domain {domain!r}) is defined twice")
    if kind not in KIND_RANK:
        raise ValueError(f"op {name!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    schema = OpSchema(
        name=name, domain=key[0],
        inputs=[Port.parse(s) for s in inputs],
        outputs=[Port.parse(s) for s in outputs],
        attrs=dict(attrs or {}), kind=kind, view=view, static_inputs=tuple(static_inputs),
        pure=pure, needs_num_outputs=needs_num_outputs, doc=doc,
    )
    _REGISTRY[key] = schema
    return schema


def undefine(name: str, domain: str = "") -> None:
    """Remove an op from the registry (for ops defined at run time, e.g. by tests)."""
    _REGISTRY.pop((normalize_domain(domain), name), None)


# Every module of ir/ops/ not starting with "_" is an op family (``ir.discovery``).
_DISCOVERY = Discovery("ir.ops")


def _ensure_loaded() -> None:
    _DISCOVERY.ensure()


def get_schema(name: str, domain: str = "") -> OpSchema:
    _ensure_loaded()
    try:
        return _REGISTRY[(normalize_domain(domain), name)]
    except KeyError:
        qual = f"{domain}.{name}" if domain else name
        raise UnsupportedOpError("op is not in the registry", subject=qual,
                                 hint="see `python -m compiler ops` for the ops we know") from None


def has_schema(name: str, domain: str = "") -> bool:
    _ensure_loaded()
    return (normalize_domain(domain), name) in _REGISTRY


def all_schemas() -> list[OpSchema]:
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=lambda s: (s.domain, s.name))
