"""What a quantization does: the options (the CLI's flags map one to one) and their JSON form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

METHODS = ("minmax", "percentile", "entropy")
QUANTIZABLE = ("Conv", "MatMul", "Gemm")


@dataclass
class QuantizeOptions:
    """What ``quantize_model`` does; the CLI's flags map one to one."""

    method: str = "minmax"
    per_channel: bool = False
    symmetric: bool = False           # activations symmetric (zero point 0); weights always are
    activation_type: str = "int8"     # int8 | uint8
    percentile: float = 99.999
    bins: int = 0                     # histogram bins; 0: 2048 (percentile), 128 (entropy: onnxruntime's default)
    batch: int = 16
    float_outputs: bool = False       # leave graph outputs in float (the last layer stays float)
    exclude: Sequence[str] = ()       # node names kept in float (mixed precision)
    calib_target: str = "ref"         # ref | cpu: what runs the float model during calibration
    progress: bool = True
    weights: str = "int8"             # int8 | int4 (opset 21 DequantizeLinear; symmetric [-7, 7])
    int8_weights: Sequence[str] = ()  # with weights int4: node names whose weights stay int8


def options_dict(opts: QuantizeOptions) -> dict[str, Any]:
    d = asdict(opts)
    d["exclude"] = list(opts.exclude)
    d["int8_weights"] = list(opts.int8_weights)
    return d
