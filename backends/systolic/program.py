"""The program an accelerator runtime would execute: layers of DMA, GEMM, vector, host and sync instructions.

Each instruction is an opcode and its fields (plain JSON data), so a program
saves and loads exactly and prints as text.  A ``gemm`` is a CISC loop
instruction over all folds of one GEMM, as Gemmini's ``LOOP_WS`` /
``LOOP_CONV_WS`` are: it names the dataflow, the GEMM's M, K, N and groups,
the fold grid and the streamed length, and the SRAM buffers it reads.  ``dma``
instructions move a tensor's words between a DRAM address and an SRAM
buffer; ``resident`` ones are loaded once, ``per-fold`` ones reload a block
whenever the fold loop moves to another one (their words are the DRAM
traffic the tiling rules give).  ``vec`` runs an op on the vector unit,
``host`` hands one to the host CPU with the reason, ``view`` renames a
tensor's bytes, ``sync`` waits for every outstanding DMA and compute.

Layers refer to the graph's node by index (``node``): the simulator takes
the op's arithmetic (attributes, weights) from it, and everything about the
mapping (dims, dataflow, folds, addresses) from the instructions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROGRAM_FORMAT = 1
OPCODES = ("dma.load", "dma.store", "gemm", "vec", "host", "view", "sync")
# Where things live: DRAM regions (byte addresses) and SRAM buffers.
DRAM_INPUTS = 0x0000_0000
DRAM_ACTIVATIONS = 0x1000_0000
DRAM_WEIGHTS = 0x4000_0000


@dataclass
class Instruction:
    op: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> list[Any]:
        return [self.op, self.fields]

    def text(self) -> str:
        f = self.fields
        if self.op in ("dma.load", "dma.store"):
            arrow = (f"dram[{f['dram']:#010x}] -> {f['sram']}[{f['sram_addr']:#06x}]" if self.op == "dma.load"
                     else f"{f['sram']}[{f['sram_addr']:#06x}] -> dram[{f['dram']:#010x}]")
            blocks = f.get("blocks", 1)
            split = f" in {blocks} blocks of <={f['block_words']}" if blocks > 1 else ""
            return f"{self.op:<9} {f['tensor']:<28} {arrow}  words={f['words']}{split} ({f['pattern']})"
        if self.op == "gemm":
            return (f"gemm      {f['dataflow']}  M={f['m']} K={f['k']} N={f['n']} G={f['groups']}  "
                    f"folds={f['row_folds']}x{f['col_folds']} T={f['stream']}  "
                    f"-> {f['out']}")
        if self.op == "vec":
            return f"vec       {f['what']:<20} elements={f['elements']} ops/elt={f['ops_per_element']:g}"
        if self.op == "host":
            return f"host      {f['what']:<20} ({f['reason']})"
        if self.op == "view":
            return f"view      {f['what']:<20} {f['tensor']} aliases {f['of']}"
        return self.op


@dataclass
class Layer:
    """One kernel of the graph: its instructions and what executes it."""

    name: str
    node: int                     # index into graph.nodes
    kind: str                     # gemm | vector | host | view
    label: str                    # op or fused pattern
    instructions: list[Instruction] = field(default_factory=list)

    def gemm(self) -> Instruction:
        return next(i for i in self.instructions if i.op == "gemm")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node, "kind": self.kind, "label": self.label,
                "instructions": [i.to_json() for i in self.instructions]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> "Layer":
        return Layer(d["name"], d["node"], d["kind"], d["label"],
                     [Instruction(op, fields) for op, fields in d["instructions"]])


@dataclass
class Program:
    """A whole model's program, with the array configuration it was compiled for."""

    config: dict[str, Any]
    layers: list[Layer] = field(default_factory=list)
    dram: dict[str, list[int]] = field(default_factory=dict)   # tensor -> [byte address, words]

    def instructions(self) -> list[Instruction]:
        return [i for layer in self.layers for i in layer.instructions]

    def to_json(self) -> dict[str, Any]:
        return {"format": PROGRAM_FORMAT, "config": self.config, "dram": self.dram,
                "layers": [layer.to_json() for layer in self.layers]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> "Program":
        return Program(d["config"], [Layer.from_json(x) for x in d["layers"]], d.get("dram", {}))

    def text(self) -> str:
        """The program as an assembly-like listing (``print(program.text())``)."""
        c = self.config
        n = sum(len(layer.instructions) for layer in self.layers)
        lines = [f"; systolic program: {c['name']} {c['rows']}x{c['cols']} {c['dataflow'] or 'per-layer'} "
                 f"{c['word']}, {c['clock_mhz']:g} MHz; {len(self.layers)} layers, {n} instructions"]
        pc = 0
        for li, layer in enumerate(self.layers):
            lines.append(f"L{li} {layer.name} [{layer.kind}: {layer.label}]")
            for ins in layer.instructions:
                lines.append(f"  {pc:5d}  {ins.text()}")
                pc += 1
        return "\n".join(lines)
