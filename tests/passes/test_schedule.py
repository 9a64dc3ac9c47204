"""schedule on a cpu target: golden IR text, staleness, and what --print-ir-after shows.

The target is fixed (not the host's), so the chosen tiles do not depend on
the machine running the tests.  The numbers follow the analytical model of
``backends.cpu.scheduling`` (worked out in the comments).
"""

from __future__ import annotations

import io
import textwrap

import pytest

from ir import Graph, f32, parse_graph, tensor, verify
from ir.errors import PassError, VerificationError
from ir.schedule import Schedule, assign_schedule, kernel_fingerprint, stale_schedule
from backends.base import get_backend
from ir.target import TargetInfo
from passes.manager import PassContext, PassInfo, PassManager, PassStep
from tests.passes.golden import assert_pass

AVX512 = TargetInfo(name="cpu", kind="cpu", isa="avx512", vector_bits=512, cores=2, registers=32,
                    fma_units=2, l1d_bytes=32 * 1024, l2_bytes=1024 * 1024, l3_bytes=8 * 1024 * 1024)

CPU = get_backend("cpu")  # its schedule rules; the hardware is AVX512 above

# A 3x3 Conv (16 -> 32 channels, pad 1) + Relu on 8x8 pixels after layout-nchwc and fuse.  The
# weights are zeros (their digests are those of zero tensors: read back as zeros).
CONV_RELU_NCHWC = """
    graph @main(%x: f32[1,16,8,8]) {
      %x_16c: f32[1,1,8,8,16]<layout=NCHW16c> = nnc.ToBlocked(%x) {block=16}
      %relu_16c: f32[1,2,8,8,16]<layout=NCHW16c> = nnc.Fused(%x_16c) {body=graph @fused_0_convnchwc(%x_16c: f32[1,1,8,8,16]<layout=NCHW16c>) {
        %w_packed: f32[2,1,3,3,16,16]<layout=OIHW16i16o> = constant elided "sha256:daefd6c806751b27"
        %b: f32[32] = constant elided "sha256:4b5773506a52cba8"
        %conv_16c: f32[1,2,8,8,16]<layout=NCHW16c> = nnc.ConvNCHWc(%x_16c, %w_packed, %b) {channels_in=16, channels_out=32, dilations=[1, 1], group=1, ic_block=16, kernel_shape=[3, 3], oc_block=16, pads=[1, 1, 1, 1], strides=[1, 1]}
        %relu_16c: f32[1,2,8,8,16]<layout=NCHW16c> = Relu(%conv_16c)
        return %relu_16c
      }, pattern="ConvNCHWc+Relu"}
      %relu: f32[1,32,8,8] = nnc.FromBlocked(%relu_16c) {channels=32}
      return %relu
    }"""

GEMM = """
    graph @main(%a: f32[8,32], %b: f32[32,64], %c: f32[64]) {
      %y: f32[8,64] = Gemm(%a, %b, %c) {alpha=0.5}
      return %y
    }"""


def scheduled(source: str, target: TargetInfo = AVX512) -> Graph:
    g = parse_graph(textwrap.dedent(source).strip(), allow_elided=True)
    PassManager("schedule").run(g, PassContext(target=target, backend=CPU))
    return g


