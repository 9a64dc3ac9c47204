"""Imports every family of import rules (one module per IR op family)."""

from . import (attention, cast, control_flow, conv, core, indexing, linalg,  # noqa: F401
               normalization, pool, quantization, random, reduction, resize, rnn, sequence,
               shape, signal, text, vision)
