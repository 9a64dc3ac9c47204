"""A compiled model you can run, time, profile and save, whatever its target.

Loading a saved one needs its target, so it happens above the runtime:
``compiler.load`` reads the manifest (``runtime.artifact``), has the target
load the executable, and builds the ``Module``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ir.dtypes import DType
from ir.errors import ArtifactError, InputError
from ir.types import TensorType

from .artifact import DECISIONS, check_output_directory, clear_artifact, file_records, write_manifest
from .executable import Executable


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape (ints, symbol names or None) of a model input/output."""

    name: str
    dtype: str
    shape: Optional[tuple]

    @staticmethod
    def from_type(name: str, t: Any) -> TensorSpec:
        if isinstance(t, TensorType):
            return TensorSpec(name, t.dtype.short, None if t.shape is None else tuple(t.shape))
        return TensorSpec(name, str(t), None)

    @staticmethod
    def from_dict(entry: Mapping[str, Any]) -> TensorSpec:
        """A spec as ``Module.save`` writes it in the manifest."""
        shape = entry["shape"]
        return TensorSpec(entry["name"], entry["dtype"], None if shape is None else tuple(shape))

    @property
    def np_dtype(self) -> np.dtype:
        return DType.from_short(self.dtype).np

    def describe(self) -> str:
        dims = "*" if self.shape is None else ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"


@dataclass
class BenchmarkResult:
    """Latency statistics in milliseconds, and throughput in runs per second."""

    mean_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    stdev_ms: float
    min_ms: float
    throughput: float
    repeat: int
    warmup: int
    threads: Optional[int]

    def __str__(self) -> str:
        return (f"median {self.median_ms:.3f} ms, mean {self.mean_ms:.3f} ms, p90 {self.p90_ms:.3f} ms, "
                f"p99 {self.p99_ms:.3f} ms, stdev {self.stdev_ms:.3f} ms, "
                f"{self.throughput:.1f} runs/s ({self.repeat} runs)")


def _percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * q
    lo, hi = int(np.floor(k)), int(np.ceil(k))
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


