"""The cpu target: LLVM code generated with llvmlite, run in-process or linked into C programs.

Kernels come from ``backends.cpu.kernels`` (one generator per kernel kind),
the lowering (``lower.py``) ties them into one module with an entry point,
and ``executable.py`` JIT-loads it.  The graph reaching this backend has been
through the cpu pipeline (``passes.pipelines``): fused, laid out, scheduled
and memory-planned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from ir.graph import Graph, Node
from ir.registry import BROADCAST, ELEMENTWISE
from ir.target import TargetInfo
from passes.pipelines import PIPELINES
from passes.scheduling import kernel_kind

from ..base import Backend, CompileOptions, Executable, Support, register_backend
from .bundle import truthy
from .codegen import KernelBuilder
from .evaluator import injective_support, is_index_map
from .executable import CpuExecutable, build_executable
from .expr import elementwise_support
from .host import host_cpu
from .kernels import find_generator, generated_ops
from .lower import lower

# Ops the cpu pipeline rewrites into ops with kernels: op -> (the pass, the op it becomes).
_LOWERED = {("", "ConvTranspose"): ("lower-conv-transpose", ("", "Conv"))}


class CpuBackend(Backend):
    name = "cpu"
    description = "x86-64 machine code via LLVM (llvmlite): vectorized, multi-threaded, JIT or C bundle"
    default_pipeline = PIPELINES["cpu"]
    generic_pipeline = PIPELINES["generic"]
    requires_static_shapes = True

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    def configure(self, options: dict[str, Any]) -> None:
        self.options = dict(options)

    @property
    def target_info(self) -> TargetInfo:
        return host_cpu(self.options.get("isa"))

    def supports(self, node: Node) -> Support:
        from ir.types import TensorType
        for v in list(node.inputs) + list(node.outputs):
            if v is not None and not isinstance(v.type, TensorType):
                return Support.no(f"{v.type} values (sequences, optionals) are not supported by the cpu target")
        if node.schema.view:
            return Support.yes()  # the memory plan aliases it, or the index-map kernel copies it
        kind = kernel_kind(node)
        gen, why = find_generator(kind, node)
        return Support.yes() if gen is not None else Support.no(why)

    def supports_op(self, schema) -> Union[bool, str]:
        """Op-level coverage for ``python -m compiler ops`` (a build still checks every node).

        True when a kernel generates the op (the kernel generators' ``ops``,
        which include every op with an elementwise emitter or an index map),
        for views (the registry's ``view`` flag) and fused groups, and for ops
        a pass of the cpu pipeline rewrites into such ops; ``"expand"`` when
        the cpu pipeline replaces it by its ONNX function body; else False.
        """
        key = (schema.domain, schema.name)
        generated = generated_ops()
        if schema.view or key in generated or schema.qualified_name == "nnc.Fused":
            return True
        lowered = _LOWERED.get(key)
        if lowered is not None and lowered[0] in self.default_pipeline.split(",") and lowered[1] in generated:
            return True
        if schema.domain == "":
            try:
                import onnx.defs
                onnx_schema = onnx.defs.get_schema(schema.name)
            except Exception:  # noqa: BLE001 - not an ONNX op
                return False
            return "expand" if onnx_schema.has_function or onnx_schema.has_context_dependent_function else False
        return False

    def fusable(self, node: Node) -> bool:
        if is_index_map(node):
            return injective_support(node) is None
        if node.schema.kind in (ELEMENTWISE, BROADCAST):
            return elementwise_support(node) is None
        return self.supports(node).ok

    def compile(self, graph: Graph, options: CompileOptions) -> Executable:
        self.check_supported(graph)
        kb = KernelBuilder(self.target_info, graph.name)
        lowered = lower(graph, kb)
        exe = build_executable(lowered, self.target_info, int(options.extra.get("threads", 0)))
        # What CpuExecutable.save needs to write the C bundle (--option bundle_name=..., c_array=true).
        exe.description["bundle_options"] = {"name": str(options.extra.get("bundle_name", "model")),
                                             "c_array": truthy(options.extra.get("c_array", False))}
        return exe

    def measure(self, graph: Graph, node: Node, schedule) -> float:
        """Seconds ``node`` takes with ``schedule`` (for measured tuning)."""
        from .measure import measure
        return measure(self, graph, node, schedule)

    def load(self, directory: Path) -> Executable:
        return CpuExecutable.load(directory, self.target_info, int(self.options.get("threads", 0)))


register_backend("cpu", CpuBackend)
