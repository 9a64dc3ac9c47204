"""Recurrent layers: RNN, GRU and LSTM (ONNX opset 22 forms).

The three ops share one shape rule and one driver: the input projection
``X @ W^T + Wb`` is computed for all time steps at once (one big matmul), then
a Python loop over time applies the op's *cell* to the whole batch.  Batch
entries whose ``sequence_lens`` is over keep their state and output zeros,
which is how ONNX (and onnxruntime) define variable-length sequences; a
reverse direction walks the time axis backwards, so each entry starts at its
own last valid step.

Gate layouts follow ONNX: LSTM weights stack the gates as [i, o, f, c], its
peepholes as [i, o, f]; GRU weights as [z, r, h].  ``B`` holds the input
biases ``Wb`` then the recurrence biases ``Rb``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import Dim, TensorType
from ._common import check_dtype

RNN_FLOATS = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}

# ----------------------------------------------------------------- activations
# name (lower case) -> (fn(x, alpha, beta), takes alpha, takes beta, default alpha, default beta).
# Defaults are onnxruntime's; names are matched case-insensitively, as it does.
_ACTIVATIONS: dict[str, tuple[Callable, bool, bool, float, float]] = {
    "relu": (lambda x, a, b: np.maximum(x, 0), False, False, 0.0, 0.0),
    "tanh": (lambda x, a, b: np.tanh(x), False, False, 0.0, 0.0),
    "sigmoid": (lambda x, a, b: _sigmoid(x), False, False, 0.0, 0.0),
    "affine": (lambda x, a, b: a * x + b, True, True, 0.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), True, False, 0.01, 0.0),
    "thresholdedrelu": (lambda x, a, b: np.where(x > a, x, 0), True, False, 1.0, 0.0),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), True, True, 0.0, 0.0),
    "hardsigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), True, True, 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))), True, False, 1.0, 0.0),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), False, False, 0.0, 0.0),
    "softplus": (lambda x, a, b: np.logaddexp(0, x), False, False, 0.0, 0.0),
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: never overflows, and is exact enough for float32/float64.
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


Activation = Callable[[np.ndarray], np.ndarray]


def _activation_names(activations: Optional[Sequence[str]], defaults: Sequence[str],
                      num_dir: int) -> list[str]:
    """One name per (direction, slot): the given list, or the op's defaults.

    A list for a single direction is reused for both directions of a
    bidirectional layer (onnxruntime accepts that); RNN's default of two
    names serves a one-direction layer by its first half.
    """
    per_dir = len(defaults)
    names = list(activations) if activations else list(defaults) * num_dir
    if len(names) == per_dir and num_dir == 2:
        names = names * 2
    return names[:per_dir * num_dir]


def _make_activations(names: Sequence[str], alphas: Optional[Sequence[float]],
                      betas: Optional[Sequence[float]]) -> list[Activation]:
    """Bind each activation to its alpha/beta.

    The alpha and beta lists are consumed in order, one value per activation
    that takes one (so ``["LeakyRelu", "Tanh", "Affine"]`` with alphas
    ``[0.1, 2.0]`` gives 0.1 to LeakyRelu and 2.0 to Affine); an activation
    finding its list exhausted uses its default.
    """
    alpha_it, beta_it = iter(alphas or ()), iter(betas or ())
    funcs = []
    for name in names:
        fn, takes_a, takes_b, da, db = _ACTIVATIONS[name.lower()]
        a = next(alpha_it, da) if takes_a else da
        b = next(beta_it, db) if takes_b else db
        funcs.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    return funcs


# ------------------------------------------------------------------- type rule
def _dims_clash(a: Dim, b: Dim) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a != b


def _recurrent_types(ctx: InferContext, gates: int, num_states: int,
                     default_acts: Sequence[str]) -> list[TensorType]:
    """Output types of RNN (1 state), GRU (1) and LSTM (2 states: h and c)."""
    dt = check_dtype(ctx, 0, RNN_FLOATS, "X")
    names = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
    for i in range(1, ctx.num_inputs):
        if ctx.has_input(i) and i != 4 and ctx.dtype(i) != dt:
            ctx.fail(f"{names[i]} must have X's element type", expected=dt.short,
                     found=ctx.dtype(i).short)
    if ctx.has_input(4):
        check_dtype(ctx, 4, {DType.I32}, "sequence_lens")
    for i in (0, 1, 2):
        if ctx.rank(i) not in (None, 3):
            ctx.fail(f"{names[i]} must have rank 3", found=str(ctx.input_type(i)))

    direction = ctx.attr("direction")
    if direction not in DIRECTIONS:
        ctx.fail("unknown direction", expected="forward, reverse or bidirectional",
                 found=repr(direction))
    num_dir = DIRECTIONS[direction]
    layout = ctx.attr("layout")
    if layout not in (0, 1):
        ctx.fail("layout must be 0 or 1", found=str(layout))
    _check_activations(ctx, default_acts)

    w_shape = ctx.shape(1) or (None,) * 3
    r_shape = ctx.shape(2) or (None,) * 3
    hidden: Dim = ctx.attr("hidden_size")
    if hidden is None:
        hidden = r_shape[2] if r_shape[2] is not None else (
            w_shape[1] // gates if isinstance(w_shape[1], int) else None)
    if _dims_clash(w_shape[0], num_dir) or _dims_clash(r_shape[0], num_dir):
        ctx.fail(f"W and R must have {num_dir} direction(s) for direction={direction!r}",
                 found=f"W {ctx.input_type(1)}, R {ctx.input_type(2)}")
    gh = gates * hidden if isinstance(hidden, int) else None
    if _dims_clash(w_shape[1], gh) or _dims_clash(r_shape[1], gh) or _dims_clash(r_shape[2], hidden):
        ctx.fail(f"W and R must stack {gates} gates of hidden_size {hidden}",
                 expected=f"W [{num_dir}, {gh}, input_size], R [{num_dir}, {gh}, {hidden}]",
                 found=f"W {ctx.input_type(1)}, R {ctx.input_type(2)}")
    x_shape = ctx.shape(0) or (None,) * 3
    if _dims_clash(x_shape[2], w_shape[2]):
        ctx.fail("W's input size must match X's last dimension",
                 found=f"X {ctx.input_type(0)}, W {ctx.input_type(1)}")
    if ctx.has_input(3) and ctx.shape(3) is not None:
        b = ctx.shape(3)
        if len(b) != 2 or _dims_clash(b[0], num_dir) or (gh is not None and _dims_clash(b[1], 2 * gh)):
            ctx.fail("B must be [num_directions, 2 * gates * hidden_size]",
                     expected=f"[{num_dir}, {2 * gh if gh else '?'}]", found=str(ctx.input_type(3)))

    seq, batch = (x_shape[1], x_shape[0]) if layout else (x_shape[0], x_shape[1])
    if layout:
        y = (batch, seq, num_dir, hidden)
        state = (batch, num_dir, hidden)
    else:
        y = (seq, num_dir, batch, hidden)
        state = (num_dir, batch, hidden)
    return [TensorType(dt, y)] + [TensorType(dt, state)] * num_states


def _check_activations(ctx: InferContext, defaults: Sequence[str]) -> None:
    given = ctx.attr("activations")
    if not given:
        return
    for name in given:
        if name.lower() not in _ACTIVATIONS:
            ctx.fail(f"unknown activation {name!r}", expected="one of Relu, Tanh, Sigmoid, Affine, "
                     "LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus")
    # One set (shared by both directions) or two sets; a one-direction layer
    # uses the first set, which is how RNN's default [Tanh, Tanh] works.
    per_dir = len(defaults)
    if len(given) not in (per_dir, 2 * per_dir):
        ctx.fail(f"wrong number of activations ({per_dir} per direction)",
                 expected=f"{per_dir} or {2 * per_dir}", found=str(len(given)))


# ------------------------------------------------------------------- execution
Cell = Callable[..., tuple]


def _scan(cell: Cell, xw: np.ndarray, state: tuple, lens: Optional[np.ndarray],
          reverse: bool) -> tuple[np.ndarray, tuple]:
    """Run ``cell(xw[t], *state)`` over time; returns Y [T, batch, H] and the final state."""
    steps = xw.shape[0]
    ys = np.zeros((steps,) + state[0].shape, dtype=state[0].dtype)
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        new = cell(xw[t], *state)
        if lens is not None:
            live = (t < lens)[:, None]
            new = tuple(np.where(live, n, s) for n, s in zip(new, state))
            ys[t] = np.where(live, new[0], 0)
        else:
            ys[t] = new[0]
        state = new
    return ys, state


def _recurrent(X: np.ndarray, W: np.ndarray, R: np.ndarray, B: Optional[np.ndarray],
               seq_lens: Optional[np.ndarray], states0: Sequence[Optional[np.ndarray]], *,
               gates: int, direction: str, layout: int,
               make_cell: Callable[[int, np.ndarray, np.ndarray], Cell]) -> tuple:
    """Shared driver: layout, per-direction projection and scan, output stacking.

    ``make_cell(d, R[d], Rb[d])`` returns direction ``d``'s step function.
    """
    out_dtype = X.dtype
    ct = np.float64 if out_dtype == np.float64 else np.float32  # f16/bf16 run in f32
    X, W, R = X.astype(ct), W.astype(ct), R.astype(ct)
    states0 = [None if s is None else s.astype(ct) for s in states0]
    if layout:
        X = X.swapaxes(0, 1)
        states0 = [None if s is None else s.swapaxes(0, 1) for s in states0]
    steps, batch, _ = X.shape
    num_dir, hidden = W.shape[0], R.shape[-1]
    B = np.zeros((num_dir, 2 * gates * hidden), ct) if B is None else B.astype(ct)
    lens = None if seq_lens is None else np.asarray(seq_lens).astype(np.int64).reshape(-1)

    ys, finals = [], []
    for d in range(num_dir):
        wb, rb = B[d, :gates * hidden], B[d, gates * hidden:]
        xw = X @ W[d].T + wb  # [T, batch, gates*H], all time steps at once
        state = tuple(np.zeros((batch, hidden), ct) if s is None else s[d] for s in states0)
        y, state = _scan(make_cell(d, R[d], rb), xw, state, lens,
                         reverse=direction == "reverse" or d == 1)
        ys.append(y)
        finals.append(state)
    Y = np.stack(ys, axis=1)  # [T, D, batch, H]
    outs = [np.stack([f[k] for f in finals]) for k in range(len(states0))]  # [D, batch, H]
    if layout:
        Y = Y.transpose(2, 0, 1, 3)
        outs = [o.transpose(1, 0, 2) for o in outs]
    return tuple(o.astype(out_dtype) for o in [Y] + outs)


def _clipper(clip: Optional[float]) -> Callable[[np.ndarray], np.ndarray]:
    """Cell clip: bounds every activation's input to [-clip, clip]."""
    if clip is None:
        return lambda x: x
    return lambda x: np.clip(x, -clip, clip)


