"""Content digests of constant arrays, computed once per array.

Passes (``cse``), the printer (elided payloads) and the cpu backend's kernel
records all key on the bytes of constants; hashing a ResNet-50's 100 MB of
weights several times per build costs seconds.  Graph constants are
read-only (``Graph.add_constant`` clears the write flag), so a read-only
array's digest is remembered for as long as the array lives.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref

import numpy as np

_DIGESTS: dict[int, str] = {}
_LOCK = threading.Lock()


def array_digest(arr: np.ndarray) -> str:
    """sha256 (hex) of ``arr``'s dtype, shape and contents."""
    frozen = not arr.flags.writeable and arr.dtype != object
    if frozen:
        hit = _DIGESTS.get(id(arr))
        if hit is not None:
            return hit
    h = hashlib.sha256()
    h.update(str(arr.dtype).encode() + str(arr.shape).encode())
    if arr.dtype == object:
        h.update(json.dumps([str(v) for v in arr.ravel()]).encode())
    else:
        h.update(np.ascontiguousarray(arr).tobytes())
    digest = h.hexdigest()
    if frozen:
        with _LOCK:
            if id(arr) not in _DIGESTS:
                _DIGESTS[id(arr)] = digest
                weakref.finalize(arr, _DIGESTS.pop, id(arr), None)
    return digest
