"""The `quantize` command and `build --quantize`: flags, options, printed and JSON reports."""

from __future__ import annotations

import sys
from typing import Any

import onnx

from ir.errors import CompilerError

from .calibration import load_calibration
from .mixed_precision import mixed_precision
from .options import METHODS, QuantizeOptions, options_dict
from .report import error_report, format_report, model_bytes, write_json
from .rewrite import quantize_model


def add_quantize_arguments(p: Any, *, prefix: str = "") -> None:
    """The calibration flags shared by `quantize` and `build --quantize`."""
    p.add_argument(f"--{prefix}method", dest="quant_method", choices=METHODS, default="minmax",
                   help="calibration method (default minmax)")
    p.add_argument("--per-channel", action="store_true", help="per-output-channel weight scales")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--symmetric", dest="symmetric", action="store_true",
                   help="symmetric activations (zero point 0)")
    g.add_argument("--asymmetric", dest="symmetric", action="store_false",
                   help="asymmetric activations (default, as onnxruntime)")
    p.add_argument("--activation-type", choices=["int8", "uint8"], default="int8")
    p.add_argument("--weights", dest="weight_type", choices=["int8", "int4"], default="int8",
                   help="weight type: int8, or int4 (opset 21 DequantizeLinear, symmetric [-7, 7]; "
                        "the cpu target unpacks them into its int8 kernels)")
    p.add_argument("--float-output", action="store_true",
                   help="leave the graph outputs in float (the last layer is not requantized)")
    p.add_argument("--exclude", action="append", default=[], metavar="NODE",
                   help="keep this node in float (repeatable)")
    p.add_argument("--calib-target", choices=["ref", "cpu"], default="ref",
                   help="what runs the float model during calibration (default ref)")


def add_build_arguments(p: Any) -> None:
    p.add_argument("--quantize", choices=["int8"], help="quantize the model (post-training) before building")
    p.add_argument("--calib", metavar="FILE.npz", help="calibration inputs for --quantize")
    add_quantize_arguments(p, prefix="quant-")


def add_quantize_command(add: Any) -> None:
    p = add("quantize", cmd_quantize, "post-training int8 quantization: calibrate and write a QDQ model")
    p.add_argument("model", help="float .onnx model")
    p.add_argument("--calib", required=True, metavar="FILE.npz", help="calibration inputs")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    add_quantize_arguments(p)
    p.add_argument("--target-sqnr", type=float, metavar="DB",
                   help="mixed precision: keep the most sensitive layers in float until the outputs' SQNR "
                        "on the calibration set reaches DB")
    p.add_argument("--report", metavar="FILE.json", help="error report JSON (default OUT.report.json)")
    p.add_argument("--no-report", action="store_true", help="skip the per-tensor error report")
    p.add_argument("-q", "--quiet", action="store_true")


def _options(args: Any) -> QuantizeOptions:
    return QuantizeOptions(method=args.quant_method, per_channel=args.per_channel, symmetric=bool(args.symmetric),
                           activation_type=args.activation_type, float_outputs=args.float_output,
                           exclude=tuple(args.exclude), calib_target=args.calib_target,
                           progress=not getattr(args, "quiet", False),
                           weights=getattr(args, "weight_type", "int8"))


def quantize_for_build(args: Any) -> onnx.ModelProto:
    """`build --quantize int8 --calib FILE`: the QDQ model the build compiles."""
    if not args.calib:
        raise CompilerError("--quantize needs calibration data", hint="add --calib FILE.npz")
    import hashlib
    model = onnx.load(str(args.model))
    opts = _options(args)
    res = quantize_model(model, args.calib, opts)
    before, after = model_bytes(model), model_bytes(res.model)
    with open(args.calib, "rb") as f:
        calib_sha = hashlib.sha256(f.read()).hexdigest()
    # For the build manifest (reproducibility: options and the calibration data's hash; sizes).
    args.quantization_record = {"options": options_dict(opts), "calibration": {"file": str(args.calib),
                                "sha256": calib_sha}, "layers": len(res.quantized_nodes),
                                "weight_bytes": {"before": before, "after": after}}
    if not getattr(args, "quiet", False):
        print(f"  quantized {len(res.quantized_nodes)} layers to int8 ({args.quant_method}); "
              f"weights {before['total']} -> {after['total']} bytes", file=sys.stderr)
    return res.model


def cmd_quantize(args: Any) -> int:
    opts = _options(args)
    model = onnx.load(args.model)
    front = None
    if args.target_sqnr is not None:
        result, front = mixed_precision(model, args.calib, opts, args.target_sqnr)
    else:
        result = quantize_model(model, args.calib, opts)
    onnx.save(result.model, args.output)
    say = (lambda *a: None) if args.quiet else print
    before, after = model_bytes(model), model_bytes(result.model)
    say(f"quantized {len(result.quantized_nodes)} layers ({opts.method}, "
        f"{'per-channel' if opts.per_channel else 'per-tensor'} weights, "
        f"{'symmetric' if opts.symmetric else 'asymmetric'} {opts.activation_type} activations) -> {args.output}")
    say(f"  weights: {before['total']} -> {after['total']} bytes "
        f"({', '.join(f'{k} {v}' for k, v in after.items() if k != 'total')})")
    payload: dict[str, Any] = {"model": args.model, "output": args.output, "options": options_dict(opts),
                               "size_bytes": {"before": before, "after": after},
                               "quantized_nodes": result.quantized_nodes}
    if front is not None:
        payload["mixed_precision"] = {"target_sqnr_db": args.target_sqnr, "front": front}
        kind = "int8" if opts.weights == "int4" else "float"
        say(f"  mixed precision (layers kept in {kind} -> outputs' SQNR on the calibration set):")
        for p in front:
            layers = p[f"{kind}_layers"]
            say(f"    {len(layers):>3} {kind}  {p['sqnr_db']:>7.2f} dB  {p['weight_bytes']:>10} B  "
                f"{', '.join(layers[-1:])}")
    if not args.no_report:
        batches = load_calibration(args.calib, model, opts.batch)
        rows = error_report(model, result, batches, progress=opts.progress)
        payload["tensors"] = rows
        say(format_report(rows))
    report = args.report or (args.output + ".report.json")
    write_json(report, payload)
    say(f"  report: {report}")
    return 0