_COMMON_ATTRS = {
    "activation_alpha": Attr.floats(),
    "activation_beta": Attr.floats(),
    "activations": Attr.strings(),
    "clip": Attr.float(),
    "direction": Attr.string("forward"),
    "hidden_size": Attr.int(),
    "layout": Attr.int(0),
}


def _per_direction(activations: Optional[Sequence[str]], activation_alpha: Optional[Sequence[float]],
                   activation_beta: Optional[Sequence[float]], defaults: Sequence[str],
                   direction: str) -> list[list[Activation]]:
    """The bound activation functions of each direction, in the op's slot order."""
    num_dir = DIRECTIONS[direction]
    names = _activation_names(activations, defaults, num_dir)
    funcs = _make_activations(names, activation_alpha, activation_beta)
    k = len(defaults)
    return [funcs[d * k:(d + 1) * k] for d in range(num_dir)]


# ------------------------------------------------------------------------- RNN
rnn = define("RNN", inputs=["X", "W", "R", "B?", "sequence_lens?", "initial_h?"],
             outputs=["Y?", "Y_h?"], attrs={**_COMMON_ATTRS, "activations": Attr.strings(("Tanh", "Tanh"))},
             kind=OPAQUE, doc="Elman RNN: H = f(X W^T + H R^T + Wb + Rb).")


