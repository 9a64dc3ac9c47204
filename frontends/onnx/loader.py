"""Reading ONNX files: clear errors for bad input, safe external data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ir.errors import ModelLoadError

from .validate import validate_model

ModelSource = Union[str, os.PathLike, bytes, onnx.ModelProto]


def load_model(source: ModelSource, *, check: bool = True) -> onnx.ModelProto:
    """Load an ONNX model from a path, bytes or an existing proto.

    External data files are read only from inside the model's folder: a
    ``location`` that is absolute or climbs out with ``..`` is refused.
    """
    if isinstance(source, onnx.ModelProto):
        model = source
        base_dir = None
    elif isinstance(source, (bytes, bytearray)):
        model = _parse(bytes(source), "<bytes>")
        base_dir = None
    else:
        path = Path(source)
        if not path.exists():
            raise ModelLoadError("model file not found", subject=str(path))
        if path.is_dir():
            raise ModelLoadError("expected an .onnx file, got a folder", subject=str(path),
                                 hint="to run a compiled artifact use `python -m compiler run DIR`")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read file: {exc.strerror}", subject=str(path)) from None
        model = _parse(data, str(path))
        base_dir = path.resolve().parent
    if check:
        _check_structure(model, str(source) if not isinstance(source, (bytes, onnx.ModelProto)) else "model")
    if base_dir is not None:
        load_external_data(model, base_dir)
    elif _uses_external_data(model):
        raise ModelLoadError("model refers to external data files but was not loaded from a path",
                             hint="pass the .onnx file's path so its data files can be found")
    return model


def _parse(data: bytes, name: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError("not an ONNX model: the file is not a valid ModelProto protobuf",
                             subject=name, found=type(exc).__name__) from None
    return model


def _check_structure(model: onnx.ModelProto, name: str) -> None:
    """Cheap sanity checks that catch files that parse but are not models."""
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelLoadError("not an ONNX model: it has no graph", subject=name)
    if not model.graph.output:
        raise ModelLoadError("model graph has no outputs", subject=name)
    if model.ir_version < 3:
        raise ModelLoadError("ONNX IR version is too old", subject=name,
                             expected=">= 3", found=str(model.ir_version))
    if model.ir_version > onnx.IR_VERSION:
        raise ModelLoadError("ONNX IR version is newer than this ONNX release reads", subject=name,
                             expected=f"3 to {onnx.IR_VERSION}", found=str(model.ir_version))
    if not model.opset_import and model.ir_version >= 3:
        raise ModelLoadError("model declares no opset", subject=name)
    validate_model(model, name)


def _all_tensors(model: onnx.ModelProto):
    return external_data_helper._get_all_tensors(model)  # includes subgraphs and attributes


def _uses_external_data(model: onnx.ModelProto) -> bool:
    return any(external_data_helper.uses_external_data(t) for t in _all_tensors(model))


def load_external_data(model: onnx.ModelProto, base_dir: Path) -> None:
    """Read every externally stored tensor, refusing paths outside ``base_dir``."""
    base = base_dir.resolve()
    for tensor in _all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        location = info.location
        if not location or os.path.isabs(location) or Path(location).drive:
            raise ModelLoadError("external data location must be a relative path",
                                 subject=f"tensor {tensor.name!r}", found=repr(location))
        target = (base / location).resolve()
        if base not in target.parents:
            raise ModelLoadError("external data file is outside the model's folder",
                                 subject=f"tensor {tensor.name!r}", found=repr(location),
                                 hint="data files must sit in the model's folder or below it")
        if not target.is_file():
            raise ModelLoadError("external data file not found", subject=f"tensor {tensor.name!r}",
                                 found=str(target))
        size = target.stat().st_size
        offset = info.offset or 0
        length = info.length if info.length is not None else size - offset
        if offset + length > size:
            raise ModelLoadError("external data range lies beyond the end of its file",
                                 subject=f"tensor {tensor.name!r}",
                                 found=f"offset {offset} + length {length} > {size} bytes")
        with open(target, "rb") as f:
            f.seek(offset)
            tensor.raw_data = f.read(length)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
