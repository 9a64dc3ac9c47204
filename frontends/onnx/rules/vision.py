"""Import rules for the vision family (see frontends/onnx/rules/__init__.py).

None are needed: NonMaxSuppression-10 and -11 have the same inputs,
attribute and semantics, and ImageDecoder has a single version (20).
"""

from __future__ import annotations
