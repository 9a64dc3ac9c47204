"""nnc layout ops: blocked channel layouts (NCHW[x]c) and convolution on them."""

from __future__ import annotations
