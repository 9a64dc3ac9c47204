"""The compile driver: ONNX model -> IR -> passes -> target -> runtime Module."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO, Union

import onnx

from backends.base import Backend, backend_class, get_backend, load_graph
from frontends.onnx import ImportOptions, import_model, load_model
from frontends.onnx.loader import ModelSource
from ir.graph import Graph
from ir.errors import ArtifactError, BackendError, CompilerError
from passes.manager import PassContext, PassManager, parse_pipeline, with_pass_options
from runtime.artifact import read_manifest, verify_files
from runtime.module import Module, TensorSpec

from .specialize import make_specializing, needs_specialization, value_deciding_inputs
from .version import __version__


@dataclass
class CompileResult:
    """Everything a build produced besides the module: for reports and the CLI."""

    module: Module
    graph: Graph
    pass_manager: PassManager
    context: PassContext
    manifest: dict[str, Any] = field(default_factory=dict)
    nodes_imported: int = 0
    shapes: Optional["ShapeDecision"] = None  # how symbolic shapes were handled (None: all static)

    def explain(self, full: bool = False) -> str:
        """What the pipeline decided and saved (``build --explain``)."""
        from .explain import summarize
        return summarize(self.context.log, self.context.stats, self.nodes_imported,
                         len(self.graph.nodes), full)


def tool_versions() -> dict[str, str]:
    """Versions of the tools a build used, from package metadata (importing networkx costs a second)."""
    from importlib import metadata
    versions = {"compiler": __version__, "python": platform.python_version()}
    for mod in ("numpy", "onnx", "llvmlite", "networkx"):
        try:
            versions[mod] = metadata.version(mod)
        except metadata.PackageNotFoundError:
            versions[mod] = "not installed"
    return versions


def verify_each_default() -> bool:
    """Verify the IR after every pass only when asked (``NNC_VERIFY_EACH=1``; the test suite sets it).

    A build verifies the final graph once either way; checking after each of
    25 passes costs a second or more on a large model and only helps to find
    which pass broke the graph.
    """
    import os
    return os.environ.get("NNC_VERIFY_EACH", "") not in ("", "0")


def model_digest(model: onnx.ModelProto) -> str:
    return "sha256:" + hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def tuning_pipeline(pipeline: Union[str, Sequence[str]], target: str, tune: bool, budget: float,
                    db: Optional[Union[str, Path]]) -> str:
    """``pipeline`` with the schedule pass told to tune and/or read the tuning database."""
    steps = parse_pipeline(pipeline)
    if not any(step.info.name == "schedule" for step in steps):
        raise CompilerError("this pipeline does not schedule kernels, so there is nothing to tune",
                            subject=f"--target {target}",
                            hint="tuning needs a target whose pipeline runs `schedule`, e.g. --target cpu")
    if budget <= 0:
        raise CompilerError("the tuning budget must be positive", subject=f"{budget} s")
    db_path = str(db or "tuning.json")
    if any(ch in db_path for ch in ",{}"):
        raise CompilerError("the tuning database path may not contain ',', '{' or '}'", subject=db_path)
    options: dict[str, Any] = {"tuning_db": db_path}
    if tune:
        options.update(tune=True, tune_budget=float(budget))
    return with_pass_options(steps, "schedule", options)


def build(
    model: Union[ModelSource, Graph],
    target: str = "ref",
    *,
    passes: Optional[Union[str, Sequence[str]]] = None,
    print_ir_after: Sequence[str] = (),
    dump_ir_dir: Optional[Union[str, Path]] = None,
    input_shapes: Optional[Mapping[str, Sequence]] = None,
    dims: Optional[Mapping[str, int]] = None,
    options: Optional[Mapping[str, Any]] = None,
    stream: Optional[TextIO] = None,
    tune: bool = False,
    tune_budget: float = 60.0,
    tuning_db: Optional[Union[str, Path]] = None,
    rpc_tracker: Optional[str] = None,
    rpc_key: Optional[str] = None,
    verify_each: Optional[bool] = None,
) -> CompileResult:
    """Compile a model and return the module with the build's details.

    ``input_shapes`` fixes inputs' shapes (a name keeps a dimension symbolic);
    ``dims`` gives symbolic dimensions a value by name in every input.
    A symbolic leading batch dimension stays a run-time argument when the
    target allows it (``compiler/batching.py``); other symbolic dimensions
    left without a value make the target compile per input signature.
    ``tune`` times candidate schedules on the target (at most ``tune_budget``
    seconds) and records the fastest in ``tuning_db`` (default ``tuning.json``);
    a build given only ``tuning_db`` reuses what earlier tuning found.
    ``rpc_tracker`` (HOST:PORT) and ``rpc_key``: the tvm target times candidates
    on the devices a TVM RPC tracker hands out under that key.
    """
    backend: Backend = get_backend(target, options)  # validates the options
    manifest: dict[str, Any] = {"target": target, "tools": tool_versions()}
    if isinstance(model, Graph):
        graph = model.clone()
        manifest["model"] = {"source": "ir graph", "name": graph.name}
    else:
        proto = load_model(model)
        manifest["model"] = {
            "source": str(model) if isinstance(model, (str, Path)) else "in-memory",
            "sha256": model_digest(proto),
            "opsets": {imp.domain or "ai.onnx": imp.version for imp in proto.opset_import},
        }
        graph = import_model(proto, ImportOptions(
            input_shapes={k: tuple(v) for k, v in (input_shapes or {}).items()}, dims=dict(dims or {})))
    nodes_imported = len(graph.nodes)
    full_pipeline = backend.default_pipeline if passes is None else passes
    if (tune or tuning_db or rpc_tracker) and not backend.set_tuning(tune, tune_budget, tuning_db and str(tuning_db),
                                                                     rpc_tracker or "", rpc_key or ""):
        if rpc_tracker or rpc_key:
            raise CompilerError("measuring through an RPC tracker needs a target that tunes with TVM",
                                subject=f"--target {target}", hint="--target tvm")
        full_pipeline = tuning_pipeline(full_pipeline, target, tune, tune_budget, tuning_db)
    specializing = backend.capabilities.static_shapes and needs_specialization(graph)
    signature_graph = graph  # inputs and outputs as the model declares them (symbolic dims kept)
    shapes: Optional[ShapeDecision] = None
    if specializing:
        shapes = _shape_decision(graph, backend)
        manifest["shapes"] = shapes.report()
        if shapes.per_sample is not None:
            # One sample compiled now; the batch is a run-time argument of the native code.
            graph, specializing = shapes.per_sample, False
    # A graph whose shapes are only known per call gets the shape-free passes now and
    # the full pipeline once per specialization.
    pipeline = backend.generic_pipeline if specializing and passes is None else full_pipeline
    verify_each = verify_each_default() if verify_each is None else verify_each
    pm = PassManager(pipeline if pipeline else [], print_ir_after=print_ir_after,
                     dump_ir_dir=dump_ir_dir, stream=stream, verify_each=verify_each)
    ctx = PassContext(target=backend.target_info, backend=backend)
    pm.run(graph, ctx)
    if not verify_each and pm.pipeline_text:
        _verify_result(graph)
    manifest["passes"] = pm.pipeline_text
    manifest["options"] = backend.given_options()
    if specializing:
        backend.check_supported(graph, ops_only=True,  # now, not at the first run
                                known_inputs=value_deciding_inputs(graph))
        manifest["specializing"] = True
        manifest["specialized_passes"] = full_pipeline if isinstance(full_pipeline, str) \
            else ",".join(full_pipeline)
        executable = make_specializing(backend, graph, manifest["specialized_passes"])
    else:
        executable = backend.compile(graph)
    inputs = [TensorSpec.from_type(v.name, v.type) for v in signature_graph.inputs]
    outputs = [TensorSpec.from_type(v.name, _batched_type(v, graph)) for v in graph.outputs]
    manifest["host"] = {"machine": platform.machine(), "system": platform.system()}
    module = Module(executable, inputs, outputs, manifest)
    module.decisions = list(ctx.log)
    return CompileResult(module, graph, pm, ctx, manifest, nodes_imported, shapes)


def _verify_result(graph: Graph) -> None:
    from ir.errors import PassError
    from ir.verifier import verify
    try:
        verify(graph)
    except CompilerError as exc:
        raise PassError(f"IR is invalid after the pass pipeline: {exc}", subject=f"graph @{graph.name}",
                        hint="build with --verify-each to find the pass that broke it") from exc


@dataclass
class ShapeDecision:
    """How a model with symbolic shapes is compiled: batch at run time, or per call signature."""

    per_sample: Optional[Graph]  # the one-sample graph when the batch is a run-time argument
    symbol: str = ""
    reason: str = ""             # why not, when per_sample is None
    dynamic: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        if self.per_sample is not None:
            return {"batch": self.symbol, "compiled": "at build time, for any batch (native batch loop)"}
        return {"compiled": "at run time, once per new input signature", "reason": self.reason,
                "dynamic": self.dynamic}

    def summary(self) -> str:
        """One line for the build's output."""
        if self.per_sample is not None:
            return (f"batch dimension {self.symbol!r} is a run-time argument of the native code "
                    "(one artifact serves every batch size)")
        dims = ", ".join(self.dynamic) or "some shapes"
        return (f"{dims} stayed dynamic ({self.reason}): each new input signature is compiled "
                "at its first run and kept in the artifact; give values with --input-shape or --dim to compile now")


