"""The tvm target: our fused groups become TVM kernels, for CUDA GPUs (default), OpenCL or this CPU.

The graph, its passes, fusion decisions and memory plan are ours
(``PIPELINE``); TVM builds and schedules the kernels.  Each top-level node of
the optimized graph (an ``nnc.Fused`` group or a single op) becomes one TVM
PrimFunc written in TE (TOPI for convolutions; ``rules.py`` and the ``te_*``
modules hold one lowering per op), scheduled by DLight's GPU rules
(``schedule.py``) or a parallel host rule, and built into one library
(``build.py``).  ``executable.py`` runs the kernels in our order over our
arena.  The ONNX file never reaches TVM: only our IR does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from ir.graph import Graph, Node
from ir.registry import OpSchema
from ir.target import TargetInfo
from ir.types import TensorType
from passes.pipelines import SIMPLIFY
from passes.unroll_control_flow import CONTROL_FLOW_OPS, blocker as unroll_blocker

from ..base import THREADS_OPTION, Backend, Capabilities, Coverage, OptionSpec, Support, function_body_coverage
from . import te_elementwise, te_image, te_index, te_nn, te_norm, te_quant, te_reduce, te_shape, te_signal  # noqa: F401 - they register the TE rules
from .build import build_library
from .devices import DEVICES, device, target_of
from .executable import TvmExecutable
from .program import lower_graph
from .rules import RULES, support
from .tuning import TuningOptions

# Like the cpu pipeline without its blocked layout: TVM's schedules want plain NCHW.
# unroll-control-flow and expand-flex-attention are generic rewrites (Loop/Scan/If with static trip
# counts, FlexAttention) into ops that have TE rules; unrolling runs again after expand-functions,
# since function bodies (LinearAttention's) hold Scans.
PIPELINE = (SIMPLIFY + ",unroll-control-flow,fold-constants,expand-flex-attention,expand-functions,"
            "unroll-control-flow,lower-conv-transpose,fold-constants,simplify-algebra,cse,dce,fuse,dce,plan-memory")

DEFAULT_TUNING_DB = "tvm-tuning"  # a directory: MetaSchedule's JSON database

# Ops a pass of the pipeline rewrites into ops with rules: lower-conv-transpose, decompose-variadic.
_LOWERED = {("", "ConvTranspose"): ("", "Conv"), ("", "Sum"): ("", "Add"), ("", "Mean"): ("", "Add")}


class TvmBackend(Backend):
    name = "tvm"
    description = ("Apache TVM kernels from our fused groups: CUDA GPUs (default), OpenCL, "
                   "or this CPU (device=llvm)")
    options = (
        OptionSpec("device", str, "cuda", "what to generate code for (cuda and opencl build anywhere; "
                                          "llvm runs on this CPU)", tuple(DEVICES)),
        OptionSpec("arch", str, "auto", "CUDA architecture, e.g. sm_90 (auto: the present GPU's, else sm_80)"),
        THREADS_OPTION,
    )
    capabilities = Capabilities(profile=True, threads=True, static_shapes=True)
    default_pipeline = PIPELINE
    generic_pipeline = SIMPLIFY

    @property
    def target_info(self) -> TargetInfo:
        d = device(self.config["device"])
        return TargetInfo(name=f"tvm-{d.name}", kind="gpu" if d.gpu else "cpu", isa=d.kind if d.gpu else "generic")

    def supports(self, node: Node) -> Support:
        if node.domain == "nnc" and node.op == "Fused":
            for inner in node.attr("body").nodes:
                s = self.supports(inner)
                if not s.ok:
                    return Support.no(f"{inner.op} in the fused group: {s.reason}")
            return Support.yes()
        for v in list(node.inputs) + list(node.outputs):
            if v is not None and not isinstance(v.type, TensorType):
                return Support.no(f"{v.type} values (sequences, optionals) are not supported by the tvm target")
        if node.domain == "" and node.op in CONTROL_FLOW_OPS:  # only unroll-control-flow removes them
            why = unroll_blocker(node)
            # Unrollable: the pass removes it (expand-functions asks this of function bodies, which
            # hold Scans); ``compile`` refuses one the pipeline still left in place.
            return Support.yes() if why is None else Support.no(
                f"{node.op} is compiled by unrolling it (unroll-control-flow), and {why}")
        why = support(node)
        return Support.yes() if why is None else Support.no(why)

    def op_coverage(self, schema: OpSchema) -> Coverage:
        key = (schema.domain, schema.name)
        if key in RULES or schema.qualified_name == "nnc.Fused":
            return Coverage.KERNEL
        if schema.domain == "" and schema.name in CONTROL_FLOW_OPS:
            return Coverage.KERNEL  # unrolled into its body's ops when the trip count is static
        lowered = _LOWERED.get(key)
        if lowered is not None and lowered in RULES:
            return Coverage.KERNEL
        return function_body_coverage(schema)

    tuning: Optional[TuningOptions] = None

    def set_tuning(self, tune: bool, budget: float, database: Optional[str], rpc_tracker: str = "",
                   rpc_key: str = "") -> bool:
        """MetaSchedule tunes this target's kernels (``tuning.py``), not the ``schedule`` pass."""
        from .tuning import check_options
        self.tuning = TuningOptions(Path(database or DEFAULT_TUNING_DB), tune, float(budget), rpc_tracker, rpc_key)
        check_options(self.tuning, device(self.config["device"]))
        return True

    def compile(self, graph: Graph) -> TvmExecutable:
        self.check_supported(graph)
        for node in graph.nodes:
            if node.domain == "" and node.op in CONTROL_FLOW_OPS:
                from ir.errors import BackendError
                raise BackendError(f"{node.op} is compiled by unrolling it (unroll-control-flow), and the "
                                   "pipeline left it in place (its trip count or condition became constant "
                                   "only after that pass ran)", subject=node.describe())
        dev = device(self.config["device"])
        target = target_of(dev, self.config["arch"])
        t0 = time.perf_counter()
        lowered = lower_graph(graph, gpu=dev.gpu)
        t1 = time.perf_counter()
        tuned, tuning_info = self._tuned(lowered.functions, target, dev)
        t2 = time.perf_counter()
        built = build_library(lowered.functions, dev, target, tuned)
        description = {
            "device": dev.name, "target": str(target),
            "kernels": len(lowered.program.calls), "distinct_kernels": len(lowered.functions),
            "arena_bytes": lowered.program.arena_bytes, "weights_bytes": lowered.program.weights_bytes,
            **tuning_info,
        }
        timings = [("tvm lower (TE)", t1 - t0), *([("tvm tuning (MetaSchedule)", t2 - t1)] if self.tuning else []),
                   *built.timings]
        return TvmExecutable(built.library, lowered.program, lowered.weights, dev, description,
                             self.config["threads"], built.device_sources(), timings)

    def _tuned(self, functions: dict[str, Any], target: Any, dev: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Tune (``--tune``) and read the database: the functions it has schedules for, and what happened."""
        if self.tuning is None:
            return {}, {}
        import tvm_ffi

        from .tuning import open_database, tune, tuned_function
        db = open_database(self.tuning.database)
        info: dict[str, Any] = {"tuning_db": str(self.tuning.database)}
        if self.tuning.tune:
            report = tune(functions, target, dev, self.tuning, db)
            info["tuning"] = {"kernels_tuned": report.tasks, "trials": report.trials, "failed": report.failed,
                              "seconds": round(report.seconds, 1), "budget_s": self.tuning.budget_s,
                              "stopped_by_budget": report.stopped_by_budget, "search": report.search,
                              "rpc_tracker": self.tuning.rpc_tracker, "rpc_key": self.tuning.rpc_key}
        tuned = {}
        for sym, f in functions.items():
            scheduled = tuned_function(db, f, target)
            if scheduled is not None:
                tuned[sym] = scheduled
        # symbol -> structural hash of the tuned schedule: which kernels the database decided, and how
        info["tuned_kernels"] = {sym: f"{tvm_ffi.structural_hash(f) & (2**64 - 1):016x}" for sym, f in sorted(tuned.items())}
        return tuned, info

    def load(self, directory: Path) -> TvmExecutable:
        return TvmExecutable.load(directory, self.config["threads"])



BACKEND = TvmBackend