# ------------------------------------------------------------------ golden
def test_conv_relu_nchwc_golden():
    # conv2d_nchwc: 294912 MACs; oc_unroll 2 (2 weight vectors) x ow_block 8 = 16 accumulators,
    # 16 FMAs per 10 loads -> efficiency 0.8: 294912 / (16 lanes * 2 FMA units) / 0.8 / 2 cores = 5760.
    # injective: 1024 elements, chunk 1024 // (4 * 2 cores) = 128; 8 KB moved at 16 B/cycle / 2 cores = 256.
    assert_pass(CONV_RELU_NCHWC, "schedule", """
        graph @main(%x: f32[1,16,8,8]) {
          %x_16c: f32[1,1,8,8,16]<layout=NCHW16c> = nnc.ToBlocked(%x) {block=16} schedule{kind="injective", params={chunk=128}, vector="inner:16", parallel=1, est_cycles=256, source="model", for="167835b4"}
          %relu_16c: f32[1,2,8,8,16]<layout=NCHW16c> = nnc.Fused(%x_16c) {body=graph @fused_0_convnchwc(%x_16c: f32[1,1,8,8,16]<layout=NCHW16c>) {
            %w_packed: f32[2,1,3,3,16,16]<layout=OIHW16i16o> = constant elided "sha256:daefd6c806751b27"
            %b: f32[32] = constant elided "sha256:4b5773506a52cba8"
            %conv_16c: f32[1,2,8,8,16]<layout=NCHW16c> = nnc.ConvNCHWc(%x_16c, %w_packed, %b) {channels_in=16, channels_out=32, dilations=[1, 1], group=1, ic_block=16, kernel_shape=[3, 3], oc_block=16, pads=[1, 1, 1, 1], strides=[1, 1]}
            %relu_16c: f32[1,2,8,8,16]<layout=NCHW16c> = Relu(%conv_16c)
            return %relu_16c
          }, pattern="ConvNCHWc+Relu"} schedule{kind="conv2d_nchwc", params={ic_unroll=4, oc_unroll=2, ow_block=8}, vector="oc:16", parallel=3, est_cycles=5760, source="model", for="5b877ba3"}
          %relu: f32[1,32,8,8] = nnc.FromBlocked(%relu_16c) {channels=32} schedule{kind="injective", params={chunk=256}, vector="inner:16", parallel=1, est_cycles=512, source="model", for="d70193a7"}
          return %relu
        }""", target=AVX512, backend=CPU, allow_elided=True)


def test_gemm_golden():
    # 8 x 64 x 32: nr = 4 vectors (64), mr = 4 (no row tail; 16 FMAs per 8 loads, efficiency 2/2.4),
    # kc = K = 32, mc = M = 8; 16384 MACs / 32 per cycle / 0.833 / 2 cores = 307 cycles.
    assert_pass(GEMM, "schedule", """
        graph @main(%a: f32[8,32], %b: f32[32,64], %c: f32[64]) {
          %y: f32[8,64] = Gemm(%a, %b, %c) {alpha=0.5} schedule{kind="gemm", params={kc=32, mc=8, mr=4, nr=64}, vector="n:16", parallel=1, est_cycles=307, source="model", for="1ad8e8ef"}
          return %y
        }""", target=AVX512, backend=CPU)


def test_node_schedule_is_typed_and_fused_nodes_have_no_schedule_attribute():
    g = scheduled(CONV_RELU_NCHWC)
    fused = g.value("relu_16c").producer
    assert isinstance(fused.schedule, Schedule)
    assert fused.schedule.params == {"ic_unroll": 4, "oc_unroll": 2, "ow_block": 8}
    assert fused.schedule.fingerprint == kernel_fingerprint(fused)
    assert "schedule" not in fused.attrs and "schedule" not in fused.schema.attrs
    assert "schedules" not in g.meta
    assert all(n.schedule is None for n in fused.attrs["body"].nodes)  # bodies are not kernels


# ------------------------------------------------------------ must not fire
def test_dynamic_shapes_get_no_schedule():
    source = """
        graph @main(%a: f32[N,32], %b: f32[32,64]) {
          %y: f32[N,64] = MatMul(%a, %b)
          return %y
        }"""
    assert_pass(source, "schedule", source, target=AVX512, backend=CPU)


def test_no_target_no_schedule():
    assert_pass(GEMM, "schedule", GEMM)


def test_a_node_that_became_dynamic_loses_its_schedule():
    g = scheduled(GEMM)
    y = g.value("y")
    a = g.inputs[0]
    a.type, y.type = tensor(f32, ("N", 32)), tensor(f32, ("N", 64))
    PassManager("schedule").run(g, PassContext(target=AVX512, backend=CPU))
    assert y.producer.schedule is None


