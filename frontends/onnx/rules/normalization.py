"""Import rules for the normalization family (see frontends/onnx/rules/__init__.py)."""

from __future__ import annotations
