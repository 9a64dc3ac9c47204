"""The AMX-INT8 tile bodies of nnc.QConv/nnc.QMatMul against the reference, and the VNNI path forced.

Shapes whose K splits into tile-sized groups take the tile kernels where the
target has AMX (this machine does; elsewhere the AMX builds are skipped); a
build whose feature list leaves AMX out takes the VNNI loops.  Both must give
the reference's integers bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from backends.cpu.host import host_features
from backends.cpu.kernels import int8_amx
from compiler.driver import build

from . import qmodels
from .test_fold_and_kernels import _ort, _ref_folded

HOST_AMX = bool(host_features().get("amx-int8")) and int8_amx.amx_permitted()
NO_AMX = tuple(sorted(k for k, v in host_features().items() if v and not k.startswith("amx")))

CASES = [
    ("conv", dict(c=32, m=48, k=1, pad=0, hw=(14, 14))),                     # K = 32: one 8-group
    ("conv", dict(c=16, m=32, k=3, hw=(9, 11), act="u8", relu="relu")),      # K = 144: groups of 12
    ("conv", dict(c=64, m=40, k=3, stride=2, hw=(15, 15))),                  # 40 channels: edge tile
    ("conv", dict(c=64, m=32, k=1, pad=0, group=2, hw=(5, 6), batch=1)),     # grouped: 16 channels each
    ("matmul", dict(m=20, k=64, n=33, act="s8")),                            # int8 x int8 (tdpbssd)
    ("matmul", dict(m=40, k=128, n=300, act="u8", gemm=True, trans_b=True)),  # uint8 (tdpbusd), 19 tiles
]


def _build(model, feeds, **options):
    calls = []
    real = int8_amx.Tiles.__init__

    def spy(self, *a, **k):
        calls.append(1)
        real(self, *a, **k)

    int8_amx.Tiles.__init__ = spy
    try:
        res = build(model, target="cpu", options={"kernel_cache": False, **options})
    finally:
        int8_amx.Tiles.__init__ = real
    y = res.module.run(feeds)
    return (list(y.values())[0] if isinstance(y, dict) else y[0]), len(calls)


@pytest.mark.parametrize("path", ["amx", "vnni"])
@pytest.mark.parametrize("kind,case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_tile_and_vnni_paths_match_reference(kind, case, path):
    if path == "amx" and not HOST_AMX:
        pytest.skip("this machine has no AMX-INT8 (or the OS refuses the tile state)")
    model, feeds = (qmodels.qdq_conv if kind == "conv" else qmodels.qdq_matmul)(seed=5, **case)
    ref, _ = _ref_folded(model, feeds)
    assert np.array_equal(ref, _ort(model, feeds))
    got, tiles = _build(model, feeds, **({} if path == "amx" else {"features": NO_AMX}))
    assert (tiles > 0) == (path == "amx"), f"{path} build used {tiles} tile kernels"
    assert np.array_equal(got, ref), f"{path}: max diff {np.abs(got.astype(float) - ref).max()}"


def test_small_k_stays_on_vnni():
    """K/4 without a divisor of at least 8 (here K = 27) is not worth a tile multiply."""
    model, feeds = qmodels.qdq_conv(c=3, m=32, k=3, hw=(8, 8))
    _, tiles = _build(model, feeds)
    assert tiles == 0
    assert int8_amx.k_group(7) is None and int8_amx.k_group(36) == 12 and int8_amx.k_group(64) == 16


def test_c_bundle_with_tile_kernels(tmp_path):
    """The C bundle's embedded runtime asks Linux for the tile state itself (no Python around)."""
    if not HOST_AMX:
        pytest.skip("this machine has no AMX-INT8")
    from tests.cpu.test_bundle import run_bundle
    import compiler
    model, feeds = qmodels.qdq_conv(seed=2, c=32, m=48, k=1, pad=0, hw=(14, 14))
    module = compiler.compile(model, target="cpu")
    results, _ = run_bundle(module, feeds, tmp_path)
    ref, _ = _ref_folded(model, feeds)
    assert np.array_equal(results[0], ref)


def test_int32_outputs_on_tiles():
    """MatMulInteger/ConvInteger (no requantization: the int32 accumulator is the output) on tiles."""
    if not HOST_AMX:
        pytest.skip("this machine has no AMX-INT8")
    from onnx import TensorProto, helper
    from .qmodels import _model, _t
    from .test_fold_and_kernels import _check
    rng = np.random.default_rng(0)
    b = rng.integers(0, 256, (64, 40)).astype(np.uint8)  # zero point 128: int8 weights with zero point 0
    mm = _model([helper.make_node("MatMulInteger", ["x", "b", "azp", "bzp"], ["y"])],
                [_t("b", b), _t("azp", np.uint8(17)), _t("bzp", np.uint8(128))], [20, 64], TensorProto.UINT8,
                TensorProto.INT32)
    w = rng.integers(-128, 128, (32, 16, 3, 3)).astype(np.int8)
    conv = _model([helper.make_node("ConvInteger", ["x", "w", "xzp"], ["y"], pads=[1, 1, 1, 1])],
                  [_t("w", w), _t("xzp", np.uint8(100))], [1, 16, 9, 10], TensorProto.UINT8, TensorProto.INT32)
    for model, shape in ((mm, (20, 64)), (conv, (1, 16, 9, 10))):
        feeds = {"x": rng.integers(0, 256, shape).astype(np.uint8)}
        _check(model, feeds, 0.0)  # reference = onnxruntime, cpu = reference
        assert _build(model, feeds)[1] == 1
