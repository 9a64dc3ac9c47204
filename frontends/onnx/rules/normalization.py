"""Import rules for the normalization family (see frontends/onnx/rules/__init__.py).

* BatchNormalization-1/6/7/9: drop ``consumed_inputs``/``is_test``/``spatial``;
  the mode comes from the outputs asked for (one output: inference), and
  ``spatial=0`` (statistics per activation, not per channel) is rewritten as a
  per-channel normalization of X flattened to (N, C*D1*...).
* InstanceNormalization-1: drop ``consumed_inputs``.
* GroupNormalization-18: scale and bias were per group; repeat them per channel.
* Softmax/LogSoftmax/Hardmax before 13 coerced X to 2-D at ``axis`` (default 1)
  and normalized over the whole flattened tail; that is the opset-13 op on one
  axis when at most one dim of the tail differs from 1, and otherwise
  Flatten -> op(axis=1) -> Reshape.
"""

from __future__ import annotations

import numpy as np

from . import canonical_since, rule

# --------------------------------------------------------- BatchNormalization


@rule("BatchNormalization", until=14)
def _batch_norm_legacy(b) -> list:
    b.attrs.pop("consumed_inputs", None)
    b.attrs.pop("is_test", None)  # the outputs asked for decide the mode, as in opset 7+
    spatial = b.attrs.pop("spatial", 1)
    attrs = {k: v for k, v in b.attrs.items() if k in ("epsilon", "momentum")}
    training = any(b.output_used(i) for i in range(1, b.num_outputs))
    if any(b.output_used(i) for i in (3, 4)):
        b.fail("the saved_mean/saved_var outputs of training-mode BatchNormalization are not "
               "supported", hint="only Y, mean and var (running statistics) can be computed")
    if training:
        if not spatial:
            b.fail("training-mode BatchNormalization with spatial=0 is not supported")
        n = 1 + max(i for i in (1, 2) if b.output_used(i))
        return b.emit("BatchNormalization", b.inputs[:5], {**attrs, "training_mode": 1},
                      num_outputs=n)
    x = b.input(0)
    if spatial or x.type.rank == 2:
        return b.emit("BatchNormalization", b.inputs[:5], attrs)
    return _per_activation_batch_norm(b, attrs)


def _per_activation_batch_norm(b, attrs: dict) -> list:
    """spatial=0: parameters of shape (C, D1, ...), one per activation.

    Flattening X to (N, C*D1*...) turns every activation into a channel.
    """
    x = b.input(0)
    flat = b.const(np.array([0, -1], np.int64))
    vector = b.const(np.array([-1], np.int64))
    x2 = b.helper("Reshape", x, flat)
    params = [b.helper("Reshape", p, vector) for p in b.inputs[1:5]]
    y = b.helper("BatchNormalization", x2, *params, **attrs)
    return b.emit("Reshape", [y, _shape_of(b, x)])


def _shape_of(b, x):
    """X's shape as a value: a constant when static (and non-empty), else a Shape node."""
    t = x.type
    if t.is_static and all(d > 0 for d in t.shape):
        return b.const(np.array(t.shape, np.int64))
    return b.helper("Shape", x)


canonical_since("BatchNormalization", 14)


@rule("InstanceNormalization", until=6)
def _instance_norm_legacy(b) -> list:
    b.attrs.pop("consumed_inputs", None)
    return b.default()


canonical_since("InstanceNormalization", 6)

# ------------------------------------------------------- GroupNormalization


@rule("GroupNormalization", until=21)
def _group_norm_18(b) -> list:
    """Opset 18 took one scale and bias per group; opset 21 takes one per channel."""
    groups = b.attrs.get("num_groups")
    x = b.input(0)
    channels = x.type.shape[1] if x.type.shape is not None and len(x.type.shape) > 1 else None
    params = [_per_channel(b, b.input(i), groups, channels) for i in (1, 2)]
    return b.default(inputs=[x, *params])


def _per_channel(b, v, groups: int, channels):
    """Repeat each of the ``groups`` values C/groups times."""
    if not isinstance(groups, int) or groups < 1:
        b.fail("num_groups must be a positive integer", found=str(groups))
    value = v.const
    if value is not None and isinstance(channels, int) and value.shape == (groups,) \
            and channels % groups == 0:
        return b.const(np.repeat(value, channels // groups), dtype=v.type.dtype)
    if isinstance(channels, int) and channels % groups == 0:
        # A runtime parameter: a (G,) @ (G, C) product with a 0/1 matrix repeats
        # it exactly (every output is one value times 1 plus zeros).
        spread = np.kron(np.eye(groups), np.ones((1, channels // groups)))
        return b.helper("MatMul", v, b.const(spread.astype(v.type.dtype.np), dtype=v.type.dtype))
    b.fail("GroupNormalization-18 needs a channel count divisible by num_groups to spread "
           "its per-group scale and bias over channels", expected=f"C a multiple of {groups}",
           found=f"C={channels}", hint="give X a static channel dim")


canonical_since("GroupNormalization", 21)

# ------------------------------------------------------------ softmax family


def _coerced_2d(b) -> list:
    """Softmax-1/11 semantics: normalize over all dims from ``axis`` on."""
    axis = b.attrs.pop("axis", 1)
    x = b.input(0)
    shape = x.type.shape
    if shape is not None:
        rank = len(shape)
        if not -rank <= axis <= rank:
            b.fail("axis out of range", expected=f"in [{-rank}, {rank}]", found=str(axis))
        axis = axis + rank if axis < 0 else axis
        tail = [i for i in range(axis, rank) if shape[i] != 1]
        if axis < rank and len(tail) <= 1:
            # The flattened block holds one real axis: normalizing over it is the same.
            return b.default(attrs={"axis": tail[0] if tail else axis})
    flat = b.helper("Flatten", x, axis=axis)
    y = b.helper(b.op_type, flat, axis=1)
    return b.emit("Reshape", [y, _shape_of(b, x)])


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    rule(_op, until=13)(_coerced_2d)
    canonical_since(_op, 13)
