"""cpu target: Einsum against the reference.

Matrix products (plain, batched, transposed), contractions of three
operands, traces and diagonals, sums, outer products, ellipses with
broadcasting, implicit outputs, integer types, and an elementwise epilogue
fused into the Einsum's kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler

from .test_reduction import assert_close, make_model

RNG = np.random.default_rng(0)

CASES = [
    ("ij,jk->ik", [(7, 19), (19, 37)]),
    ("bij,bjk->bik", [(3, 5, 8), (3, 8, 33)]),
    ("ij,kj->ik", [(6, 9), (35, 9)]),
    ("ji,jk->ki", [(9, 6), (9, 35)]),
    ("ij,jk,kl->il", [(4, 5), (5, 6), (6, 20)]),
    ("ii->i", [(17, 17)]),
    ("ii", [(9, 9)]),
    ("ij->", [(5, 41)]),
    ("ij->j", [(5, 41)]),
    ("i,j->ij", [(13,), (40,)]),
    ("i,i", [(50,), (50,)]),
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (3, 5, 18)]),
    ("b...i->b...", [(2, 3, 4, 7)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 6, 8), (2, 3, 20, 8)]),
    ("ijk->kji", [(3, 4, 21)]),
    ("ij,jk", [(4, 6), (6, 17)]),
    ("bij,j->bi", [(2, 5, 1), (19,)]),  # a size-1 dim broadcast against the letter's size
]


@pytest.mark.parametrize("equation,shapes", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_einsum(equation, shapes, dtype):
    xs = [(RNG.standard_normal(s) * 3).astype(dtype) for s in shapes]
    names = [f"x{i}" for i in range(len(xs))]
    ty = oh.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = make_model([oh.make_node("Einsum", names, ["y"], equation=equation)],
                       {n: (list(x.shape), ty) for n, x in zip(names, xs)}, {"y": ty}, opset=18)
    feeds = dict(zip(names, xs))
    want = compiler.compile(model, target="ref").run(feeds)
    module = compiler.compile(model, target="cpu")
    got = module.run(feeds)
    labels = module.executable.description["kernels"]
    assert any("Einsum" in label for label in labels), labels
    assert_close(got, want, 1e-5, 1e-4)


def test_fused_epilogue():
    a = RNG.standard_normal((4, 6, 16)).astype(np.float32)
    bb = RNG.standard_normal((4, 16, 24)).astype(np.float32)
    model = make_model([oh.make_node("Einsum", ["a", "b"], ["e"], equation="bik,bkj->bij"),
                        oh.make_node("Relu", ["e"], ["y"])],
                       {"a": ([4, 6, 16], T.FLOAT), "b": ([4, 16, 24], T.FLOAT)}, {"y": T.FLOAT})
    feeds = {"a": a, "b": bb}
    want = compiler.compile(model, target="ref").run(feeds)
    got = compiler.compile(model, target="cpu").run(feeds)
    assert_close(got, want, 1e-5, 1e-5)
