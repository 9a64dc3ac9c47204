"""Fuzzing: a damaged or hostile model is a ``CompilerError``, never another exception.

Real models (the bundled digits CNN, the shared digits MLP and small models
from ONNX's backend test data) are mutated at the protobuf level (dims, types,
attributes, op types, wiring, initializers, opsets) or at the byte level (the
serialized file), then imported and built for ``ref`` (and, for some, for
``cpu`` with the symbolic dims fixed so code is generated).  Each must either
succeed or raise a ``CompilerError`` that is not one of the wrappers around
a crash ("pass crashed", "type rule failed"...); a ``MemoryError`` is accepted for
models that ask for more memory than the address-space cap set around the run
(the CLI reports it as one line too).

The default run tries a few dozen inputs; the ``slow`` one 100,000.
"""

from __future__ import annotations

import os
import resource
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnx.backend.test
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import AttributeProto, TensorProto, numpy_helper

import compiler
from frontends.onnx import import_model
from ir.errors import CompilerError

from .conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parent.parent
ONNX_DATA = Path(onnx.backend.test.__file__).parent / "data"
# ONNX's node test cases are generated in memory (no data/node folder ships with the wheel);
# these on-disk ones cover convolutions, pooling, padding, reshapes, sequences and broadcasting.
ONNX_SEEDS = [
    "pytorch-operator/test_operator_conv", "pytorch-operator/test_operator_maxpool",
    "pytorch-operator/test_operator_pad", "pytorch-operator/test_operator_view",
    "pytorch-operator/test_operator_chunk", "pytorch-operator/test_operator_reduced_mean_keepdim",
    "pytorch-operator/test_operator_convtranspose", "pytorch-operator/test_operator_index",
    "simple/test_expand_shape_model1", "simple/test_sequence_model1", "simple/test_single_relu_model",
]

OP_TYPES = ["Relu", "Conv", "Gemm", "MatMul", "Add", "Reshape", "Transpose", "Concat", "Slice", "Gather",
            "MaxPool", "AveragePool", "Flatten", "Softmax", "Expand", "Pad", "Split", "Squeeze", "Unsqueeze",
            "ConstantOfShape", "Range", "Tile", "Resize", "TopK", "Loop", "If", "Identity", "Cast",
            "ReduceMean", "BatchNormalization", "NoSuchOp", ""]
INTERESTING_INTS = [0, 1, 2, 3, -1, -2, 7, 255, 2 ** 31 - 1, 2 ** 31, -2 ** 31, 2 ** 40, 2 ** 62, -2 ** 63,
                    2 ** 63 - 1]


def seed_models() -> dict[str, bytes]:
    seeds = {"digits_cnn": (ROOT / "examples" / "models" / "digits_cnn.onnx").read_bytes()}
    mlp = Path(SHARED_DATA) / "digits_mlp.onnx"
    if mlp.is_file():
        seeds["digits_mlp"] = mlp.read_bytes()
    for rel in ONNX_SEEDS:
        path = ONNX_DATA / rel / "model.onnx"
        if path.is_file():
            seeds[rel.split("/")[-1]] = path.read_bytes()
    return seeds


