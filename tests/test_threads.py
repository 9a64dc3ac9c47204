"""Several threads may call ``run`` on one module at once.

A cpu module of a model with a symbolic batch is compiled once for one
sample and takes the batch at run time: the threads share its arena (one
run at a time) and grow it.  A model whose other dimensions stay symbolic
compiles one static version per input signature on first use
(``compiler.specialize.SpecializingExecutable``); its cache is shared by
every caller.  The checks run in a fresh interpreter so nothing is compiled
or cached before the threads start.
"""

import pytest

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r'''
import sys, threading, traceback
import numpy as np
import compiler

SHAPES = {"input": SHAPE} if SHAPE else None
m = compiler.compile("examples/models/digits_cnn.onnx", target="cpu", input_shapes=SHAPES)
ref = compiler.compile("examples/models/digits_cnn.onnx", target="ref")
assert getattr(m.executable, "compilations", 0) == 0 and m.inputs[0].shape[0] == "N"
batches = [1, 2, 3, 1, 2, 3, 1, 2]  # eight threads, three signatures: each compiled by whichever comes first
rng = np.random.default_rng(0)
feeds = [rng.standard_normal((b, 1, 8, 8)).astype(np.float32) for b in batches]
expected = [ref.run({"input": x})["logits"] for x in feeds]
barrier = threading.Barrier(len(batches))
errors, ok = [], []


def work(i):
    try:
        barrier.wait()
        for _ in range(3):
            (y,) = m.run(None, {"input": feeds[i]})
            np.testing.assert_allclose(y, expected[i], rtol=1e-4, atol=1e-4)
        ok.append(i)
    except BaseException:
        errors.append(traceback.format_exc())


threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("\n".join(errors))
print(f"ok {len(ok)} compilations {getattr(m.executable, 'compilations', 'none')}")
sys.exit(0 if len(ok) == len(batches) and not errors else 1)
'''


@pytest.mark.parametrize("shape, compilations", [
    (None, "none"),                     # symbolic batch: compiled at build time, batch at run time
    (["N", 1, "H", "W"], "3"),          # H and W symbolic too: one compilation per batch size seen
], ids=["runtime-batch", "specializing"])
def test_eight_threads_run_one_cpu_module(shape, compilations):
    script = f"SHAPE = {shape!r}\n" + SCRIPT
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every thread got the right answer, and each signature was compiled exactly once.
    assert f"ok 8 compilations {compilations}" in proc.stdout, proc.stdout
