"""Golden-test helper: parse IR text, run a pipeline, compare with expected text."""

from __future__ import annotations

import textwrap

from ir import parse_graph, print_graph
from passes import run_pipeline


def run_on_text(source: str, pipeline: str) -> str:
    g = parse_graph(textwrap.dedent(source).strip(), allow_elided=False)
    run_pipeline(g, pipeline)
    return print_graph(g)


def assert_pass(source: str, pipeline: str, expected: str) -> None:
    got = run_on_text(source, pipeline)
    want = textwrap.dedent(expected).strip()
    assert got == want, f"\n--- got ---\n{got}\n--- expected ---\n{want}"
