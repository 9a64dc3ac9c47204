"""Several threads may call ``run`` on one module at once.

A cpu module of a model with a symbolic batch compiles one static version
per batch size on first use (``compiler.specialize.SpecializingExecutable``);
its cache is shared by every caller.  The check runs in a fresh interpreter so
nothing is compiled or cached before the threads start.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r'''
import sys, threading, traceback
import numpy as np
import compiler

m = compiler.compile("examples/models/digits_cnn.onnx", target="cpu")
ref = compiler.compile("examples/models/digits_cnn.onnx", target="ref")
assert m.executable.compilations == 0 and m.inputs[0].shape[0] == "N"
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
print(f"ok {len(ok)} compilations {m.executable.compilations}")
sys.exit(0 if len(ok) == len(batches) and not errors else 1)
'''


def test_eight_threads_run_one_specializing_cpu_module():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every thread got the right answer, and each batch size was compiled exactly once.
    assert "ok 8 compilations 3" in proc.stdout, proc.stdout
