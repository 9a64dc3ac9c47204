"""The runtime thread pool's spin-then-sleep wake-up (runtime/c/nnc_runtime.c).

Workers spin for a while after a job, then sleep; the caller opening a job
wakes only sleeping workers.  These tests drive both paths on a real model
(no spin at all: every job finds the workers asleep; a long spin with pauses
longer than it between calls: they fall asleep in between) and check the
results, and that pools with sleeping workers start and stop cleanly.
"""

from __future__ import annotations

import ctypes
import time

import numpy as np

import compiler
from runtime.native import ThreadPool, runtime_library
from tests.cpu.test_attention import bert_style


def _lib():
    lib = runtime_library()
    lib.nnc_pool_set_spin_ns.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.nnc_pool_set_spin_ns.restype = None
    return lib


def test_results_are_right_whether_workers_spin_or_sleep():
    model = bert_style(24, 32, 2)  # a few kernels per call, several tasks each
    cpu = compiler.compile(model, target="cpu", options={"threads": 3})
    ref = compiler.compile(model, target="ref")
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 24, 32)).astype(np.float32),
             "keep": (rng.random((2, 24)) < 0.8).astype(np.float32)}
    want = ref.run(feeds)["y"]
    pool = cpu.executable.pool
    lib = _lib()
    for spin_ns, pause in ((0, 0.0), (0, 0.002), (200_000, 0.005), (2_000_000, 0.0)):
        lib.nnc_pool_set_spin_ns(pool.handle, spin_ns)
        for _ in range(20):
            np.testing.assert_allclose(cpu.run(feeds)["y"], want, rtol=1e-4, atol=2e-5)
            if pause:
                time.sleep(pause)


def test_spin_setting_and_pool_lifecycle():
    lib = _lib()
    for threads in (1, 2, 4):
        pool = ThreadPool(threads)
        lib.nnc_pool_set_spin_ns(pool.handle, 0)
        lib.nnc_pool_set_spin_ns(pool.handle, -5)   # negative: no spin, not an error
        lib.nnc_pool_set_spin_ns(None, 1000)        # a NULL pool is ignored
        assert pool.threads == threads
        pool.close()  # workers asleep (spin 0) must still be joined promptly
