"""The ONNX frontend: load a model file and import it into the IR."""

from __future__ import annotations

from typing import Optional

from ir.graph import Graph

from .importer import ImportOptions, ModelImporter, import_model
from .loader import ModelSource, load_model


def import_onnx(source: ModelSource, options: Optional[ImportOptions] = None) -> Graph:
    """Load (path, bytes or ModelProto) and import an ONNX model."""
    return import_model(load_model(source), options)


__all__ = ["ImportOptions", "ModelImporter", "import_model", "import_onnx", "load_model"]
