"""The command line: ``python -m compiler <command> ...``.

Every error the compiler raises on purpose (a ``CompilerError``) becomes one
line on stderr and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ir.errors import CompilerError, InputError

from .version import __version__

EPILOG = """examples:
  python -m compiler inspect model.onnx            summary, op counts, target coverage
  python -m compiler build model.onnx -o out/      compile (default target: ref)
  python -m compiler run out/ --inputs x.npz       run a compiled artifact
  python -m compiler bench out/                    time it
  python -m compiler passes                        list the optimization passes
  python -m compiler targets                       list the targets and their --option settings
  python -m compiler ops                           list the supported ops
"""


# ------------------------------------------------------------------ helpers
def _log(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _parse_shapes(items: Sequence[str]) -> dict[str, list]:
    """``name=1,3,224,224`` (``N`` or ``?`` keep a dim symbolic) -> {name: dims}."""
    shapes: dict[str, list] = {}
    for item in items or ():
        if "=" not in item:
            raise InputError("bad --input-shape", found=repr(item), expected="name=d0,d1,...")
        name, dims = item.rsplit("=", 1)
        try:
            shapes[name] = [int(d) if d.lstrip("-").isdigit() else (None if d == "?" else d)
                            for d in dims.split(",") if d]
        except ValueError:
            raise InputError("bad --input-shape", found=repr(item)) from None
    return shapes


def _parse_dims(items: Sequence[str]) -> dict[str, int]:
    """``seq=128`` -> {"seq": 128}."""
    dims: dict[str, int] = {}
    for item in items or ():
        name, _, value = item.partition("=")
        if not name or not value.isdigit():
            raise InputError("bad --dim", found=repr(item), expected="NAME=SIZE, e.g. seq=128")
        dims[name] = int(value)
    return dims


def _parse_options(items: Sequence[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise InputError("bad --option", found=repr(item), expected="key=value")
        k, v = item.split("=", 1)
        try:
            opts[k] = json.loads(v)
        except json.JSONDecodeError:
            opts[k] = v
    return opts


def _load_inputs(path: Optional[str], module, seed: int) -> dict[str, np.ndarray]:
    if path is None:
        return module.random_inputs(seed=seed)
    p = Path(path)
    if not p.exists():
        raise InputError("inputs file not found", subject=str(p))
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
            if len(module.input_names) != 1:
                raise InputError("a .npy file gives one input, but the model takes several",
                                 subject=str(p), expected=", ".join(module.input_names),
                                 hint="use an .npz with one array per input name")
            return {module.input_names[0]: arr}
        with np.load(p, allow_pickle=False) as data:
            feeds = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read inputs: {exc or type(exc).__name__}", subject=str(p),
                         expected="an .npz (one array per input name) or an .npy") from None
    if len(feeds) == 1 and len(module.input_names) == 1 and module.input_names[0] not in feeds:
        feeds = {module.input_names[0]: next(iter(feeds.values()))}
    return feeds


def _summarize(name: str, arr: np.ndarray) -> str:
    head = f"{name}: {arr.dtype}{list(arr.shape)}"
    if arr.size == 0 or arr.dtype == object:
        return head
    a = arr.astype(np.float64) if arr.dtype.kind in "biuf" or arr.dtype.kind == "V" else None
    if a is None:
        return head
    flat = a.ravel()
    preview = ", ".join(f"{v:.5g}" for v in flat[:6]) + (", ..." if flat.size > 6 else "")
    text = (f"{head}  min {flat.min():.5g}  max {flat.max():.5g}  mean {flat.mean():.5g}"
            f"  std {flat.std():.5g}\n    [{preview}]")
    if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind == "f":
        top = np.argmax(arr, axis=1)[:8]
        text += f"\n    argmax per row: {top.tolist()}{' ...' if arr.shape[0] > 8 else ''}"
    return text


def _load_module(path: str, args: argparse.Namespace):
    """An artifact folder, or an .onnx file compiled on the fly for ``--target``."""
    import compiler
    p = Path(path)
    if p.is_dir():
        return compiler.load(p)
    if p.suffix == ".onnx" or p.exists():
        return compiler.compile(p, target=getattr(args, "target", "ref") or "ref")
    from ir.errors import ArtifactError
    raise ArtifactError("no such artifact folder or model file", subject=str(p))


# ----------------------------------------------------------------- commands
def cmd_inspect(args: argparse.Namespace) -> int:
    from frontends.onnx import ImportOptions, import_model, load_model
    from ir.errors import UnsupportedOpError
    from ir.printer import print_graph

    proto = load_model(args.model)
    try:
        graph = import_model(proto, ImportOptions(input_shapes=_parse_shapes(args.input_shape)))
    except UnsupportedOpError as exc:
        # Still show what the model holds and which ops block the import.
        _print_onnx_coverage(args.model, proto, exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.passes or args.explain:
        from backends.base import get_backend
        from passes.manager import PassContext, PassManager
        from .explain import summarize
        backend = get_backend(args.target, _parse_options(args.option))
        before = len(graph.nodes)
        ctx = PassContext(target=backend.target_info, backend=backend)
        pm = PassManager(args.passes if args.passes is not None else backend.default_pipeline)
        pm.run(graph, ctx)
        if args.explain:
            print(f"pipeline ({args.target}): {pm.pipeline_text}")
            print(summarize(ctx.log, ctx.stats, before, len(graph.nodes), full=args.explain == "full"))
            return 0
    if args.ir:
        print(print_graph(graph, locations=args.locations))
        return 0
    _print_summary(args, graph)
    _print_target_coverage(args, graph)
    return 0


def _print_summary(args: argparse.Namespace, graph) -> None:
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in graph.meta.get("opset_imports", {}).items())
    print(f"model: {args.model}")
    print(f"  producer: {graph.meta.get('producer') or '?'}   opsets: {opsets}")
    print("inputs:")
    for v in graph.inputs:
        print(f"  {v.name}: {v.type}")
    print("outputs:")
    for v in graph.outputs:
        print(f"  {v.name}: {v.type}")
    n_params = sum(int(c.const.size) for c in graph.constants.values())
    n_bytes = sum(int(c.const.nbytes) for c in graph.constants.values())
    print(f"nodes: {len(graph.nodes)}   constants: {len(graph.constants)} "
          f"({n_params:,} elements, {n_bytes / 1e6:.2f} MB)")


def _print_target_coverage(args: argparse.Namespace, graph) -> None:
    """Op counts with, per target, how many of each op's nodes it can run (``--nodes``: per node)."""
    from backends.base import available_backends, get_backend
    targets = args.targets.split(",") if args.targets else available_backends()
    backends = {t: get_backend(t) for t in targets}
    verdicts = {t: {id(n): b.supports(n) for n in graph.nodes} for t, b in backends.items()}
    if args.nodes:
        print(f"{'node':<48}{'op':<24}" + "".join(f"{t:>10}" for t in targets))
        for n in graph.nodes:
            label = n.name or f"%{n.outputs[0].name}"
            print(f"{label[:47]:<48}{n.qualified_op:<24}"
                  + "".join(f"{'yes' if verdicts[t][id(n)].ok else 'no':>10}" for t in targets))
    counts = graph.op_counts()
    width = max([len(op) for op in counts] + [4])
    print("ops:" + " " * (width + 4) + "".join(f"{t:>10}" for t in targets))
    blocked: dict[str, list[str]] = {}
    for op, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        nodes = [n for n in graph.nodes if n.qualified_op == op]
        marks = []
        for t in targets:
            bad = [n for n in nodes if not verdicts[t][id(n)].ok]
            marks.append("yes" if not bad else "no" if len(bad) == len(nodes) else f"{len(nodes) - len(bad)}/{len(nodes)}")
            if bad:
                blocked.setdefault(t, []).append(f"{op} ({verdicts[t][id(bad[0])].reason})")
        print(f"  {op:<{width}} {count:>5}" + "".join(f"{m:>10}" for m in marks))
    for t, items in blocked.items():
        print(f"target {t} cannot run: " + "; ".join(items))


