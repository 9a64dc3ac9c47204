"""ONNX's backend suite on ``--target tvm --option device=llvm``: the cases the cpu target does not refuse.

A developer tool beside the pytest suite (it takes minutes):

    python -m tests.tvm.onnx_suite_tvm [--kind node --kind simple ...] [-k REGEX] [--json out.json]

Every case the cpu target does not refuse (``tests/onnx_cpu_unsupported.py``;
a few of them fail on cpu and ref too: ai.onnx.ml and training ops, random
generators) is compiled for tvm on the host and compared with ONNX's
expected outputs; the summary counts passes, wrong results, and refusals
with their reasons.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from collections import Counter

import numpy as np

from tests.onnx_cpu_unsupported import UNSUPPORTED
from tests.onnx_suite import KINDS, compare_outputs, iter_cases


def run_case(case) -> tuple[str, str]:
    from compiler.onnx_backend import Backend
    from ir.errors import CompilerError
    try:
        rep = Backend.prepare(case.model, target="tvm", options={"device": "llvm"})
        for inputs, expected in case.data_sets:
            inputs = [x if isinstance(x, (list, type(None))) else np.asarray(x) for x in inputs]
            compare_outputs(expected, list(rep.run(inputs)), case.rtol, case.atol)
    except AssertionError as exc:
        return "fail", next((ln for ln in str(exc).splitlines() if ln.strip()), "")[:200]
    except CompilerError as exc:
        return "refused", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    except Exception as exc:  # noqa: BLE001 - a crash is reported, not raised
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return "error", f"{type(exc).__name__}: {str(exc)[:200]} [{tb.filename.split('/')[-1]}:{tb.lineno}]"
    return "pass", ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", "--pattern", default="")
    ap.add_argument("--kind", action="append", choices=KINDS)
    ap.add_argument("--json", help="write every case's status and message here")
    args = ap.parse_args(argv)
    results: dict[str, tuple[str, str]] = {}
    t0 = time.time()
    for case in iter_cases(tuple(args.kind or ["node"]), args.pattern):
        if case.name in UNSUPPORTED:
            continue
        results[case.name] = run_case(case)
        status, msg = results[case.name]
        if status != "pass":
            print(f"{status:7} {case.name}  {msg[:200]}", flush=True)
    counts = Counter(s for s, _ in results.values())
    print(f"\n{counts['pass']} of the {len(results)} cases the cpu target does not refuse pass on tvm (llvm); "
          f"{counts['fail']} wrong, {counts['refused']} refused, {counts['error']} crashed "
          f"({time.time() - t0:.0f} s)")
    reasons = Counter(re.sub(r"'[^']*'|\d+", "_", m)[:110] for s, m in results.values() if s != "pass")
    for r, n in reasons.most_common(15):
        print(f"  {n:4}  {r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
