"""The cpu target: LLVM code generated with llvmlite, run in-process or linked into C programs.

Kernels come from ``backends.cpu.kernels`` (one generator per kernel kind),
the lowering (``lower.py``) ties them into one module with an entry point,
and ``executable.py`` JIT-loads it.  The graph reaching this backend has been
through the cpu pipeline (``PIPELINE`` below): fused, laid out, scheduled
(``scheduling.py``: this target's cost models) and memory-planned.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from pathlib import Path

from ir.graph import Graph, Node
from ir.registry import BROADCAST, ELEMENTWISE, OpSchema
from ir.schedule import Schedule
from ir.target import TargetInfo
from ir.types import TensorType
from passes.pipelines import SIMPLIFY
from passes.unroll_control_flow import CONTROL_FLOW_OPS, blocker as unroll_blocker

from ..base import THREADS_OPTION, Backend, Capabilities, Coverage, OptionSpec, Support, function_body_coverage
from .codegen import KernelBuilder
from .evaluator import injective_support, is_index_map
from .executable import CpuExecutable, UnitCompiler, build_executable, machine_of
from .expr import elementwise_support
from .host import ISAS, cpu_target
from .kernel_cache import KernelCache
from .kernels import find_generator, generated_ops
from .lower import lower
from .scheduling import CpuScheduler, kernel_kind

# Ops the cpu pipeline rewrites into ops with kernels: op -> (the pass, the op it becomes).
_LOWERED = {("", "ConvTranspose"): ("lower-conv-transpose", ("", "Conv"))}

# expand-functions runs on static graphs only (after specialization), where run-time
# shape values are constants: e.g. Range folds instead of expanding into a Loop.
# unroll-control-flow likewise: trip counts and conditions are constants by then.
PIPELINE = ("fold-qdq," + SIMPLIFY + ",unroll-control-flow,fold-constants,fuse-attention,expand-flex-attention,"
            "expand-functions,lower-conv-transpose,fold-constants,"
            "simplify-algebra,fuse-attention,cse,dce,bf16-weights,"
            "layout-nchwc,fold-constants,dce,fuse,dce,schedule,plan-memory")


class CpuBackend(Backend):
    name = "cpu"
    description = "x86-64 machine code via LLVM (llvmlite): vectorized, multi-threaded, JIT or C bundle"
    options = (
        THREADS_OPTION,
        OptionSpec("isa", str, "auto", "vector instruction set; auto: the host's widest; a wider one "
                                       "than the host's builds for another machine", ("auto",) + ISAS),
        OptionSpec("cpu", str, "", "LLVM CPU name to generate code for (e.g. skylake-avx512, znver4); "
                                   "default: this machine"),
        OptionSpec("features", tuple, (), "LLVM CPU features to use (comma-separated, e.g. avx2,fma); "
                                          "default: the CPU's"),
        OptionSpec("precision", str, "fp32", "float MatMul/Gemm arithmetic: fp32, or bf16 (weights rounded to "
                                             "bfloat16 at build time, AMX-BF16 tiles, float32 sums)", ("fp32", "bf16")),
        OptionSpec("bundle_name", str, "model", "prefix of the C bundle's symbols and files"),
        OptionSpec("c_array", bool, False, "also write the weights as a C array (weights.c)"),
        OptionSpec("max_batch", int, 64, "for a model with a run-time batch: the largest batch the C "
                                         "bundle's MODEL_ARENA_BYTES holds and model_run_batch accepts",
                   minimum=1),
        OptionSpec("kernel_cache", bool, True, "reuse compiled kernels from the on-disk cache "
                                               "(~/.cache/nncompiler/kernels) and store new ones there"),
        OptionSpec("jobs", int, 0, "processes for LLVM work (0: one per core; 1: in this process); "
                                   "small models always compile in this process", minimum=0),
    )
    capabilities = Capabilities(measure=True, threads=True, profile=True, c_bundle=True, static_shapes=True,
                                runtime_batch=True)
    default_pipeline = PIPELINE
    generic_pipeline = "fold-qdq," + SIMPLIFY  # fold-qdq first: fold-constants would dequantize weights

    @property
    def target_info(self) -> TargetInfo:
        return cpu_target(self.config["isa"], self.config["cpu"], self.config["features"])

    def supports(self, node: Node) -> Support:
        for v in list(node.inputs) + list(node.outputs):
            if v is not None and not isinstance(v.type, TensorType):
                return Support.no(f"{v.type} values (sequences, optionals) are not supported by the cpu target")
        if node.schema.view:
            return Support.yes()  # the memory plan aliases it, or the index-map kernel copies it
        if node.domain == "" and node.op in CONTROL_FLOW_OPS:  # only unroll-control-flow removes them
            why = unroll_blocker(node)
            return Support.no(f"{node.op} is compiled by unrolling it (unroll-control-flow), and "
                              + (why or "the pipeline left it in place (its trip count or condition became "
                                        "constant only after that pass ran)"))
        kind = kernel_kind(node)
        gen, why = find_generator(kind, node)
        return Support.yes() if gen is not None else Support.no(why)

    def op_coverage(self, schema: OpSchema) -> Coverage:
        """Op-level coverage for ``python -m compiler ops`` (a build still checks every node).

        A kernel when a generator anchors on the op (the kernel generators'
        ``ops``, which include every op with an elementwise emitter or an index
        map), for views (the registry's ``view`` flag) and fused groups, and for
        ops a pass of the cpu pipeline rewrites into such ops; ``EXPAND`` when
        the cpu pipeline replaces it by its ONNX function body; else ``NONE``.
        """
        key = (schema.domain, schema.name)
        generated = generated_ops()
        if schema.view or key in generated or schema.qualified_name == "nnc.Fused":
            return Coverage.KERNEL
        if schema.domain == "" and schema.name in CONTROL_FLOW_OPS \
                and "unroll-control-flow" in self.default_pipeline.split(","):
            return Coverage.KERNEL  # unrolled into its body's ops when the trip count is static
        lowered = _LOWERED.get(key)
        if lowered is not None and lowered[0] in self.default_pipeline.split(",") and lowered[1] in generated:
            return Coverage.KERNEL
        return function_body_coverage(schema)

    def fusable(self, node: Node) -> bool:
        if is_index_map(node):
            return injective_support(node) is None
        if node.schema.kind in (ELEMENTWISE, BROADCAST):
            return elementwise_support(node) is None
        return self.supports(node).ok

    def scheduler(self) -> CpuScheduler:
        return CpuScheduler()

    def compile(self, graph: Graph) -> CpuExecutable:
        self.check_supported(graph)
        target = self.target_info
        t0 = time.perf_counter()
        cache = KernelCache() if self.config["kernel_cache"] else None
        machine = machine_of(target)
        compiler = UnitCompiler(machine, cache, self.config["jobs"])  # compiles while kernels are generated
        with gc_paused():
            lowered = lower(graph, KernelBuilder(target, graph.name), cache, machine, sink=compiler.add)
        codegen = time.perf_counter() - t0 - compiler.seconds
        exe = build_executable(lowered, target, self.config["threads"], compiler=compiler)
        exe.description["build"]["codegen_seconds"] = round(codegen, 3)
        # What CpuExecutable.save needs to write the C bundle.
        exe.description["bundle_options"] = {"name": self.config["bundle_name"], "c_array": self.config["c_array"],
                                            "max_batch": self.config["max_batch"]}
        return exe

    def measure(self, graph: Graph, node: Node, schedule: Schedule) -> float:
        """Seconds ``node`` takes with ``schedule`` (for measured tuning)."""
        from .measure import measure
        return measure(self, graph, node, schedule)

    def load(self, directory: Path) -> CpuExecutable:
        return CpuExecutable.load(directory, self.config["threads"])


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while kernels are generated.

    Generating a large model builds millions of small llvmlite objects
    (acyclic, dropped with each kernel's module); Python's collector would
    walk them over and over, a third of the code generation time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


BACKEND = CpuBackend
