"""Fast cpu builds: identical kernels compile once, the on-disk kernel cache, parallel LLVM work.

Every test points the cache at a temporary folder (``XDG_CACHE_HOME``, which
``runtime.native.cache_dir`` honours, or a ``KernelCache`` of its own).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from backends.base import get_backend
from backends.cpu.codegen import KernelBuilder
from backends.cpu.executable import compile_units, machine_of
from backends.cpu.kernel_cache import KernelCache, kernel_key
from backends.cpu.lower import KERNEL_PREFIX, lower
from passes.instruments import Timing
from passes.manager import PassContext, PassManager


def two_blocks(second_kernel: int = 3, seed: int = 1):
    """x -> Conv(3x3)+Relu -> Conv(k x k)+Relu -> y; with k == 3 both blocks are the same kernel."""
    rng = np.random.default_rng(seed)
    pad = second_kernel // 2
    w1 = numpy_helper.from_array(rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 16, second_kernel, second_kernel))
                                 .astype(np.float32) * 0.1, "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[pad] * 4),
             helper.make_node("Relu", ["c2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds():
    return {"x": np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "nncompiler" / "kernels"


def build(model, **options):
    module = compiler.compile(model, "cpu", options=options)
    return module, module.executable.description["build"]


def test_rebuild_hits_the_cache_and_gives_the_same_results(cache_home):
    first, cold = build(two_blocks())
    assert cold["cache_hits"] == 0 and cold["cache_misses"] == cold["units"] == cold["compiled"] > 0
    assert len(list(cache_home.rglob("*.o"))) == cold["units"]
    second, warm = build(two_blocks())
    assert warm["cache_hits"] == cold["units"] and warm["cache_misses"] == 0 and warm["compiled"] == 0
    assert cold["codegen_skipped"] == 0 and warm["codegen_skipped"] == warm["kernels"]  # no IR generated
    got, want = second.run(feeds())["y"], first.run(feeds())["y"]
    np.testing.assert_array_equal(got, want)
    ref = compiler.compile(two_blocks(), "ref").run(feeds())["y"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_a_changed_kernel_misses_and_the_rest_hit(cache_home):
    _, cold = build(two_blocks(3))
    changed, stats = build(two_blocks(5))  # the second conv changes (and the entry points)
    assert stats["cache_misses"] >= 1 and stats["cache_hits"] >= 1
    assert stats["cache_hits"] + stats["cache_misses"] == stats["units"]
    assert 1 <= stats["codegen_skipped"] < stats["kernels"]  # the unchanged first block is not regenerated
    ref = compiler.compile(two_blocks(5), "ref").run(feeds())["y"]
    np.testing.assert_allclose(changed.run(feeds())["y"], ref, rtol=1e-4, atol=1e-5)


def test_other_weights_reuse_every_kernel(cache_home):
    """Weights are data, not code: the same architecture with new weights compiles nothing."""
    build(two_blocks(seed=1))
    _, stats = build(two_blocks(seed=2))
    assert stats["cache_misses"] == 0


def test_a_corrupt_entry_is_detected_and_recompiled(cache_home):
    first, cold = build(two_blocks())
    entries = sorted(cache_home.rglob("*.o"))
    entries[0].write_bytes(entries[0].read_bytes()[:-7] + b"garbage")   # flipped bytes
    entries[1].write_bytes(entries[1].read_bytes()[:20])                # truncated
    second, stats = build(two_blocks())
    assert stats["cache_corrupt"] == 2 and stats["cache_misses"] == 2 and stats["compiled"] == 2
    np.testing.assert_array_equal(second.run(feeds())["y"], first.run(feeds())["y"])
    _, again = build(two_blocks())  # rewritten, valid
    assert again["cache_misses"] == 0 and again["cache_corrupt"] == 0


def test_the_option_turns_the_cache_off(cache_home):
    module, stats = build(two_blocks(), kernel_cache=False)
    assert "cache_hits" not in stats and stats["compiled"] == stats["units"]
    assert not cache_home.exists() or not list(cache_home.rglob("*.o"))
    ref = compiler.compile(two_blocks(), "ref").run(feeds())["y"]
    np.testing.assert_allclose(module.run(feeds())["y"], ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="kernel_cache"):
        get_backend("cpu", {"kernel_cache": "maybe"})


def lowered_two_blocks(second_kernel: int = 3):
    backend = get_backend("cpu")
    g = compiler.build(two_blocks(second_kernel), "ref", passes="fold-constants,dce").graph
    PassManager(backend.default_pipeline).run(g, PassContext(target=backend.target_info, backend=backend))
    return lower(g, KernelBuilder(backend.target_info, g.name)), backend


def test_identical_blocks_compile_one_function(cache_home):
    lowered, _ = lowered_two_blocks(3)
    convs = [k for k in lowered.kernels if "Conv" in k.label]
    assert len(convs) == 2
    assert convs[0].name == convs[1].name and convs[0].name.startswith(KERNEL_PREFIX)
    assert convs[0].buffers != convs[1].buffers          # each call still gets its own tensors
    assert len(lowered.functions) == len({k.name for k in lowered.kernels}) < len(lowered.kernels)
    text = lowered.ir_text()
    assert text.count(f'define void @"{convs[0].name}"') == 1
    other, _ = lowered_two_blocks(5)
    assert len(other.functions) == len(other.kernels)   # different convolutions stay apart
    _, stats = build(two_blocks(3))
    assert stats["functions"] < stats["kernels"]


def test_parallel_compile_gives_the_same_objects_as_serial(cache_home):
    lowered, backend = lowered_two_blocks(5)
    machine = machine_of(backend.target_info)
    serial, s_stats = compile_units(lowered.units(), machine, None, jobs=1)
    parallel, p_stats = compile_units(lowered.units(), machine, None, jobs=2, parallel_min_bytes=0)
    assert s_stats["workers"] == 1 and p_stats["workers"] == 2
    assert parallel == serial
    # Streaming: the lowering hands each function to the workers as soon as it is generated.
    from backends.cpu.executable import UnitCompiler, build_executable
    uc = UnitCompiler(machine, None, jobs=2, parallel_min_bytes=0)
    g = compiler.build(two_blocks(5), "ref", passes="fold-constants,dce").graph
    PassManager(backend.default_pipeline).run(g, PassContext(target=backend.target_info, backend=backend))
    streamed = lower(g, KernelBuilder(backend.target_info, g.name), sink=uc.add)
    exe = build_executable(streamed, backend.target_info, compiler=uc)
    assert exe.description["build"]["workers"] == 2 and exe.objects == serial
    a, _ = build(two_blocks(5), kernel_cache=False, jobs=1)
    b, _ = build(two_blocks(5), kernel_cache=False, jobs=2)
    np.testing.assert_array_equal(a.run(feeds())["y"], b.run(feeds())["y"])


def test_keys_follow_text_and_machine_and_trim_drops_the_oldest(tmp_path):
    m = ("x86_64-unknown-linux-gnu", "x86-64", "", 3, "pic")
    assert kernel_key("a", m) != kernel_key("b", m)
    assert kernel_key("a", m) != kernel_key("a", m[:3] + (2, "pic"))
    assert kernel_key("a", m) != kernel_key("a", (m[0], "znver4") + m[2:])
    cache = KernelCache(tmp_path, max_bytes=3000)
    import os
    for i in range(5):
        cache.put(f"{i:02d}" + "k" * 30, bytes([i]) * 1000)
        os.utime(cache.path(f"{i:02d}" + "k" * 30), (1000 + i, 1000 + i))
    assert cache.trim(force=True) >= 3 and cache.size() <= 2400
    assert cache.get("04" + "k" * 30) == bytes([4]) * 1000   # the newest stays
    assert cache.get("00" + "k" * 30) is None


def test_time_passes_has_codegen_and_llvm_rows(cache_home):
    module, _ = build(two_blocks())
    rows = module.executable.build_timings()
    assert [name.split()[0] for name, _ in rows] == ["codegen", "llvm"]
    report = Timing().report(extra=rows)
    assert "codegen (" in report and "llvm (" in report and "total" in report


def test_cli_time_passes_reports_codegen_and_llvm(cache_home, tmp_path, capsys):
    from compiler.cli import main
    path = tmp_path / "two_blocks.onnx"
    path.write_bytes(two_blocks().SerializeToString())
    assert main(["build", str(path), "--target", "cpu", "-o", str(tmp_path / "out"), "--time-passes",
                 "--option", "jobs=1"]) == 0
    err = capsys.readouterr().err
    assert "plan-memory" in err and "codegen (" in err and "llvm (" in err and "distinct" in err
    assert main(["build", str(path), "--target", "cpu", "-o", str(tmp_path / "out"), "--time-passes"]) == 0
    assert "0 compiled" in capsys.readouterr().err  # all from the cache


# ------------------------------------------------------------------ the build cache
@pytest.fixture
def build_cache_on(tmp_path, monkeypatch):
    """The build cache on (the suite turns it off), in a folder of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NNC_BUILD_CACHE", "1")
    return tmp_path / "cache" / "nncompiler" / "builds"