def _print_onnx_coverage(path: str, proto, exc) -> None:
    """Op table straight from the ONNX file, marking the ops the frontend cannot import."""
    missing = {(d, op) for d, op, _ in getattr(exc, "ops", {})}
    counts: dict[tuple[str, str], int] = {}
    for node in proto.graph.node:
        key = ("" if node.domain in ("", "ai.onnx") else node.domain, node.op_type)
        counts[key] = counts.get(key, 0) + 1
    print(f"model: {path}")
    print(f"nodes: {len(proto.graph.node)}")
    print("ops:                          import")
    for (domain, op), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        qual = f"{domain}.{op}" if domain else op
        print(f"  {qual:<28}{n:>5}   {'no' if (domain, op) in missing else 'yes'}")


def _build_options(args: argparse.Namespace) -> dict[str, Any]:
    """--option KEY=VALUE, plus the flags that are target options under another name."""
    options = _parse_options(args.option)
    if args.max_batch is not None:
        if args.max_batch < 1:
            raise InputError("--max-batch must be at least 1", found=str(args.max_batch))
        options["max_batch"] = args.max_batch
    return options


def cmd_build(args: argparse.Namespace) -> int:
    from runtime.artifact import check_output_directory

    from . import build_cache
    from .driver import build

    check_output_directory(args.output, args.force)  # before the build, not after minutes of it
    t0 = time.perf_counter()
    shapes, dims, options = _parse_shapes(args.input_shape), _parse_dims(args.dim), _build_options(args)
    key = None
    if _cacheable(args) and build_cache.enabled():
        settings = {"passes": args.passes, "input_shapes": shapes, "dims": dims, "options": options}
        key = build_cache.build_key(Path(args.model), args.target, settings)
        info = build_cache.fetch(key, Path(args.output), str(args.model))
        if info is not None:
            _log(args, f"built {args.model} for target {args.target} in {time.perf_counter() - t0:.2f} s "
                       f"-> {args.output}/ (from the build cache: nothing it depends on changed)")
            _report_build(args, info)
            return 0
    model = args.model
    if getattr(args, "quantize", None):  # --- quantization (compiler/quantize.py)
        from .quantize import quantize_for_build
        model = quantize_for_build(args)
    result = build(model, args.target, passes=args.passes,
                   print_ir_after=args.print_ir_after.split(",") if args.print_ir_after else (),
                   dump_ir_dir=args.dump_ir, input_shapes=shapes, dims=dims, options=options,
                   tune=args.tune, tune_budget=args.tune_budget, tuning_db=args.tuning_db,
                   rpc_tracker=args.rpc_tracker, rpc_key=args.rpc_key,
                   verify_each=True if args.verify_each else None)
    if getattr(args, "quantization_record", None):  # --- quantization: in the manifest
        result.manifest["quantization"] = args.quantization_record
    out = result.module.save(args.output, force=args.force)
    seconds = time.perf_counter() - t0
    if args.time_passes:
        print(result.pass_manager.timing.report(extra=result.module.executable.build_timings()),
              file=sys.stderr)
    if args.explain:
        print(result.explain(full=args.explain == "full"))
    info = {"passes": result.manifest["passes"], "nodes": len(result.graph.nodes),
            "shapes": result.shapes.summary() if result.shapes is not None else None}
    if key is not None:
        build_cache.store(key, out, info)
    _log(args, f"built {args.model} for target {args.target} in {seconds:.2f} s -> {out}/")
    _report_build(args, info)
    return 0


