"""The C bundle: the files a C program needs to run a compiled model without Python.

``write_bundle(executable, directory, name)`` writes, for ``name="model"``:

    model.o             the model's machine code (PIC), its symbols renamed (below): the
                        kernels' and the entry points' objects linked into one (``ld -r``)
    libmodel.a          the same objects, one member each (model_part<i>.o), + the C runtime
                        (runtime/c/nnc_runtime.c) [+ the C array]; Python loads the members
    model.h             sizes, names, shapes and dtypes of everything; the entry point
    nnc_runtime.h       the runtime's header (the thread pool), included by model.h
    model_weights.bin   the weights blob: the same bytes the JIT runs with
    model_weights.c     with c_array=True: the blob as an ALIGNMENT-byte aligned const array

so that ``cc app.c -I out/ -L out/ -lmodel -lpthread -lm`` builds a program.
The model never allocates: the caller passes the weights, the inputs, the
outputs, a scratch arena (``MODEL_ARENA_BYTES``) and optionally a thread pool.

Symbols.  The lowering names its entry points ``nnc_run``/``nnc_run_profiled``
and its kernels after the nodes, all global, so two models would clash in one
program.  The bundle's object gets them renamed with objcopy: the entry
points become ``<name>_nnc_run``/``<name>_nnc_run_profiled`` and every other
symbol the object defines gets the prefix ``<name>__``; the symbols it
imports (``nnc_parallel_for``, ``nnc_now_ns``, libm) keep their names.  The
header wraps ``<name>_nnc_run`` in ``<name>_run``, which checks alignment.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ir.target import TargetInfo
from ir.dtypes import DType
from ir.errors import ArtifactError, BackendError
from ir.memory import ALIGNMENT
from runtime.native import C_DIR, CFLAGS, SOURCES, cache_dir, compile_c

from .lower import ENTRY, ENTRY_PROFILED, Lowered

RUNTIME_HEADER = "nnc_runtime.h"
DEFAULT_MAX_BATCH = 64  # --max-batch: the batch the header's MODEL_ARENA_BYTES is sized for

# C type of one element, per dtype (for the header's comments and typedef-free use).
_C_TYPES = {"f32": "float", "f64": "double", "i8": "int8_t", "u8": "uint8_t", "i16": "int16_t",
            "u16": "uint16_t", "i32": "int32_t", "u32": "uint32_t", "i64": "int64_t", "u64": "uint64_t",
            "bool": "uint8_t", "f16": "uint16_t", "bf16": "uint16_t"}


@dataclass
class BundleSource:
    """What a bundle is made of, taken from a CpuExecutable or a Lowered graph."""

    objects: list[bytes]                # relocatable objects, linked into one by write_bundle
    weights: np.ndarray                 # uint8 blob
    inputs: list[dict[str, Any]]        # name, dtype (short), shape
    outputs: list[dict[str, Any]]
    arena_bytes: int
    kernels: list[str]                  # labels, in the order nnc_run_profiled times them
    isa: str
    cpu: str = ""
    batch: Optional[dict[str, Any]] = None  # BatchSignature.to_json(): the entry takes the batch count
    max_batch: int = 1                      # the largest batch the header's arena size allows


@dataclass
class Bundle:
    """The files written (role -> file name in ``directory``) and the C symbols to call."""

    directory: Path
    name: str
    files: dict[str, str] = field(default_factory=dict)
    symbols: dict[str, str] = field(default_factory=dict)

    def path(self, role: str) -> Path:
        return self.directory / self.files[role]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "files": dict(self.files), "symbols": dict(self.symbols)}


# ------------------------------------------------------------------ sources
def bundle_source(source: Any, target: Optional[TargetInfo] = None) -> BundleSource:
    """Accept a ``CpuExecutable`` or a ``Lowered`` graph (compiled here for ``target``)."""
    if isinstance(source, BundleSource):
        return source
    if isinstance(source, Lowered):
        if target is None:
            raise BackendError("a C bundle from a lowered graph needs the target", subject="write_bundle")
        from .executable import compile_units, machine_of
        objects, _ = compile_units(source.units(), machine_of(target, reloc="pic"), jobs=1)
        spec = lambda v: {"name": v.name, "dtype": v.type.dtype.short, "shape": list(v.type.shape)}
        return BundleSource(objects, np.asarray(source.weights, np.uint8), [spec(v) for v in source.inputs],
                            [spec(v) for v in source.outputs], int(source.arena_bytes),
                            [k.label for k in source.kernels], target.isa, target.cpu_name,
                            source.batch.to_json() if source.batch is not None else None,
                            DEFAULT_MAX_BATCH if source.batch is not None else 1)
    from .executable import CpuExecutable
    if not isinstance(source, CpuExecutable):
        raise ArtifactError("only a cpu executable of static shapes has object code to bundle",
                            subject="write_bundle", found=type(source).__name__,
                            hint="a model with dynamic shapes needs them fixed, e.g. --input-shape input=1,3,224,224")
    desc = source.description
    target = target or source.target
    batch = desc.get("batch")
    max_batch = int(desc.get("bundle_options", {}).get("max_batch", DEFAULT_MAX_BATCH)) if batch else 1
    return BundleSource(list(source.objects), np.asarray(source.weights, np.uint8), list(desc["inputs"]),
                        list(desc["outputs"]), int(desc["arena_bytes"]), list(desc.get("kernels", [])),
                        str(desc.get("isa", "")), target.cpu_name, batch, max_batch)


def check_name(name: str) -> str:
    """The bundle name prefixes C symbols and file names: it must be a C identifier."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise BackendError("bad C bundle name", subject=repr(name), expected="a C identifier, e.g. model",
                           hint="pass --option bundle_name=NAME")
    return name


