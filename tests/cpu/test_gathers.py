"""cpu target: GatherND, ReverseSequence, CenterCropPad and Compress against the reference.

Shapes beyond the ONNX suite's (long last axes so vector rows and gathers
run, odd sizes for tails), every batch_dims / axis form, negative indices,
and each op fused with elementwise neighbours.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, const, make_model


def run_both(model, feeds: dict, op: str) -> None:
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    labels = module.executable.description["kernels"]
    assert any(op in label for label in labels), labels
    assert_close(got, want, 1e-6, 1e-6)


def _ty(a: np.ndarray) -> int:
    return oh.np_dtype_to_tensor_dtype(a.dtype)


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("ds,qs,bd", [
    ((5, 6, 37), (4, 2), 0), ((5, 6, 37), (3, 7, 1), 0), ((5, 6, 37), (2, 3), 0),
    ((4, 6, 37), (4, 2, 1), 1), ((4, 6, 5, 19), (4, 6, 3, 1), 2), ((4, 9, 40), (4, 17, 2), 1),
])
@pytest.mark.parametrize("itype", [np.int64])  # GatherND takes int64 indices only
def test_gather_nd(ds, qs, bd, itype):
    data = RNG.standard_normal(ds).astype(np.float32)
    k = qs[-1]
    idx = np.stack([RNG.integers(-ds[bd + j], ds[bd + j], qs[:-1]) for j in range(k)], axis=-1).astype(itype)
    model = make_model([oh.make_node("GatherND", ["x", "i"], ["g"], batch_dims=bd),
                        oh.make_node("Relu", ["g"], ["y"])],
                       {"x": (list(ds), T.FLOAT), "i": (list(qs), _ty(idx))}, {"y": T.FLOAT})
    run_both(model, {"x": data, "i": idx}, "GatherND")


@pytest.mark.parametrize("batch_axis,time_axis", [(0, 1), (1, 0)])
@pytest.mark.parametrize("rest", [(), (37,), (3, 19)])
def test_reverse_sequence(batch_axis, time_axis, rest):
    batch, steps = 5, 9
    shape = [0, 0, *rest]
    shape[batch_axis], shape[time_axis] = batch, steps
    x = RNG.standard_normal(shape).astype(np.float32)
    lens = np.array([9, 0, 1, 4, 7], np.int64)
    model = make_model([oh.make_node("ReverseSequence", ["x", "lens"], ["r"], batch_axis=batch_axis,
                                     time_axis=time_axis),
                        oh.make_node("Neg", ["r"], ["y"])],
                       {"x": (shape, T.FLOAT), "lens": ([batch], T.INT64)}, {"y": T.FLOAT})
    run_both(model, {"x": x, "lens": lens}, "ReverseSequence")


@pytest.mark.parametrize("shape,target,axes", [
    ((3, 20, 41), (3, 11, 48), None), ((3, 20, 41), (9, 31), [1, 2]), ((20, 41, 3), (31, 9), [-3, -2]),
    ((2, 7, 8), (2, 8, 7), None), ((5, 33), (4, 40), None),
])
def test_center_crop_pad(shape, target, axes):
    x = RNG.standard_normal(shape).astype(np.float32)
    attrs = {} if axes is None else {"axes": axes}
    model = make_model([oh.make_node("CenterCropPad", ["x", "s"], ["y"], **attrs)], {"x": (list(shape), T.FLOAT)},
                       {"y": T.FLOAT}, [const("s", np.asarray(target, np.int64))])
    run_both(model, {"x": x}, "CenterCropPad")


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_compress(axis, dtype):
    shape = (6, 5, 37)
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    n = int(np.prod(shape)) if axis is None else shape[axis]
    cond = RNG.random(n) < 0.6
    attrs = {} if axis is None else {"axis": axis}
    model = make_model([oh.make_node("Compress", ["x", "c"], ["y"], **attrs)],
                       {"x": (list(shape), _ty(x))}, {"y": _ty(x)}, [const("c", cond)])
    run_both(model, {"x": x}, "Compress")


def test_compress_condition_given_at_run_time_is_specialized():
    x = RNG.standard_normal((4, 33)).astype(np.float32)
    model = make_model([oh.make_node("Compress", ["x", "c"], ["y"], axis=1)],
                       {"x": ([4, 33], T.FLOAT), "c": ([33], T.BOOL)}, {"y": T.FLOAT})
    module = compiler.compile(model, target="cpu")
    for seed in (1, 2):
        cond = np.random.default_rng(seed).random(33) < 0.5
        np.testing.assert_array_equal(module.run({"x": x, "c": cond})["y"], x[:, cond])