def node_test_models(max_bytes: int = 64 << 10) -> dict[str, bytes]:
    """Every small model of ONNX's node test cases (generated in memory: about 6 s; for the long run)."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    out = {}
    for c in cases:
        if c.model is not None:
            data = c.model.SerializeToString()
            if len(data) <= max_bytes:
                out[c.name] = data
    return out


SEEDS = seed_models()
STATS: Counter = Counter()  # what the runs did: inputs tried, outcomes by kind


# ----------------------------------------------------------------- mutators
def _int(draw) -> int:
    return draw(st.one_of(st.sampled_from(INTERESTING_INTS), st.integers(-4, 64)))


def _all_graphs(g: onnx.GraphProto):
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                yield from _all_graphs(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for sub in a.graphs:
                    yield from _all_graphs(sub)


def _pick(draw, items):
    items = list(items)
    return draw(st.sampled_from(items)) if items else None


_NUMERIC = {TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.DOUBLE, TensorProto.INT8,
            TensorProto.UINT8}


def mutate_proto(model: onnx.ModelProto, draw) -> str:
    """Apply one structural mutation in place; returns what it did (for the report)."""
    graphs = list(_all_graphs(model.graph))
    g = _pick(draw, graphs)
    kind = draw(st.sampled_from(["dim", "elem_type", "attr", "attr_type", "op_type", "wire", "drop_node",
                                 "dup_node", "init_dims", "init_type", "init_data", "opset", "outputs",
                                 "inputs", "domain", "rank", "init_values", "init_values"]))
    vis = list(g.input) + list(g.output) + list(g.value_info)
    if kind in ("dim", "rank", "elem_type") and vis:
        vi = _pick(draw, vis)
        tt = vi.type.tensor_type
        if kind == "elem_type":
            tt.elem_type = draw(st.integers(0, 30))
        elif kind == "rank":
            if draw(st.booleans()) and tt.shape.dim:
                del tt.shape.dim[-1]
            else:
                tt.shape.dim.add().dim_value = _int(draw)
        elif tt.shape.dim:
            d = tt.shape.dim[draw(st.integers(0, len(tt.shape.dim) - 1))]
            if draw(st.booleans()):
                d.dim_value = _int(draw)
            else:
                d.dim_param = draw(st.sampled_from(["N", "M", "", "?"]))
        return f"{kind} of {vi.name}"
    nodes = list(g.node)
    if kind in ("attr", "attr_type") and nodes:
        n = _pick(draw, nodes)
        attrs = [a for a in n.attribute if a.type not in (AttributeProto.GRAPH, AttributeProto.GRAPHS)]
        if not attrs or draw(st.integers(0, 3)) == 0:
            a = n.attribute.add()
            a.name = draw(st.sampled_from(["axis", "axes", "perm", "strides", "pads", "kernel_shape",
                                           "group", "dilations", "keepdims", "to", "mode", "bogus"]))
            a.type = AttributeProto.INTS
            a.ints.extend(draw(st.lists(st.sampled_from(INTERESTING_INTS), max_size=5)))
            return f"new attribute {a.name} on {n.op_type}"
        a = _pick(draw, attrs)
        if kind == "attr_type":
            a.type = draw(st.sampled_from([AttributeProto.INT, AttributeProto.INTS, AttributeProto.FLOAT,
                                           AttributeProto.FLOATS, AttributeProto.STRING, AttributeProto.TENSOR,
                                           AttributeProto.UNDEFINED]))
        elif a.type == AttributeProto.INT:
            a.i = _int(draw)
        elif a.type == AttributeProto.INTS:
            if a.ints and draw(st.booleans()):
                a.ints[draw(st.integers(0, len(a.ints) - 1))] = _int(draw)
            else:
                del a.ints[:]
                a.ints.extend(draw(st.lists(st.sampled_from(INTERESTING_INTS), max_size=6)))
        elif a.type == AttributeProto.FLOAT:
            a.f = draw(st.sampled_from([0.0, -1.0, 1e30, float("nan"), float("inf")]))
        elif a.type == AttributeProto.FLOATS:
            a.floats.append(draw(st.sampled_from([0.0, float("nan"), -1.0])))
        elif a.type == AttributeProto.STRING:
            a.s = draw(st.sampled_from([b"", b"bogus", b"NOTSET", b"\xff\xfe", b"SAME_UPPER"]))
        elif a.type == AttributeProto.TENSOR:
            a.t.dims.append(_int(draw))
        return f"{kind} {a.name} on {n.op_type}"
    if kind == "op_type" and nodes:
        n = _pick(draw, nodes)
        n.op_type = draw(st.sampled_from(OP_TYPES))
        return f"op_type -> {n.op_type}"
    if kind == "wire" and nodes:
        n = _pick(draw, nodes)
        names = [i.name for i in g.input] + [t.name for t in g.initializer] + [o for m in nodes for o in m.output]
        names += ["", "ghost"]
        if n.input and draw(st.booleans()):
            n.input[draw(st.integers(0, len(n.input) - 1))] = draw(st.sampled_from(names))
        elif draw(st.booleans()):
            n.input.append(draw(st.sampled_from(names)))
        elif n.output:
            n.output[draw(st.integers(0, len(n.output) - 1))] = draw(st.sampled_from(names))
        return f"wiring of {n.op_type}"
    if kind == "drop_node" and nodes:
        del g.node[draw(st.integers(0, len(nodes) - 1))]
        return "dropped a node"
    if kind == "dup_node" and nodes:
        n = _pick(draw, nodes)
        g.node.append(n)
        return f"duplicated {n.op_type}"
    inits = list(g.initializer) + [a.t for n in nodes for a in n.attribute if a.type == AttributeProto.TENSOR]
    small = [t for t in inits if 0 < int(np.prod(t.dims, dtype=object)) <= 64 and t.data_type in _NUMERIC]
    if kind == "init_values" and small:
        # Same size and type, new values: shapes, axes, pads and indices held in tensors.
        t = _pick(draw, small)
        try:
            arr = numpy_helper.to_array(t).copy()
        except ValueError:  # an earlier mutation broke its data already
            return f"value of {t.name} (unreadable)"
        flat = arr.reshape(-1)
        k = draw(st.integers(0, flat.size - 1))
        v = _int(draw)
        if arr.dtype.kind == "f":
            flat[k] = draw(st.sampled_from([0.0, -1.0, 1e30, float("nan"), float("inf"), float(v)]))
        else:
            info = np.iinfo(arr.dtype)
            flat[k] = min(max(v, info.min), info.max)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
        return f"value of {t.name}"
    if kind in ("init_dims", "init_type", "init_data") and inits:
        t = _pick(draw, inits)
        if kind == "init_dims":
            if t.dims and draw(st.booleans()):
                t.dims[draw(st.integers(0, len(t.dims) - 1))] = _int(draw)
            else:
                t.dims.append(draw(st.sampled_from([0, 1, 2, 3])))
        elif kind == "init_type":
            t.data_type = draw(st.integers(0, 30))
        elif t.raw_data:
            t.raw_data = t.raw_data[: draw(st.integers(0, len(t.raw_data)))]
        else:
            del t.float_data[:]
            del t.int64_data[:]
            t.raw_data = bytes(draw(st.binary(max_size=16)))
        return f"{kind} of {t.name}"
    if kind == "opset" and model.opset_import:
        model.opset_import[0].version = draw(st.sampled_from([0, 1, 3, 5, 6, 7, 9, 11, 13, 17, 21, 99]))
        return f"opset -> {model.opset_import[0].version}"
    if kind == "outputs" and g.output:
        if draw(st.booleans()):
            g.output.append(g.output[0])
        else:
            g.output[0].name = draw(st.sampled_from(["ghost", ""] + [i.name for i in g.input]))
        return "graph outputs"
    if kind == "inputs" and g.input:
        if draw(st.booleans()):
            del g.input[draw(st.integers(0, len(g.input) - 1))]
        else:
            g.input.append(g.input[0])
        return "graph inputs"
    if kind == "domain" and nodes:
        n = _pick(draw, nodes)
        n.domain = draw(st.sampled_from(["com.microsoft", "ai.onnx.ml", "bogus", "ai.onnx"]))
        return f"domain of {n.op_type}"
    model.ir_version = draw(st.sampled_from([0, 1, 3, 4, 7, 8, 10, 99]))
    return f"ir_version -> {model.ir_version}"


def mutate_bytes(data: bytes, draw) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        at = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "set", "truncate", "delete", "insert"]))
        if op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x08, 0x10, 0x12, 0x1A, 0x22, 0x3A]))
        elif op == "truncate":
            del buf[at:]
        elif op == "delete":
            del buf[at:at + draw(st.integers(1, 16))]
        else:
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(buf)


# -------------------------------------------------------------------- check
@contextmanager
def memory_cap(extra_bytes: int = 6 << 30):
    """Cap this process's address space at its current size plus ``extra_bytes`` (restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = current + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _static_shapes(module) -> dict[str, list]:
    shapes = {}
    for s in module.inputs:
        if s.shape is not None and not s.dtype.startswith(("seq<", "opt<")):
            shapes[s.name] = [d if isinstance(d, int) else 1 for d in s.shape]
    return shapes


