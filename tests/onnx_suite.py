"""Run ONNX's backend test cases through our pipeline and report what passes.

A developer tool beside the pytest suite (which uses ``onnx.backend.test.BackendTest``
with the explicit exclude list in ``tests/test_onnx_backend.py``)::

    python -m tests.onnx_suite -k "conv|pool"              # node tests matching a regex
    python -m tests.onnx_suite --kind simple --kind pytorch-converted -v
    python -m tests.onnx_suite --target cpu --failures-only

Each case is compiled with ``compiler.onnx_backend.Backend`` and compared with
the expected outputs as ``onnx.backend.test`` does (same rtol/atol).

For a target that generates kernels (cpu), a passing case counts only if at
least one kernel of it ran natively; a case whose whole graph folded into
constants at specialization (no kernel at all) passes but is counted apart as
"folded away", since it proves nothing about the target's code::

    N passed natively, F folded away (no kernel), R refused, W wrong, E errors of T
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import re
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.loader import load_model_tests
from onnx.backend.test.runner import Runner

KINDS = ("node", "simple", "pytorch-converted", "pytorch-operator", "real")
ONNX_DIR = os.path.dirname(onnx.__file__)


@dataclass
class Case:
    kind: str
    name: str
    model: onnx.ModelProto
    data_sets: list  # [(inputs, expected_outputs)]
    rtol: float
    atol: float


def _load_pb(path: str, type_proto: onnx.TypeProto):
    with open(path, "rb") as f:
        data = f.read()
    if type_proto.HasField("tensor_type"):
        t = onnx.TensorProto()
        t.ParseFromString(data)
        return numpy_helper.to_array(t)
    if type_proto.HasField("sequence_type"):
        s = onnx.SequenceProto()
        s.ParseFromString(data)
        return numpy_helper.to_list(s)
    if type_proto.HasField("optional_type"):
        o = onnx.OptionalProto()
        o.ParseFromString(data)
        return numpy_helper.to_optional(o)
    raise ValueError(f"unsupported test data type in {path}")


def _light_case(tc) -> Case:
    path = os.path.normpath(os.path.join(ONNX_DIR, "..", tc.url))
    model = onnx.load(path)
    inits = {i.name for i in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        inputs.append(Runner.generate_dummy_data(vi, seed=0, name=tc.model_name, random=False))
    prefix = os.path.splitext(path)[0]
    outputs = [_load_pb(f"{prefix}_output_{i}.pb", o.type) for i, o in enumerate(model.graph.output)]
    return Case("real", tc.name, model, [(inputs, outputs)], tc.rtol, tc.atol)


def _normalize(x):
    """Node cases hold some values as TensorProtos; convert them as onnx's runner does."""
    return numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else x


def iter_cases(kinds=KINDS, pattern: str = "") -> Iterator[Case]:
    rx = re.compile(pattern) if pattern else None
    for kind in kinds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tests = load_model_tests(kind=kind)
        for tc in sorted(tests, key=lambda t: t.name):
            if rx and not rx.search(tc.name):
                continue
            if kind == "node":
                sets = [([_normalize(x) for x in i], [_normalize(x) for x in o]) for i, o in tc.data_sets]
                yield Case(kind, tc.name, tc.model, sets, tc.rtol, tc.atol)
            elif kind == "real":
                yield _light_case(tc)
            else:
                model = onnx.load(os.path.join(tc.model_dir, "model.onnx"))
                sets = []
                for d in sorted(glob.glob(os.path.join(tc.model_dir, "test_data_set*"))):
                    n_in = len(glob.glob(os.path.join(d, "input_*.pb")))
                    n_out = len(glob.glob(os.path.join(d, "output_*.pb")))
                    ins = [_load_pb(os.path.join(d, f"input_{i}.pb"), model.graph.input[i].type)
                           for i in range(n_in)]
                    outs = [_load_pb(os.path.join(d, f"output_{i}.pb"), model.graph.output[i].type)
                            for i in range(n_out)]
                    sets.append((ins, outs))
                yield Case(kind, tc.name, model, sets, tc.rtol, tc.atol)


def compare_outputs(expected: list, outputs: list, rtol: float, atol: float) -> None:
    """onnx's comparison, but sequences and optionals element by element.

    (``Runner.assert_similar_outputs`` crashes on sequences of 0-d arrays.)
    """
    assert len(outputs) == len(expected), f"{len(outputs)} outputs, expected {len(expected)}"
    for e, o in zip(expected, outputs):
        if isinstance(e, list) or e is None:
            if e is None:
                assert o is None, f"expected an absent optional, got {type(o).__name__}"
                continue
            assert isinstance(o, list) and len(o) == len(e), "sequence length differs"
            compare_outputs(e, o, rtol, atol)
        else:
            Runner.assert_similar_outputs([e], [o], rtol=rtol, atol=atol)


def kernel_count(executable) -> Optional[int]:
    """Kernels the executable (every specialization it compiled) generated; None: not a kernel target."""
    specializations = getattr(executable, "cache", None)
    if specializations is not None:
        counts = [kernel_count(e) for e in specializations.values()]
        known = [c for c in counts if c is not None]
        return sum(known) if known else (None if counts else 0)
    description = getattr(executable, "description", None)
    if isinstance(description, dict) and "kernels" in description:
        k = description["kernels"]  # cpu: the list of kernels; tvm: how many calls
        return k if isinstance(k, int) else len(k)
    return None