def _cli_build(model_path, out, *extra):
    from compiler.cli import main
    return main(["build", str(model_path), "--target", "cpu", "-o", str(out), *extra])


def test_rebuild_of_an_unchanged_model_comes_from_the_build_cache(build_cache_on, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(two_blocks().SerializeToString())
    assert _cli_build(path, tmp_path / "a") == 0
    assert "from the build cache" not in capsys.readouterr().err
    assert len(list(build_cache_on.iterdir())) == 1
    assert _cli_build(path, tmp_path / "b") == 0
    assert "from the build cache" in capsys.readouterr().err
    a, b = compiler.load(tmp_path / "a"), compiler.load(tmp_path / "b")
    np.testing.assert_array_equal(a.run(feeds())["y"], b.run(feeds())["y"])
    assert b.manifest["model"]["source"] == str(path)
    # A changed model, or another option, is another build.
    path.write_bytes(two_blocks(seed=2).SerializeToString())
    assert _cli_build(path, tmp_path / "c") == 0
    assert _cli_build(path, tmp_path / "d", "--option", "threads=1") == 0
    assert "from the build cache" not in capsys.readouterr().err
    assert len(list(build_cache_on.iterdir())) == 3


def test_a_damaged_build_cache_entry_is_rebuilt(build_cache_on, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(two_blocks().SerializeToString())
    assert _cli_build(path, tmp_path / "a") == 0
    (entry,) = build_cache_on.iterdir()
    weights = entry / "model_weights.bin"
    data = weights.read_bytes()
    weights.unlink()  # the output's copy is a hard link: replace, do not modify, the cache's one
    weights.write_bytes(data[: len(data) // 2])
    assert _cli_build(path, tmp_path / "b") == 0
    assert "from the build cache" not in capsys.readouterr().err
    np.testing.assert_array_equal(compiler.load(tmp_path / "b").run(feeds())["y"],
                                  compiler.load(tmp_path / "a").run(feeds())["y"])


def test_builds_that_time_or_print_are_not_cached(build_cache_on, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(two_blocks().SerializeToString())
    assert _cli_build(path, tmp_path / "a", "--time-passes") == 0
    assert _cli_build(path, tmp_path / "b", "--no-build-cache") == 0
    assert not build_cache_on.exists() or not list(build_cache_on.iterdir())