@rnn.infer
def _(ctx: InferContext) -> list[TensorType]:
    return _recurrent_types(ctx, gates=1, num_states=1, default_acts=("Tanh",))


@rnn.reference
def _(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha, activation_beta,
      activations, clip, direction, hidden_size, layout) -> tuple:
    acts = _per_direction(activations, activation_alpha, activation_beta, ("Tanh",), direction)
    cl = _clipper(clip)

    def make_cell(d: int, r: np.ndarray, rb: np.ndarray) -> Cell:
        f, = acts[d]
        rt = r.T
        return lambda xw, h: (f(cl(xw + h @ rt + rb)),)

    return _recurrent(X, W, R, B, sequence_lens, [initial_h], gates=1, direction=direction,
                      layout=layout, make_cell=make_cell)


# ------------------------------------------------------------------------- GRU
gru = define("GRU", inputs=["X", "W", "R", "B?", "sequence_lens?", "initial_h?"],
             outputs=["Y?", "Y_h?"], attrs={**_COMMON_ATTRS, "linear_before_reset": Attr.int(0)},
             kind=OPAQUE, doc="Gated recurrent unit; gates stacked as [z, r, h].")


@gru.infer
def _(ctx: InferContext) -> list[TensorType]:
    return _recurrent_types(ctx, gates=3, num_states=1, default_acts=("Sigmoid", "Tanh"))


