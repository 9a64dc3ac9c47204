"""Builds and loads the C runtime (``runtime/c``) that compiled CPU code calls.

The library is compiled once with the system C compiler and cached, keyed by
a hash of its sources and flags, in ``~/.cache/nncompiler`` (or
``$XDG_CACHE_HOME/nncompiler``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from ir.errors import BackendError

C_DIR = Path(__file__).resolve().parent / "c"
SOURCES = ["nnc_runtime.c"]
CFLAGS = ["-O2", "-fPIC", "-pthread", "-std=c11"]


def c_compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise BackendError("no C compiler found", subject="cpu target runtime",
                       hint="install gcc or clang (the cpu target builds a small C runtime)")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = Path(base) / "nncompiler"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _digest() -> str:
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for name in SOURCES + ["nnc_runtime.h"]:
        h.update((C_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def compile_c(sources: list[Path], output: Path, flags: list[str]) -> None:
    """Run the C compiler; raise a BackendError with its message on failure."""
    cmd = [c_compiler(), *flags, *map(str, sources), "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackendError("C compilation failed", subject=" ".join(cmd[:3]) + " ...",
                           found=(proc.stderr.strip().splitlines() or ["?"])[0])


@lru_cache(maxsize=None)
def runtime_library() -> ctypes.CDLL:
    """The runtime as a loaded shared library, its symbols visible to the LLVM JIT."""
    path = cache_dir() / f"libnnc_runtime-{_digest()}.so"
    if not path.exists():
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            out = Path(tmp) / path.name
            compile_c([C_DIR / s for s in SOURCES], out, [*CFLAGS, "-shared", "-I", str(C_DIR)])
            os.replace(out, path)  # atomic: concurrent builds never see a partial file
    lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    lib.nnc_pool_create.restype = ctypes.c_void_p
    lib.nnc_pool_create.argtypes = [ctypes.c_int]
    lib.nnc_pool_free.argtypes = [ctypes.c_void_p]
    lib.nnc_pool_threads.argtypes = [ctypes.c_void_p]
    import llvmlite.binding as llvm
    llvm.load_library_permanently(str(path))
    return lib


class ThreadPool:
    """A runtime thread pool owned by Python (freed with the object)."""

    def __init__(self, threads: int = 0) -> None:
        self._lib = runtime_library()
        self.handle = self._lib.nnc_pool_create(int(threads))
        if not self.handle:
            raise BackendError("could not start the runtime's threads", found=f"{threads} threads")
        self.threads = self._lib.nnc_pool_threads(self.handle)

    def close(self) -> None:
        if self.handle:
            self._lib.nnc_pool_free(self.handle)
            self.handle = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