class Module:
    """A compiled model.

    ``run(feeds)`` takes a dict name -> array (or a list in input order) and
    returns a dict name -> array in output order.  Inputs are checked against
    the model's names, dtypes and shapes before anything runs.  Modules come
    from ``compiler.compile`` or, for a saved artifact, ``compiler.load``.
    """

    def __init__(self, executable: Executable, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 manifest: dict[str, Any]) -> None:
        self.executable = executable
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.manifest = manifest
        self.decisions: list[dict[str, Any]] = []  # the pipeline's decision log (build --explain)

    @classmethod
    def from_manifest(cls, executable: Executable, manifest: dict[str, Any]) -> Module:
        """A module over ``executable`` with the specs of a (validated) saved manifest."""
        return cls(executable, [TensorSpec.from_dict(e) for e in manifest["inputs"]],
                   [TensorSpec.from_dict(e) for e in manifest["outputs"]], manifest)

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    @property
    def target(self) -> str:
        return self.manifest.get("target", "?")

    # ------------------------------------------------------------------ run
    def run(self, feeds: Any, output_names: Any = None) -> Union[dict[str, np.ndarray], list[np.ndarray]]:
        """Run the model; two spellings.

        ``run(feeds)`` / ``run(feeds, output_names=[...])``: ``feeds`` maps names to
        arrays (or lists them in input order); returns a dict name -> array, in
        output order or in the order asked for.

        ``run(output_names_or_None, feeds)``: onnxruntime's order (``feeds`` a
        dict, or a list in input order); returns a list of arrays, all outputs for ``None``.
        """
        if (feeds is None and output_names is not None) or (_is_name_list(feeds) and isinstance(output_names, Mapping)):
            names = self.output_names if feeds is None else list(feeds)
            out = self._run(output_names, names)
            return [out[n] for n in names]
        if feeds is None:
            raise InputError("no inputs given", expected=", ".join(f"{s.name}: {s.describe()}" for s in self.inputs),
                             hint="run(feeds) or, as onnxruntime, run(None, feeds)")
        if output_names is not None and not _is_name_list(output_names):
            raise InputError("output_names must be a list of output names", found=type(output_names).__name__,
                             expected=" or ".join(map(repr, self.output_names)))
        return self._run(feeds, None if output_names is None else list(output_names))

    def _run(self, feeds: Any, output_names: Optional[list[str]]) -> dict[str, np.ndarray]:
        if output_names is not None:
            unknown = [n for n in output_names if n not in self.output_names]
            if unknown:
                raise InputError("unknown output name", subject=repr(unknown[0]),
                                 expected=" or ".join(map(repr, self.output_names)))
        arrays = self._check_inputs(feeds)
        results = self.executable.run(arrays)
        out = dict(zip(self.output_names, results))
        if output_names is not None:
            return {n: out[n] for n in output_names}
        return out

    __call__ = run

    def get_inputs(self) -> list[NodeArg]:
        """The inputs as onnxruntime describes them: ``.name``, ``.shape``, ``.type`` ("tensor(float)")."""
        return [NodeArg.from_spec(s) for s in self.inputs]

    def get_outputs(self) -> list[NodeArg]:
        """The outputs as onnxruntime describes them (see ``get_inputs``)."""
        return [NodeArg.from_spec(s) for s in self.outputs]

    def _check_inputs(self, feeds: Union[Mapping[str, Any], Sequence[Any]]) -> list[np.ndarray]:
        if isinstance(feeds, (str, bytes)) or not isinstance(feeds, (Mapping, Sequence)):
            raise InputError("inputs must be a dict name -> array (or a list in input order)",
                             found=type(feeds).__name__,
                             expected=", ".join(f"{s.name}: {s.describe()}" for s in self.inputs))
        if isinstance(feeds, Mapping):
            unknown = [k for k in feeds if k not in self.input_names]
            if unknown:
                raise InputError("unknown input name", subject=repr(unknown[0]),
                                 expected=" or ".join(map(repr, self.input_names)))
            missing = [n for n in self.input_names if n not in feeds]
            if missing:
                raise InputError("missing input", subject=repr(missing[0]),
                                 expected=", ".join(f"{s.name}: {s.describe()}" for s in self.inputs))
            values = [feeds[n] for n in self.input_names]
        else:
            values = list(feeds)
            if len(values) != len(self.inputs):
                raise InputError("wrong number of inputs", expected=str(len(self.inputs)),
                                 found=str(len(values)))
        bound: dict[str, int] = {}
        arrays = []
        for spec, v in zip(self.inputs, values):
            arrays.append(_check_one(spec, v, bound))
        return arrays

    # -------------------------------------------------------------- timing
    def random_inputs(self, seed: int = 0, dims: Optional[Mapping[str, int]] = None) -> dict[str, np.ndarray]:
        """Random inputs matching the specs (symbolic dims default to 1, or ``dims[name]``)."""
        return random_inputs(self.inputs, seed=seed, dims=dims)

    def benchmark(self, inputs: Optional[Mapping[str, Any]] = None, *, warmup: int = 5,
                  repeat: int = 50, threads: Optional[int] = None,
                  min_seconds: float = 0.0) -> BenchmarkResult:
        """Time ``run`` after ``warmup`` calls; at least ``repeat`` runs (and ``min_seconds``)."""
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise InputError("the number of timed runs must be 1 or more", subject="repeat", found=repr(repeat))
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise InputError("the number of warm-up runs must be 0 or more", subject="warmup", found=repr(warmup))
        if not min_seconds >= 0:
            raise InputError("min_seconds must be 0 or more", subject="min_seconds", found=repr(min_seconds))
        if threads is not None:
            if threads < 0:
                raise InputError("threads must be 0 (one per core) or more", found=str(threads))
            self.executable.set_threads(threads)
        feeds = inputs if inputs is not None else self.random_inputs()
        arrays = self._check_inputs(feeds)
        for _ in range(warmup):
            self.executable.run(arrays)
        times = []
        start = time.perf_counter()
        while len(times) < repeat or time.perf_counter() - start < min_seconds:
            t0 = time.perf_counter()
            self.executable.run(arrays)
            times.append((time.perf_counter() - t0) * 1e3)
        s = sorted(times)
        mean = statistics.fmean(times)
        return BenchmarkResult(
            mean_ms=mean, median_ms=statistics.median(times), p90_ms=_percentile(s, 0.9),
            p99_ms=_percentile(s, 0.99), stdev_ms=statistics.pstdev(times), min_ms=s[0],
            throughput=1e3 / mean if mean > 0 else float("inf"), repeat=len(times), warmup=warmup,
            threads=threads)

    def profile(self, inputs: Optional[Mapping[str, Any]] = None, *, repeat: int = 1) -> list[tuple[str, float]]:
        """Seconds per executed kernel (node or fused group), hottest first."""
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise InputError("the number of profiled runs must be 1 or more", subject="repeat", found=repr(repeat))
        feeds = inputs if inputs is not None else self.random_inputs()
        arrays = self._check_inputs(feeds)
        totals: dict[str, float] = {}
        for _ in range(max(1, repeat)):
            for label, secs in self.executable.profile(arrays):
                totals[label] = totals.get(label, 0.0) + secs / max(1, repeat)
        return sorted(totals.items(), key=lambda kv: -kv[1])

    def profile_table(self, inputs: Optional[Mapping[str, Any]] = None) -> Optional[str]:
        """The target's own profile table (e.g. the systolic simulator's per-layer report), or None."""
        feeds = inputs if inputs is not None else self.random_inputs()
        return self.executable.profile_table(self._check_inputs(feeds))

    # ------------------------------------------------------------------ save
    def save(self, directory: Union[str, Path], *, force: bool = False) -> Path:
        """Write the executable and the manifest; ``compiler.load`` reads them back.

        The folder may be new, empty, or hold an earlier artifact, whose files
        (those its manifest lists) are removed first; a non-empty folder that
        holds no artifact is refused unless ``force``.  The manifest records
        each file's size and sha256, which ``compiler.load`` checks.
        """
        d = check_output_directory(directory, force)
        try:
            d.mkdir(parents=True, exist_ok=True)
            clear_artifact(d)
            before = {q.name for q in d.iterdir()}
        except OSError as exc:
            raise ArtifactError(f"cannot write the artifact folder: {exc.strerror}", subject=str(d)) from None
        try:
            files = self.executable.save(d)
            write_manifest(d, {**self.manifest, "files": file_records(d, files),
                               "inputs": [asdict(s) for s in self.inputs],
                               "outputs": [asdict(s) for s in self.outputs]})
            if self.decisions:
                (d / DECISIONS).write_text(json.dumps(self.decisions, indent=1, default=str) + "\n")
        except BaseException as exc:
            # Leave no half-written artifact (it would make the folder look foreign to the next build).
            for q in d.iterdir():
                if q.name not in before and q.is_file():
                    q.unlink()
            if isinstance(exc, OSError):
                raise ArtifactError(f"cannot write the artifact: {exc.strerror or exc}", subject=str(d)) from None
            raise
        return d


