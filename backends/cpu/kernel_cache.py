"""The on-disk, content-addressed cache of compiled kernels (``--option kernel_cache=false`` turns it off).

Key: SHA-256 of the function's LLVM IR text, the machine it is compiled for
(triple, CPU, features, opt level, relocation model) and the toolchain
(``runtime.llvm_worker.toolchain_digest``: llvmlite and LLVM versions and the
optimization pipeline's source).  The IR text is all our code generators
decide, so a changed generator, schedule, shape or fused body is a new key.
Value: the optimized object code.

A second kind of entry lets a rebuild skip generating IR as well: a *kernel
record* (``.json``), keyed by what the generator was given (the node printed
with its body, attributes, types, placement and schedule, the digests of the
constants it reads, the generator, the target, and ``code_digest``: the
sources of this target and of ``ir``), holds what generating it produced
(the function's symbol, task count, buffer order, label) and the object's key.

Entries live in ``<cache_dir()>/kernels/<k[:2]>/<k>.o`` (``runtime.native.cache_dir``:
``~/.cache/nncompiler``).  Each file is ``MAGIC``, the SHA-256 of the object,
then the object: a truncated or corrupted entry fails the check, is deleted and
counts as a miss (it is compiled again).  Writes go to a temporary file in the
same folder and are renamed into place (``os.replace``), so concurrent builds
never read a partial entry.  Hits refresh the file's modification time;
``trim`` deletes the least recently used entries once the cache passes its
size cap (``MAX_BYTES``) until it is under 80% of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from runtime.llvm_worker import Machine, toolchain_digest
from runtime.native import cache_dir

_ROOT = Path(__file__).resolve().parents[2]

MAGIC = b"NNCKOBJ1"
MAX_BYTES = 1 << 30
TRIM_EVERY = 60.0


def kernel_key(text: str, machine: Machine) -> str:
    h = hashlib.sha256()
    h.update(toolchain_digest().encode())
    h.update(repr(tuple(machine)).encode())
    h.update(b"\0")
    h.update(text.encode())
    return h.hexdigest()


@lru_cache(maxsize=None)
def code_digest() -> str:
    """SHA-256 of the code that generates kernels: this target's and the IR's Python sources."""
    h = hashlib.sha256()
    for folder in (_ROOT / "backends" / "cpu", _ROOT / "ir"):
        for path in sorted(folder.rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=None)
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def registry_digest() -> str:
    """SHA-256 over who generates code now: every registered kernel generator, elementwise emitter and
    index map, with the source file each comes from (extensions defined outside this target included)."""
    import inspect
    from .evaluator import _INDEX_MAPS
    from .expr import _EMITTERS
    from .kernels import _DISCOVERY, _GENERATORS
    _DISCOVERY.ensure()
    fns = [g.emit for g in _GENERATORS] + [g.supports for g in _GENERATORS]
    fns += [e.fn for _, e in sorted(_EMITTERS.items())] + [m.fn for _, m in sorted(_INDEX_MAPS.items())]
    h = hashlib.sha256()
    for fn in fns:
        try:
            path = inspect.getsourcefile(fn) or ""
        except TypeError:
            path = ""
        h.update(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}:{_file_digest(path)}\n".encode())
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    written: int = 0


class KernelCache:
    """Object code by key in ``directory`` (default: ``cache_dir()/kernels``)."""

    def __init__(self, directory: Optional[Path] = None, max_bytes: int = MAX_BYTES) -> None:
        self.directory = Path(directory) if directory is not None else cache_dir() / "kernels"
        self.max_bytes = max_bytes
        self.stats = CacheStats()

    def path(self, key: str, suffix: str = ".o") -> Path:
        return self.directory / key[:2] / f"{key}{suffix}"

    def get_record(self, key: str) -> Optional[dict]:
        """The kernel record of ``key`` (None when absent or unreadable); counts nothing."""
        data = self._read(self.path(key, ".json"))
        if data is None:
            return None
        try:
            record = json.loads(data.decode())
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def put_record(self, key: str, record: dict) -> None:
        self._write(self.path(key, ".json"), json.dumps(record, sort_keys=True).encode())

    def _read(self, p: Path) -> Optional[bytes]:
        """An entry's payload; None when absent, or corrupt (then deleted, counted in ``stats.corrupt``)."""
        try:
            data = p.read_bytes()
        except OSError:
            return None
        head = len(MAGIC) + 32
        payload = data[head:]
        if data[:len(MAGIC)] != MAGIC or data[len(MAGIC):head] != hashlib.sha256(payload).digest() or not payload:
            self.stats.corrupt += 1
            try:
                p.unlink()
            except OSError:
                pass
            return None
        try:
            os.utime(p)  # least recently used goes first when trimming
        except OSError:
            pass
        return payload

    def _write(self, p: Path, payload: bytes) -> bool:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=p.suffix)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
                os.replace(tmp, p)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            return True
        except OSError:
            return False

    def get(self, key: str) -> Optional[bytes]:
        """The object of ``key``; None (a miss) when absent or corrupt (a corrupt entry is deleted)."""
        obj = self._read(self.path(key))
        if obj is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return obj

    def put(self, key: str, obj: bytes) -> None:
        """Store atomically; a cache that cannot be written is no error (the build goes on)."""
        if self._write(self.path(key), obj):
            self.stats.written += 1

    def entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry."""
        out = []
        if not self.directory.is_dir():
            return out
        for sub in self.directory.iterdir():
            if not sub.is_dir():
                continue
            for p in sub.iterdir():
                if p.suffix in (".o", ".json") and not p.name.startswith(".tmp-"):
                    try:
                        st = p.stat()
                    except OSError:
                        continue
                    out.append((st.st_mtime, st.st_size, p))
        return out

    def size(self) -> int:
        return sum(s for _, s, _ in self.entries())

    def trim(self, force: bool = False) -> int:
        """Delete least recently used entries while over ``max_bytes`` (down to 80%); returns how many.

        Listing the cache costs time, so builds trim at most once per ``TRIM_EVERY`` seconds
        (a marker file's age) unless ``force``.
        """
        marker = self.directory / ".last-trim"
        if not force:
            try:
                if time.time() - marker.stat().st_mtime < TRIM_EVERY:
                    return 0
            except OSError:
                pass
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass
        entries = self.entries()
        total = sum(s for _, s, _ in entries)
        if total <= self.max_bytes:
            return 0
        removed = 0
        for _, size, p in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes * 0.8:
                break
            try:
                p.unlink()
                total -= size
                removed += 1
            except OSError:
                pass
        return removed
