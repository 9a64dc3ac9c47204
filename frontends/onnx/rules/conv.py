"""Import rules for the conv family (see frontends/onnx/rules/__init__.py).

None are needed: Conv-1/11 and ConvTranspose-1/11 have exactly the
attributes of their newest forms with the same meaning (11 and 22 only
widened the types and clarified docs), and DeformConv (19) and Col2Im (18)
have a single form.
"""

from __future__ import annotations
