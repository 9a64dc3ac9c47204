"""Shared test setup."""

import os
import tempfile

import pytest

# onnx's backend-test runner writes generated test data under ONNX_HOME; keep it out of $HOME.
# Builds verify the IR after every pass in tests (a broken graph is blamed on the pass that broke it).
os.environ.setdefault("NNC_VERIFY_EACH", "1")
# Every build really builds (tests/cpu/test_build_cache.py turns the build cache on for its cases).
os.environ.setdefault("NNC_BUILD_CACHE", "0")
os.environ.setdefault("ONNX_HOME", os.path.join(tempfile.gettempdir(), "nncompiler-onnx-home"))

SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture(scope="session")
def shared_data():
    """The project's shared data folder (digits models and datasets)."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
