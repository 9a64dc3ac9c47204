"""Post-training quantization: calibrate a float ONNX model and write a standard QDQ model.

``quantize_model(model, calib, options)`` runs the float model on the
calibration set (our reference interpreter, or the compiled cpu module for
speed), chooses a range for every activation that a Conv/MatMul/Gemm reads or
writes (MinMax, Percentile or Entropy/KL calibration), and inserts
``QuantizeLinear -> DequantizeLinear`` pairs the way onnxruntime's quantizer
does: int8 or int4 weights (symmetric, per tensor or per output channel), int32 biases
with scale ``x_scale * w_scale``, int8 (or uint8) activations.  A Relu whose
output range starts at 0 is absorbed by the zero point, as onnxruntime does.
The result runs on onnxruntime, and our ``fold-qdq`` pass turns it into integer
ops for every target.

``error_report`` compares the float and quantized models tensor by tensor
(SQNR, max error), like onnxruntime's ``qdq_loss_debug``.

The package, one job per module: ``options`` (what to do), ``calibration``
(ranges), ``qparams`` (scales and zero points), ``rewrite`` (the QDQ model),
``report`` (errors and sizes), ``mixed_precision`` (sensitivity and the
front), ``cli`` (the commands).
"""

from __future__ import annotations

from .calibration import calibrate, entropy_threshold, load_calibration
from .cli import (add_build_arguments, add_quantize_arguments, add_quantize_command, cmd_quantize,
                  quantize_for_build)
from .mixed_precision import mixed_precision
from .options import METHODS, QUANTIZABLE, QuantizeOptions, options_dict
from .qparams import activation_qparams, weight_qparams
from .report import error_report, format_report, model_bytes, sqnr_db, write_json
from .rewrite import QuantizeResult, prepare, quantize_model

__all__ = ["METHODS", "QUANTIZABLE", "QuantizeOptions", "QuantizeResult", "activation_qparams",
           "add_build_arguments", "add_quantize_arguments", "add_quantize_command", "calibrate", "cmd_quantize",
           "entropy_threshold", "error_report", "format_report", "load_calibration", "mixed_precision",
           "model_bytes", "options_dict", "prepare", "quantize_for_build", "quantize_model", "sqnr_db",
           "weight_qparams", "write_json"]