@gru.reference
def _(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha, activation_beta,
      activations, clip, direction, hidden_size, layout, linear_before_reset) -> tuple:
    acts = _per_direction(activations, activation_alpha, activation_beta, ("Sigmoid", "Tanh"),
                          direction)
    cl = _clipper(clip)

    def make_cell(d: int, r: np.ndarray, rb: np.ndarray) -> Cell:
        f, g = acts[d]
        hs = r.shape[1]
        r_zr, r_h = r[:2 * hs].T, r[2 * hs:].T
        rb_zr, rb_h = rb[:2 * hs], rb[2 * hs:]

        def cell(xw, h):
            zr = xw[:, :2 * hs] + h @ r_zr + rb_zr
            z, rr = f(cl(zr[:, :hs])), f(cl(zr[:, hs:]))
            if linear_before_reset:
                hh = g(cl(xw[:, 2 * hs:] + rr * (h @ r_h + rb_h)))
            else:
                hh = g(cl(xw[:, 2 * hs:] + (rr * h) @ r_h + rb_h))
            return ((1 - z) * hh + z * h,)
        return cell

    return _recurrent(X, W, R, B, sequence_lens, [initial_h], gates=3, direction=direction,
                      layout=layout, make_cell=make_cell)


# ------------------------------------------------------------------------ LSTM
lstm = define("LSTM", inputs=["X", "W", "R", "B?", "sequence_lens?", "initial_h?", "initial_c?", "P?"],
              outputs=["Y?", "Y_h?", "Y_c?"], attrs={**_COMMON_ATTRS, "input_forget": Attr.int(0)},
              kind=OPAQUE, doc="Long short-term memory; gates stacked as [i, o, f, c], peepholes [i, o, f].")


@lstm.infer
def _(ctx: InferContext) -> list[TensorType]:
    types = _recurrent_types(ctx, gates=4, num_states=2, default_acts=("Sigmoid", "Tanh", "Tanh"))
    if ctx.has_input(7) and ctx.shape(7) is not None:
        p, hidden = ctx.shape(7), types[1].shape[-1]
        if len(p) != 2 or (isinstance(hidden, int) and _dims_clash(p[1], 3 * hidden)):
            ctx.fail("P must be [num_directions, 3 * hidden_size]", found=str(ctx.input_type(7)))
    return types


@lstm.reference
def _(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
      activation_alpha, activation_beta, activations, clip, direction, hidden_size, layout,
      input_forget) -> tuple:
    acts = _per_direction(activations, activation_alpha, activation_beta,
                          ("Sigmoid", "Tanh", "Tanh"), direction)
    cl = _clipper(clip)
    hs = R.shape[-1]
    ct = np.float64 if X.dtype == np.float64 else np.float32
    peep = np.zeros((W.shape[0], 3 * hs), ct) if P is None else P.astype(ct)

    def make_cell(d: int, r: np.ndarray, rb: np.ndarray) -> Cell:
        f, g, h_act = acts[d]
        rt = r.T
        p_i, p_o, p_f = peep[d, :hs], peep[d, hs:2 * hs], peep[d, 2 * hs:]

        def cell(xw, h, c):
            z = xw + h @ rt + rb
            i = f(cl(z[:, :hs] + p_i * c))
            fg = 1 - i if input_forget else f(cl(z[:, 2 * hs:3 * hs] + p_f * c))
            c_new = fg * c + i * g(cl(z[:, 3 * hs:]))
            o = f(cl(z[:, hs:2 * hs] + p_o * c_new))
            return o * h_act(c_new), c_new
        return cell

    return _recurrent(X, W, R, B, sequence_lens, [initial_h, initial_c], gates=4,
                      direction=direction, layout=layout, make_cell=make_cell)
