"""The target contract: validated options, declared capabilities, a target as one package,
target-owned schedules, and cpu builds that depend on the TargetInfo, not on the host."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import backends
import compiler
from backends import base
from backends.base import Backend, BackendError, available_backends, get_backend
from compiler.cli import main
from ir import Graph, f32, run_graph, tensor
from ir.errors import UnsupportedOpError

PLUGINS = Path(__file__).resolve().parent / "plugins" / "example_target"


def _mlp() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("mlp")
    x = g.add_input("x", tensor(f32, (2, 8)))
    w = g.add_constant(rng.standard_normal((8, 4)).astype(np.float32), "w")
    y = g.add("Relu", g.add("MatMul", x, w))
    g.set_outputs([y])
    return g


@pytest.fixture
def example_target():
    """``tests/plugins/example_target/example`` found as if it were ``backends/example``."""
    backends.__path__.append(str(PLUGINS))
    try:
        yield
    finally:
        backends.__path__.remove(str(PLUGINS))
        base.unregister_backend("example")


# ------------------------------------------------------------------ options
def test_unknown_option_names_the_valid_ones():
    with pytest.raises(BackendError) as err:
        get_backend("cpu", {"threds": 2})
    text = str(err.value)
    assert "threds" in text and "threads (int)" in text and "isa (str)" in text


@pytest.mark.parametrize("key,value,expected", [("threads", "two", "int"), ("threads", -1, ">= 0"),
                                                ("isa", "sse9", "avx512"), ("c_array", "maybe", "bool")])
def test_ill_typed_options_are_errors(key, value, expected):
    with pytest.raises(BackendError) as err:
        get_backend("cpu", {key: value})
    assert key in str(err.value) and expected in str(err.value)


def test_options_arrive_typed():
    b = get_backend("cpu", {"threads": "2", "c_array": "true", "features": "avx2,fma"})
    assert b.config["threads"] == 2 and b.config["c_array"] is True
    assert b.config["features"] == ("avx2", "fma")
    assert b.given_options() == {"threads": 2, "c_array": True, "features": ("avx2", "fma")}


def test_cli_rejects_a_misspelled_option(capsys, tmp_path):
    model = Path(__file__).resolve().parents[1] / "examples" / "models" / "digits_cnn.onnx"
    assert main(["build", str(model), "-t", "cpu", "-o", str(tmp_path / "o"), "--option", "threds=2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown target option" in err[0] and "threads (int)" in err[0]


def test_threads_on_a_target_without_threads_is_refused():
    m = compiler.compile(_mlp(), target="ref")
    with pytest.raises(BackendError, match="does not run on worker threads"):
        m.benchmark(repeat=1, warmup=0, threads=2)


def test_threads_reach_specialized_cpu_modules():
    g = _mlp()
    g.inputs[0].type = tensor(f32, ("N", "M"))  # M has no value: one compilation per signature
    m = compiler.compile(g, target="cpu")
    m.benchmark({"x": np.ones((3, 8), np.float32)}, repeat=1, warmup=0, threads=1)
    (exe,) = m.executable.cache.values()
    assert exe.threads == 1


def test_threads_reach_runtime_batch_cpu_modules():
    g = _mlp()
    g.inputs[0].type = tensor(f32, ("N", 8))  # compiled once, the batch at run time
    m = compiler.compile(g, target="cpu", options={"threads": 2})
    m.benchmark({"x": np.ones((3, 8), np.float32)}, repeat=1, warmup=0, threads=1)
    assert m.executable.threads == 1


# --------------------------------------------------------- a target is a package
def test_a_target_is_one_package(example_target, tmp_path, capsys):
    assert "example" in available_backends()
    g = _mlp()
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    expected = run_graph(g, {"x": x})[0]
    m = compiler.compile(g, target="example", options={"scale": 2.0})
    np.testing.assert_allclose(m.run({"x": x})["y" if "y" in m.output_names else m.output_names[0]],
                               2.0 * expected, rtol=1e-6)
    m.save(tmp_path / "art")
    again = compiler.load(tmp_path / "art")
    np.testing.assert_allclose(again.run({"x": x})[again.output_names[0]], 2.0 * expected, rtol=1e-6)
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "example: an example target from the tests" in out and "--option scale: float" in out


def test_a_target_names_the_nodes_it_cannot_run(example_target):
    g = Graph("soft")
    x = g.add_input("x", tensor(f32, (2, 8)))
    g.set_outputs([g.add("Softmax", g.add("Relu", x))])
    with pytest.raises(UnsupportedOpError, match=r"Softmax \(the example target runs only"):
        compiler.compile(g, target="example")


def test_unknown_target_lists_the_targets():
    with pytest.raises(BackendError, match="wider than the instruction set"):
        compiler.compile(_mlp(), target="cpu", options={"isa": "avx2", "features": "avx2,fma,avx512f"})
    with pytest.raises(BackendError) as err:
        get_backend("nosuch")
    assert "cpu" in str(err.value) and "ref" in str(err.value)


def test_every_target_implements_the_whole_contract():
    for name in available_backends():
        cls = base.backend_class(name)
        assert issubclass(cls, Backend) and not cls.__abstractmethods__, name
        b = cls()
        assert b.target_info.name and isinstance(b.capabilities, base.Capabilities)


# ------------------------------------------------------------ cpu TargetInfo
def test_cpu_codegen_follows_the_target_isa():
    from backends.cpu.host import host_features
    if not host_features().get("avx512f"):
        pytest.skip("needs an AVX-512 host to compare with a narrower build")
    g = _mlp()
    x = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    wide = compiler.compile(g, target="cpu")
    narrow = compiler.compile(g, target="cpu", options={"isa": "avx2"})
    assert narrow.executable.target.isa == "avx2"
    assert not any(f.startswith("avx512") for f in narrow.executable.target.features)
    np.testing.assert_allclose(narrow.run({"x": x})["y" if "y" in narrow.output_names else narrow.output_names[0]],
                               wide.run({"x": x})[wide.output_names[0]], rtol=1e-5)


def test_a_build_for_another_cpu_needs_no_such_host(tmp_path):
    from backends.cpu.host import host_features
    vendor_specific = ("sse4a", "clzero", "rdpru", "mwaitx", "ptwrite", "waitpkg", "enqcmd", "hreset")
    lacking = [k for k in vendor_specific if host_features().get(k) is False]
    if not lacking:
        pytest.skip("this host has every vendor-specific feature tried")
    features = "sse2,sse4.2,avx,avx2,fma," + lacking[0]
    m = compiler.compile(_mlp(), target="cpu", options={"cpu": "x86-64-v3", "features": features})
    info = m.executable.target
    assert info.cpu_name == "x86-64-v3" and lacking[0] in info.features and info.isa == "avx2"
    m.save(tmp_path / "cross")  # the object file and C bundle need no such host
    assert (tmp_path / "cross" / "model.o").stat().st_size > 0
    with pytest.raises(BackendError, match=f"lacks {lacking[0]}"):
        m.run({"x": np.zeros((2, 8), np.float32)})
