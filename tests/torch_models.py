"""Test helper: the torch model zoo (benchmarks/models/torch_zoo.py) exported once per session.

Importing this module does not import torch: torch is imported (through the
zoo) only when a test asks for a model, and ``pytest.importorskip`` turns a
missing torch into a skip.  The exports go to one temporary folder per
process, removed at exit, each model and size exported at most once.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

import pytest

ZOO_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "models" / "torch_zoo.py"

# The zoo's model names, kept here so tests can be parametrized without importing torch
# (test_torch_zoo checks that they match torch_zoo.MODELS).
MODEL_NAMES = ("resnet18", "mobilenet_v2", "vit_tiny", "bert_tiny", "convnext_style", "unet_style")

_lock = threading.Lock()
_cache: dict[tuple[str, str, int], Path] = {}
_tmpdir: tempfile.TemporaryDirectory[str] | None = None


def zoo() -> ModuleType:
    """The torch_zoo module (skips the calling test when torch is not installed)."""
    pytest.importorskip("torch")
    mod = sys.modules.get("torch_zoo")
    if mod is None:
        spec = importlib.util.spec_from_file_location("torch_zoo", ZOO_PATH)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["torch_zoo"] = mod  # dataclasses look their module up by name
        spec.loader.exec_module(mod)
    return mod


def torch_model(name: str, size: str = "test", seed: int = 0) -> Path:
    """The path of zoo model ``name`` exported to ONNX (once per session), symbolic batch dim.

    Skips the calling test when torch is missing.
    """
    global _tmpdir
    z = zoo()
    key = (name, size, seed)
    with _lock:
        if key not in _cache:
            if _tmpdir is None:
                _tmpdir = tempfile.TemporaryDirectory(prefix="nncompiler-torch-zoo-")
            _cache[key] = z.export(name, Path(_tmpdir.name) / f"{name}_{size}_s{seed}.onnx", size, seed)
        return _cache[key]
