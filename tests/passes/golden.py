"""Golden-test helper: parse IR text, run a pipeline, compare with expected text."""

from __future__ import annotations

import textwrap
from typing import Any, Optional

from ir import parse_graph, print_graph
from passes import run_pipeline
from passes.manager import PassContext, PassManager


def run_on_text(source: str, pipeline: str, *, target: Optional[Any] = None, backend: Optional[Any] = None,
                allow_elided: bool = False) -> str:
    """``source`` parsed, run through ``pipeline`` (with ``target`` and ``backend`` in the context), printed.

    ``allow_elided`` reads elided constants as zeros: write their digest as
    that of a zero tensor so the text prints back the same.
    """
    text = textwrap.dedent(source).strip()
    g = parse_graph(text, allow_elided=allow_elided)
    if target is None and backend is None:
        run_pipeline(g, pipeline)
    else:
        PassManager(pipeline).run(g, PassContext(target=target, backend=backend))
    return print_graph(g)


def assert_pass(source: str, pipeline: str, expected: str, **kw: Any) -> None:
    got = run_on_text(source, pipeline, **kw)
    want = textwrap.dedent(expected).strip()
    assert got == want, f"\n--- got ---\n{got}\n--- expected ---\n{want}"
    again = parse_graph(got, allow_elided=kw.get("allow_elided", False))
    assert print_graph(again) == got, "the result does not round-trip through the parser"
