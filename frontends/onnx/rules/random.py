"""Import rules for the random family (see frontends/onnx/rules/__init__.py)."""

from __future__ import annotations
