"""--target systolic through the contract: options, config files, artifacts, programs, reports, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from backends.base import BackendError, get_backend
from backends.systolic import SystolicBackend
from backends.systolic.__main__ import main as sim_main
from backends.systolic.api import build
from backends.systolic.config import PRESETS, read_scalesim_cfg
from compiler.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CNN = DATA / "digits_cnn.onnx"
SCALESIM_CFG = """[general]
run_name = tiny

[architecture_presets]
ArrayHeight: 8
ArrayWidth: 4
IfmapSramSzkB: 2
FilterSramSzkB: 2
OfmapSramSzkB: 1
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 3
Dataflow : is

[run_presets]
InterfaceBandwidth: USER
"""


# ------------------------------------------------------------------ options
@pytest.mark.parametrize("opts,expected", [
    ({"dataflow": "xs"}, "os"), ({"rows": -1}, ">= 0"), ({"preset": "tpu512"}, "tpu256"),
    ({"word": "int4"}, "fp32"), ({"dram_bw": "fast"}, "float"), ({"clock_mhz": -5}, "positive"),
    ({"mode": "exact"}, "refined"), ({"cycles": 3}, "rows (int)"),
    ({"config": "/nonexistent/x.cfg"}, "not found"),
])
def test_bad_options_are_clear_errors(opts, expected):
    with pytest.raises(BackendError) as err:
        get_backend("systolic", opts)
    assert expected in str(err.value)


def test_presets_and_overrides():
    assert get_backend("systolic").array == PRESETS["32x32"]
    b = get_backend("systolic", {"preset": "tpu256", "dataflow": "os", "cols": "128", "dram_bw": "32"})
    assert (b.array.rows, b.array.cols, b.array.dataflow, b.array.dram_bw) == (256, 128, "os", 32.0)
    info = b.target_info
    assert info.kind == "systolic" and info.array_cols == 128 and info.sram["ifmap"] == 8192 * 1024
    assert get_backend("systolic", {"dataflow": "auto"}).array.dataflow == ""
    assert {p.rows for p in PRESETS.values()} == {8, 16, 32, 128, 256}


def test_scalesim_cfg_and_json_config_files(tmp_path):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(SCALESIM_CFG)
    arr, extra = read_scalesim_cfg(cfg)
    assert (arr.rows, arr.cols, arr.dataflow, arr.ifmap_sram_kb, arr.ofmap_sram_kb, arr.dram_bw) == \
        (8, 4, "is", 2, 1, 3.0) and extra["interface_bandwidth"] == "USER"
    b = get_backend("systolic", {"config": str(cfg), "rows": 16})          # an option beats the file
    assert (b.array.rows, b.array.cols) == (16, 4)
    js = tmp_path / "a.json"
    js.write_text(json.dumps({"preset": "edge16", "clock_mhz": 250, "energy": {"dram_per_byte": 99.0}}))
    b = get_backend("systolic", {"config": str(js)})
    assert (b.array.rows, b.array.clock_mhz, b.array.energy.dram_per_byte) == (16, 250.0, 99.0)
    js.write_text(json.dumps({"rows": 0}))
    with pytest.raises(BackendError, match="rows"):
        get_backend("systolic", {"config": str(js)})
    bad = tmp_path / "bad.cfg"
    bad.write_text("[general]\nrun_name = x\n")
    with pytest.raises(BackendError, match="malformed SCALE-Sim config"):
        get_backend("systolic", {"config": str(bad)})


# ------------------------------------------------------------- artifacts
def test_build_save_load_run_and_print(tmp_path, capsys):
    x = np.load(DATA / "digits_test.npz")["x_test"][:4].astype(np.float32)
    out = tmp_path / "art"
    assert cli_main(["build", str(CNN), "-t", "systolic", "-o", str(out), "--option", "preset=edge16"]) == 0
    m = compiler.load(out)
    want = compiler.compile(str(CNN), target="ref").run({"input": x})
    got = m.run({"input": x})
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)
    # A static build saves its program, listing and reports.
    exe = build(str(CNN), {"preset": "edge16"}, batch=2)
    files = exe.save(tmp_path / "static")
    for f in ("program.json", "program.txt", "report.json", "COMPUTE_REPORT.csv", "graph.ir"):
        assert f in files and (tmp_path / "static" / f).stat().st_size > 0
    again = SystolicBackend({"preset": "edge16"}).load(tmp_path / "static")
    assert again.program.to_json() == exe.program.to_json()
    np.testing.assert_allclose(again.run([np.concatenate([x[:2]])])[0], want[list(want)[0]][:2], rtol=1e-4,
                               atol=1e-4)
    text = exe.program.text()
    assert "dma.load" in text and "gemm      ws" in text and "dram[0x40000000]" in text and "sync" in text


def test_a_broken_artifact_is_a_clear_error(tmp_path):
    exe = build(str(CNN), batch=1)
    exe.save(tmp_path)
    (tmp_path / "program.json").write_text("{}")
    with pytest.raises(BackendError, match="malformed systolic program"):
        SystolicBackend().load(tmp_path)
    (tmp_path / "program.json").unlink()
    with pytest.raises(BackendError, match="no program"):
        SystolicBackend().load(tmp_path)


def test_the_program_places_every_layer():
    exe = build(str(CNN), {"preset": "edge8"}, batch=1)
    kinds = [layer.kind for layer in exe.program.layers]
    assert kinds.count("gemm") == 5 and "vector" in kinds
    conv = exe.program.layers[kinds.index("gemm")]
    ops = [i.op for i in conv.instructions]
    assert ops[0] == "dma.load" and "gemm" in ops and ops[-2:] == ["dma.store", "sync"]
    g = conv.gemm().fields
    assert (g["m"], g["k"], g["n"], g["groups"], g["dataflow"]) == (64, 9, 16, 1, "ws")
    assert g["row_folds"] == 2 and g["col_folds"] == 2


def test_dma_words_are_the_reported_dram_traffic():
    exe = build(str(CNN), {"preset": "edge8", "ifmap_sram_kb": 1, "filter_sram_kb": 1}, batch=2)
    rep = exe.report()
    for layer, row in zip(exe.program.layers, rep.layers):
        if layer.kind != "gemm":
            continue
        loads = {i.fields["sram"]: i.fields for i in layer.instructions if i.op == "dma.load"}
        store = next(i.fields for i in layer.instructions if i.op == "dma.store")
        assert loads["filter"]["words"] == row.dram["filter_reads"]
        assert loads["ifmap"]["words"] == row.dram["ifmap_reads"]
        assert store["words"] == row.dram["ofmap_writes"]
        assert loads["filter"]["blocks"] >= 1 and loads["filter"]["block_words"] <= loads["filter"]["words"]


def test_auto_dataflow_follows_the_schedule_pass():
    exe = build(str(CNN), {"preset": "edge16", "dataflow": "auto"}, batch=4)
    nodes = exe.graph.nodes
    flows = set()
    for layer in exe.program.layers:
        if layer.kind == "gemm":
            node = nodes[layer.node]
            flow = layer.gemm().fields["dataflow"]
            flows.add(flow)
            if node.schedule is not None and node.schedule.dataflow:
                assert flow == node.schedule.dataflow
    assert flows <= {"os", "ws", "is"} and flows


def test_ops_off_the_array_go_to_the_host_with_a_reason():
    w = np.ones((4, 4), np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]),
                           helper.make_node("NonZero", ["m"], ["nz"])], "h",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 4))],
                          [helper.make_tensor_value_info("nz", TensorProto.INT64, None)],
                          [numpy_helper.from_array(w, "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    exe = build(model)
    host = [layer for layer in exe.program.layers if layer.kind == "host"]
    assert len(host) == 1 and "run time" in host[0].instructions[0].fields["reason"]
    table = exe.report().table()
    assert "on the host:" in table
    x = np.array([[1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(exe.run([x])[0], compiler.compile(model, target="ref").run({"x": x})["nz"])


# ----------------------------------------------------------------- reports
def test_report_totals_energy_latency_and_files(tmp_path):
    exe = build(str(CNN), {"preset": "32x32", "word": "int8"}, batch=1)
    rep = exe.report()
    t = rep.totals()
    gemm = [r for r in rep.layers if r.kind == "gemm"]
    assert t["macs"] == sum(r.macs for r in gemm) == (64 * 9 * 16 + 64 * 144 * 32 + 16 * 288 * 64 + 256 * 64
                                                      + 64 * 10)
    assert t["cycles"] == sum(r.total_cycles for r in rep.layers) > t["compute_cycles"] > 0
    assert t["latency_us"] == pytest.approx(t["cycles"] / 1000.0)
    assert all(r.energy_pj["total"] > 0 for r in gemm) and t["energy_uj"] > 0
    assert all(0 < r.utilization <= 1 for r in gemm)
    files = rep.write(tmp_path)
    assert {"report.json", "COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"} <= set(files)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["totals"]["cycles"] == t["cycles"] and len(data["layers"]) == len(rep.layers)
    assert len((tmp_path / "COMPUTE_REPORT.csv").read_text().splitlines()) == 1 + len(gemm)
    refined = exe.report("refined")
    assert refined.totals()["compute_cycles"] < t["compute_cycles"]
    # Cross-layer reuse: a layer reading the previous layer's output (small enough) reads no DRAM.
    pairs = [(a.dram["ifmap_reads"], b.dram["ifmap_reads"]) for a, b in zip(rep.layers, refined.layers)
             if a.kind == "gemm"]
    assert all(r <= c for c, r in pairs) and any(r == 0 < c for c, r in pairs)
    # Word size changes traffic in bytes (energy), not in words.
    fp = build(str(CNN), {"preset": "32x32", "word": "fp32"}, batch=1).report()
    assert fp.totals()["energy_uj"] > t["energy_uj"]
    # The profile gives simulated seconds per layer.
    prof = exe.profile([np.zeros((1, 1, 8, 8), np.float32)])
    assert sum(s for _, s in prof) == pytest.approx(t["latency_us"] * 1e-6)


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    rep = build(str(CNN), batch=1).report()
    assert rep.plot(tmp_path / "r.png") is not None and (tmp_path / "r.png").stat().st_size > 1000


# --------------------------------------------------------------------- CLI
def test_cli_sim_export_sweep(tmp_path, capsys):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(SCALESIM_CFG)
    topo = tmp_path / "t.csv"
    assert sim_main(["sim-export", str(CNN), "-o", str(topo)]) == 0
    assert topo.read_text().splitlines()[1] == "fused_0_convnhwc, 64, 16, 9,"
    assert sim_main(["sim", "--config", str(cfg), "--topology", str(topo), "-o", str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out" / "COMPUTE_REPORT.csv").read_text().splitlines()
    assert len(rows) == 6
    conv_topo = tmp_path / "c.csv"
    conv_topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                         "Num Filter, Strides,\nc1, 8, 8, 3, 3, 4, 10, 1,\nDP1, 8, 8, 3, 3, 4, 1, 1,\n")
    assert sim_main(["sim", "--config", str(cfg), "--topology", str(conv_topo), "-o", str(tmp_path / "o2")]) == 0
    capsys.readouterr()
    assert sim_main(["sim-sweep", str(CNN), "--arrays", "8x8,16x4", "--dataflows", "os,ws",
                     "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "fewest cycles:" in out and len(json.loads((tmp_path / "s.json").read_text())) == 4
    assert sim_main(["sim-sweep", str(CNN), "--arrays", "8by8"]) == 1
    assert "bad --arrays entry" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("Layer, M, N, K,\nx, 1, two, 3,\n")
    assert sim_main(["sim", "--config", str(cfg), "--topology", str(bad), "-o", str(tmp_path / "o3")]) == 1
    assert "malformed topology row" in capsys.readouterr().err


def test_the_compiler_cli_hands_sim_commands_over(tmp_path, capsys):
    assert cli_main(["sim-export", str(CNN), "-o", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").read_text().startswith("Layer, M, N, K,")
    assert cli_main(["sim", "--config", "/nonexistent.cfg", "--topology", "x.csv", "-o", str(tmp_path)]) == 1
    assert "cannot read the SCALE-Sim config" in capsys.readouterr().err


def test_the_compiler_cli_lists_target_commands_and_profiles_a_systolic_artifact(tmp_path, capsys):
    from compiler.cli import make_parser, target_commands
    assert {"sim", "sim-export", "sim-sweep"} <= set(target_commands())
    make_parser()   # a target command clashing with a built-in one would fail here
    art = tmp_path / "art"
    model = DATA / "int8" / "digits_cnn.qop_minmax.onnx"
    assert cli_main(["build", str(model), "-t", "systolic", "-o", str(art), "--option", "preset=edge8", "-q"]) == 0
    capsys.readouterr()
    assert cli_main(["profile", str(art)]) == 0
    out = capsys.readouterr().out
    exe = build(str(model), {"preset": "edge8"}, batch=1)
    assert out.strip() == exe.report().table().strip()     # the report's table, totals included
    for column in ("compute", "stall", "util%", "map%", "if rd", "fl rd", "ps rd", "of wr", "dram rd", "uJ", "us"):
        assert column in out.splitlines()[1]
    assert "int8 words" in out and "total:" in out and "SRAM words:" in out


def test_contract_listing(capsys):
    assert cli_main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "systolic" in out and "--option dataflow" in out
