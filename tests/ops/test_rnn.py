"""RNN, GRU and LSTM against onnxruntime: directions, layouts, activations, clip, lengths."""

from __future__ import annotations

import numpy as np
import pytest

from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op, make_model, run_ort, run_ours

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def weights(op: str, *, seq=4, batch=3, inp=5, hidden=6, num_dir=1, dtype=np.float32,
            layout=0, seed=0, bias=True):
    """X, W, R, B for one layer, small values so activations stay in range."""
    rng = np.random.default_rng(seed)
    g = GATES[op]
    x_shape = (batch, seq, inp) if layout else (seq, batch, inp)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((num_dir, g * hidden, inp)) * 0.5).astype(dtype)
    r = (rng.standard_normal((num_dir, g * hidden, hidden)) * 0.5).astype(dtype)
    b = (rng.standard_normal((num_dir, 2 * g * hidden)) * 0.3).astype(dtype) if bias else None
    return x, w, r, b


def state(batch=3, hidden=6, num_dir=1, layout=0, seed=1, dtype=np.float32):
    rng = np.random.default_rng(seed)
    shape = (batch, num_dir, hidden) if layout else (num_dir, batch, hidden)
    return rng.standard_normal(shape).astype(dtype)


def check_outputs(op, inputs, attrs, output_names, opset=22, rtol=1e-5, atol=1e-5):
    """Like check_op, but with chosen (possibly omitted) outputs."""
    model = make_model(op, inputs, attrs, opset=opset, output_names=output_names)
    feeds = {f"in{i}": np.asarray(x) for i, x in enumerate(inputs)
             if x is not None and not isinstance(x, Const)}
    ours, theirs = run_ours(model, feeds), run_ort(model, feeds)
    assert len(ours) == len(theirs) == len([n for n in output_names if n])
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions(op, direction):
    nd = 2 if direction == "bidirectional" else 1
    x, w, r, b = weights(op, num_dir=nd)
    n_out = 3 if op == "LSTM" else 2
    check_op(op, [x, w, r, b], {"hidden_size": 6, "direction": direction}, opset=22,
             num_outputs=n_out, atol=1e-5)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_lengths_initial_state_layout(op):
    """Time-major against onnxruntime; batch-major (layout=1, which onnxruntime's CPU
    kernels refuse) against the time-major result transposed."""
    nd, n_out = 2, 3 if op == "LSTM" else 2
    x, w, r, b = weights(op, num_dir=nd, batch=4)
    lens = np.array([4, 1, 3, 2], np.int32)
    states = [state(batch=4, num_dir=nd)]
    extra = []
    if op == "LSTM":
        states.append(state(batch=4, num_dir=nd, seed=2))
        extra = [np.random.default_rng(3).standard_normal((nd, 18)).astype(np.float32)]
    attrs = {"hidden_size": 6, "direction": "bidirectional"}
    ref = check_op(op, [x, w, r, b, lens, *states, *extra], attrs, opset=22,
                   num_outputs=n_out, atol=1e-5)
    batch_major = [x.swapaxes(0, 1), w, r, b, lens, *[s.swapaxes(0, 1) for s in states], *extra]
    expected = [ref[0].transpose(2, 0, 1, 3)] + [s.transpose(1, 0, 2) for s in ref[1:]]
    check_op(op, batch_major, {**attrs, "layout": 1}, opset=22, num_outputs=n_out,
             expected=expected, atol=1e-6)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_constant_weights_and_no_bias(op):
    x, w, r, _ = weights(op, bias=False)
    out = check_op(op, [x, Const(w), Const(r)], {"hidden_size": 6}, opset=14,
                   num_outputs=2, atol=1e-5)
    assert out[0].shape == (4, 1, 3, 6) and out[1].shape == (1, 3, 6)


def test_gru_linear_before_reset_and_clip():
    x, w, r, b = weights("GRU", num_dir=2)
    x *= 4
    for lbr in (0, 1):
        check_op("GRU", [x, w, r, b], {"hidden_size": 6, "linear_before_reset": lbr,
                                       "direction": "bidirectional", "clip": 0.7},
                 opset=22, num_outputs=2, atol=1e-5)


def test_lstm_input_forget_peepholes_clip():
    x, w, r, b = weights("LSTM")
    p = np.random.default_rng(5).standard_normal((1, 18)).astype(np.float32)
    check_op("LSTM", [x * 3, w, r, b, None, None, None, p],
             {"hidden_size": 6, "input_forget": 1, "clip": 0.5}, opset=22, num_outputs=3,
             atol=1e-5)


