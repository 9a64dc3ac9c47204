"""nnc layout ops: blocked channel layouts (NCHW[x]c) and convolution on them.

A blocked tensor splits the channel axis into ``C / block`` outer blocks and
moves the ``block`` channels of each block innermost, so one vector register
holds the same pixel of ``block`` consecutive channels (TVM's and oneDNN's
``NCHW16c`` on AVX-512)::

    plain   [N, C, H, W]
    blocked [N, ceil(C / block), H, W, block]
    blocked[n, c // block, h, w, c % block] == plain[n, c, h, w]

Channels past ``C`` (when ``C`` is not a multiple of ``block``) are zero.

* ``nnc.ToBlocked(x) {block}``: plain -> blocked, zero padding the channels.
  Any rank >= 3; the layout name spells the spatial axes (``NCW8c``,
  ``NCHW16c``, ``NCDHW8c``).
* ``nnc.FromBlocked(x) {channels}``: blocked -> plain, cropping to ``channels``.
* ``nnc.ConvNCHWc(x, w_packed, b?)``: a 2-D convolution reading and writing
  blocked data (``channels_out`` must be a multiple of ``oc_block``).  Two
  forms: ``group == 1``, and depthwise (``group == channels_in ==
  channels_out``, ``ic_block == oc_block``).  The weight is packed at compile
  time by ``pack_conv_weight``:

  - group 1: ``[Cout/ob, ceil(Cin/ib), KH, KW, ib, ob]`` with
    ``w_packed[o // ob, i // ib, kh, kw, i % ib, o % ob] = w[o, i, kh, kw]``
    (input channels past Cin are zero), so the innermost ``ob`` lanes are
    one vector of output channels, broadcast-multiplied by one input value;
  - depthwise: ``[C/ob, 1, KH, KW, 1, ob]`` with
    ``w_packed[c // ob, 0, kh, kw, 0, c % ob] = w[c, 0, kh, kw]``: one vector
    of per-channel taps, multiplied lane-wise with the input's block.

  The bias stays plain ``[Cout]``: as ``Cout`` is a multiple of ``ob`` that
  is already its blocked order (``b[ob_index * ob + lane]``).  Pads are
  explicit ``[top, left, bottom, right]`` (no auto_pad).  The reference
  unblocks, runs the ordinary convolution and blocks the result: it is the
  golden answer backend kernels are tested against.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..registry import COMPLEX, INJECTIVE, Attr, InferContext, define
from ..types import Dim, TensorType
from ._common import check_dtype
from ._window import window_output_dims
from .conv import CONV_TYPES, compute_type, conv_nd

NNC = "nnc"
_SPATIAL_NAMES = {1: "W", 2: "HW", 3: "DHW"}


def blocked_layout(spatial: int, block: int) -> str:
    """The layout name of a blocked tensor: ``NCHW16c`` for 2-D, ``NCDHW8c`` for 3-D."""
    names = _SPATIAL_NAMES.get(spatial, "S" * spatial)
    return f"NC{names}{block}c"


def blocked_weight_layout(ic_block: int, oc_block: int) -> str:
    """The layout name of a packed convolution weight (TVM's ``OIHW{i}i{o}o``)."""
    return f"OIHW{ic_block}i{oc_block}o"


# ------------------------------------------------------------ NumPy helpers
def to_blocked(x: np.ndarray, block: int) -> np.ndarray:
    """``[N, C, *S]`` -> ``[N, ceil(C/block), *S, block]``, zero padding the channels."""
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    cb = -(-c // block)
    if cb * block != c:
        pad = [(0, 0), (0, cb * block - c)] + [(0, 0)] * len(spatial)
        x = np.pad(x, pad)
    y = x.reshape((n, cb, block) + tuple(spatial))
    perm = (0, 1) + tuple(range(3, 3 + len(spatial))) + (2,)
    return np.ascontiguousarray(y.transpose(perm))


def from_blocked(x: np.ndarray, channels: int) -> np.ndarray:
    """``[N, Cb, *S, block]`` -> ``[N, channels, *S]`` (the inverse of ``to_blocked``)."""
    n, cb, spatial, block = x.shape[0], x.shape[1], x.shape[2:-1], x.shape[-1]
    perm = (0, 1, x.ndim - 1) + tuple(range(2, x.ndim - 1))
    y = x.transpose(perm).reshape((n, cb * block) + tuple(spatial))
    return np.ascontiguousarray(y[:, :channels])


def _is_depthwise(group: int, channels_in: int, channels_out: int) -> bool:
    return group > 1 and group == channels_in == channels_out


def pack_conv_weight(w: np.ndarray, group: int, ic_block: int, oc_block: int) -> np.ndarray:
    """Pack an OIHW weight ``[Cout, Cin/group, KH, KW]`` for ``nnc.ConvNCHWc``.

    Group 1 gives ``[Cout/ob, ceil(Cin/ib), KH, KW, ib, ob]``; depthwise
    (``group == Cout``, one input channel per group) gives
    ``[C/ob, 1, KH, KW, 1, ob]``.  Used by the layout pass and the CPU backend.
    """
    cout, cin_g, kh, kw = w.shape
    if cout % oc_block:
        raise ValueError(f"output channels {cout} are not a multiple of oc_block {oc_block}")
    if group == 1:
        ib = ic_block
    elif group == cout and cin_g == 1:
        ib = 1
    else:
        raise ValueError(f"only group 1 and depthwise convolutions are packed (group {group})")
    cb = -(-cin_g // ib)
    if cb * ib != cin_g:
        w = np.pad(w, [(0, 0), (0, cb * ib - cin_g), (0, 0), (0, 0)])
    p = w.reshape(cout // oc_block, oc_block, cb, ib, kh, kw)
    return np.ascontiguousarray(p.transpose(0, 2, 4, 5, 3, 1))


def unpack_conv_weight(w_packed: np.ndarray, channels_in_per_group: int) -> np.ndarray:
    """The inverse of ``pack_conv_weight``: back to ``[Cout, Cin/group, KH, KW]``."""
    ob_n, cb, kh, kw, ib, ob = w_packed.shape
    w = w_packed.transpose(0, 5, 1, 4, 2, 3).reshape(ob_n * ob, cb * ib, kh, kw)
    return np.ascontiguousarray(w[:, :channels_in_per_group])


def block_broadcast_constant(c: np.ndarray, block: int) -> Optional[np.ndarray]:
    """Re-lay out a constant that broadcasts against a plain 4-D ``[N, C, H, W]`` tensor.

    ``c`` (rank <= 4, each dim 1 or the tensor's) becomes the constant that
    broadcasts the same way against the blocked ``[N, C/b, H, W, b]`` one:
    a channel dim of 1 stays 1 (``[n, 1, h, w, 1]``), a full one is blocked.
    Returns None when the channel dim is not a multiple of ``block``.
    """
    shape = (1,) * (4 - c.ndim) + tuple(c.shape)
    c4 = c.reshape(shape)
    if shape[1] == 1:
        return c4.reshape(shape + (1,))
    if shape[1] % block:
        return None
    return to_blocked(c4, block)


# ------------------------------------------------------------------ ToBlocked
to_blocked_op = define(
    "ToBlocked", domain=NNC, inputs=["X"], outputs=["Y"], kind=INJECTIVE,
    attrs={"block": Attr.int(required=True)},
    doc="[N, C, *S] -> [N, ceil(C/block), *S, block]; channels past C are zero.")


@to_blocked_op.infer
def _(ctx: InferContext) -> list[TensorType]:
    x = ctx.input_type(0)
    block = ctx.attr("block")
    if block < 1:
        ctx.fail("block must be positive", found=str(block))
    if x.rank is None:
        return [TensorType(x.dtype, None)]
    if x.rank < 3:
        ctx.fail("X must have a batch, a channel and at least one spatial axis",
                 expected="rank >= 3", found=str(x))
    if x.layout is not None:
        ctx.fail("X is already in a non-plain layout", found=str(x))
    c = x.shape[1]
    cb: Dim = -(-c // block) if isinstance(c, int) else None
    shape = (x.shape[0], cb, *x.shape[2:], block)
    return [TensorType(x.dtype, shape, layout=blocked_layout(x.rank - 2, block))]


@to_blocked_op.reference
def _(x: np.ndarray, *, block: int) -> np.ndarray:
    return to_blocked(x, block)


# ---------------------------------------------------------------- FromBlocked
from_blocked_op = define(
    "FromBlocked", domain=NNC, inputs=["X"], outputs=["Y"], kind=INJECTIVE,
    attrs={"channels": Attr.int(required=True)},
    doc="[N, Cb, *S, block] -> [N, channels, *S]: unblocks and crops the padding channels.")


@from_blocked_op.infer
def _(ctx: InferContext) -> list[TensorType]:
    x = ctx.input_type(0)
    channels = ctx.attr("channels")
    if x.rank is None:
        return [TensorType(x.dtype, None)]
    if x.rank < 4:
        ctx.fail("X must be blocked: [N, Cb, *spatial, block]", expected="rank >= 4",
                 found=str(x))
    cb, block = x.shape[1], x.shape[-1]
    if channels < 1 or (isinstance(cb, int) and isinstance(block, int)
                        and not (cb - 1) * block < channels <= cb * block):
        ctx.fail("channels does not fit the blocks", expected=f"{cb} blocks of {block}",
                 found=f"channels={channels}")
    return [TensorType(x.dtype, (x.shape[0], channels, *x.shape[2:-1]))]


@from_blocked_op.reference
def _(x: np.ndarray, *, channels: int) -> np.ndarray:
    return from_blocked(x, channels)


# ------------------------------------------------------------------ ConvNCHWc
conv_nchwc = define(
    "ConvNCHWc", domain=NNC, inputs=["X", "W_packed", "B?"], outputs=["Y"], kind=COMPLEX,
    attrs={"channels_in": Attr.int(required=True), "channels_out": Attr.int(required=True),
           "kernel_shape": Attr.ints(required=True), "strides": Attr.ints((1, 1)),
           "pads": Attr.ints((0, 0, 0, 0)), "dilations": Attr.ints((1, 1)),
           "group": Attr.int(1), "ic_block": Attr.int(required=True),
           "oc_block": Attr.int(required=True)},
    doc="2-D convolution on blocked data (group 1 or depthwise); W pre-packed by "
        "pack_conv_weight; B plain [Cout].")


def _expected_weight_shape(ctx: InferContext) -> tuple[int, ...]:
    cin, cout, group = ctx.attr("channels_in"), ctx.attr("channels_out"), ctx.attr("group")
    ib, ob = ctx.attr("ic_block"), ctx.attr("oc_block")
    kh, kw = ctx.attr("kernel_shape")
    if group == 1:
        return (cout // ob, -(-cin // ib), kh, kw, ib, ob)
    return (cout // ob, 1, kh, kw, 1, ob)


def _check_conv_attrs(ctx: InferContext) -> None:
    cin, cout, group = ctx.attr("channels_in"), ctx.attr("channels_out"), ctx.attr("group")
    ib, ob = ctx.attr("ic_block"), ctx.attr("oc_block")
    if min(cin, cout, ib, ob) < 1:
        ctx.fail("channels and blocks must be positive", found=f"{cin}, {cout}, {ib}, {ob}")
    if cout % ob:
        ctx.fail("channels_out must be a multiple of oc_block", found=f"{cout} and {ob}")
    if group != 1 and not (_is_depthwise(group, cin, cout) and ib == ob):
        ctx.fail("only group 1 and depthwise (group == channels_in == channels_out, "
                 "ic_block == oc_block) convolutions are supported",
                 found=f"group {group}, channels {cin} -> {cout}, blocks {ib}/{ob}")
    for name, n in (("kernel_shape", 2), ("strides", 2), ("dilations", 2), ("pads", 4)):
        if len(ctx.attr(name)) != n:
            ctx.fail(f"{name} must have {n} values", found=str(list(ctx.attr(name))))


@conv_nchwc.infer
def _(ctx: InferContext) -> list[TensorType]:
    _check_conv_attrs(ctx)
    check_dtype(ctx, 0, CONV_TYPES, "X")
    x, w = ctx.input_type(0), ctx.input_type(1)
    cin, cout = ctx.attr("channels_in"), ctx.attr("channels_out")
    ib, ob = ctx.attr("ic_block"), ctx.attr("oc_block")
    if w.dtype != x.dtype:
        ctx.fail("X and W_packed must share one element type", found=f"{x.dtype} and {w.dtype}")
    if x.rank is not None and x.rank != 5:
        ctx.fail("X must be blocked [N, Cin/ic_block, H, W, ic_block]", found=str(x))
    expected_x = (-(-cin // ib), ib)
    if x.shape is not None and any(isinstance(d, int) and d != e
                                   for d, e in zip((x.shape[1], x.shape[4]), expected_x)):
        ctx.fail("X's blocks do not match channels_in and ic_block",
                 expected=f"[N, {expected_x[0]}, H, W, {ib}]", found=str(x))
    expected_w = _expected_weight_shape(ctx)
    if w.shape is not None and tuple(w.shape) != expected_w:
        ctx.fail("W_packed does not have the packed shape", expected=str(list(expected_w)),
                 found=str(w), hint="pack it with ir.ops.layout.pack_conv_weight")
    if ctx.has_input(2):
        b = ctx.input_type(2)
        if b.dtype != x.dtype or (b.shape is not None and tuple(b.shape) != (cout,)):
            ctx.fail("B must be plain [channels_out] of X's type", expected=f"[{cout}]",
                     found=str(b))
    sizes = [None, None] if x.shape is None else list(x.shape[2:4])
    out = window_output_dims(sizes, ctx.attr("kernel_shape"), ctx.attr("strides"),
                             ctx.attr("dilations"), ctx.attr("pads"))
    if any(isinstance(o, int) and o < 1 for o in out):
        ctx.fail("the kernel does not fit in the padded input", found=f"output dims {out}")
    n = None if x.shape is None else x.shape[0]
    return [TensorType(x.dtype, (n, cout // ob, *out, ob), layout=blocked_layout(2, ob))]


@conv_nchwc.reference
def _(x: np.ndarray, w_packed: np.ndarray, b: Optional[np.ndarray] = None, *, channels_in: int,
      channels_out: int, kernel_shape: Sequence[int], strides: Sequence[int],
      pads: Sequence[int], dilations: Sequence[int], group: int, ic_block: int,
      oc_block: int) -> np.ndarray:
    ct = compute_type(x)
    plain = from_blocked(x, channels_in).astype(ct, copy=False)
    w = unpack_conv_weight(w_packed, channels_in // group).astype(ct, copy=False)
    y = conv_nd(plain, w, group, strides, pads, dilations)
    if b is not None:
        y += b.astype(ct).reshape(1, -1, 1, 1)
    return to_blocked(y.astype(x.dtype, copy=False), oc_block)



# ------------------------------------------------------------------ ConvNHWC
def pack_conv_weight_hwio(w: np.ndarray) -> np.ndarray:
    """OIHW -> HWIO ([KH, KW, Cin/group, Cout]): the order a systolic array streams weights in."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


conv_nhwc = define(
    "ConvNHWC", domain=NNC, inputs=["X", "W_hwio", "B?"], outputs=["Y"], kind=COMPLEX,
    attrs={"kernel_shape": Attr.ints(required=True), "strides": Attr.ints((1, 1)),
           "pads": Attr.ints((0, 0, 0, 0)), "dilations": Attr.ints((1, 1)), "group": Attr.int(1)},
    doc="2-D convolution on channels-last data (X [N, H, W, C], W [KH, KW, C/group, Cout] from "
        "pack_conv_weight_hwio, B [Cout]); the layout systolic arrays read.")


@conv_nhwc.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, CONV_TYPES, "X")
    x, w = ctx.input_type(0), ctx.input_type(1)
    group = ctx.attr("group")
    for name, n in (("kernel_shape", 2), ("strides", 2), ("dilations", 2), ("pads", 4)):
        if len(ctx.attr(name)) != n:
            ctx.fail(f"{name} must have {n} values", found=str(list(ctx.attr(name))))
    if x.rank is not None and x.rank != 4:
        ctx.fail("X must be channels-last [N, H, W, C]", found=str(x))
    if w.rank is not None and (w.rank != 4 or w.dtype != x.dtype):
        ctx.fail("W_hwio must be [KH, KW, C/group, Cout] of X's type", found=str(w))
    if x.shape is None or w.shape is None:
        return [TensorType(x.dtype, None, layout="NHWC")]
    kh, kw, cin_g, cout = w.shape
    if isinstance(x.shape[3], int) and isinstance(cin_g, int) and x.shape[3] != cin_g * group:
        ctx.fail("X's channels do not match W_hwio and group",
                 expected=f"{cin_g} x {group}", found=str(x))
    if list(ctx.attr("kernel_shape")) != [kh, kw]:
        ctx.fail("kernel_shape does not match W_hwio", expected=str([kh, kw]),
                 found=str(list(ctx.attr("kernel_shape"))))
    if ctx.has_input(2):
        b = ctx.input_type(2)
        if b.shape is not None and tuple(b.shape) != (cout,):
            ctx.fail("B must be [Cout]", expected=f"[{cout}]", found=str(b))
    out = window_output_dims(list(x.shape[1:3]), [kh, kw], ctx.attr("strides"), ctx.attr("dilations"),
                             ctx.attr("pads"))
    return [TensorType(x.dtype, (x.shape[0], *out, cout), layout="NHWC")]


@conv_nhwc.reference
def _(x: np.ndarray, w_hwio: np.ndarray, b: Optional[np.ndarray] = None, *,
      kernel_shape: Sequence[int], strides: Sequence[int], pads: Sequence[int],
      dilations: Sequence[int], group: int) -> np.ndarray:
    ct = compute_type(x)
    plain = np.transpose(x, (0, 3, 1, 2)).astype(ct, copy=False)
    w = np.transpose(w_hwio, (3, 2, 0, 1)).astype(ct, copy=False)
    y = conv_nd(plain, w, group, strides, pads, dilations)
    if b is not None:
        y += b.astype(ct).reshape(1, -1, 1, 1)
    return np.ascontiguousarray(np.transpose(y.astype(x.dtype, copy=False), (0, 2, 3, 1)))
