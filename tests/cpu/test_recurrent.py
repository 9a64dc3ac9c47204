"""RNN/GRU/LSTM on the cpu target against the reference interpreter (the recurrent kernel must run)."""

import numpy as np
import pytest

import compiler
from tests.cpu.helpers import compare_cpu, one_op
from tests.ops.ortcheck import Const

rng = np.random.default_rng(11)
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _layer(op, *, T=5, N=3, I=4, H=6, direction="forward", layout=0, bias=True, lens=False, init=False,
           peep=False, dtype=np.float32, **attrs):
    D = 2 if direction == "bidirectional" else 1
    G = GATES[op]
    x = rng.standard_normal((N, T, I) if layout else (T, N, I)).astype(dtype)
    w = Const((rng.standard_normal((D, G * H, I)) * 0.5).astype(dtype))
    r = Const((rng.standard_normal((D, G * H, H)) * 0.5).astype(dtype))
    b = Const((rng.standard_normal((D, 2 * G * H)) * 0.3).astype(dtype)) if bias else None
    seq = rng.integers(1, T + 1, N).astype(np.int32) if lens else None
    state = (N, D, H) if layout else (D, N, H)
    h0 = rng.standard_normal(state).astype(dtype) if init else None
    inputs = [x, w, r, b, seq, h0]
    if op == "LSTM":
        inputs += [rng.standard_normal(state).astype(dtype) if init else None,
                   Const(rng.standard_normal((D, 3 * H)).astype(dtype)) if peep else None]
    while inputs[-1] is None:
        inputs.pop()
    outs = 3 if op == "LSTM" else 2
    model, feeds = one_op(op, inputs, {"hidden_size": H, "direction": direction, "layout": layout, **attrs},
                          opset=22, num_outputs=outs)
    return model, feeds


def _check(model, feeds, rtol=1e-5, atol=1e-6):
    compare_cpu(model, feeds, rtol=rtol, atol=atol)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_directions_layouts_lengths(op, direction, layout):
    _check(*_layer(op, direction=direction, layout=layout, lens=True, init=True))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_no_bias_no_state(op):
    _check(*_layer(op, bias=False))


def test_gru_linear_before_reset_and_clip():
    _check(*_layer("GRU", linear_before_reset=1, clip=0.7, direction="bidirectional", init=True))


def test_lstm_peepholes_input_forget():
    _check(*_layer("LSTM", peep=True, input_forget=1, init=True, lens=True))


def test_activations_with_alpha_beta_per_direction():
    acts = ["LeakyRelu", "ScaledTanh", "HardSigmoid", "Affine", "Elu", "Softsign"]
    _check(*_layer("GRU", direction="bidirectional", activations=acts[:4],
                   activation_alpha=[0.2, 0.8, 0.3, 1.5], activation_beta=[1.2, 0.4, 0.1]))
    _check(*_layer("RNN", direction="bidirectional", activations=["Relu", "Softplus"]))
    _check(*_layer("LSTM", activations=["HardSigmoid", "Elu", "Softsign"], activation_alpha=[0.3, 0.9]))


def test_float16_runs_in_float32():
    _check(*_layer("LSTM", dtype=np.float16, init=True), rtol=2e-3, atol=2e-3)


def test_kernel_is_the_recurrent_one():
    """The layer compiles to the recurrent kernel, not to anything folded or lowered away."""
    model, feeds = _layer("GRU")
    exe = compiler.compile(model, target="cpu")
    labels = [label for label, _ in exe.profile(feeds)]
    assert any("GRU" in label for label in labels), labels
