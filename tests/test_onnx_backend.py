"""ONNX's own backend test suite, run through ``compiler.onnx_backend.Backend`` (ref target).

Categories: node tests (built in memory by onnx from ``onnx/backend/test/case/node``),
``simple``, ``pytorch-converted``, ``pytorch-operator`` and the nine light
ImageNet models (``real``).  Everything runs except the explicit, commented
exclude list below.  The light models are heavier and carry the ``slow``
marker's budget in mind: see ``LIGHT_MODELS_IN_DEFAULT_RUN``.
"""

import onnx.backend.test
import pytest

from compiler.onnx_backend import Backend

# Pattern -> why the case cannot pass on the reference target.  Keep this list short and honest.
EXCLUDED = {
    # Random generators: the tests compare exact values drawn by onnx's NumPy generator.
    r"^test_bernoulli(_double|_seed)?(_expanded)?_cpu$": "exact values of another random generator",
    # Image codecs we do not ship (no dependency for JPEG/JPEG2000/WebP).
    r"^test_image_decoder_decode_(jpeg|jpeg2k|webp)": "JPEG/JPEG 2000/WebP decoding needs a codec",
    # onnx's own comparison crashes on a sequence holding 0-d arrays (Runner.assert_similar_outputs
    # calls len() on them); tests/onnx_suite.py checks this case with an element-wise comparison.
    r"^test_loop16_seq_none_cpu$": "onnx's runner cannot compare this output",
    # Training-only ops (ai.onnx.preview.training) and the real models that need a download.
    r"^test_(adagrad|adam|momentum|nesterov_momentum)": "training ops (ai.onnx.preview.training)",
    r"^test_gradient_of_add": "training: Gradient op (ai.onnx.preview.training)",
    # ai.onnx.ml: a separate domain we do not target.
    r"^test_ai_onnx_ml_": "ai.onnx.ml domain",
}

backend_test = onnx.backend.test.BackendTest(Backend, __name__)
for _pattern in EXCLUDED:
    backend_test.exclude(_pattern)

globals().update(backend_test.test_cases)


def test_exclusions_are_documented():
    assert all(reason for reason in EXCLUDED.values())
