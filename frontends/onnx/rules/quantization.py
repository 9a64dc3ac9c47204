"""Import rules for the quantization family (see frontends/onnx/rules/__init__.py).

The ONNX-domain quantization ops need no rule: every older form
(QuantizeLinear-10/13/19/21, DequantizeLinear-10..., QLinearMatMul-10) is the
newest form with the later attributes at their defaults.

onnxruntime also defines com.microsoft copies of some of them (its quantizer
writes those for int16/int4 QDQ models, and QLinearConv for NHWC graphs);
with the same semantics they become the ONNX ops.
"""

from __future__ import annotations

from . import rule

MS = "com.microsoft"


def _as_onnx_op(allowed: tuple[str, ...]):
    def convert(b) -> list:
        unknown = sorted(set(b.attrs) - set(allowed))
        if unknown:
            b.fail(f"attribute {unknown[0]!r} is not supported",
                   hint=f"{MS}.{b.op_type} takes {', '.join(allowed)}")
        return b.default(domain="")
    return convert


rule("QuantizeLinear", domain=MS)(_as_onnx_op(("axis",)))
rule("DequantizeLinear", domain=MS)(_as_onnx_op(("axis",)))

_CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


@rule("QLinearConv", domain=MS)
def _qlinear_conv_ms(b) -> list:
    """com.microsoft.QLinearConv: ONNX's QLinearConv plus ``channels_last`` (NHWC)."""
    if b.attrs.pop("channels_last", 0):
        b.fail("channels_last=1 (NHWC) is not supported",
               hint="export the model in NCHW layout (channels_last=0)")
    return _as_onnx_op(_CONV_ATTRS)(b)
