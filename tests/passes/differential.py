"""Differential checks for passes: outputs before and after a pipeline must agree.

The light models' weights are all one constant, which hides channel-order
bugs, so their float constants are randomized after folding, and the input of
the final Softmax (which random weights would saturate) is compared instead.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
import onnx
import pytest

from ir import parse_graph, run_graph
from passes import run_pipeline
from passes.manager import PassManager

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
DATA_DIRS = [os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))]


# --------------------------------------------------------------- helpers
def model_path(name: str) -> str:
    """A light model (``resnet50``) or a digits model (``digits_cnn``); skips when absent."""
    if name.startswith("digits_"):
        paths = [os.path.join(d, name + ".onnx") for d in DATA_DIRS]
    else:
        paths = [os.path.join(LIGHT_DIR, f"light_{name}.onnx")]
    for p in paths:
        if os.path.exists(p):
            return p
    pytest.skip(f"model {name} not found")


def randomize_weights(graph, seed: int = 0) -> None:
    """Give float constants random values: light models' weights are all equal.

    Matrices and kernels get He-scaled normals, vectors (BN parameters,
    biases) uniform values in [0.5, 1.5] so variances stay positive.
    """
    rng = np.random.default_rng(seed)
    for c in graph.constants.values():
        a = c.const
        if not c.type.dtype.is_float or a.size < 2:
            continue
        fan_in = a.size // a.shape[0] if a.ndim >= 2 else 1
        new = rng.standard_normal(a.shape) * np.sqrt(2.0 / fan_in) if fan_in > 1 \
            else rng.uniform(0.5, 1.5, a.shape)
        new = new.astype(a.dtype)
        new.setflags(write=False)
        c.const = new


def expose_logits(graph) -> None:
    """Return the input of a final Softmax instead (random models saturate it)."""
    for out in list(graph.outputs):
        sm = out.producer
        if sm is not None and sm.op == "Softmax" and len(out.uses) == 0:
            graph.set_outputs([sm.inputs[0] if o is out else o for o in graph.outputs])
            graph.remove_node(sm)


def random_feeds(graph, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal([d if isinstance(d, int) else 2 for d in v.type.shape])
            .astype(v.type.dtype.np) for v in graph.inputs}


def assert_close(ref: list, got: list, rtol: float = 1e-4) -> None:
    for a, b in zip(ref, got):
        assert a.shape == b.shape and a.dtype == b.dtype
        scale = float(np.max(np.abs(a))) if a.size else 1.0
        err = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
        assert err <= rtol * max(scale, 1e-6), f"max error {err} vs scale {scale}"


def run_differential(name: str, pipeline: str) -> PassManager:
    """Import ``name``, fold constants, randomize, run ``pipeline``: outputs must not change."""
    from frontends.onnx import import_onnx
    graph = import_onnx(model_path(name))
    run_pipeline(graph, "fold-constants")
    randomize_weights(graph)
    expose_logits(graph)
    ref = graph.clone()
    names = [o.name for o in graph.outputs]
    pm = PassManager(pipeline)
    pm.run(graph)
    assert [o.name for o in graph.outputs] == names
    feeds = random_feeds(graph)
    assert_close(run_graph(ref, feeds), run_graph(graph, feeds))
    return pm


def assert_same_outputs(source: str, pipeline: str) -> str:
    """Run ``pipeline`` on IR text; the outputs on random inputs must not change."""
    graph = parse_graph(textwrap.dedent(source).strip(), allow_elided=False)
    ref = graph.clone()
    run_pipeline(graph, pipeline)
    feeds = random_feeds(graph)
    assert_close(run_graph(ref, feeds), run_graph(graph, feeds), rtol=1e-5)
    return str(graph)


# ------------------------------------------------------------ golden tests
