"""Every op family; importing this package registers them all.

One file per family.  Each op's schema, type rule and NumPy reference live
together in that file (see ``ir.registry`` for how to define one).
"""

from . import (activation, attention, cast, control_flow, conv, elementwise, indexing,  # noqa: F401
               linalg, normalization, pool, quantization, quantization_contrib, random, reduction,
               resize, rnn, sequence, shape, shape_gen, signal, text, vision)
