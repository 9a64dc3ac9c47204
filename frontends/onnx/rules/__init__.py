"""Import rules: how ONNX nodes of each op and opset become IR nodes.

Most ops need no rule: an ONNX node whose op is in the IR registry becomes an
IR node with the same inputs and attributes.  A rule is needed when an older
opset spelled the op differently (an attribute that later became an input,
different axis semantics...), when the op becomes something else in our IR
(``Constant`` becomes a graph constant), or when it carries subgraphs.

Write a rule in the family file matching ``ir/ops/<family>.py``::

    @rule("Reshape", until=5)          # applies to Reshape-1 (since_version < 5)
    def _(b: NodeBuilder) -> list:
        shape = b.const(np.array(b.attrs.pop("shape"), np.int64))
        return b.emit("Reshape", [b.input(0), shape])

and, when every older version needs a rule, declare where the canonical form
starts with ``canonical_since("Softmax", 13)``: older nodes without a rule are
then reported as unsupported instead of being imported with wrong semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ir.discovery import Discovery

if TYPE_CHECKING:
    from ..builder import NodeBuilder

RuleFn = Callable[["NodeBuilder"], list]


@dataclass(frozen=True)
class Rule:
    op: str
    domain: str
    since: int
    until: Optional[int]
    fn: RuleFn

    def covers(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version < self.until)


_RULES: dict[tuple[str, str], list[Rule]] = {}
_CANONICAL_SINCE: dict[tuple[str, str], int] = {}


def rule(op: str, *, domain: str = "", since: int = 1, until: Optional[int] = None):
    """Register an import rule for ``op`` nodes whose schema version is in [since, until)."""
    def register(fn: RuleFn) -> RuleFn:
        _RULES.setdefault((domain, op), []).append(Rule(op, domain, since, until, fn))
        return fn
    return register


def canonical_since(op: str, version: int, *, domain: str = "") -> None:
    """Declare that nodes older than ``version`` differ from the IR op and need a rule."""
    _CANONICAL_SINCE[(domain, op)] = version


def find_rule(op: str, domain: str, version: int) -> Optional[Rule]:
    _ensure_loaded()
    for r in _RULES.get((domain, op), ()):
        if r.covers(version):
            return r
    return None


def needs_rule(op: str, domain: str, version: int) -> bool:
    _ensure_loaded()
    return version < _CANONICAL_SINCE.get((domain, op), 0)


def unregister_rules(op: str, *, domain: str = "") -> None:
    """Remove every rule of ``op`` and its ``canonical_since`` (for rules registered at run time)."""
    _RULES.pop((domain, op), None)
    _CANONICAL_SINCE.pop((domain, op), None)


# Every module here not starting with "_" is a family of rules, imported on first use
# (``ir.discovery``): a new family is one new file.
_DISCOVERY = Discovery(__name__)


def _ensure_loaded() -> None:
    _DISCOVERY.ensure()
