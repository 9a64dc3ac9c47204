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
from tests.onnx_suite import TARGET_EXCLUDED
from tests.test_onnx_backend import EXCLUDED, _cpu_only

pytestmark = pytest.mark.slow

backend_test = onnx.backend.test.BackendTest(backend_for("cpu"), __name__)
for _pattern in EXCLUDED:
    backend_test.exclude(_pattern)
for _name in UNSUPPORTED:
    backend_test.exclude(rf"^{_name}_cpu$")

# Cases whose expected data the cpu target's computation misses (the reasons are in tests/onnx_suite.py).
CPU_EXCLUDED = TARGET_EXCLUDED["cpu"]
for _pattern in CPU_EXCLUDED:
    backend_test.exclude(_pattern)

globals().update(_cpu_only(backend_test.test_cases))


def test_unsupported_list_gives_reasons():
    assert UNSUPPORTED and all("cannot run" in reason for reason in UNSUPPORTED.values())