# ------------------------------------------------------------------ tools
def _tool(*names: str) -> str:
    for n in names:
        path = shutil.which(n)
        if path:
            return path
    raise BackendError(f"the C bundle needs {names[0]}", subject="cpu target",
                       hint="install binutils (or LLVM's " + "/".join(n for n in names if n.startswith("llvm")) + ")")


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackendError("a bundle tool failed", subject=" ".join(Path(c).name for c in cmd[:2]) + " ...",
                           found=(proc.stderr.strip().splitlines() or ["?"])[0])
    return proc.stdout


def defined_globals(*obj_paths: Path) -> list[str]:
    """Names of the global symbols the objects define (not the ones they import), one ``nm`` call."""
    out = _run([_tool("nm", "llvm-nm"), "-A", "-P", "-g", "--defined-only", *map(str, obj_paths)])
    names = []
    for line in out.splitlines():
        _, sep, rest = line.rpartition(": ")  # "file.o: symbol T value size"
        if sep and rest.split():
            names.append(rest.split()[0])
    return names


def symbol_map(symbols: list[str], name: str) -> dict[str, str]:
    """New names: entry points -> ``<name>_nnc_run[_profiled]``, the rest -> ``<name>__sym``.

    Works on fresh objects (``nnc_run``) and on bundled ones (``<old>_nnc_run``,
    ``<old>__sym``, e.g. an artifact loaded back and saved under another name).
    """
    profiled = [s for s in symbols if s == ENTRY_PROFILED or s.endswith("_" + ENTRY_PROFILED)]
    if len(profiled) != 1:
        raise ArtifactError("the object code has no single entry point", expected=ENTRY_PROFILED,
                            found=", ".join(profiled) or "none")
    old = profiled[0][:-len(ENTRY_PROFILED)]            # "" or "<old>_"
    internal = old + "_" if old else ""                  # "" or "<old>__"
    mapping = {}
    for s in symbols:
        if s in (old + ENTRY, old + ENTRY_PROFILED):
            mapping[s] = f"{name}_{s[len(old):]}"
        else:
            mapping[s] = f"{name}__{s[len(internal):] if s.startswith(internal) else s}"
    return mapping