def _shape_decision(graph: Graph, backend: Backend) -> ShapeDecision:
    if not backend.capabilities.runtime_batch:
        return ShapeDecision(None, reason=f"target {backend.name} compiles static shapes only")
    from .batching import plan_batch
    plan = plan_batch(graph)
    if plan.ok:
        return ShapeDecision(plan.per_sample, plan.signature.symbol)
    return ShapeDecision(None, reason=plan.reason, dynamic=plan.dynamic)


def _batched_type(v, graph: Graph):
    """An output's declared type: the one-sample type with the batch symbol in front."""
    from ir.types import TensorType
    t = v.type
    if graph.batch is None or not isinstance(t, TensorType) or not t.shape:
        return t
    k = [o is v for o in graph.outputs].index(True)
    return t.with_shape((graph.batch.symbol,) + tuple(t.shape[1:])) if graph.batch.outputs[k] else t


def compile(model: Union[ModelSource, Graph], target: str = "ref", **kw: Any) -> Module:
    """Compile an ONNX model (path, bytes, ModelProto) or an IR graph for ``target``.

    >>> m = compile("model.onnx", target="ref")
    >>> outputs = m.run({"input": x})
    """
    return build(model, target, **kw).module


def load(directory: Union[str, Path]) -> Module:
    """Load a module saved with ``Module.save`` or ``python -m compiler build -o DIR``.

    The manifest (checked by ``runtime.artifact.read_manifest``) names the
    target; the target loads its executable, or, for a model whose shapes
    are only known per call, the saved generic graph is wrapped to compile
    one static version per call signature, as the build did.
    """
    d = Path(directory)
    manifest = read_manifest(d)
    verify_files(d, manifest)  # before the target reads a byte: a cut object file must not crash us
    try:
        cls = backend_class(manifest["target"])
    except BackendError as exc:
        raise ArtifactError("the artifact was built for a target this compiler does not have",
                            subject=str(d), expected=exc.expected, found=repr(manifest["target"])) from None
    backend = cls(manifest.get("options", {}))
    if manifest.get("specializing"):
        executable = make_specializing(backend, load_graph(d), manifest.get("specialized_passes", ""), directory=d)
    else:
        executable = backend.load(d)
    return Module.from_manifest(executable, manifest)