# ------------------------------------------------------------------ staleness
def test_fingerprint_ignores_names_but_not_types_or_attributes():
    g = scheduled(GEMM)
    node = g.value("y").producer
    before = kernel_fingerprint(node)
    g.rename(g.value("y"), "renamed")
    g.rename(g.inputs[0], "a2")
    assert kernel_fingerprint(node) == before
    assert g.clone().value("renamed").producer.schedule == node.schedule
    node.attrs["alpha"] = 0.25
    assert kernel_fingerprint(node) != before
    node.attrs["alpha"] = 0.5
    g.value("renamed").type = tensor(f32, (8, 64)).with_layout("NC64n")
    assert kernel_fingerprint(node) != before


def test_fingerprint_covers_the_fused_body():
    g = scheduled(CONV_RELU_NCHWC)
    fused = g.value("relu_16c").producer
    body = fused.attrs["body"]
    relu = body.nodes[-1]
    assert stale_schedule(fused) is None
    relu.op = "Sigmoid"  # same types, another epilogue
    assert stale_schedule(fused) is not None


def test_verifier_reports_a_stale_schedule():
    g = scheduled(GEMM)
    node = g.value("y").producer
    verify(g)
    node.attrs["transA"] = 0  # an attribute the schedule was not chosen with
    with pytest.raises(VerificationError, match=r"schedule of %y is stale: .*re-run `schedule`") as exc:
        verify(g)
    assert ">> %y: f32[8,64] = Gemm" in str(exc.value)  # the faulty node is shown
    assign_schedule(node, node.schedule)
    verify(g)


def test_a_schedule_without_fingerprint_is_stale():
    g = scheduled(GEMM)
    node = g.value("y").producer
    node.schedule = Schedule("gemm", {"mr": 4})
    with pytest.raises(VerificationError, match="records no fingerprint"):
        verify(g)


def test_a_pass_that_changes_a_scheduled_node_fails_verification():
    def change_alpha(graph, ctx):  # plays a pass that rewrites a kernel after `schedule`
        graph.nodes[0].attrs["alpha"] = 2.0
        return True

    g = scheduled(GEMM)
    step = PassStep(PassInfo("change-alpha", change_alpha, "test only", {}), {})
    with pytest.raises(PassError, match=r"IR is invalid after this pass.*schedule of %y is stale"):
        PassManager([step]).run(g, PassContext(target=AVX512, backend=CPU))


def test_schedules_in_nested_graphs_are_refused():
    g = scheduled(CONV_RELU_NCHWC)
    body = g.value("relu_16c").producer.attrs["body"]
    assign_schedule(body.nodes[-1], Schedule("elementwise", {"chunk": 16}))
    with pytest.raises(VerificationError, match="nested graph has a schedule"):
        verify(g)


# -------------------------------------------------------------- IR dumps
def test_print_ir_after_schedule_shows_every_schedule():
    g = parse_graph(textwrap.dedent(CONV_RELU_NCHWC).strip(), allow_elided=True)
    out = io.StringIO()
    PassManager("schedule,plan-memory", print_ir_after=["schedule"], stream=out).run(
        g, PassContext(target=AVX512, backend=CPU))
    text = out.getvalue()
    assert text.startswith("// ----- IR after schedule -----\n")
    assert "memory{" not in text  # printed before plan-memory ran
    for node in g.nodes:
        assert node.schedule is not None
        assert text.count(f'for="{node.schedule.fingerprint}"') == 1
    assert text.count("schedule{") == len(g.nodes) == 3
    # What was printed reads back to the same graph and schedules.
    dumped = text.split("-----\n", 1)[1].strip()
    again = parse_graph(dumped, allow_elided=True)
    assert [n.schedule for n in again.nodes] == [n.schedule for n in g.nodes]
