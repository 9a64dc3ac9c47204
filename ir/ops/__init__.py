"""Every op family; importing this package registers them all.

One file per family.  Each op's schema, type rule and NumPy reference live
together in that file (see ``ir.registry`` for how to define one).
"""

from . import (  # noqa: F401
    activation, attention, cast, control_flow, conv, elementwise, flex_attention, fused, indexing, layout, linalg,
    loss, normalization, pool, quantization, quantization_contrib, random, reduction, resize, rnn,
    sequence, shape, shape_gen, signal, text, vision,
)
