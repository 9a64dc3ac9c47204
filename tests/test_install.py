"""The package installs (not editable) into a fresh venv and works from there.

A venv that sees this environment's packages (numpy, onnx, llvmlite, ...,
and setuptools/wheel for the build) gets ``pip install --no-deps
--no-build-isolation`` of a clean copy of the repository; then, from another
folder, its ``python -m compiler`` and ``nncompiler`` build and run the
digits CNN for the cpu target.  The modules must come from the venv's
site-packages: neither the repository nor a development (editable) install
may shadow them.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "frontends", "ir", "passes", "backends", "runtime")
MODELS = ROOT / "examples" / "models"


def _run(cmd: list, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited with {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, site-packages, a work folder, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("install")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               XDG_CACHE_HOME=str(tmp / "cache"))  # a fresh cache: the C runtime builds from the installed sources
    # Build from a clean copy: an in-tree build would leave build/ and *.egg-info in the
    # repository, and a stale build/lib could put deleted modules into the wheel.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "out", ".venv", "venv"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], tmp, env)
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        tmp, env).stdout.strip())
    if sys.prefix != sys.base_prefix:
        # The tests run in a venv themselves: --system-site-packages sees the base interpreter
        # only, so list this environment's site-packages too (after the new venv's own).
        (purelib / "_test_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", src],
               tmp, env, timeout=300)
    assert "Successfully installed nncompiler" in pip.stdout, pip.stdout
    work = tmp / "work"
    work.mkdir()
    return python, purelib, work, env


def test_the_installed_modules_are_imported(installed):
    python, purelib, work, env = installed
    out = _run([python, "-c", f"import {', '.join(PACKAGES)}; "
                f"print('\\n'.join(m.__file__ for m in ({', '.join(PACKAGES)})))"], work, env).stdout
    files = [Path(line) for line in out.split()]
    assert len(files) == len(PACKAGES)
    for pkg, f in zip(PACKAGES, files):
        assert f == purelib / pkg / "__init__.py", f"{pkg} imported from {f}, not from {purelib}"


def test_the_wheel_holds_every_module_and_the_c_runtime(installed):
    _, purelib, _, _ = installed
    expected = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "runtime" / "c").iterdir() if p.is_file()}
    expected |= {p.relative_to(ROOT).as_posix() for ext in ("c", "h") for p in (ROOT / "backends").rglob(f"*.{ext}")}
    assert "runtime/c/nnc_runtime.c" in expected and "runtime/c/nnc_runtime.h" in expected
    installed_files = {p.relative_to(purelib).as_posix() for pkg in PACKAGES for p in (purelib / pkg).rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts}
    assert not expected - installed_files, f"missing from the wheel: {sorted(expected - installed_files)}"


def test_cli_help_and_version(installed):
    python, _, work, env = installed
    helped = _run([python, "-m", "compiler", "--help"], work, env).stdout
    for command in ("inspect", "build", "run", "bench", "passes", "ops"):
        assert command in helped
    from compiler.version import __version__
    script = python.parent / "nncompiler"
    assert script.exists(), "the nncompiler console script was not installed"
    shown = _run([script, "--version"], work, env)
    assert __version__ in shown.stdout + shown.stderr


def test_build_and_run_the_digits_model(installed):
    python, _, work, env = installed
    built = _run([python, "-m", "compiler", "build", MODELS / "digits_cnn.onnx", "--target", "cpu", "-o", "out"],
                 work, env, timeout=300)
    assert "for target cpu" in built.stderr + built.stdout
    assert (work / "out" / "manifest.json").exists()
    ran = _run([python, "-m", "compiler", "run", "out", "--inputs", MODELS / "digits_samples.npz"],
               work, env, timeout=300).stdout
    assert "logits: float32[16, 10]" in ran
    # The installed compiler's answers are the right digits (the labels shipped with the model).
    import numpy as np
    labels = np.load(MODELS / "digits_labels.npy")
    shown = ran.split("argmax per row: [", 1)[1].split("]", 1)[0]
    assert [int(v) for v in shown.split(",")] == labels[:8].tolist()
    # The C runtime was compiled from the installed sources into the fresh cache.
    assert list((Path(env["XDG_CACHE_HOME"]) / "nncompiler").glob("libnnc_runtime-*.so"))