@pytest.mark.parametrize("op,acts,alpha,beta", [
    ("RNN", ["Relu"], None, None),
    ("RNN", ["LeakyRelu", "HardSigmoid"], [0.2, 0.3], [0.4]),
    ("GRU", ["HardSigmoid", "Softsign"], [0.3], [0.6]),
    ("GRU", ["Sigmoid", "Elu", "Sigmoid", "Softplus"], [0.5], None),
    ("LSTM", ["HardSigmoid", "Tanh", "Affine"], [0.3, 0.9], [0.5, 0.1]),
    ("LSTM", ["Sigmoid", "ScaledTanh", "ThresholdedRelu"], [1.5, 0.2], [0.7]),
])
def test_activations(op, acts, alpha, beta):
    nd = 2 if len(acts) == 2 * {"RNN": 1, "GRU": 2, "LSTM": 3}[op] else 1
    x, w, r, b = weights(op, num_dir=nd)
    attrs = {"hidden_size": 6, "activations": acts,
             "direction": "bidirectional" if nd == 2 else "forward"}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    check_op(op, [x, w, r, b], attrs, opset=22, num_outputs=2, atol=1e-5)


@pytest.mark.parametrize("outputs", [["", "yh"], ["y"], ["", "", "yc"], ["y", "", "yc"]])
def test_optional_outputs(outputs):
    x, w, r, b = weights("LSTM")
    check_outputs("LSTM", [x, w, r, b], {"hidden_size": 6}, outputs)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-5), (np.float16, 2e-2)])
def test_other_float_types(op, dtype, tol):
    """onnxruntime's CPU kernels are float32 only: compare with its float32 result."""
    x, w, r, b = weights(op, num_dir=2)
    attrs = {"hidden_size": 6, "direction": "bidirectional"}
    n_out = 3 if op == "LSTM" else 2
    ref = check_op(op, [x, w, r, b], attrs, opset=22, num_outputs=n_out, atol=1e-5)
    low = [a.astype(dtype) for a in (x, w, r, b)]
    model = make_model(op, low, attrs, opset=22, num_outputs=n_out)
    ours = run_ours(model, {f"in{i}": a for i, a in enumerate(low)})
    for a, e in zip(ours, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a.astype(np.float32), e, atol=tol)


@pytest.mark.parametrize("op,opset", [("RNN", 1), ("GRU", 1), ("GRU", 3), ("LSTM", 1), ("RNN", 7),
                                      ("LSTM", 7), ("GRU", 7)])
def test_old_opsets(op, opset):
    """Opset 1/3 forms carry ``output_sequence``; onnxruntime only runs opset >= 7, so
    the old nodes must give what the opset-7 node gives."""
    x, w, r, b = weights(op)
    attrs = {"hidden_size": 6}
    n_out = 3 if op == "LSTM" else 2
    expected = check_op(op, [x, w, r, b], attrs, opset=7, num_outputs=n_out, atol=1e-5)
    if opset < 7:
        model = make_model(op, [x, w, r, b], {**attrs, "output_sequence": 1}, opset=opset,
                           num_outputs=n_out, ir_version=3)
        ours = run_ours(model, {f"in{i}": a for i, a in enumerate([x, w, r, b])})
        for a, e in zip(ours, expected):
            np.testing.assert_allclose(a, e, rtol=1e-6)


def test_symbolic_batch_shape():
    from frontends.onnx import import_model
    x, w, r, b = weights("LSTM")
    model = make_model("LSTM", [x, Const(w), Const(r), Const(b)], {"hidden_size": 6}, opset=22,
                       num_outputs=3)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param, dims[1].dim_param = "T", "N"
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    g = import_model(model)
    assert [str(o.type) for o in g.outputs] == ["f32[T,1,N,6]", "f32[1,N,6]", "f32[1,N,6]"]


# ------------------------------------------------------------------ errors
def test_bad_direction():
    x, w, r, b = weights("RNN")
    with pytest.raises(CompilerError, match="unknown direction"):
        check_op("RNN", [x, w, r, b], {"hidden_size": 6, "direction": "sideways"}, num_outputs=2)


def test_wrong_weight_shape():
    x, w, r, b = weights("GRU")
    with pytest.raises(CompilerError, match="must stack 3 gates"):
        check_op("GRU", [x, w[:, :12], r, b], {"hidden_size": 6}, num_outputs=2,
                 expected=[np.zeros(1), np.zeros(1)])


def test_bidirectional_needs_two_directions():
    x, w, r, b = weights("LSTM")
    with pytest.raises(CompilerError, match="2 direction"):
        check_op("LSTM", [x, w, r, b], {"hidden_size": 6, "direction": "bidirectional"},
                 num_outputs=3, expected=[np.zeros(1)] * 3)


def test_unknown_activation():
    x, w, r, b = weights("RNN")
    with pytest.raises(CompilerError, match="unknown activation 'Swish'"):
        check_op("RNN", [x, w, r, b], {"hidden_size": 6, "activations": ["Swish"]},
                 num_outputs=2, expected=[np.zeros(1)] * 2)


def test_integer_input_rejected():
    x, w, r, b = weights("RNN")
    with pytest.raises(CompilerError, match="unsupported element type"):
        check_op("RNN", [x.astype(np.int32), w.astype(np.int32), r.astype(np.int32)],
                 {"hidden_size": 6}, num_outputs=2, expected=[np.zeros(1)] * 2)
