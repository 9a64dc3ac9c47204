"""The cpu target's C bundle: write it, build runtime/c/example.c against it, run, compare.

Every end-to-end test compiles a model, writes its bundle, builds the example
program with the system C compiler, runs it on input files and compares what
it wrote with the reference interpreter (and bit for bit with the JIT, which
runs the same machine code on the same weights).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import compiler
from backends.cpu.bundle import c_array_text, check_name, symbol_map, write_bundle
from ir.errors import BackendError, CompilerError, PassError
from ir.memory import ALIGNMENT
from passes.manager import PassManager
from backends.cpu import PIPELINE as CPU_PIPELINE
from runtime.native import C_DIR, c_compiler

ROOT = Path(__file__).resolve().parents[2]
# The cpu pipeline while some of its passes are still being merged.
FALLBACK_PASSES = ("fold-constants,remove-identity,cse,dce,layout-nchwc,fold-constants,dce,fuse,dce,"
                   "schedule,plan-memory")
DIGITS = [Path(ROOT, "..", "shared", "data", "digits_cnn.onnx")]


def cpu_passes() -> str | None:
    """None (the default pipeline) when it parses here, else the fallback pipeline."""
    try:
        PassManager(CPU_PIPELINE)
        return None
    except PassError:
        return FALLBACK_PASSES


def compile_cpu(model, **kw):
    """The model compiled for cpu, or a skip naming what the cpu target cannot do yet."""
    try:
        return compiler.compile(model, target="cpu", passes=cpu_passes(), **kw)
    except (BackendError, CompilerError) as exc:
        if "cannot" in str(exc):
            pytest.skip(f"cpu kernels missing in this worktree: {str(exc)[:200]}")
        raise


# ------------------------------------------------------------------ models
def elementwise_model(rows: int = 97, cols: int = 259, seed: int = 0):
    """Two inputs (f32 and i32), two outputs, weights, an arena, several tasks per kernel."""
    rng = np.random.default_rng(seed)
    w = nh.from_array(rng.standard_normal((4, rows, cols)).astype(np.float32), "W")
    b = nh.from_array(rng.standard_normal((cols,)).astype(np.float32), "B")
    shape = nh.from_array(np.array([4 * rows, cols], np.int64), "shape")
    nodes = [h.make_node("Mul", ["x", "W"], ["a"]), h.make_node("Relu", ["a"], ["b"]),
             h.make_node("Cast", ["n"], ["nf"], to=T.FLOAT), h.make_node("Add", ["b", "nf"], ["c"]),
             h.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 1]),
             h.make_node("Transpose", ["ct"], ["c2"], perm=[0, 2, 1]),
             h.make_node("Mul", ["c", "c2"], ["cc"]),
             h.make_node("Reshape", ["cc", "shape"], ["r"]), h.make_node("Add", ["r", "B"], ["y"]),
             h.make_node("Sigmoid", ["ct"], ["z"])]
    g = h.make_graph(nodes, "ew", [h.make_tensor_value_info("x", T.FLOAT, [4, rows, cols]),
                                   h.make_tensor_value_info("n", T.INT32, [1, 1, cols])],
                     [h.make_tensor_value_info("y", T.FLOAT, None), h.make_tensor_value_info("z", T.FLOAT, None)],
                     [w, b, shape])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def small_model(op: str, seed: int):
    """y = op(x * W + 1): a one-kernel model for the two-models-in-one-program test."""
    rng = np.random.default_rng(seed)
    w = nh.from_array(rng.standard_normal((5, 33)).astype(np.float32), "W")
    one = nh.from_array(np.ones((1,), np.float32), "one")
    nodes = [h.make_node("Mul", ["x", "W"], ["a"]), h.make_node("Add", ["a", "one"], ["b"]),
             h.make_node(op, ["b"], ["y"])]
    g = h.make_graph(nodes, op.lower(), [h.make_tensor_value_info("x", T.FLOAT, [5, 33])],
                     [h.make_tensor_value_info("y", T.FLOAT, [5, 33])], [w, one])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def conv_model(seed: int = 0):
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm with random weights."""
    rng = np.random.default_rng(seed)
    inits = [nh.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "cw"),
             nh.from_array(rng.standard_normal((8,)).astype(np.float32), "cb"),
             nh.from_array(rng.standard_normal((10, 8 * 5 * 5)).astype(np.float32) * 0.1, "gw"),
             nh.from_array(rng.standard_normal((10,)).astype(np.float32), "gb")]
    nodes = [h.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"]),
             h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Flatten", ["p"], ["f"]),
             h.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1)]
    g = h.make_graph(nodes, "convnet", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 11, 11])],
                     [h.make_tensor_value_info("y", T.FLOAT, [1, 10])], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def random_feeds(module, seed: int = 1) -> dict[str, np.ndarray]:
    return module.random_inputs(seed=seed)


