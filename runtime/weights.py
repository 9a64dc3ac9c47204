"""Constants on disk: one raw blob plus a JSON index.

The blob is what a C program maps or embeds, and what Python memory-maps, so
loading a large model is fast.  Every tensor starts at an ``ir.memory.ALIGNMENT``
(64-byte) boundary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ir.dtypes import DType
from ir.errors import ArtifactError
from ir.graph import Graph
from ir.memory import ALIGNMENT


def save_weights(graph: Graph, directory: Path, blob: str = "weights.bin") -> list[dict]:
    """Write every non-string constant of ``graph`` and its subgraphs; returns the index entries."""
    index = []
    offset = 0
    with open(directory / blob, "wb") as f:
        for key, v in graph.all_constants():
            arr = v.const
            if arr.dtype == object:
                continue  # strings are kept inline in the IR text
            data = np.ascontiguousarray(arr).tobytes()
            pad = (-offset) % ALIGNMENT
            f.write(b"\0" * pad)
            offset += pad
            index.append({"name": key, "dtype": v.type.dtype.short, "shape": list(arr.shape),
                          "offset": offset, "nbytes": len(data)})
            f.write(data)
            offset += len(data)
    (directory / (blob + ".json")).write_text(json.dumps(index, indent=1))
    return index


def load_weights(directory: Path, blob: str = "weights.bin") -> dict[str, np.ndarray]:
    """Map each constant's name to a read-only view of the blob."""
    index_path = directory / (blob + ".json")
    if not index_path.exists() or not (directory / blob).exists():
        raise ArtifactError("artifact has no weights", subject=str(directory),
                            expected=f"{blob} and {blob}.json")
    index = json.loads(index_path.read_text())
    size = (directory / blob).stat().st_size
    raw = np.memmap(directory / blob, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    out = {}
    for e in index:
        if e["offset"] + e["nbytes"] > size:
            raise ArtifactError("weights blob is truncated", subject=str(directory / blob))
        dt = DType.from_short(e["dtype"]).np
        arr = np.frombuffer(raw, dtype=dt, count=e["nbytes"] // max(dt.itemsize, 1),
                            offset=e["offset"]).reshape(e["shape"])
        out[e["name"]] = arr
    return out
