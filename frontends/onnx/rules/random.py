"""Import rules for the random family (see frontends/onnx/rules/__init__.py).

None are needed: RandomNormal/RandomUniform(+Like)-1, Bernoulli-15 and
Multinomial-7 differ from their opset-22 forms only by the element types they
allow (bfloat16 was added), so older nodes import one-to-one.
"""

from __future__ import annotations
