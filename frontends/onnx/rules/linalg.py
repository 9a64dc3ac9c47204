"""Import rules for the linalg family (see frontends/onnx/rules/__init__.py)."""

from __future__ import annotations
