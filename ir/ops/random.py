"""random ops (see ir/registry.py for how ops are defined)."""

from __future__ import annotations
