"""Shared helpers for cpu-target tests: build one-op models, compare cpu with the reference."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

import compiler
from tests.ops.ortcheck import make_model

# The cpu pipeline without the simplification passes (used until every pass exists everywhere).
CPU_PIPELINE: Optional[str] = None  # the cpu target's default pipeline


def compare_cpu(model, feeds: dict[str, np.ndarray], rtol: float = 1e-4, atol: float = 1e-5,
                passes: Optional[str] = CPU_PIPELINE, options: Optional[dict] = None) -> dict[str, np.ndarray]:
    """Run ``model`` on the cpu and ref targets and assert the outputs agree; returns cpu's."""
    ref = compiler.compile(model, target="ref").run(feeds)
    kw: dict[str, Any] = {"options": options or {}}
    if passes is not None:
        kw["passes"] = passes
    cpu = compiler.compile(model, target="cpu", **kw).run(feeds)
    assert list(cpu) == list(ref)
    for name in ref:
        a, b = cpu[name], ref[name]
        assert a.dtype == b.dtype and a.shape == b.shape, f"{name}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    return cpu


def one_op(op: str, inputs: Sequence[Any], attrs: Optional[dict] = None, opset: int = 21,
           num_outputs: int = 1) -> tuple:
    """A one-node model and its feeds (runtime inputs only)."""
    model = make_model(op, inputs, attrs, opset=opset, num_outputs=num_outputs)
    from tests.ops.ortcheck import Const
    feeds = {f"in{i}": np.asarray(x) for i, x in enumerate(inputs) if x is not None and not isinstance(x, Const)}
    return model, feeds
