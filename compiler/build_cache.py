"""The build cache: a rebuild of an unchanged model copies the artifact it produced last time.

The kernel cache (``backends/cpu/kernel_cache.py``) makes a rebuild skip
LLVM; what is left (importing the model, running the passes, writing the
artifact) still takes a second or two on a large model.  When nothing that
decides the output has changed, the output is the same, so ``build -o DIR``
looks it up here first:

    ~/.cache/nncompiler/builds/<key>/    the artifact's files, as ``build`` wrote them

The key hashes everything a build depends on: the model file's bytes, the
target and its options, the pass pipeline, the input shapes and dimension
values, the compiler's own source files (the packages' folders, extensions
on their paths included), the versions of Python, NumPy, onnx and llvmlite,
and this machine's CPU (``isa=auto`` builds for it).  Builds that do more
than write an artifact (tuning, printing or dumping IR, timing passes,
explaining) are not cached.  A hit is checked file by file against the
cached manifest's sizes and sha256 before it is used; anything damaged is a
miss (and rebuilt).  Entries are hard links when the cache and the output
share a file system (writers here never modify an artifact file in place:
they replace it), else copies; the least recently used entries beyond
``MAX_ENTRIES`` are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from runtime.artifact import DECISIONS, MANIFEST, clear_artifact, file_digest

MAX_ENTRIES = 8
INFO = "build_info.json"  # what the CLI prints about a build, kept beside the cached artifact
_PACKAGES = ("compiler", "frontends", "ir", "passes", "backends", "runtime")


def enabled() -> bool:
    """Off with ``NNC_BUILD_CACHE=0`` (``build --no-build-cache`` sets it for one build)."""
    return os.environ.get("NNC_BUILD_CACHE", "1") not in ("0", "")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nncompiler" / "builds"


def source_digest() -> str:
    """SHA-256 of the compiler's source files (every folder on its packages' paths)."""
    h = hashlib.sha256()
    for name in _PACKAGES:
        pkg = sys.modules.get(name) or __import__(name)
        for folder in sorted(set(getattr(pkg, "__path__", []))):
            for path in sorted(Path(folder).rglob("*")):
                if path.suffix in (".py", ".c", ".h") and path.is_file():
                    h.update(str(path).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _host_cpu() -> str:
    """What decides code generated for this machine: the CPU's name and feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        import platform
        return platform.processor() or platform.machine()


def build_key(model: Path, target: str, settings: Mapping[str, Any]) -> str:
    """The key of a build of the file ``model`` for ``target`` with ``settings`` (options, passes...)."""
    from importlib import metadata
    h = hashlib.sha256()
    h.update(file_digest(model).encode())
    versions = {}
    for dist in ("numpy", "onnx", "llvmlite", "ml_dtypes"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    record = {"target": target, "settings": settings, "python": sys.version, "versions": versions,
              "source": source_digest(), "cpu": _host_cpu()}
    h.update(json.dumps(record, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _place(src: Path, dst: Path) -> None:
    """``dst`` becomes ``src``'s content: a hard link when possible, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _artifact_files(directory: Path) -> Optional[list[str]]:
    """The files of the artifact in ``directory`` (manifest, decisions, those the manifest lists)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    names = [MANIFEST] + [e["name"] for e in manifest.get("files", []) if isinstance(e, dict) and "name" in e]
    if (directory / DECISIONS).is_file():
        names.append(DECISIONS)
    return names


def _intact(entry: Path) -> bool:
    """Every file the cached manifest lists is there with its size and sha256."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        for rec in manifest["files"]:
            path = entry / rec["name"]
            if not path.is_file() or path.stat().st_size != rec["bytes"] or file_digest(path) != rec["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def fetch(key: str, out: Path, model_source: str) -> Optional[dict[str, Any]]:
    """Put the cached artifact of ``key`` into ``out``; its build info, or None on a miss."""
    entry = cache_root() / key
    if not (entry / MANIFEST).is_file() or not _intact(entry):
        return None
    names = _artifact_files(entry)
    try:
        info = json.loads((entry / INFO).read_text())
    except (OSError, ValueError):
        return None
    out.mkdir(parents=True, exist_ok=True)
    clear_artifact(out)
    for name in names or []:
        if name == MANIFEST:
            continue
        _place(entry / name, out / name)
    # The manifest names the model as given to this build (the same bytes may live elsewhere).
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest.setdefault("model", {})["source"] = model_source
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.utime(entry)  # recently used
    return info


def store(key: str, out: Path, info: dict[str, Any]) -> None:
    """Keep the artifact just written to ``out`` under ``key`` (best effort: a cache never fails a build)."""
    root = cache_root()
    names = _artifact_files(out)
    if names is None:
        return
    tmp = root / f".tmp-{key}-{os.getpid()}"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for name in names:
            _place(out / name, tmp / name)
        (tmp / INFO).write_text(json.dumps(info, default=str) + "\n")
        if (root / key).exists():
            shutil.rmtree(root / key, ignore_errors=True)
        os.replace(tmp, root / key)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return
    _trim(root)


def _trim(root: Path) -> None:
    """Remove the least recently used entries beyond ``MAX_ENTRIES`` (and stale temporaries)."""
    entries = []
    for path in root.iterdir():
        try:
            if path.name.startswith(".tmp-"):
                if time.time() - path.stat().st_mtime > 3600:
                    shutil.rmtree(path, ignore_errors=True)
                continue
            entries.append((path.stat().st_mtime, path))
        except OSError:
            continue
    for _, path in sorted(entries, reverse=True)[MAX_ENTRIES:]:
        shutil.rmtree(path, ignore_errors=True)