def _is_name_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(n, str) for n in x)


# onnxruntime's spelling of each element type ("tensor(float)").
_ORT_TYPES = {"f32": "float", "f64": "double", "f16": "float16", "bf16": "bfloat16", "i8": "int8", "u8": "uint8",
              "i16": "int16", "u16": "uint16", "i32": "int32", "u32": "uint32", "i64": "int64",
              "u64": "uint64", "bool": "bool", "str": "string", "c64": "complex64", "c128": "complex128"}


def ort_type(dtype: str) -> str:
    """``f32`` -> ``tensor(float)``; sequences and optionals as onnxruntime writes them."""
    for prefix, kind in (("seq<", "seq"), ("opt<", "optional")):
        if dtype.startswith(prefix) and dtype.endswith(">"):
            return f"{kind}({ort_type(dtype[len(prefix):-1])})"
    return f"tensor({_ORT_TYPES.get(dtype, dtype)})"


@dataclass(frozen=True)
class NodeArg:
    """An input or output as onnxruntime's ``get_inputs()`` describes it.

    ``shape`` lists ints, symbol names (str) and None for unknown dims (None
    when even the rank is unknown); ``type`` is onnxruntime's spelling.
    """

    name: str
    shape: Optional[list]
    type: str

    @staticmethod
    def from_spec(spec: TensorSpec) -> NodeArg:
        return NodeArg(spec.name, None if spec.shape is None else list(spec.shape), ort_type(spec.dtype))


