"""Mixed precision where full int8 loses accuracy: the digits MLP with one outlier unit.

Scaling hidden unit 0 of the first layer by 300 (and its outgoing weights by
1/300) leaves the float model's function unchanged (ReLU is positively
homogeneous), but the first hidden activation's range becomes 300x wider, so
per-tensor int8 quantization of it keeps almost no resolution for the other
units and accuracy drops.  ``mixed_precision`` measures each layer's
sensitivity and keeps layers in float until the outputs' SQNR on the
calibration set reaches the target; this prints the front it tried.

    python examples/mixed_precision_digits.py [--target-sqnr 30]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))


def outlier_mlp(scale: float = 300.0) -> onnx.ModelProto:
    """digits_mlp with hidden unit 0 scaled by ``scale`` (same function, a wide activation range)."""
    m = onnx.load(os.path.join(DATA, "digits_mlp.onnx"))
    inits = {t.name: t for t in m.graph.initializer}
    w0, b0 = numpy_helper.to_array(inits["net.0.weight"]).copy(), numpy_helper.to_array(inits["net.0.bias"]).copy()
    w2 = numpy_helper.to_array(inits["net.2.weight"]).copy()
    w0[0] *= scale
    b0[0] *= scale
    w2[:, 0] /= scale
    for name, arr in (("net.0.weight", w0), ("net.0.bias", b0), ("net.2.weight", w2)):
        inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-sqnr", type=float, default=30.0)
    args = ap.parse_args()
    import onnxruntime as ort
    from compiler.quantize import QuantizeOptions, mixed_precision, quantize_model
    model = outlier_mlp()
    test = np.load(os.path.join(DATA, "digits_test.npz"))
    x, y = test["x_test"].reshape(-1, 64).astype(np.float32), test["y_test"]
    calib = np.load(os.path.join(DATA, "digits_calib.npz"))["x_calib"].reshape(-1, 64).astype(np.float32)
    batches = [{"input": calib[i:i + 25]} for i in range(0, len(calib), 25)]

    def acc(m: onnx.ModelProto) -> float:
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return float((s.run(None, {"input": x})[0].argmax(1) == y).mean())

    opts = QuantizeOptions(progress=False)
    print(f"fp32 accuracy: {acc(model):.4f}")
    print(f"int8 (every layer) accuracy: {acc(quantize_model(model, batches, opts).model):.4f}")
    best, front = mixed_precision(model, batches, opts, args.target_sqnr)
    print(f"front (target {args.target_sqnr} dB on the calibration set):")
    for p in front:
        print(f"  float layers {p['float_layers'] or '-'}: {p['sqnr_db']:.2f} dB, {p['weight_bytes']} weight bytes")
    print(f"chosen: {front[-1]['float_layers']} in float, accuracy {acc(best.model):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