CRASH_WRAPPERS = ("pass crashed", "IR is invalid after this pass", "type rule failed")


def check_model_bytes(data: bytes, cpu: bool, run: bool = False) -> str:
    """Import and build ``data``; anything but success or a CompilerError fails the test."""
    STATS["tried"] += 1
    _direct_import(data)
    try:
        module = compiler.compile(data, target="ref")
        if run:
            shapes = _static_shapes(module)
            if len(shapes) == len(module.inputs) and all(int(np.prod(s, dtype=object)) < 1 << 16
                                                         for s in shapes.values()):
                STATS["ref runs"] += 1
                module.run(module.random_inputs(dims={}))
        if cpu:
            STATS["cpu builds"] += 1
            shapes = _static_shapes(module)
            if all(int(np.prod(s, dtype=object)) < 1 << 20 for s in shapes.values()):
                compiler.compile(data, target="cpu", input_shapes=shapes)
    except CompilerError as exc:
        # These are the safety nets around compiler bugs (a pass or a type rule that crashed, a
        # pass that broke the IR), not answers to a bad model.
        assert not any(text in str(exc) for text in CRASH_WRAPPERS), str(exc)
        STATS[f"refused: {type(exc).__name__}"] += 1
        return type(exc).__name__
    except MemoryError:
        STATS["refused: MemoryError"] += 1
        return "MemoryError"
    STATS["built"] += 1
    return "ok"


