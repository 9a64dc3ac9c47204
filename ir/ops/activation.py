"""Activation functions (elementwise, float-typed)."""

from __future__ import annotations

import math

import numpy as np

from ..registry import BROADCAST, Attr, InferContext, define
from ..types import TensorType
from ._common import NUMERIC_TYPES, broadcast_type, check_dtype, unary, widen

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    # Split by sign so exp never overflows.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


unary("Relu", lambda x: np.maximum(x, 0), dtypes=NUMERIC_TYPES - {t for t in NUMERIC_TYPES if not t.is_signed})
unary("LeakyRelu", lambda x, alpha: np.where(x >= 0, x, x * alpha), attrs={"alpha": Attr.float(0.01)})
unary("Sigmoid", _sigmoid)
unary("HardSigmoid", lambda x, alpha, beta: np.clip(alpha * x + beta, 0, 1),
      attrs={"alpha": Attr.float(0.2), "beta": Attr.float(0.5)})
unary("HardSwish", lambda x: x * np.clip(x / 6.0 + 0.5, 0, 1))
unary("Tanh", np.tanh)
unary("Softplus", lambda x: np.logaddexp(0, x))
unary("Softsign", lambda x: x / (1 + np.abs(x)))
unary("Elu", lambda x, alpha: np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0))),
      attrs={"alpha": Attr.float(1.0)})
unary("Selu", lambda x, alpha, gamma: gamma * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
      attrs={"alpha": Attr.float(1.67326319217681884765625),
             "gamma": Attr.float(1.05070102214813232421875)})
unary("Celu", lambda x, alpha: np.maximum(0, x) + np.minimum(0, alpha * np.expm1(x / alpha)),
      attrs={"alpha": Attr.float(1.0)})
unary("ThresholdedRelu", lambda x, alpha: np.where(x > alpha, x, 0), attrs={"alpha": Attr.float(1.0)})
unary("Mish", lambda x: x * np.tanh(np.logaddexp(0, x)))
unary("Swish", lambda x, alpha: x * _sigmoid(alpha * x), attrs={"alpha": Attr.float(1.0)})
unary("Shrink", lambda x, bias, lambd: np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)),
      dtypes=NUMERIC_TYPES, attrs={"bias": Attr.float(0.0), "lambd": Attr.float(0.5)})


def _gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    x64 = x.astype(np.float64)
    return 0.5 * x64 * (1 + _erf(x64 / np.sqrt(2))) if x.size else x


unary("Gelu", _gelu, attrs={"approximate": Attr.string("none")})

prelu = define("PRelu", inputs=["X", "slope"], kind=BROADCAST)


@prelu.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, NUMERIC_TYPES)
    t = broadcast_type(ctx)
    if t.shape is not None and ctx.shape(0) is not None and len(t.shape) != len(ctx.shape(0)):
        ctx.fail("slope must broadcast to X", found=f"{ctx.input_type(0)} and {ctx.input_type(1)}")
    return [TensorType(ctx.dtype(0), t.shape)]


@prelu.reference
def _(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    xw, sw = widen(x), widen(slope)
    return np.where(xw < 0, xw * sw, xw).astype(x.dtype)