# ------------------------------------------------------------------ C side
def build_example(out: Path, name: str, c_array: bool, c_source: bool = False) -> Path:
    """example.c against the bundle; ``c_source``: compile <name>_weights.c too (else the library's copy)."""
    exe = out / f"example_{name}{'_carray' if c_array else ''}"
    sources = [C_DIR / "example.c"] + ([out / f"{name}_weights.c"] if c_source else [])
    cmd = [c_compiler(), "-O2", "-Wall", "-Werror", *map(str, sources), f"-DMODEL={name}",
           *(["-DNNC_USE_C_ARRAY"] if c_array else []), "-I", str(out), "-L", str(out), f"-l{name}",
           "-lpthread", "-lm", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def run_bundle(module, feeds, tmp: Path, name: str = "model", *, c_array: bool = False,
               threads: int = 2, npy: bool = False, c_source: bool = False, source=None,
               target=None, batch: int = 1) -> tuple[list[np.ndarray], str]:
    """Write the bundle, build and run the example on ``feeds``; its outputs and its stdout.

    ``batch``: samples per run, for a module compiled with a run-time batch (``example -b``).
    """
    out = tmp / "out"
    bundle = write_bundle(source or module.executable, out, name, c_array=c_array, target=target)
    assert bundle.path("library").exists() and bundle.path("header").exists()
    exe = build_example(out, name, c_array, c_source)
    args = [str(exe), "-t", str(threads), "-b", str(batch)]
    if not c_array:
        args += ["-w", str(bundle.path("weights"))]
    inputs = []
    for spec in module.inputs:
        path = tmp / f"in_{spec.name}{'.npy' if npy else '.bin'}"
        arr = np.ascontiguousarray(feeds[spec.name])
        np.save(path, arr) if npy else arr.tofile(path)
        inputs.append(str(path))
    outs = []
    for spec in module.outputs:
        outs.append(tmp / f"out_{spec.name}.bin")
        args += ["-o", str(outs[-1])]
    proc = subprocess.run(args + inputs, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    shapes = [[batch if isinstance(d, str) and k == 0 else d for k, d in enumerate(spec.shape)]
              for spec in module.outputs]
    results = [np.fromfile(p, spec.np_dtype).reshape(shape) for p, spec, shape in zip(outs, module.outputs, shapes)]
    return results, proc.stdout


def check_against_reference(model, module, feeds, results, **kw) -> None:
    ref = compiler.compile(model, target="ref", **kw).run(feeds)
    jit = module.run(feeds)
    for spec, got in zip(module.outputs, results):
        np.testing.assert_allclose(got, ref[spec.name], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(got, jit[spec.name])  # same code, same weights


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("c_array,c_source,threads,npy",
                         [(False, False, 2, False), (True, True, 1, True), (True, False, 0, False)],
                         ids=["weights-file-2threads", "c-array-source-1thread-npy", "c-array-lib-all-cores"])
def test_elementwise_model_runs_from_c(tmp_path, c_array, c_source, threads, npy):
    model = elementwise_model()
    module = compile_cpu(model)
    assert module.executable.description["arena_bytes"] > 0
    assert max(module.executable.description["tasks"]) > 1  # the pool has work to share
    feeds = random_feeds(module)
    results, stdout = run_bundle(module, feeds, tmp_path, c_array=c_array, threads=threads, npy=npy,
                                 c_source=c_source)
    check_against_reference(model, module, feeds, results)
    assert "output y f32[388,259]" in stdout


def test_header_states_sizes_and_tensors(tmp_path):
    module = compile_cpu(elementwise_model(rows=5, cols=7))
    desc = module.executable.description
    bundle = write_bundle(module.executable, tmp_path, "ew")
    text = bundle.path("header").read_text()
    define = lambda key: re.search(rf"#define {key} (.*)", text).group(1)  # noqa: E731
    assert int(define("EW_WEIGHTS_BYTES")) == module.executable.weights.size == bundle.path("weights").stat().st_size
    assert int(define("EW_ARENA_BYTES")) == desc["arena_bytes"]
    assert int(define("EW_ALIGNMENT")) == ALIGNMENT == 64
    assert define("EW_INPUT_1_NAME") == '"n"' and define("EW_INPUT_1_DTYPE") == '"i32"'
    assert int(define("EW_INPUT_1_BYTES")) == 7 * 4
    assert int(define("EW_OUTPUT_0_BYTES")) == 20 * 7 * 4
    assert "static const int64_t ew_output_0_shape[] NNC_UNUSED = {20, 7};" in text
    assert "int ew_nnc_run(" in text and "static inline int ew_run(" in text
    assert np.array_equal(np.fromfile(bundle.path("weights"), np.uint8), module.executable.weights)
    for entry in desc["weights"]:
        assert entry["offset"] % 64 == 0


def test_two_models_link_into_one_program(tmp_path):
    """Two bundles in one program: renamed symbols do not clash; misaligned weights are refused."""
    models = {"alpha": small_model("Sigmoid", 1), "beta": small_model("Tanh", 2)}
    x = np.random.default_rng(3).standard_normal((5, 33)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    for name, model in models.items():
        write_bundle(compile_cpu(model).executable, tmp_path / name, name, c_array=True)
    main = tmp_path / "main.c"
    main.write_text(r'''
#include <stdio.h>
#include "alpha.h"
#include "beta.h"
static float x[5 * 33], ya[5 * 33], yb[5 * 33];
int main(void) {
    FILE *f = fopen("''' + str(tmp_path / "x.bin") + r'''", "rb");
    if (!f || fread(x, sizeof x, 1, f) != 1) return 3;
    fclose(f);
    static nnc_pool pool;
    if (nnc_pool_init(&pool, 2) != 0) return 4;
    const void *in[1] = {x};
    void *oa[1] = {ya}, *ob[1] = {yb};
    if (alpha_run(alpha_weights, in, oa, NULL, &pool) != 0) return 5;
    if (beta_run(beta_weights, in, ob, NULL, NULL) != 0) return 6;
    if (alpha_run((const unsigned char *)alpha_weights + 4, in, oa, NULL, NULL) != NNC_ERR_ALIGNMENT) return 7;
    nnc_pool_destroy(&pool);
    fwrite(ya, sizeof ya, 1, stdout);
    fwrite(yb, sizeof yb, 1, stdout);
    return 0;
}
''')
    exe = tmp_path / "main"
    cmd = [c_compiler(), "-O2", "-Wall", "-Werror", str(main), "-I", str(tmp_path / "alpha"), "-I",
           str(tmp_path / "beta"), "-L", str(tmp_path / "alpha"), "-L", str(tmp_path / "beta"),
           "-lalpha", "-lbeta", "-lpthread", "-lm", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.returncode
    got = np.frombuffer(proc.stdout, np.float32).reshape(2, 5, 33)
    for k, model in enumerate(models.values()):
        ref = compiler.compile(model, target="ref").run({"x": x})["y"]
        np.testing.assert_allclose(got[k], ref, rtol=1e-4, atol=1e-5)


def test_bundle_from_lowered_graph(tmp_path):
    """write_bundle also takes a Lowered graph (compiled to an object on the way)."""
    from backends.cpu.codegen import KernelBuilder
    from backends.cpu.lower import lower
    model = small_model("Sigmoid", 5)
    result = compiler.build(model, "cpu", passes=cpu_passes())
    target = result.context.target
    lowered = lower(result.graph, KernelBuilder(target, "lowered"))
    feeds = random_feeds(result.module)
    results, _ = run_bundle(result.module, feeds, tmp_path, "low", threads=1, source=lowered, target=target)
    ref = compiler.compile(model, target="ref").run(feeds)
    np.testing.assert_allclose(results[0], ref["y"], rtol=1e-4, atol=1e-5)


def test_dynamic_shapes_have_no_bundle(tmp_path):
    """Symbolic dims other than a batch (no values given) are compiled per call: no object code to bundle."""
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "dyn", [h.make_tensor_value_info("x", T.FLOAT, ["n", "m"])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["n", "m"])])
    module = compile_cpu(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
    with pytest.raises(CompilerError, match="dynamic shapes"):
        write_bundle(module.executable, tmp_path, "dyn")


def test_symbolic_batch_has_a_bundle(tmp_path):
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "dyn", [h.make_tensor_value_info("x", T.FLOAT, ["n", 4])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["n", 4])])
    module = compile_cpu(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
    bundle = write_bundle(module.executable, tmp_path, "dyn")
    header = bundle.path("header").read_text()
    assert "#define DYN_BATCHED 1" in header and "#define DYN_MAX_BATCH 64" in header
    assert "#define DYN_INPUT_0_BYTES 16" in header  # one sample: 4 floats


def test_symbol_names():
    mapping = symbol_map(["nnc_run", "nnc_run_profiled", "k_relu_0"], "net")
    assert mapping == {"nnc_run": "net_nnc_run", "nnc_run_profiled": "net_nnc_run_profiled",
                       "k_relu_0": "net__k_relu_0"}
    again = symbol_map(list(mapping.values()), "other")  # a bundled object, renamed again
    assert again == {"net_nnc_run": "other_nnc_run", "net_nnc_run_profiled": "other_nnc_run_profiled",
                     "net__k_relu_0": "other__k_relu_0"}
    assert check_name("model_2") == "model_2"
    for bad in ("2model", "my-model", "", "a b"):
        with pytest.raises(BackendError, match="bad C bundle name"):
            check_name(bad)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 100])
def test_c_array_holds_the_blob(n):
    blob = np.random.default_rng(n).integers(0, 256, n).astype(np.uint8)
    text = c_array_text(blob, "m")
    assert "__attribute__((aligned(64)))" in text and "const unsigned char m_weights[" in text
    body = text[text.index("= {") + 3:text.rindex("}")]
    values = [int(v, 0) for v in body.replace("\n", " ").replace(",", " ").split()]
    assert values == (blob.tolist() or [0])


def test_conv_relu_maxpool_gemm_from_c(tmp_path):
    model = conv_model()
    module = compile_cpu(model)
    feeds = random_feeds(module)
    results, _ = run_bundle(module, feeds, tmp_path, "convnet", threads=2)
    check_against_reference(model, module, feeds, results)


@pytest.mark.parametrize("c_array", [False, True], ids=["weights-file", "c-array"])
def test_digits_cnn_from_c(tmp_path, c_array):
    path = next((p for p in DIGITS if p.exists()), None)
    if path is None:
        pytest.skip("digits_cnn.onnx not found")
    shapes = {"input": [1, 1, 8, 8]}
    module = compile_cpu(str(path), input_shapes=shapes)
    feeds = random_feeds(module)
    results, _ = run_bundle(module, feeds, tmp_path, "digits", c_array=c_array, threads=2)
    check_against_reference(str(path), module, feeds, results, input_shapes=shapes)


def test_cli_build_writes_the_bundle(tmp_path):
    """`python -m compiler build --target cpu` writes the bundle once CpuExecutable.save calls write_bundle."""
    model_path = tmp_path / "small.onnx"
    model_path.write_bytes(small_model("Sigmoid", 4).SerializeToString())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "compiler", "build", str(model_path), "--target", "cpu", "-o", str(out),
           "--option", "c_array=true"]
    passes = cpu_passes()
    if passes:
        cmd += ["--passes", passes]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if not (out / "libmodel.a").exists():
        pytest.skip("CpuExecutable.save does not write the C bundle yet (shared change pending)")
    for name in ("model.o", "model.h", "nnc_runtime.h", "model_weights.bin", "model_weights.c"):
        assert (out / name).exists(), name
    assert compiler.load(out).run({"x": np.ones((5, 33), np.float32)})["y"].shape == (5, 33)
