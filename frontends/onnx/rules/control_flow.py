"""Import rules for the control_flow family (see frontends/onnx/rules/__init__.py)."""

from __future__ import annotations