def _cacheable(args: argparse.Namespace) -> bool:
    """Builds that only write an artifact (no tuning, IR printing, timing or explaining) and read a file."""
    return (Path(args.model).is_file() and not args.no_build_cache and not getattr(args, "quantize", None) and not args.tune and not args.tuning_db
            and not args.rpc_tracker
            and not args.print_ir_after and not args.dump_ir and not args.time_passes and not args.explain
            and not args.verify_each)


def _report_build(args: argparse.Namespace, info: dict[str, Any]) -> None:
    _log(args, f"  passes: {info.get('passes') or '(none)'}")
    _log(args, f"  nodes after passes: {info.get('nodes')}")
    if info.get("shapes"):
        _log(args, f"  shapes: {info['shapes']}")


def cmd_run(args: argparse.Namespace) -> int:
    module = _load_module(args.artifact, args)
    feeds = _load_inputs(args.inputs, module, args.seed)
    if args.inputs is None:
        _log(args, "no --inputs given: using random inputs (seed %d)" % args.seed)
    outputs = module.run(feeds)
    for name, arr in outputs.items():
        print(_summarize(name, arr))
    if args.output:
        try:
            np.savez(args.output, **outputs)
        except OSError as exc:
            raise InputError(f"cannot write the outputs: {exc.strerror or exc}", subject=args.output) from None
        _log(args, f"outputs written to {args.output}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    module = _load_module(args.artifact, args)
    feeds = _load_inputs(args.inputs, module, 0)
    res = module.benchmark(feeds, warmup=args.warmup, repeat=args.repeat, threads=args.threads)
    if args.json:
        print(json.dumps(res.__dict__, indent=2))
    else:
        print(f"{args.artifact} ({module.target}): {res}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    module = _load_module(args.artifact, args)
    feeds = _load_inputs(args.inputs, module, 0)
    table = module.profile_table(feeds)      # a target with its own table (the systolic simulator's report)
    if table is not None:
        print(table)
        return 0
    rows = module.profile(feeds, repeat=args.repeat)
    total = sum(s for _, s in rows) or 1e-12
    print(f"{'kernel':<60}{'ms':>10}{'share':>8}")
    for label, secs in rows[: args.top]:
        print(f"{label[:59]:<60}{secs * 1e3:>10.3f}{secs / total:>8.1%}")
    print(f"{'total':<60}{total * 1e3:>10.3f}   ({len(rows)} kernels)")
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    from passes.manager import all_passes
    for p in all_passes():
        opts = f"  {{{p.option_text()}}}" if p.options else ""
        print(f"{p.name:<24}{p.summary}{opts}")
    from backends.base import available_backends, backend_class
    print("\ndefault pipelines (override with --passes):")
    names = available_backends()
    width = max(len(name) for name in names) + 2
    for name in names:
        print(f"  {name:<{width}}{backend_class(name).default_pipeline}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from backends.base import available_backends, get_backend
    for name in available_backends():
        b = get_backend(name)
        caps = [k for k, v in vars(b.capabilities).items() if v is True]
        print(f"{name}: {b.description}")
        print(f"  capabilities: {', '.join(caps) or 'none'}")
        info = b.target_info
        if info.kind == "cpu":
            print(f"  this machine: {info.cpu_name}, {info.isa}, {info.cores} cores")
        for spec in type(b).options:
            print(f"  --option {spec.describe()}")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from backends.base import available_backends, get_backend
    from ir.registry import all_schemas
    targets = args.targets.split(",") if args.targets else available_backends()
    backends = [get_backend(t) for t in targets]
    print(f"{'op':<36}{'kind':<13}" + "".join(f"{t:>8}" for t in targets))
    for s in all_schemas():
        row = f"{s.qualified_name:<36}{s.kind:<13}"
        for b in backends:
            row += f"{b.op_coverage(s).value:>8}"
        print(row)
    return 0


# ------------------------------------------------------------------- parser
def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m compiler", epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description="Compile ONNX models for CPUs and accelerators.")
    ap.add_argument("--version", action="version", version=f"nncompiler {__version__}")
    ap.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
        return p

    p = add("inspect", cmd_inspect, "summarize a model: inputs, outputs, op counts, target coverage")
    p.add_argument("model", help="path to an .onnx file")
    p.add_argument("--ir", action="store_true", help="print the imported IR instead")
    p.add_argument("--locations", action="store_true", help="with --ir: show ONNX node names")
    p.add_argument("--passes", help="run this pipeline before printing (e.g. fold-constants,dce)")
    p.add_argument("-t", "--target", default="ref", help="target whose pipeline --explain runs (default ref)")
    p.add_argument("--explain", nargs="?", const="summary", choices=["summary", "full"],
                   help="run the target's pipeline (or --passes) and print what it decided and saved")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="target option (repeatable)")
    p.add_argument("--targets", help="comma-separated targets for the coverage table (default: all)")
    p.add_argument("--nodes", action="store_true", help="coverage per node, not only per op")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..",
                   help="fix an input's shape (repeatable)")

    p = add("build", cmd_build, "compile a model into an artifact folder")
    p.add_argument("model", help="path to an .onnx file")
    p.add_argument("-o", "--output", required=True,
                   help="artifact folder to write (new, empty, or holding an artifact it replaces)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder that holds no artifact")
    p.add_argument("-t", "--target", default="ref", help="target (see `ops`); default ref")
    p.add_argument("--passes", help="pass pipeline, e.g. 'fold-constants,cse,dce' "
                                    "(default: the target's pipeline; '' for none)")
    p.add_argument("--print-ir-after", metavar="PASSES", help="comma-separated pass names, or 'all'")
    p.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass into DIR")
    p.add_argument("--time-passes", action="store_true", help="print how long each pass took")
    p.add_argument("--no-build-cache", action="store_true",
                   help="build even if the build cache holds this build (see README: Build speed)")
    p.add_argument("--verify-each", action="store_true",
                   help="verify the IR after every pass, not only at the end (finds the pass that breaks it)")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..",
                   help="fix an input's shape (repeatable); a name instead of a number keeps that "
                        "dimension symbolic, e.g. input_ids=batch,128")
    p.add_argument("--dim", action="append", metavar="NAME=VALUE",
                   help="give a symbolic dimension a value in every input, e.g. --dim seq=128 (repeatable)")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="for a model with a symbolic batch: the largest batch the C bundle's arena "
                        "(MODEL_ARENA_BYTES) is sized for (default 64; same as --option max_batch=N)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="target option (repeatable)")
    p.add_argument("--explain", nargs="?", const="summary", choices=["summary", "full"],
                   help="print what the passes decided and saved (decisions.json is always written)")
    p.add_argument("--tune", action="store_true",
                   help="time candidate schedules on this machine and keep the fastest "
                        "(in --tuning-db; later builds reuse it)")
    p.add_argument("--tune-budget", type=float, default=60.0, metavar="SECONDS",
                   help="time limit for --tune (default 60)")
    p.add_argument("--tuning-db", metavar="FILE",
                   help="tuning database to read and extend (default tuning.json with --tune; "
                        "for --target tvm a directory, default tvm-tuning/)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT",
                   help="with --tune on --target tvm: time candidates on the devices of this TVM RPC tracker")
    p.add_argument("--rpc-key", metavar="KEY", help="the tracker's device key (with --rpc-tracker)")
    p.add_argument("-q", "--quiet", action="store_true")
    # --- quantization (compiler/quantize.py): build --quantize int8, and the quantize command
    from .quantize import add_build_arguments, add_quantize_command
    add_build_arguments(p)
    add_quantize_command(add)

    for name, fn, help in (("run", cmd_run, "run an artifact (or an .onnx file) and summarize its outputs"),
                           ("bench", cmd_bench, "time an artifact (or an .onnx file)"),
                           ("profile", cmd_profile, "time each kernel of an artifact")):
        p = add(name, fn, help)
        p.add_argument("artifact", help="artifact folder from `build` (or an .onnx file)")
        p.add_argument("-t", "--target", default="ref", help="target when given an .onnx file")
        p.add_argument("--inputs", help=".npz with one array per input name (or .npy); default random")
        p.add_argument("-q", "--quiet", action="store_true")
        if name == "run":
            p.add_argument("--output", help="write all outputs to this .npz")
            p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
        if name == "bench":
            p.add_argument("--warmup", type=int, default=5)
            p.add_argument("--repeat", type=int, default=50)
            p.add_argument("--threads", type=int, help="threads (targets that use them)")
            p.add_argument("--json", action="store_true", help="print the statistics as JSON")
        if name == "profile":
            p.add_argument("--repeat", type=int, default=3)
            p.add_argument("--top", type=int, default=25, help="show the N hottest kernels")

    add("passes", cmd_passes, "list the registered passes and each target's default pipeline")
    add("targets", cmd_targets, "list the targets with their options and capabilities")
    p = add("ops", cmd_ops, "list every op in the registry and which targets run it")
    p.add_argument("--targets", help="comma-separated targets (default: all)")
    # Targets' own commands (e.g. the systolic simulator's sim, sim-export, sim-sweep): listed here,
    # run by main() through the target's commands module.  A name taken by a built-in command fails here.
    for name, (_, help) in target_commands().items():
        add(name, None, help)
    return ap


def target_commands() -> dict[str, tuple[str, str]]:
    """Commands that targets contribute: name -> (module, help), from every ``backends/<target>/commands.py``
    (``COMMANDS``: name -> help, and ``main(argv)``).  Only those small modules are imported."""
    import importlib

    import backends
    found: dict[str, tuple[str, str]] = {}
    for base in backends.__path__:
        for pkg in sorted(Path(base).iterdir()):
            if (pkg / "__init__.py").is_file() and (pkg / "commands.py").is_file():
                module = f"backends.{pkg.name}.commands"
                for name, help in importlib.import_module(module).COMMANDS.items():
                    found[name] = (module, help)
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = target_commands()
    if argv and argv[0] in commands:
        import importlib
        return importlib.import_module(commands[argv[0]][0]).main(argv)
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 1
    try:
        return args.fn(args)
    except CompilerError as exc:
        if args.debug:
            raise
        print(f"error: {str(exc).splitlines()[0] if exc.kind != 'verification error' else exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("error: out of memory", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug in the compiler: say so plainly, keep the traceback behind --debug
        if args.debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback; "
              "this is a compiler bug, please report it)", file=sys.stderr)
        return 2
