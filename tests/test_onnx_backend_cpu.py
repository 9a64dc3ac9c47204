"""ONNX's backend test suite on the cpu target (marked slow: every case compiles LLVM code).

Every case the reference target passes must pass here too, or be listed in
``tests/onnx_cpu_unsupported.py`` with the reason the cpu target gives (the
op kinds it has no kernel for, element types it does not handle...).  Cases
the reference target cannot run either are excluded as in
``tests/test_onnx_backend.py``.
"""

import onnx.backend.test
import pytest

from compiler.onnx_backend import backend_for
from tests.onnx_cpu_unsupported import UNSUPPORTED
from tests.test_onnx_backend import EXCLUDED, _cpu_only

pytestmark = pytest.mark.slow

backend_test = onnx.backend.test.BackendTest(backend_for("cpu"), __name__)
for _pattern in EXCLUDED:
    backend_test.exclude(_pattern)
for _name in UNSUPPORTED:
    backend_test.exclude(rf"^{_name}_cpu$")

# Cases whose expected data the cpu target's (exact or ONNX-defined) computation misses by more
# than the suite's tolerance; onnxruntime fails them too.
CPU_EXCLUDED = {
    # The expected data holds numpy's float32 FFT noise (1.9e-7) where the exact value is 0, past
    # atol=1e-7; the cpu kernel sums in float64 and gives the exact 0.
    r"^test_dft_inverse(_opset19)?_cpu$": "float32 FFT rounding noise in the expected data",
    # The cpu target runs Attention through ONNX's function body; float16 rounded op by op gives
    # the one-ulp differences of the expanded case (excluded on every target in test_onnx_backend).
    r"^test_attention_4d_causal_fp16_cpu$": "float16: one-ulp differences beyond rtol=1e-3",
}
for _pattern in CPU_EXCLUDED:
    backend_test.exclude(_pattern)

globals().update(_cpu_only(backend_test.test_cases))


def test_unsupported_list_gives_reasons():
    assert UNSUPPORTED and all("cannot run" in reason for reason in UNSUPPORTED.values())
