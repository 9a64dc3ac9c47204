"""Executing a program: the cycle/traffic/energy simulation, and the arithmetic itself.

``simulate`` walks the program's instructions and costs them (``model``): a
``gemm`` by its folds, a ``vec`` by its lane operations, DMA by the words
moved; it reads nothing from the graph.  ``execute`` computes the outputs: a
``gemm`` layer runs its anchor on the array (``numerics``) and its epilogue as
the vector unit would, ``vec``/``host``/``view`` layers run the op's
reference arithmetic.  Layers run in program order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ir.anchor import anchor_of
from ir.graph import Graph, Node
from ir.interpreter import Interpreter

from .config import ArrayConfig, EnergyTable
from .model import GemmStats, energy_pj, simulate_gemm, vector_cycles
from .numerics import run_on_array
from .program import Program
from .report import LayerReport, Report


def program_config(program: Program) -> ArrayConfig:
    d = dict(program.config)
    return ArrayConfig(energy=EnergyTable(**d.pop("energy")), **d)


def simulate(program: Program, mode: str = "") -> Report:
    """Per-layer cycles, traffic, stalls, energy and latency of ``program`` (no data needed)."""
    cfg = program_config(program)
    mode = mode or cfg.mode
    rows: list[LayerReport] = []
    last_stored: tuple[str, int] = ("", 0)       # the previous layer's output: tensor, words
    for layer in program.layers:
        r = LayerReport(name=layer.name, kind=layer.kind, label=layer.label)
        vec_ops = 0.0
        for ins in layer.instructions:
            f = ins.fields
            if ins.op == "gemm":
                src = next((i.fields["tensor"] for i in layer.instructions
                            if i.op == "dma.load" and i.fields["sram"] == "ifmap"), "")
                reuse = (mode == "refined" and src == last_stored[0] and src != ""
                         and last_stored[1] <= cfg.sram_words("ifmap") // 2)
                st = simulate_gemm(f["m"], f["k"], f["n"], f["groups"], f["dataflow"], cfg, mode,
                                   f.get("ifmap_words", 0), ifmap_on_chip=reuse)
                r.set_gemm(f, st, cfg)
            elif ins.op == "vec":
                ops = f["elements"] * f["ops_per_element"]
                vec_ops += ops
                c = vector_cycles(f["elements"], f["ops_per_element"], cfg)
                r.vector_cycles += c
            elif ins.op == "host":
                r.host_reason = f["reason"]
            elif ins.op == "dma.load" and layer.kind == "vector":
                r.dram["ifmap_reads"] += f["words"]
            elif ins.op == "dma.store" and layer.kind == "vector":
                r.dram["ofmap_writes"] += f["words"]
            elif ins.op == "dma.load" and f["sram"] == "vector":
                r.dram["vector_reads"] += f["words"]
        if layer.kind == "vector":
            # Loads and stores at dram_bw words/cycle per direction overlap the lanes' work.
            traffic = max(r.dram["ifmap_reads"], r.dram["ofmap_writes"]) / cfg.dram_bw
            r.stall_cycles = int(max(0, np.ceil(traffic) - r.vector_cycles))
            r.total_cycles = r.vector_cycles + r.stall_cycles
        elif layer.kind == "gemm":
            # Epilogue ops work on outputs as they drain: hidden unless slower than the array.
            extra = int(max(0, r.vector_cycles - r.total_cycles))
            r.stall_cycles += extra
            r.total_cycles += extra
        stored = [i.fields for i in layer.instructions if i.op == "dma.store"]
        if stored:
            last_stored = (stored[-1]["tensor"], int(stored[-1]["words"]))
        elif layer.kind != "view":
            last_stored = ("", 0)
        stats = GemmStats(macs=r.macs, compute_cycles=r.compute_cycles, stall_cycles=r.stall_cycles,
                          sram=r.sram, dram=r.dram)
        r.energy_pj = energy_pj(stats, cfg, vec_ops)
        r.latency_us = r.total_cycles / cfg.clock_mhz
        rows.append(r)
    return Report(config=cfg, mode=mode, layers=rows)


class _ArrayInterpreter(Interpreter):
    """Runs a fused group's body with its anchor computed by the array."""

    def __init__(self, graph: Graph, anchor: Node, chunk: int) -> None:
        super().__init__(graph, check_types=False)
        self.anchor, self.chunk = anchor, chunk

    def run_node(self, node: Node, inputs: Sequence[Any]) -> list[Any]:
        if node is self.anchor:
            return [run_on_array(node, inputs, self.chunk)]
        return super().run_node(node, inputs)


def execute(program: Program, graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs as the accelerator computes them (array GEMMs, vector unit, host)."""
    env: dict[int, Any] = {}
    for v, x in zip(graph.inputs, inputs):
        env[id(v)] = x
    for v in graph.constants.values():
        env[id(v)] = v.const
    runner = Interpreter(graph, check_types=False)
    nodes = graph.nodes
    for layer in program.layers:
        node = nodes[layer.node]
        args = [None if v is None else env[id(v)] for v in node.inputs]
        if layer.kind == "gemm":
            g = layer.gemm().fields
            anchor = anchor_of(node)
            if anchor is node:
                outs = [run_on_array(node, args, g["k_chunk"])]
            else:
                body = node.attrs["body"]
                feeds = {v.name: a for v, a in zip(body.inputs, args)}
                outs = _ArrayInterpreter(body, anchor, g["k_chunk"]).run(feeds)
        else:
            outs = runner.run_node(node, args)
        for v, o in zip(node.outputs, outs):
            env[id(v)] = o
    return [np.asarray(env[id(v)]) for v in graph.outputs]
