"""Import rules for the signal family (see frontends/onnx/rules/__init__.py).

DFT-17 took ``axis`` as an attribute (default 1); DFT-20 takes it as an
optional input (default -2).  The meaning of the value is the same.
"""

from __future__ import annotations

import numpy as np

from . import rule


@rule("DFT", until=20)
def _dft_axis_attribute(b) -> list:
    axis = b.attrs.pop("axis", 1)
    inputs = [b.input(0), b.input(1), b.const(np.array(axis, np.int64), name=b.node.output[0] + "_axis")]
    return b.default(inputs=inputs)
