"""The cpu backend reads pass results from the IR and never recomputes them.

A graph without a memory plan, with an unplaced intermediate, or with a kernel
lacking the schedule it needs (or carrying a stale one) is refused with the
node and the pass to run; the pipeline's results are what the kernels use.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from backends.base import get_backend
from ir.errors import BackendError
from ir.memory import clear_plan, plan_of
from ir.schedule import Schedule, assign_schedule
from passes.manager import PassContext, PassManager
from backends.cpu import PIPELINE as CPU_PIPELINE

STEPS = "fold-constants,remove-identity,cse,dce,layout-nchwc,fold-constants,dce,fuse,dce"


def conv_relu_softmax():
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1, "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Softmax", ["f"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def prepared(passes: str):
    """The model through ``passes`` for the host cpu, and the backend."""
    backend = get_backend("cpu")
    g = compiler.build(conv_relu_softmax(), "ref", passes="fold-constants,dce").graph
    PassManager(passes).run(g, PassContext(target=backend.target_info, backend=backend))
    return g, backend


def feeds():
    return {"x": np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)}


def test_the_pipeline_results_compile_and_run():
    g, backend = prepared(CPU_PIPELINE)
    assert plan_of(g) is not None
    assert all(n.schedule is not None for n in g.nodes)
    got = backend.compile(g).run([feeds()["x"]])[0]
    want = compiler.compile(conv_relu_softmax(), "ref").run(feeds())["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_no_schedule_names_the_node_and_the_pass():
    g, backend = prepared(STEPS + ",plan-memory")
    fused = next(n for n in g.nodes if n.op == "Fused" and "ConvNCHWc" in n.attrs["pattern"])
    with pytest.raises(BackendError, match=rf"nnc.Fused node .*\(%{fused.outputs[0].name}\): the node has no "
                                           r"schedule.*run the `schedule` pass"):
        backend.compile(g)


def test_no_plan_names_the_pass():
    g, backend = prepared(STEPS + ",schedule")
    with pytest.raises(BackendError, match=r"no memory plan.*run the `plan-memory` pass"):
        backend.compile(g)


def test_an_unplaced_intermediate_is_refused():
    g, backend = prepared(CPU_PIPELINE)
    victim = next(o for n in g.nodes for o in n.outputs if o.placement is not None)
    victim.placement = None
    with pytest.raises(BackendError, match=rf"%{victim.name} of .*no place in the memory plan.*`plan-memory`"):
        backend.compile(g)


def test_a_stale_schedule_is_refused():
    g, backend = prepared(CPU_PIPELINE)
    node = g.nodes[-1]
    node.schedule.fingerprint = "00000000"
    with pytest.raises(BackendError, match=r"schedule is stale.*re-run the `schedule` pass"):
        backend.compile(g)


def test_a_schedule_of_another_kind_is_refused():
    g, backend = prepared(CPU_PIPELINE)
    fused = next(n for n in g.nodes if n.op == "Fused" and "ConvNCHWc" in n.attrs["pattern"])
    assign_schedule(fused, Schedule("gemm", {"mr": 4, "nr": 16, "kc": 64, "mc": 8}))
    with pytest.raises(BackendError, match=r"schedule is for a gemm kernel, not conv2d_nchwc"):
        backend.compile(g)


def test_the_kernel_uses_the_nodes_schedule():
    """Two tilings of the conv give different code and the same numbers."""
    from backends.cpu.codegen import KernelBuilder
    from backends.cpu.lower import lower
    want = compiler.compile(conv_relu_softmax(), "ref").run(feeds())["y"]
    code = []
    for ow_block, oc_unroll in ((12, 2), (3, 1)):
        g, backend = prepared(CPU_PIPELINE)
        fused = next(n for n in g.nodes if n.op == "Fused" and "ConvNCHWc" in n.attrs["pattern"])
        s = fused.schedule.copy()
        s.params.update(ow_block=ow_block, oc_unroll=oc_unroll)
        assign_schedule(fused, s)
        code.append(str(lower(g.clone(), KernelBuilder(backend.target_info, g.name)).module))
        exe = backend.compile(g)
        np.testing.assert_allclose(exe.run([feeds()["x"]])[0], want, rtol=1e-4, atol=1e-6)
    assert code[0] != code[1]


def test_replanning_after_dropping_the_plan():
    g, backend = prepared(CPU_PIPELINE)
    arena = g.memory.arena_bytes
    clear_plan(g)
    PassManager("plan-memory").run(g, PassContext(target=backend.target_info))
    assert g.memory.arena_bytes == arena
    backend.compile(g)
