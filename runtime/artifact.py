"""The artifact folder's manifest: its name, format version, and how it is read and checked.

An artifact is a folder holding ``manifest.json`` (target, options, input and
output specs, provenance) beside whatever the target's executable saved.
Reading one is split by layer: this module reads and validates the manifest
(no target needed); ``compiler.load`` then asks the manifest's target to load
the executable and wraps it in a ``runtime.module.Module``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Union

from ir.errors import ArtifactError

MANIFEST = "manifest.json"
DECISIONS = "decisions.json"
FORMAT_VERSION = 1


def write_manifest(directory: Union[str, Path], manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` (already holding inputs and outputs) with the current format version."""
    path = Path(directory) / MANIFEST
    path.write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION}, indent=2, default=str) + "\n")
    return path


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
