"""The whole cpu pipeline keeps every model's outputs (run by the reference interpreter).

For the light models (random weights), the digits models (fp32 and int8) and
ONNX's test categories: import, run the cpu target's default pipeline with the
cpu target description, and compare with the imported graph's outputs.
"""

import os
import warnings

import numpy as np
import pytest

from backends.base import get_backend
from frontends.onnx import import_model, import_onnx
from ir import run_graph
from passes.manager import PassContext, PassManager
from backends.cpu import PIPELINE as CPU_PIPELINE
from tests.model_zoo import LIGHT, SHARED_DATA, light_input, randomized_light_model


def optimize_for_cpu(graph):
    backend = get_backend("cpu")
    ctx = PassContext(target=backend.target_info, backend=backend)
    PassManager(CPU_PIPELINE).run(graph, ctx)
    return ctx


def assert_same(before, after, feeds, rtol=1e-4, atol=1e-5):
    _compare(run_graph(before, feeds), run_graph(after, feeds), rtol, atol)


def _compare(a, b, rtol, atol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, list) or x is None:  # sequences and optionals: element by element
            assert (x is None) == (y is None)
            if x is not None:
                _compare(x, y, rtol, atol)
            continue
        if isinstance(x, np.ndarray) and x.dtype.kind == "V":  # bfloat16, float8...: compare as floats
            if x.dtype.itemsize == 2:
                # bfloat16 (8 significant bits): a fused kernel computing in float32 and rounding
                # once (nnc.StridedAttention) and the op-by-op rounded graph differ by a few ulps.
                rtol, atol = max(rtol, 2.0 ** -6), max(atol, 2.0 ** -6)
            x, y = x.astype(np.float64), np.asarray(y).astype(np.float64)
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            scale = max(1.0, float(np.abs(x).max())) if x.size else 1.0
            np.testing.assert_allclose(y, x, rtol=rtol, atol=atol * scale)
        else:
            np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


@pytest.mark.parametrize("name", [m if m in ("squeezenet", "shufflenet", "inception_v1") else
                                  pytest.param(m, marks=pytest.mark.slow) for m in LIGHT])
def test_light_models(name):
    proto = randomized_light_model(name)
    before = import_model(proto)
    after = before.clone()
    ctx = optimize_for_cpu(after)
    assert ctx.stats.get("fused_groups", 0) > 0
    assert_same(before, after, light_input(proto))


def _digits_models():
    if not os.path.isdir(SHARED_DATA):
        return []
    paths = [os.path.join(SHARED_DATA, f) for f in ("digits_cnn.onnx", "digits_mlp.onnx")]
    int8 = os.path.join(SHARED_DATA, "int8")
    paths += sorted(os.path.join(int8, f) for f in os.listdir(int8)) if os.path.isdir(int8) else []
    return paths


@pytest.mark.parametrize("path", _digits_models(), ids=os.path.basename)
def test_digits_models(path):
    before = import_onnx(path)
    after = before.clone()
    optimize_for_cpu(after)
    x = np.load(os.path.join(SHARED_DATA, "digits_test.npz"))["x_test"][:64].astype(np.float32)
    if "mlp" in os.path.basename(path):
        x = x.reshape(len(x), -1)
    # Integer paths may round one step apart when float sums reorder: compare with a step's slack.
    assert_same(before, after, {"input": x}, rtol=1e-3, atol=2e-2 if ".q" in path or "dynamic" in path else 1e-5)


def _cases(kinds):
    from tests.onnx_suite import iter_cases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(iter_cases(kinds))


@pytest.mark.parametrize("kinds", [("simple", "pytorch-converted", "pytorch-operator"),
                                   pytest.param(("node",), marks=pytest.mark.slow)], ids=["models", "node"])
def test_onnx_test_categories(kinds):
    """Every case the reference target passes stays equal to the unoptimized graph's outputs."""
    from tests.onnx_suite import run_case
    checked, failures = 0, []
    for case in _cases(kinds):
        if run_case(case, "ref")[0] != "pass":
            continue
        before = import_model(case.model)
        after = before.clone()
        try:
            optimize_for_cpu(after)
            for inputs, _ in case.data_sets:
                feeds = {v.name: x for v, x in zip(before.inputs, inputs)}
                assert_same(before, after, feeds, rtol=1e-3, atol=1e-6)
        except Exception as exc:  # noqa: BLE001 - collect every failing case
            failures.append(f"{case.name}: {str(exc).strip().splitlines()[0][:150]}")
        checked += 1
    assert not failures, f"{len(failures)} of {checked} cases differ:\n" + "\n".join(failures)
    assert checked > 50