def run_case(case: Case, target: str = "ref", options: Optional[dict] = None) -> tuple[str, str]:
    """('pass' | 'folded' | 'fail' | 'error', message) for one case.

    'folded': it passed, but no kernel ran (the graph folded into constants).
    """
    from compiler.onnx_backend import Backend
    try:
        rep = Backend.prepare(case.model, target=target, **({"options": options} if options else {}))
        for inputs, expected in case.data_sets:
            inputs = [x if isinstance(x, (list, type(None))) else np.asarray(x) for x in inputs]
            outputs = rep.run(inputs)
            compare_outputs(expected, list(outputs), case.rtol, case.atol)
        if kernel_count(rep.module.executable) == 0:
            return "folded", "no kernel: the graph folded into constants"
    except AssertionError as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        return "fail", first[:200]
    except Exception as exc:  # noqa: BLE001 - we report every kind of failure
        from ir.errors import CompilerError
        if isinstance(exc, CompilerError):
            return "error", f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return "error", f"{type(exc).__name__}: {str(exc)[:160]} [{os.path.basename(tb.filename)}:{tb.lineno}]"
    return "pass", ""


def _reason(msg: str) -> str:
    """The backend's own words: which op kinds it cannot run and why."""
    text = re.sub(r"^UnsupportedOpError: ", "", msg)
    text = re.sub(r"; nodes: [^)]*\)", ")", text)
    return re.sub(r" \(hint: .*$", "", text)


def _write_unsupported(path: str, target: str, refused: dict[str, str]) -> None:
    lines = [f'"""Cases of ONNX\'s backend suite the {target} target refuses, with its reason (generated).',
             "",
             f"Regenerate with: python -m tests.onnx_suite --target {target} --kind node --kind simple \\",
             f"    --kind pytorch-converted --kind pytorch-operator --kind real --write-unsupported {path}",
             "Every case here passes on the reference target; the target says which op it cannot run.",
             '"""', "", "UNSUPPORTED = {"]
    for name in sorted(refused):
        lines.append(f"    {name!r}: {refused[name]!r},")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


@functools.lru_cache(maxsize=1)
def _excluded() -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing it builds onnx's test cases, which warn
        from tests.test_onnx_backend import EXCLUDED
    return EXCLUDED


# Cases one target excludes: its (exact or ONNX-defined) computation misses the expected data by
# more than the suite's tolerance, and onnxruntime fails them too.  Patterns match "<case>_cpu",
# as onnx's backend test names them (tests/test_onnx_backend_cpu.py excludes the same).
TARGET_EXCLUDED: dict[str, dict[str, str]] = {
    "cpu": {
        # The expected data holds numpy's float32 FFT noise (1.9e-7) where the exact value is 0,
        # past atol=1e-7; the cpu kernel sums in float64 and gives the exact 0.
        r"^test_dft_inverse(_opset19)?_cpu$": "float32 FFT rounding noise in the expected data",
    },
    "tvm": {  # the same: its DFT sums in float64 too
        r"^test_dft_inverse(_opset19)?_cpu$": "float32 FFT rounding noise in the expected data",
    },
}


def excluded_reason(name: str, target: str = "") -> str:
    """Why the case is excluded for every target (``tests/test_onnx_backend.py``) or for ``target``
    (``TARGET_EXCLUDED``), or ''."""
    patterns = {**_excluded(), **TARGET_EXCLUDED.get(target, {})}
    return next((why for rx, why in patterns.items() if re.search(rx, f"{name}_cpu")), "")


def summary(counts: Counter) -> str:
    """The counting rule's line: native passes, folded passes, refusals, wrong results, other errors."""
    return (f"{counts['pass']} passed natively, {counts['folded']} folded away (no kernel), "
            f"{counts['refused']} refused, {counts['fail']} wrong, {counts['error']} errors, "
            f"{counts['excluded']} excluded (expected data no target or this target follows: "
            f"tests/test_onnx_backend.py, TARGET_EXCLUDED)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", "--pattern", default="", help="regex on test names")
    ap.add_argument("--kind", action="append", choices=KINDS, help="test kinds (default: node)")
    ap.add_argument("--target", default="ref")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a target option, e.g. device=llvm for tvm")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    ap.add_argument("--failures-only", action="store_true", help="print only failing cases")
    ap.add_argument("--write-unsupported", metavar="FILE",
                    help="write the cases the target refuses (test name -> reason) as a Python module")
    args = ap.parse_args(argv)
    counts: Counter = Counter()
    reasons: Counter = Counter()
    refused: dict[str, str] = {}
    t0 = time.time()
    for case in iter_cases(tuple(args.kind or ["node"]), args.pattern):
        status, msg = run_case(case, args.target, dict(o.split("=", 1) for o in args.option))
        if status in ("fail", "error") and excluded_reason(case.name, args.target):
            status, msg = "excluded", f"{excluded_reason(case.name, args.target)} ({msg})"
        elif status == "error" and msg.startswith("UnsupportedOpError"):
            if run_case(case, "ref")[0] == "pass":
                refused[case.name] = _reason(msg)
            status = "refused"
        counts[status] += 1
        if status not in ("pass", "folded", "excluded"):
            reasons[re.sub(r"'[^']*'|\d+", "_", msg)[:90]] += 1
        if args.verbose or status not in ("pass", "folded"):
            print(f"{status:7} {case.name}  {msg[:240]}")
    if args.write_unsupported:
        _write_unsupported(args.write_unsupported, args.target, refused)
        print(f"wrote {len(refused)} refused cases to {args.write_unsupported}")
    total = sum(counts.values())
    print(f"\n{summary(counts)} of {total} ({time.time() - t0:.0f} s)")
    if reasons and not args.verbose:
        print("most common problems:")
        for r, n in reasons.most_common(12):
            print(f"  {n:4}  {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
