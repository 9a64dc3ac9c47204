"""A graph's batch signature: which inputs and outputs carry a run-time batch dimension.

Set on a graph compiled for one sample of a model whose leading dimension is
a symbolic batch (``compiler/batching.py`` decides when that is sound).  A
target that can take the batch count at run time (``Capabilities.runtime_batch``)
runs every kernel over the batch: a batched input, output or intermediate
holds ``batch`` consecutive copies of the one-sample tensor the graph
describes, while constants and unbatched inputs are shared by all samples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchSignature:
    """``symbol``: the batch dimension's name; one flag per graph input and output."""

    symbol: str
    inputs: tuple[bool, ...]
    outputs: tuple[bool, ...]

    def to_json(self) -> dict:
        return {"symbol": self.symbol, "inputs": list(self.inputs), "outputs": list(self.outputs)}

    @staticmethod
    def from_json(d: dict) -> BatchSignature:
        return BatchSignature(str(d["symbol"]), tuple(bool(x) for x in d["inputs"]),
                              tuple(bool(x) for x in d["outputs"]))
