"""MetaSchedule tuning on the tvm target (device=llvm): budget, database reuse, RPC tracker, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from onnx import helper as H

import compiler
from compiler.driver import build
from ir.errors import CompilerError

from .helpers import model, rand


def _mlp():
    return model([H.make_node("MatMul", ["x", "w"], ["y"]), H.make_node("Add", ["y", "b"], ["z"]),
                  H.make_node("Relu", ["z"], ["out"])],
                 {"x": (16, 32)}, ["out"], weights={"w": rand(32, 32, seed=1), "b": rand(32, seed=2)})


def _description(result) -> dict:
    return result.module.executable.description


def _check_against_reference(result, proto) -> None:
    x = rand(16, 32)
    got = result.module.run({"x": x})["out"]
    want = compiler.compile(proto, target="ref").run({"x": x})["out"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_tuning_errors_are_clear(tmp_path):
    proto = _mlp()
    with pytest.raises(CompilerError, match="go together"):
        build(proto, "tvm", options={"device": "llvm"}, tune=True, rpc_tracker="127.0.0.1:1")
    with pytest.raises(CompilerError, match="only used to measure"):
        build(proto, "tvm", options={"device": "llvm"}, rpc_tracker="127.0.0.1:1", rpc_key="k")
    with pytest.raises(CompilerError, match="HOST:PORT"):
        build(proto, "tvm", options={"device": "llvm"}, tune=True, rpc_tracker="nohost", rpc_key="k")
    with pytest.raises(CompilerError, match="budget must be positive"):
        build(proto, "tvm", options={"device": "llvm"}, tune=True, tune_budget=0, tuning_db=tmp_path / "db")
    with pytest.raises(CompilerError, match="needs a target that tunes with TVM"):
        build(proto, "cpu", tune=True, rpc_tracker="127.0.0.1:1", rpc_key="k")
    from backends.tvm.devices import gpu_present
    if not gpu_present():  # no GPU to time CUDA candidates on, and no tracker: refused, not faked
        with pytest.raises(CompilerError, match="none is here"):
            build(proto, "tvm", options={"device": "cuda"}, tune=True, tuning_db=tmp_path / "db")


def test_unreachable_tracker_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CompilerError, match="cannot reach the RPC tracker"):
        build(_mlp(), "tvm", options={"device": "llvm"}, tune=True, tune_budget=5, tuning_db=tmp_path / "db",
              rpc_tracker=f"127.0.0.1:{port}", rpc_key="nnc-test")


def test_an_empty_database_changes_nothing(tmp_path):
    result = build(_mlp(), "tvm", options={"device": "llvm"}, tuning_db=tmp_path / "db")
    assert _description(result)["tuned_kernels"] == {}
    _check_against_reference(result, _mlp())


@pytest.mark.slow
def test_tune_then_reuse_the_database(tmp_path):
    """A tuned build records schedules; a second build with the same database tunes nothing and builds
    the same tuned kernels, with or without --tune."""
    proto, db = _mlp(), tmp_path / "db"
    first = build(proto, "tvm", options={"device": "llvm"}, tune=True, tune_budget=3, tuning_db=db)
    d1 = _description(first)
    assert d1["tuning"]["kernels_tuned"] == 1 and d1["tuning"]["trials"] >= 1
    assert d1["tuning"]["failed"] < d1["tuning"]["trials"]
    assert len(d1["tuned_kernels"]) == 1
    assert (db / "database_tuning_record.json").stat().st_size > 0
    _check_against_reference(first, proto)
    records = (db / "database_tuning_record.json").read_text()
    again = build(proto, "tvm", options={"device": "llvm"}, tune=True, tune_budget=3, tuning_db=db)
    d2 = _description(again)
    assert d2["tuning"]["kernels_tuned"] == 0 and d2["tuning"]["trials"] == 0
    assert d2["tuned_kernels"] == d1["tuned_kernels"]
    assert (db / "database_tuning_record.json").read_text() == records  # no new trials
    reuse = build(proto, "tvm", options={"device": "llvm"}, tuning_db=db)
    assert "tuning" not in _description(reuse) and _description(reuse)["tuned_kernels"] == d1["tuned_kernels"]
    _check_against_reference(reuse, proto)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_key(port: int, key: str, seconds: float, procs: list) -> None:
    from tvm import rpc
    deadline = time.time() + seconds
    while time.time() < deadline:
        dead = [p.args[2] for p in procs if p.poll() is not None]
        assert not dead, f"{dead} exited"
        try:
            if any(key in str(s.get("key", "")) for s in rpc.connect_tracker("127.0.0.1", port).summary()["server_info"]):
                return
        except Exception:  # noqa: BLE001 - the tracker is still starting
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no RPC server registered under {key!r} after {seconds} s")


@pytest.mark.slow
def test_tuning_through_an_rpc_tracker(tmp_path):
    """A tracker and a server on localhost (TVM's own); candidates are timed through them."""
    pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado (pip install tornado)")
    port, key = _free_port(), "nnc-test"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                               "--port", str(port), "--port-end", str(port + 1), "--silent"], env=env)]
    try:
        time.sleep(1)
        procs.append(subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
                                       "--tracker", f"127.0.0.1:{port}", "--key", key, "--silent"], env=env))
        _wait_for_key(port, key, 90, procs)
        with pytest.raises(CompilerError, match="no device registered under this key"):
            build(_mlp(), "tvm", options={"device": "llvm"}, tune=True, tune_budget=3,
                  tuning_db=tmp_path / "db0", rpc_tracker=f"127.0.0.1:{port}", rpc_key="other")
        proto = _mlp()
        result = build(proto, "tvm", options={"device": "llvm"}, tune=True, tune_budget=3, tuning_db=tmp_path / "db",
                       rpc_tracker=f"127.0.0.1:{port}", rpc_key=key)
        d = _description(result)
        assert d["tuning"]["rpc_tracker"] == f"127.0.0.1:{port}" and d["tuning"]["trials"] >= 1
        assert d["tuning"]["failed"] < d["tuning"]["trials"] and len(d["tuned_kernels"]) == 1
        _check_against_reference(result, proto)
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