def _as_array(spec: TensorSpec, value: Any) -> np.ndarray:
    """``value`` as an array: a list or scalar converts to the input's dtype when no value changes."""
    if isinstance(value, np.ndarray):
        return value
    expected = spec.np_dtype
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nesting and the like
        raise InputError(f"cannot make an array of this value: {exc}", subject=f"input {spec.name!r}",
                         expected=spec.describe(), found=type(value).__name__) from None
    if arr.dtype == expected or isinstance(value, np.generic):
        return arr
    if spec.dtype == "str" or arr.dtype.kind not in "biuf":
        return arr  # reported as a wrong element type below
    try:
        converted = arr.astype(expected)
    except (ValueError, TypeError, OverflowError):
        return arr
    if arr.size and not np.array_equal(converted.astype(arr.dtype), arr, equal_nan=arr.dtype.kind == "f"):
        if DType.from_short(spec.dtype).is_float and arr.dtype.kind in "iuf":
            return converted  # e.g. Python floats (float64) into a float32 input: rounding is expected
        raise InputError("the values do not fit the input's element type", subject=f"input {spec.name!r}",
                         expected=spec.dtype, found=f"values of type {arr.dtype}",
                         hint=f"pass an array of dtype {expected}")
    return converted


def _check_one(spec: TensorSpec, value: Any, bound: dict[str, int]) -> Any:
    if spec.dtype.startswith(("seq<", "opt<")):
        return value  # sequences (lists) and optionals (None or a value) pass as they are
    arr = _as_array(spec, value)
    expected = spec.np_dtype
    if arr.dtype != expected:
        if spec.dtype == "str" and arr.dtype.kind in "USO":
            arr = arr.astype(object)
        else:
            raise InputError("wrong element type", subject=f"input {spec.name!r}",
                             expected=f"{spec.dtype} ({expected})", found=str(arr.dtype),
                             hint=f"convert with .astype(np.{expected})" if expected.kind != "V" else None)
    if spec.shape is not None:
        if arr.ndim != len(spec.shape):
            raise InputError("wrong rank", subject=f"input {spec.name!r}",
                             expected=f"shape {spec.describe()}", found=f"shape {list(arr.shape)}")
        for i, (d, n) in enumerate(zip(spec.shape, arr.shape)):
            if isinstance(d, int) and d != n:
                raise InputError(f"wrong size of dimension {i}", subject=f"input {spec.name!r}",
                                 expected=f"shape {spec.describe()}", found=f"shape {list(arr.shape)}")
            if isinstance(d, str):
                if bound.setdefault(d, n) != n:
                    raise InputError(f"dimension {d!r} has two different sizes", subject=f"input {spec.name!r}",
                                     expected=str(bound[d]), found=str(n))
    return arr


def random_inputs(specs: Sequence[TensorSpec], seed: int = 0,
                  dims: Optional[Mapping[str, int]] = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    out = {}
    for s in specs:
        shape = tuple(d if isinstance(d, int) else dims.get(d, 1) if isinstance(d, str) else 1
                      for d in (s.shape or ()))
        dt = s.np_dtype
        if dt == np.bool_:
            out[s.name] = rng.random(shape) < 0.5
        elif dt.kind in "iu":
            out[s.name] = rng.integers(0, 10, size=shape).astype(dt)
        elif dt == object:
            out[s.name] = np.array(rng.choice(["a", "b", "c"], size=shape), dtype=object)
        else:
            out[s.name] = rng.standard_normal(shape).astype(dt)
    return out