def rename_symbols(obj_paths: list[Path], name: str, work: Path) -> dict[str, str]:
    """Rename the objects' defined symbols, and their references to them, in place; returns the map."""
    mapping = symbol_map(defined_globals(*obj_paths), name)
    if f"{name}_{ENTRY}" not in mapping.values():
        raise ArtifactError("the object code has no entry point", expected=ENTRY)
    table = work / "redefine.txt"
    table.write_text("".join(f"{old} {new}\n" for old, new in mapping.items()))
    procs = [subprocess.Popen([_tool("objcopy", "llvm-objcopy"), f"--redefine-syms={table}", str(p)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in obj_paths]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise BackendError("a bundle tool failed", subject="objcopy --redefine-syms",
                               found=(err.strip().splitlines() or ["?"])[0])
    return mapping


def write_parts(objects: list[bytes], name: str, work: Path) -> list[Path]:
    """The objects as files ``<name>_part<i>.o`` (the static library's members)."""
    if not objects:
        raise ArtifactError("there is no object code to bundle")
    paths = []
    for i, data in enumerate(objects):
        paths.append(work / f"{name}_part{i}.o")
        paths[-1].write_bytes(data)
    return paths


def link_objects(paths: list[Path], out: Path) -> None:
    """One relocatable object from several (``ld -r``), for C programs that link one object file.

    Only the system linker reads it: LLVM's in-process loader misplaces
    constants in the merged sections of such an object, so Python loads the
    separate objects (the library's members) instead.
    """
    if len(paths) == 1:
        shutil.copyfile(paths[0], out)
        return
    _run([_tool("ld", "ld.lld"), "-r", "-o", str(out), *map(str, paths)])


def read_parts(library: Path, name: str) -> list[bytes]:
    """The model's objects (``<name>_part<i>.o``) from the static library, in order.

    Reads the common ``ar`` format: a global header, then per member a
    60-byte header (name, ..., size in decimal at bytes 48-57) and the data
    padded to an even length.
    """
    data = library.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise ArtifactError("not a static library", subject=str(library))
    pos, parts, long_names = 8, {}, b""
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        raw = header[:16].decode("ascii", "replace").strip()
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise ArtifactError("the static library is damaged", subject=str(library)) from None
        body = data[pos + 60:pos + 60 + size]
        if raw == "//":  # GNU table of names longer than 15 characters
            long_names = body
        if raw[1:].isdigit() and raw.startswith("/"):  # "/<offset>": a long name
            end = long_names.find(b"/\n", int(raw[1:]))
            raw = long_names[int(raw[1:]):end].decode("ascii", "replace") if end >= 0 else ""
        member = raw.rstrip("/")
        prefix = f"{name}_part"
        if member.startswith(prefix) and member.endswith(".o") and member[len(prefix):-2].isdigit():
            parts[int(member[len(prefix):-2])] = body
        pos += 60 + size + (size & 1)
    if not parts or sorted(parts) != list(range(len(parts))):
        raise ArtifactError("the static library does not hold the model's objects", subject=str(library),
                            expected=f"{name}_part0.o ...", hint="rebuild the artifact")
    return [parts[i] for i in range(len(parts))]


# ------------------------------------------------------------------ C text
def c_string(text: str) -> str:
    """A C string literal for any text (labels hold %, quotes, non-ASCII)."""
    out = []
    for ch in text.encode("utf-8"):
        c = chr(ch)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= ch < 127 and c != "?":  # '?' avoids trigraphs
            out.append(c)
        else:
            out.append(f"\\{ch:03o}")
    return '"' + "".join(out) + '"'


def c_array_text(blob: np.ndarray, name: str) -> str:
    """``<name>_weights.c``: the blob as a const array (for flash/ROM), vectorized formatting."""
    data = np.ascontiguousarray(blob, np.uint8).reshape(-1)
    n = data.size
    lut = np.array([f"0x{i:02x},".encode() for i in range(256)], dtype="S5")
    per_line = 16
    full = (n // per_line) * per_line
    rows = lut[data[:full]].view(np.uint8).reshape(-1, 5 * per_line)
    text = np.hstack([np.full((rows.shape[0], 1), ord(" "), np.uint8), rows,
                      np.full((rows.shape[0], 1), ord("\n"), np.uint8)]).tobytes().decode()
    if full < n:
        text += " " + lut[data[full:]].tobytes().decode() + "\n"
    if n == 0:
        text = " 0\n"  # C has no empty arrays
    upper = name.upper()
    return (f"/* Generated by nncompiler: the weights blob of {name}.h as a const array (for flash/ROM).\n"
            f" * Pass {name}_weights to {name}_run.  {n} bytes, {ALIGNMENT}-byte aligned. */\n"
            f'#include "{name}.h"\n\n'
            f"const unsigned char {name}_weights[{upper}_WEIGHTS_BYTES > 0 ? {upper}_WEIGHTS_BYTES : 1]"
            f" __attribute__((aligned({ALIGNMENT}))) = {{\n{text}}};\n")


# Every size the header states must fit the C types it is used as (int64_t dims, size_t bytes):
# computed with Python's unbounded ints and checked, never with wrapping int64 arithmetic.
SIZE_LIMIT = 2 ** 63 - 1


def checked_size(value: int, what: str) -> int:
    """``value`` (a byte or element count) if it is representable in the header, else ``ArtifactError``."""
    if not 0 <= value <= SIZE_LIMIT:
        raise ArtifactError("a size in the C bundle does not fit a 64-bit integer", subject=what,
                            expected=f"0 to {SIZE_LIMIT}", found=str(value))
    return value


def _tensor_block(upper: str, kind: str, i: int, t: dict[str, Any], batched: bool = False) -> list[str]:
    dt = DType.from_short(t["dtype"])
    what = f"{kind.lower()} {i} ({t['name']!r})"
    shape = [checked_size(int(d), f"{what} dimension {k}") for k, d in enumerate(t["shape"])]
    numel = 1
    for d in shape:
        numel = checked_size(numel * d, f"{what} element count")
    checked_size(numel * dt.itemsize, f"{what} size in bytes")
    p = f"{upper}_{kind}_{i}"
    per = " per sample: a batch of B holds B times the bytes" if batched else ""
    return [f"/* {kind.lower()} {i}: {t['name']} {t['dtype']}[{','.join(map(str, shape))}]"
            f" ({_C_TYPES.get(t['dtype'], 'bytes')}){per} */",
            f"#define {p}_NAME {c_string(t['name'])}",
            f"#define {p}_DTYPE {c_string(t['dtype'])}",
            f"#define {p}_ELEM_BYTES {dt.itemsize}",
            f"#define {p}_RANK {len(shape)}",
            f"#define {p}_NUMEL {numel}",
            f"#define {p}_BYTES {numel * dt.itemsize}",
            f"#define {p}_BATCHED {int(batched)}",
            ""]


def _tensor_table(name: str, kind: str, tensors: list[dict[str, Any]]) -> list[str]:
    lines = []
    for i, t in enumerate(tensors):
        if t["shape"]:
            dims = ", ".join(str(int(d)) for d in t["shape"])
            lines.append(f"static const int64_t {name}_{kind}_{i}_shape[] NNC_UNUSED = {{{dims}}};")
    rows = []
    upper = name.upper()
    for i, t in enumerate(tensors):
        p = f"{upper}_{kind.upper()}_{i}"
        shape = f"{name}_{kind}_{i}_shape" if t["shape"] else "NULL"
        rows.append(f"    {{{p}_NAME, {p}_DTYPE, {p}_ELEM_BYTES, {p}_RANK, {shape}, {p}_BYTES, {p}_BATCHED}},")
    size = f"{upper}_NUM_{kind.upper()}S"
    lines.append(f"static const nnc_tensor_info {name}_{kind}s[{size} > 0 ? {size} : 1] NNC_UNUSED = {{")
    lines += rows or ["    {NULL, NULL, 0, 0, NULL, 0, 0},"]
    lines.append("};")
    return lines


_CPU_CHECKS = {"avx512": ["avx512f", "avx512bw", "avx512vl", "avx512dq"], "avx2": ["avx2", "fma"]}


def header_text(src: BundleSource, name: str, manifest: Optional[dict[str, Any]] = None) -> str:
    """``<name>.h``: everything about the model's buffers, and ``<name>_run``."""
    upper, guard = name.upper(), f"NNC_BUNDLE_{name.upper()}_H"
    origin = ""
    if manifest:
        model = manifest.get("model", {})
        origin = f" * Model: {model.get('source', '?')} {model.get('sha256', '')}\n"
    checks = " && ".join(f'__builtin_cpu_supports("{f}")' for f in _CPU_CHECKS.get(src.isa, [])) or "1"
    labels = ",\n".join(f"    {c_string(k)}" for k in src.kernels) or "    NULL"
    batched = src.batch is not None
    max_batch = max(1, int(src.max_batch)) if batched else 1
    per_sample = checked_size(int(src.arena_bytes), "arena")
    arena_max = checked_size(per_sample * max_batch, f"arena for {max_batch} samples")
    in_flags = list(src.batch["inputs"]) if batched else [False] * len(src.inputs)
    out_flags = list(src.batch["outputs"]) if batched else [False] * len(src.outputs)
    if batched:
        usage_batch = [
            f" * Batched: the model was compiled for one sample; {name}_run_batch(..., batch) runs",
            f" * 1 <= batch <= {upper}_MAX_BATCH ({max_batch}) samples at once.  A batched input or output",
            " * (<NAME>_INPUT_i_BATCHED) holds batch x its one-sample bytes, the samples one after the",
            f" * other; the arena holds {upper}_ARENA_BYTES_FOR(batch) bytes ({upper}_ARENA_BYTES: the",
            " * largest batch).  Each sample's results are the same whatever the batch.",
        ]
    else:
        usage_batch = [" * Not batched: every call runs one instance of the shapes below."]
    lines = [
        f"/* Generated by nncompiler: the C interface of the compiled model \"{name}\".",
        origin.rstrip("\n") if origin else " *",
        f" * Machine code for x86-64 {src.isa or 'generic'}"
        + (f" (built on {src.cpu})" if src.cpu else "") + f"; link with -l{name} -lpthread -lm.",
        " *",
        f" * Usage: weights = {name}_weights.bin read into {upper}_WEIGHTS_BYTES bytes (or the",
        f" * {name}_weights array of {name}_weights.c); an arena of {upper}_ARENA_BYTES bytes; one",
        f" * buffer per input and output ({upper}_INPUT_i_BYTES, {upper}_OUTPUT_i_BYTES), dense,",
        " * row-major, little-endian; then",
        f" *     {name}_run(weights, inputs, outputs, arena, pool);   (pool: NULL = one thread)",
        *usage_batch,
        f" * Weights and arena must be aligned to {upper}_ALIGNMENT ({ALIGNMENT}) bytes; inputs and outputs",
        " * should be too.",
        " * The model allocates nothing.  Calls may run concurrently only with distinct arenas,",
        " * outputs and pools; a pool runs one call at a time.",
        " */",
        f"#ifndef {guard}", f"#define {guard}", "",
        "#include <stddef.h>", "#include <stdint.h>", "", f'#include "{RUNTIME_HEADER}"', "",
        '#ifdef __cplusplus', 'extern "C" {', '#endif', "",
        "#ifndef NNC_TENSOR_INFO_DEFINED", "#define NNC_TENSOR_INFO_DEFINED",
        "/* One input or output: element type, shape and size in bytes. */",
        "typedef struct nnc_tensor_info {",
        "    const char *name;",
        '    const char *dtype;          /* "f32", "i64", "u8", "bool", ... */',
        "    int elem_bytes;",
        "    int rank;",
        "    const int64_t *shape;       /* rank entries (NULL when rank is 0) */",
        "    size_t bytes;               /* per sample when batched */",
        "    int batched;                /* 1: the leading dimension is the run-time batch */",
        "} nnc_tensor_info;",
        "typedef int (*nnc_run_fn)(const void *weights, const void *const *inputs, void *const *outputs,",
        "                          void *arena, nnc_pool *pool);",
        "typedef int (*nnc_run_profiled_fn)(const void *weights, const void *const *inputs,",
        "                                   void *const *outputs, void *arena, nnc_pool *pool,",
        "                                   int64_t *kernel_ns);",
        "typedef int (*nnc_run_batch_fn)(const void *weights, const void *const *inputs, void *const *outputs,",
        "                                void *arena, nnc_pool *pool, int64_t batch);",
        "/* Everything about one model, for code that serves any model (see example.c). */",
        "typedef struct nnc_model_info {",
        "    const char *name;",
        "    const char *isa;",
        "    size_t alignment;           /* of weights and arena, in bytes */",
        "    size_t weights_bytes;",
        "    size_t arena_bytes;         /* for max_batch samples */",
        "    size_t arena_bytes_per_sample;",
        "    int batched;",
        "    int64_t max_batch;",
        "    int num_inputs, num_outputs, num_kernels;",
        "    const nnc_tensor_info *inputs;",
        "    const nnc_tensor_info *outputs;",
        "    const char *const *kernel_labels;",
        "    nnc_run_fn run;",
        "    nnc_run_profiled_fn run_profiled;",
        "    int (*cpu_supported)(void);",
        "    nnc_run_batch_fn run_batch;",
        "} nnc_model_info;",
        "#define NNC_ERR_ALIGNMENT (-2) /* weights or arena not aligned as required */",
        "#define NNC_ERR_BATCH (-3)     /* batch below 1, above the maximum, or not 1 for an unbatched model */",
        "#if defined(__GNUC__) || defined(__clang__)",
        "#define NNC_UNUSED __attribute__((unused))",
        "#else", "#define NNC_UNUSED", "#endif",
        "#endif", "",
        f"#define {upper}_ALIGNMENT {ALIGNMENT}",
        f"#define {upper}_ISA {c_string(src.isa)}",
        f"#define {upper}_WEIGHTS_BYTES {checked_size(int(src.weights.size), 'weights blob')}",
        f"#define {upper}_BATCHED {int(batched)}",
        f"#define {upper}_MAX_BATCH {max_batch}",
        f"#define {upper}_ARENA_BYTES_PER_SAMPLE {per_sample}",
        f"#define {upper}_ARENA_BYTES_FOR(batch) ((size_t)(batch) * {upper}_ARENA_BYTES_PER_SAMPLE)",
        f"#define {upper}_ARENA_BYTES {arena_max}",
        f"#define {upper}_NUM_INPUTS {len(src.inputs)}",
        f"#define {upper}_NUM_OUTPUTS {len(src.outputs)}",
        f"#define {upper}_NUM_KERNELS {len(src.kernels)}", "",
    ]
    for i, t in enumerate(src.inputs):
        lines += _tensor_block(upper, "INPUT", i, t, in_flags[i])
    for i, t in enumerate(src.outputs):
        lines += _tensor_block(upper, "OUTPUT", i, t, out_flags[i])
    lines += _tensor_table(name, "input", src.inputs) + _tensor_table(name, "output", src.outputs)
    lines += [
        f"/* Kernel labels, in the order {name}_run_profiled reports their times. */",
        f"static const char *const {name}_kernel_labels[{upper}_NUM_KERNELS > 0 ? {upper}_NUM_KERNELS : 1]"
        " NNC_UNUSED = {", labels, "};", "",
        f"/* The weights blob as a const array: defined by {name}_weights.c (built with c_array=true). */",
        f"extern const unsigned char {name}_weights[];", "",
        "/* The generated code (in the object file); call the wrappers below. */",
        f"int {name}_{ENTRY}(const void *weights, const void *const *inputs, void *const *outputs,",
        "        void *arena, nnc_pool *pool, int64_t batch);",
        f"int {name}_{ENTRY_PROFILED}(const void *weights, const void *const *inputs, void *const *outputs,",
        "        void *arena, nnc_pool *pool, int64_t batch, int64_t *kernel_ns);", "",
        "/* Run the model on `batch` samples: 0 on success, NNC_ERR_ALIGNMENT when weights or arena is",
        f" * misaligned, NNC_ERR_BATCH when batch is out of range (1..{upper}_MAX_BATCH).  The arena holds",
        f" * {upper}_ARENA_BYTES_FOR(batch) bytes. */",
        f"static inline int {name}_run_batch(const void *weights, const void *const *inputs,",
        "        void *const *outputs, void *arena, nnc_pool *pool, int64_t batch) {",
        f"    if ((uintptr_t)weights % {upper}_ALIGNMENT || (uintptr_t)arena % {upper}_ALIGNMENT)",
        "        return NNC_ERR_ALIGNMENT;",
        f"    if (batch < 1 || batch > {upper}_MAX_BATCH) return NNC_ERR_BATCH;",
        f"    return {name}_{ENTRY}(weights, inputs, outputs, arena, pool, batch);", "}", "",
        "/* The same, also writing each kernel's nanoseconds (for the whole batch) into kernel_ns. */",
        f"static inline int {name}_run_batch_profiled(const void *weights, const void *const *inputs,",
        "        void *const *outputs, void *arena, nnc_pool *pool, int64_t batch, int64_t *kernel_ns) {",
        f"    if ((uintptr_t)weights % {upper}_ALIGNMENT || (uintptr_t)arena % {upper}_ALIGNMENT)",
        "        return NNC_ERR_ALIGNMENT;",
        f"    if (batch < 1 || batch > {upper}_MAX_BATCH) return NNC_ERR_BATCH;",
        f"    return {name}_{ENTRY_PROFILED}(weights, inputs, outputs, arena, pool, batch, kernel_ns);", "}", "",
        "/* Run the model once: 0 on success, NNC_ERR_ALIGNMENT when weights or arena is misaligned.",
        f" * inputs[i] holds {upper}_INPUT_i_BYTES bytes, outputs[i] receives {upper}_OUTPUT_i_BYTES. */",
        f"static inline int {name}_run(const void *weights, const void *const *inputs, void *const *outputs,",
        "        void *arena, nnc_pool *pool) {",
        f"    return {name}_run_batch(weights, inputs, outputs, arena, pool, 1);", "}", "",
        f"/* The same, also writing each kernel's nanoseconds into kernel_ns[{upper}_NUM_KERNELS]. */",
        f"static inline int {name}_run_profiled(const void *weights, const void *const *inputs,",
        "        void *const *outputs, void *arena, nnc_pool *pool, int64_t *kernel_ns) {",
        f"    return {name}_run_batch_profiled(weights, inputs, outputs, arena, pool, 1, kernel_ns);", "}", "",
        f"/* 1 when this CPU has the instruction set the code was compiled for ({src.isa}). */",
        f"static inline int {name}_cpu_supported(void) {{",
        "#if defined(__GNUC__) || defined(__clang__)",
        "    __builtin_cpu_init();",
        f"    return {checks};",
        "#else", "    return 1;", "#endif", "}", "",
        f"static const nnc_model_info {name}_info NNC_UNUSED = {{",
        f"    {c_string(name)}, {upper}_ISA, {upper}_ALIGNMENT, {upper}_WEIGHTS_BYTES, {upper}_ARENA_BYTES,",
        f"    {upper}_ARENA_BYTES_PER_SAMPLE, {upper}_BATCHED, {upper}_MAX_BATCH,",
        f"    {upper}_NUM_INPUTS, {upper}_NUM_OUTPUTS, {upper}_NUM_KERNELS,",
        f"    {name}_inputs, {name}_outputs, {name}_kernel_labels,",
        f"    {name}_run, {name}_run_profiled, {name}_cpu_supported, {name}_run_batch,", "};", "",
        '#ifdef __cplusplus', '}', '#endif', f"#endif /* {guard} */", "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ writing
def write_bundle(source: Union[Any, Lowered, BundleSource], directory: Union[str, Path], name: str = "model",
                 *, c_array: bool = False, target: Optional[TargetInfo] = None,
                 manifest: Optional[dict[str, Any]] = None) -> Bundle:
    """Write the C bundle of a compiled model into ``directory`` (see the module docstring).

    ``source`` is a CpuExecutable, or a ``Lowered`` graph with its ``target``.
    ``manifest`` (optional) adds the model's provenance to the header.
    """
    name = check_name(name)
    src = bundle_source(source, target)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bundle = Bundle(d, name)
    files = bundle.files
    files.update(object=f"{name}.o", library=f"lib{name}.a", header=f"{name}.h",
                 runtime_header=RUNTIME_HEADER, weights=f"{name}_weights.bin")
    with tempfile.TemporaryDirectory(prefix="nnc_bundle_") as tmp:
        work = Path(tmp)
        obj = work / files["object"]
        parts = write_parts(src.objects, name, work)
        rename_symbols(parts, name, work)
        link_objects(parts, obj)
        bundle.symbols = {"entry": f"{name}_{ENTRY}", "entry_profiled": f"{name}_{ENTRY_PROFILED}"}
        shutil.copyfile(C_DIR / RUNTIME_HEADER, d / RUNTIME_HEADER)
        (d / files["header"]).write_text(header_text(src, name, manifest))
        _write_weights(src.weights, d / files["weights"])
        members = [*parts, runtime_object(work)]
        if c_array:
            files["weights_c"] = f"{name}_weights.c"
            (d / files["weights_c"]).write_text(c_array_text(src.weights, name))
            members.append(weights_object(src.weights, name, d / files["weights_c"], work))
        shutil.copyfile(obj, d / files["object"])
        library = d / files["library"]
        library.unlink(missing_ok=True)  # `ar r` would keep stale members
        _run([_tool("ar", "llvm-ar"), "rcs", str(library), *map(str, members)])
    return bundle


def runtime_object(work: Path) -> Path:
    """The C runtime compiled to an object (cached like the runtime library, by source digest)."""
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for n in [*SOURCES, RUNTIME_HEADER]:
        h.update((C_DIR / n).read_bytes())
    cached = cache_dir() / f"nnc_runtime-{h.hexdigest()[:16]}.o"
    if not cached.exists():
        tmp = work / "nnc_runtime.o"
        compile_c([C_DIR / n for n in SOURCES], tmp, [*CFLAGS, "-c", "-I", str(C_DIR)])
        staged = cached.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(tmp, staged)
        os.replace(staged, cached)  # atomic: concurrent builds never see a partial file
    out = work / "nnc_runtime.o"
    shutil.copyfile(cached, out)
    return out


def weights_object(blob: np.ndarray, name: str, c_source: Path, work: Path) -> Path:
    """``<name>_weights`` as an object for the library.

    Assembled with ``.incbin`` from the blob: a C compiler takes minutes on a
    large array (30 s for 10 MB), the assembler no time at all.  The C source
    stays the portable form, compiled here only if the assembler refuses.
    """
    out, raw = work / f"{name}_weights.o", work / "weights.raw"
    _write_weights(blob, raw)
    path = str(raw).replace("\\", "\\\\").replace('"', '\\"')
    asm = work / f"{name}_weights.s"  # .s: no C preprocessor
    asm.write_text(f"""\
    .section .rodata.{name}_weights,"a",@progbits
    .globl {name}_weights
    .type {name}_weights, @object
    .balign {ALIGNMENT}
{name}_weights:
    .incbin "{path}"
    {".zero 1" if blob.size == 0 else ""}
    .size {name}_weights, {max(1, int(blob.size))}
    .section .note.GNU-stack,"",@progbits
""")
    try:
        compile_c([asm], out, ["-c"])
    except BackendError:
        compile_c([c_source], out, ["-O0", "-fPIC", "-c", "-I", str(c_source.parent)])
    return out


def _write_weights(blob: np.ndarray, path: Path) -> None:
    np.ascontiguousarray(blob, np.uint8).tofile(path)


__all__ = ["Bundle", "BundleSource", "write_bundle", "header_text", "c_array_text", "symbol_map",
           "check_name"]