def _direct_import(data: bytes) -> None:
    """``import_model`` on the parsed proto, skipping the loader's checks (the API allows it)."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - bytes that do not parse are the loader's to report
        return
    if not model.HasField("graph"):
        return
    try:
        import_model(model)
        STATS["direct imports"] += 1
    except CompilerError:
        STATS["direct imports refused"] += 1


@st.composite
def mutants(draw, seeds: dict[str, bytes] = SEEDS):
    name = draw(st.sampled_from(sorted(seeds)))
    data = seeds[name]
    if draw(st.integers(0, 3)) == 0:
        return name, "bytes", mutate_bytes(data, draw), False
    model = onnx.ModelProto()
    model.ParseFromString(data)
    what = [mutate_proto(model, draw) for _ in range(draw(st.integers(1, 3)))]
    return name, "; ".join(what), model.SerializeToString(), draw(st.integers(0, 4)) == 0


def make_fuzz_test(max_examples: int, seeds: dict[str, bytes] = SEEDS):
    @settings(max_examples=max_examples, deadline=None, derandomize=max_examples <= 100,
              suppress_health_check=list(HealthCheck), database=None)
    @given(mutants(seeds))
    def fuzz(case):
        name, what, data, cpu = case
        with memory_cap():
            check_model_bytes(data, cpu)
    return fuzz


def test_seeds_build():
    assert {"digits_cnn", "test_operator_conv"} <= set(SEEDS)
    for name, data in SEEDS.items():
        assert check_model_bytes(data, cpu=False) in ("ok", "UnsupportedOpError"), name


def test_fuzz_short():
    make_fuzz_test(100)()


@pytest.mark.slow
def test_fuzz_long():
    # The bundled and shared models, ONNX's on-disk test models and its ~1800 node test models.
    try:
        make_fuzz_test(100_000, {**SEEDS, **node_test_models()})()
    finally:  # what the run tried (shown with -s): built, refused by kind, cpu builds, ref runs
        print("fuzz statistics:", dict(sorted(STATS.items())))
