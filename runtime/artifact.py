"""The artifact folder's manifest: its name, format version, and how it is read and checked.

An artifact is a folder holding ``manifest.json`` (target, options, input and
output specs, provenance) beside whatever the target's executable saved.
Reading one is split by layer: this module reads and validates the manifest
(no target needed); ``compiler.load`` then asks the manifest's target to load
the executable and wraps it in a ``runtime.module.Module``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Union

from ir.errors import ArtifactError

MANIFEST = "manifest.json"
DECISIONS = "decisions.json"
# Compiled specializations of a model with run-time shapes (compiler/specialize.py), one folder each.
SPECIALIZATIONS = "specializations"
# 2: ``files`` lists each file the executable wrote with its size and sha256.
FORMAT_VERSION = 2


def write_manifest(directory: Union[str, Path], manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` (already holding inputs and outputs) with the current format version."""
    path = Path(directory) / MANIFEST
    path.write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION}, indent=2, default=str) + "\n")
    return path


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def file_records(directory: Union[str, Path], names: list[str]) -> list[dict[str, Any]]:
    """``{"name", "bytes", "sha256"}`` of each file the executable wrote (``manifest["files"]``)."""
    d = Path(directory)
    records = []
    for name in sorted(set(names)):
        path = d / name
        if not path.is_file():
            raise ArtifactError("the target said it wrote a file that is not there", subject=str(path))
        records.append({"name": name, "bytes": path.stat().st_size, "sha256": file_digest(path)})
    return records


def verify_files(directory: Union[str, Path], manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists is there with its recorded size and sha256.

    Runs before a target reads anything: a truncated object file or weights
    blob must be an ``ArtifactError``, never a crash or silently wrong outputs.
    """
    d = Path(directory)
    for entry in manifest["files"]:
        path = d / entry["name"]
        if not path.is_file():
            raise ArtifactError("artifact file is missing", subject=str(path),
                                hint="the folder is incomplete: rebuild the artifact")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise ArtifactError("artifact file has the wrong size (truncated or modified)", subject=str(path),
                                expected=f"{entry['bytes']} bytes", found=f"{size} bytes",
                                hint="rebuild the artifact")
        digest = file_digest(path)
        if digest != entry["sha256"]:
            raise ArtifactError("artifact file is corrupt (its sha256 differs from the manifest's)",
                                subject=str(path), expected=entry["sha256"], found=digest,
                                hint="rebuild the artifact")


def _plain_name(name: Any) -> bool:
    """A file name inside the folder: no path separators, not '.' or '..'."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\\" not in name and "\0" not in name)


def _artifact_manifest(directory: Path) -> Any:
    """The JSON of ``directory``'s manifest if it is one of ours (names a target and a format), else None."""
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and "format_version" in data and isinstance(data.get("target"), str):
        return data
    return None


def check_output_directory(directory: Union[str, Path], force: bool = False) -> Path:
    """Refuse an output path an artifact cannot (or should not) be written to.

    A folder that does not exist, is empty, or holds an artifact (whose files
    a new build replaces) is fine; a file, or a non-empty folder without a
    manifest, is refused unless ``force``.
    """
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise ArtifactError("the output path is a file, not a folder", subject=str(d),
                            hint="choose a folder name for the artifact")
    if d.is_dir() and not force and _artifact_manifest(d) is None:
        try:
            entries = sorted(p.name for p in d.iterdir())
        except OSError as exc:
            raise ArtifactError(f"cannot read the output folder: {exc.strerror}", subject=str(d)) from None
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ArtifactError("the output folder is not empty and holds no artifact", subject=str(d),
                                found=shown,
                                hint="choose a new or empty folder, or pass --force (force=True) to write into it")
    return d


def clear_artifact(directory: Union[str, Path]) -> None:
    """Remove what a previous artifact in ``directory`` wrote (the files its manifest lists).

    Files are unlinked, not truncated: a module loaded from this folder keeps
    reading its memory-mapped weights while the new ones are written.
    """
    d = Path(directory)
    old = _artifact_manifest(d)
    if old is None:
        return  # no artifact here (or a manifest.json of something else: not ours to clear)
    names = [MANIFEST, DECISIONS]
    files = old.get("files", [])
    for entry in files if isinstance(files, list) else []:
        names.append(entry.get("name") if isinstance(entry, dict) else entry)
    for name in names:
        if _plain_name(name) and (d / name).is_file():
            os.unlink(d / name)
    if (d / SPECIALIZATIONS).is_dir() and not (d / SPECIALIZATIONS).is_symlink():
        import shutil
        shutil.rmtree(d / SPECIALIZATIONS, ignore_errors=True)


def read_manifest(directory: Union[str, Path]) -> dict[str, Any]:
    """The manifest of the artifact in ``directory``, checked; ``ArtifactError`` says what is wrong."""
    d = Path(directory)
    if not d.exists():
        raise ArtifactError("artifact folder not found", subject=str(d))
    if not d.is_dir():
        raise ArtifactError("an artifact is a folder, not a file", subject=str(d),
                            hint="build one with `python -m compiler build model.onnx -o DIR`")
    path = d / MANIFEST
    if not path.exists():
        raise ArtifactError(f"not a compiled artifact (no {MANIFEST})", subject=str(d),
                            hint="build one with `python -m compiler build model.onnx -o DIR`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{MANIFEST} is corrupt: {exc}", subject=str(d)) from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{MANIFEST} is corrupt: not a JSON object", subject=str(d),
                            found=type(manifest).__name__)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError("artifact format version mismatch", subject=str(d),
                            expected=str(FORMAT_VERSION), found=str(manifest.get("format_version")),
                            hint="rebuild the artifact with this compiler")
    _check_manifest(manifest, str(d))
    return manifest


def _check_manifest(manifest: dict[str, Any], where: str) -> None:
    target = manifest.get("target")
    if not isinstance(target, str) or not target:
        raise ArtifactError(f"{MANIFEST} names no target", subject=where, found=repr(target))
    if not isinstance(manifest.get("options", {}), dict):
        raise ArtifactError(f"{MANIFEST}: options must be an object", subject=where,
                            found=type(manifest["options"]).__name__)
    if manifest.get("specializing") and not isinstance(manifest.get("specialized_passes", ""), str):
        raise ArtifactError(f"{MANIFEST}: specialized_passes must be pipeline text", subject=where)
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ArtifactError(f"{MANIFEST} has no files list", subject=where)
    for i, e in enumerate(files):
        ok = (isinstance(e, dict) and _plain_name(e.get("name")) and isinstance(e.get("bytes"), int)
              and isinstance(e.get("sha256"), str))
        if not ok:
            raise ArtifactError(f"{MANIFEST}: malformed files entry {i}", subject=where,
                                expected='{"name": a file name, "bytes": int, "sha256": str}',
                                found=json.dumps(e, default=str)[:120])
    for key in ("inputs", "outputs"):
        entries = manifest.get(key)
        if not isinstance(entries, list):
            raise ArtifactError(f"{MANIFEST} has no {key} list", subject=where)
        for i, e in enumerate(entries):
            ok = (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("dtype"), str)
                  and "shape" in e and (e["shape"] is None or isinstance(e["shape"], list)))
            if not ok:
                raise ArtifactError(f"{MANIFEST}: malformed {key} entry {i}", subject=where,
                                    expected='{"name": str, "dtype": str, "shape": list or null}',
                                    found=json.dumps(e, default=str)[:120])
