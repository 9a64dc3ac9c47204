"""RNN, GRU and LSTM kernels: the reference's recurrence (``ir/ops/rnn.py``) as one task per direction.

Each task walks its direction's time steps (backwards for ``reverse`` and
the second direction of ``bidirectional``); per step and batch row it forms
the gate pre-activations as the reference groups them,
``((x . W + Wb) + h . R) + Rb``, applies the op's cell and activations
(bound to ``activation_alpha``/``activation_beta`` as the reference binds
them, ``clip`` on every activation's input), and keeps the state of a row
whose ``sequence_lens`` is over while writing zeros to ``Y``.  The state (h,
and c for LSTM) and the gates of one row live on the task's stack, so the
layer's size is bounded (``MAX_SCRATCH`` elements).  Data of float32, float16
or bfloat16 is computed in float32, float64 in float64.

Scalar code: recurrent layers in the suite and in the models we meet are
small and latency-bound by the time loop, not by arithmetic width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node, Value
from ir.ops.rnn import _ACTIVATIONS, DIRECTIONS, _activation_names

from ..codegen import I64, KernelBuilder, const_int, for_range, loop_carry
from ..expr import compute_type, constant, fmax, fmin, intrinsic, libm, load_convert, softplus, store_convert
from . import Kernel, generator, label_of

OPS = ("RNN", "GRU", "LSTM")
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}
FLOATS = (DType.F32, DType.F16, DType.BF16, DType.F64)
MAX_SCRATCH = 1 << 15  # stack elements per task (state + gates of one row)


def _shape(v: Optional[Value]) -> Optional[tuple]:
    if v is None:
        return None
    t = v.type
    return tuple(t.shape) if getattr(t, "is_static", False) else None


def support(node: Node) -> Optional[str]:
    if node.domain or node.op not in OPS:
        return f"{node.qualified_op} is not a recurrent layer"
    values = [v for v in list(node.inputs) + list(node.outputs) if v is not None]
    if any(_shape(v) is None for v in values):
        return f"{node.op} needs static shapes on the cpu target"
    dt = node.inputs[0].type.dtype
    if dt not in FLOATS:
        return f"{node.op} on {dt.short} is not supported by the cpu target"
    _, batch, _ = _dims(node)
    hidden = _shape(node.inputs[2])[2]
    gates = GATES[node.op]
    if 2 * batch * hidden + 3 * gates * hidden + 2 * hidden > MAX_SCRATCH:
        return f"{node.op} with batch {batch} and hidden size {hidden} is too large for the cpu kernel's " \
               f"stack scratch ({MAX_SCRATCH} elements)"
    for name in _activation_names(node.attr("activations"), DEFAULT_ACTS[node.op], 2):
        if name.lower() not in _ACTIVATIONS:
            return f"{node.op} activation {name!r} is not supported by the cpu target"
    return None


def _dims(node: Node) -> tuple[int, int, int]:
    """(steps, batch, input_size)."""
    x = _shape(node.inputs[0])
    return (x[1], x[0], x[2]) if node.attr("layout") else (x[0], x[1], x[2])


def _bound_activations(node: Node, num_dir: int) -> list[list[tuple[str, float, float]]]:
    """(name, alpha, beta) per direction and slot, bound as ``ir.ops.rnn._make_activations`` binds them."""
    defaults = DEFAULT_ACTS[node.op]
    names = _activation_names(node.attr("activations"), defaults, num_dir)
    alphas, betas = iter(node.attr("activation_alpha") or ()), iter(node.attr("activation_beta") or ())
    bound = []
    for name in names:
        _, takes_a, takes_b, da, db = _ACTIVATIONS[name.lower()]
        a = next(alphas, da) if takes_a else da
        bb = next(betas, db) if takes_b else db
        bound.append((name.lower(), float(a), float(bb)))
    k = len(defaults)
    return [bound[d * k:(d + 1) * k] for d in range(num_dir)]


def _activate(kb: KernelBuilder, b: ir.IRBuilder, act: tuple[str, float, float], x: ir.Value) -> ir.Value:
    name, alpha, beta = act
    c = lambda v: constant(x, v)  # noqa: E731
    if name == "relu":
        return b.select(b.fcmp_unordered(">", x, c(0.0)), x, c(0.0))
    if name == "tanh":
        return libm(kb, b, "Tanh", x)
    if name == "sigmoid":  # the reference's tanh form
        return b.fmul(c(0.5), b.fadd(libm(kb, b, "Tanh", b.fmul(c(0.5), x)), c(1.0)))
    if name == "affine":
        return b.fadd(b.fmul(c(alpha), x), c(beta))
    if name == "leakyrelu":
        return b.select(b.fcmp_ordered(">=", x, c(0.0)), x, b.fmul(c(alpha), x))
    if name == "thresholdedrelu":
        return b.select(b.fcmp_ordered(">", x, c(alpha)), x, c(0.0))
    if name == "scaledtanh":
        return b.fmul(c(alpha), libm(kb, b, "Tanh", b.fmul(c(beta), x)))
    if name == "hardsigmoid":
        return fmin(b, fmax(b, b.fadd(b.fmul(c(alpha), x), c(beta)), c(0.0)), c(1.0))
    if name == "elu":
        neg = b.fmul(c(alpha), libm(kb, b, "expm1", fmin(b, x, c(0.0))))
        return b.select(b.fcmp_ordered(">=", x, c(0.0)), x, neg)
    if name == "softsign":
        return b.fdiv(x, b.fadd(c(1.0), intrinsic(kb, b, "fabs", x)))
    if name == "softplus":
        return softplus(kb, b, x)
    raise AssertionError(name)


@generator("recurrent", supports=support, ops=OPS)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    op = node.op
    G = GATES[op]
    T, N, I = _dims(node)
    H = _shape(node.inputs[2])[2]
    GH = G * H
    direction = node.attr("direction")
    D = DIRECTIONS[direction]
    layout = node.attr("layout")
    clip = node.attr("clip")
    acts = _bound_activations(node, D)
    dtype = node.inputs[0].type.dtype
    ct = compute_type(dtype)

    tf = kb.task_function(f"{op.lower()}_{node.outputs[0].name}")
    b = tf.builder
    ins = [node.input(k) for k in range(8)]
    ptr = {k: tf.value_pointer(v) for k, v in enumerate(ins) if v is not None}
    outs = [node.outputs[k] if k < len(node.outputs) else None for k in range(3)]
    optr = {k: tf.value_pointer(v) for k, v in enumerate(outs) if v is not None}

    def ld(k: int, off: ir.Value) -> ir.Value:
        return load_convert(b, b.load(b.gep(ptr[k], [off])), ins[k].type.dtype)

    def st(k: int, off: ir.Value, value: ir.Value) -> None:
        b.store(store_convert(b, value, outs[k].type.dtype), b.gep(optr[k], [off]))

    def imm(v: int) -> ir.Value:
        return const_int(v)

    def lin(*terms) -> ir.Value:
        """sum(a * stride) over (value-or-int, stride) pairs as i64."""
        acc = imm(0)
        for v, s in terms:
            v = imm(v) if isinstance(v, int) else v
            acc = b.add(acc, v if s == 1 else b.mul(v, imm(s)))
        return acc

    with b.goto_block(tf._entry):  # scratch on the stack, allocated once
        scratch = {name: b.alloca(ct, size=imm(size), name=name)
                   for name, size in (("h", N * H), ("c", N * H), ("xw", GH), ("hr", GH), ("hn", H),
                                      ("cn", H), ("rr", H))}

    def sp(name: str, off: ir.Value) -> ir.Value:
        return b.gep(scratch[name], [off])

    zero = ir.Constant(ct, 0.0)
    d = tf.task
    # ---- initial state
    with for_range(b, 0, N, name="n0") as n:
        with for_range(b, 0, H, name="j0") as j:
            state_off = lin((n, D * H), (d, H), (j, 1)) if layout else lin((d, N * H), (n, H), (j, 1))
            h0 = ld(5, state_off) if 5 in ptr else zero
            b.store(h0, sp("h", lin((n, H), (j, 1))))
            if op == "LSTM":
                b.store(ld(6, state_off) if 6 in ptr else zero, sp("c", lin((n, H), (j, 1))))

    def clipped(x: ir.Value) -> ir.Value:
        if clip is None:
            return x
        return fmin(b, fmax(b, x, constant(x, -clip)), constant(x, clip))

    def act(slot: int, x: ir.Value) -> ir.Value:
        # The direction picks the bound activation (both directions may differ).
        if D == 1:
            return _activate(kb, b, acts[0][slot], x)
        a0, a1 = _activate(kb, b, acts[0][slot], x), _activate(kb, b, acts[1][slot], x)
        return a0 if acts[0][slot] == acts[1][slot] else b.select(b.icmp_signed("==", d, imm(1)), a1, a0)

    def dot(vec: Callable, mat_k: int, row: ir.Value, length: int) -> ir.Value:
        """sum_k vec(k) * mat[row * length + k] (in order, as a matmul row)."""
        def body(k, accs):
            return [b.fadd(accs[0], b.fmul(vec(k), ld(mat_k, b.add(b.mul(row, imm(length)), k))))]
        return loop_carry(b, 0, length, 1, [zero], body, name="k")[0]

    backwards = direction == "reverse"
    with for_range(b, 0, T, name="s") as s:
        rev = b.sub(imm(T - 1), s)
        if direction == "bidirectional":
            t = b.select(b.icmp_signed("==", d, imm(1)), rev, s)
        else:
            t = rev if backwards else s
        with for_range(b, 0, N, name="n") as n:
            x_row = lin((n, T), (t, 1)) if layout else lin((t, N), (n, 1))
            # 1. xw = x . W + Wb ; hr = h . R (GRU's hidden gate without linear_before_reset: later)
            n_rec = 2 * H if op == "GRU" and not node.attr("linear_before_reset") else GH
            with for_range(b, 0, GH, name="g") as g:
                wrow = b.add(b.mul(d, imm(GH)), g)
                acc = dot(lambda k: ld(0, b.add(b.mul(x_row, imm(I)), k)), 1, wrow, I)
                if 3 in ptr:
                    acc = b.fadd(acc, ld(3, b.add(b.mul(d, imm(2 * GH)), g)))
                b.store(acc, sp("xw", g))
            with for_range(b, 0, n_rec, name="g") as g:
                rrow = b.add(b.mul(d, imm(GH)), g)
                b.store(dot(lambda k: b.load(sp("h", b.add(b.mul(n, imm(H)), k))), 2, rrow, H), sp("hr", g))

            def pre(g: ir.Value) -> ir.Value:
                """((x . W + Wb) + h . R) + Rb for gate row g."""
                v = b.fadd(b.load(sp("xw", g)), b.load(sp("hr", g)))
                return b.fadd(v, ld(3, b.add(b.mul(d, imm(2 * GH)), b.add(imm(GH), g)))) if 3 in ptr else v

            def h_at(j: ir.Value) -> ir.Value:
                return b.load(sp("h", b.add(b.mul(n, imm(H)), j)))

            # 2. the cell
            if op == "RNN":
                with for_range(b, 0, H, name="j") as j:
                    b.store(act(0, clipped(pre(j))), sp("hn", j))
            elif op == "GRU":
                with for_range(b, 0, H, name="j") as j:
                    b.store(act(0, clipped(pre(b.add(imm(H), j)))), sp("rr", j))
                with for_range(b, 0, H, name="j") as j:
                    z = act(0, clipped(pre(j)))
                    gh = b.add(imm(2 * H), j)
                    rb_h = ld(3, b.add(b.mul(d, imm(2 * GH)), b.add(imm(GH), gh))) if 3 in ptr else zero
                    if node.attr("linear_before_reset"):
                        inner = b.fmul(b.load(sp("rr", j)), b.fadd(b.load(sp("hr", gh)), rb_h))
                        hh_in = b.fadd(b.load(sp("xw", gh)), inner)
                    else:
                        rrow = b.add(b.mul(d, imm(GH)), gh)
                        rh = dot(lambda k: b.fmul(b.load(sp("rr", k)), h_at(k)), 2, rrow, H)
                        hh_in = b.fadd(b.fadd(b.load(sp("xw", gh)), rh), rb_h)
                    hh = act(1, clipped(hh_in))
                    one = constant(z, 1.0)
                    b.store(b.fadd(b.fmul(b.fsub(one, z), hh), b.fmul(z, h_at(j))), sp("hn", j))
            else:  # LSTM, gates [i, o, f, c], peepholes [i, o, f]
                with for_range(b, 0, H, name="j") as j:
                    c_old = b.load(sp("c", b.add(b.mul(n, imm(H)), j)))

                    def peep(which: int) -> ir.Value:
                        if 7 not in ptr:
                            return zero
                        return ld(7, b.add(b.mul(d, imm(3 * H)), b.add(imm(which * H), j)))
                    i_g = act(0, clipped(b.fadd(pre(j), b.fmul(peep(0), c_old))))
                    if node.attr("input_forget"):
                        f_g = b.fsub(constant(i_g, 1.0), i_g)
                    else:
                        f_g = act(0, clipped(b.fadd(pre(b.add(imm(2 * H), j)), b.fmul(peep(2), c_old))))
                    c_new = b.fadd(b.fmul(f_g, c_old), b.fmul(i_g, act(1, clipped(pre(b.add(imm(3 * H), j))))))
                    o_g = act(0, clipped(b.fadd(pre(b.add(imm(H), j)), b.fmul(peep(1), c_new))))
                    b.store(b.fmul(o_g, act(2, c_new)), sp("hn", j))
                    b.store(c_new, sp("cn", j))
            # 3. state update (rows past their sequence length keep theirs) and Y
            if 4 in ptr:
                length = b.sext(b.load(b.gep(ptr[4], [n])), I64)
                live = b.icmp_signed("<", t, length)
            else:
                live = ir.Constant(ir.IntType(1), 1)
            with for_range(b, 0, H, name="j") as j:
                hn = b.load(sp("hn", j))
                hpos = sp("h", b.add(b.mul(n, imm(H)), j))
                b.store(b.select(live, hn, b.load(hpos)), hpos)
                if op == "LSTM":
                    cpos = sp("c", b.add(b.mul(n, imm(H)), j))
                    b.store(b.select(live, b.load(sp("cn", j)), b.load(cpos)), cpos)
                if 0 in optr:
                    y_off = lin((n, T * D * H), (t, D * H), (d, H), (j, 1)) if layout else \
                        lin((t, D * N * H), (d, N * H), (n, H), (j, 1))
                    st(0, y_off, b.select(live, hn, zero))
    # ---- final states
    with for_range(b, 0, N, name="n1") as n:
        with for_range(b, 0, H, name="j1") as j:
            state_off = lin((n, D * H), (d, H), (j, 1)) if layout else lin((d, N * H), (n, H), (j, 1))
            if 1 in optr:
                st(1, state_off, b.load(sp("h", lin((n, H), (j, 1)))))
            if 2 in optr and op == "LSTM":
                st(2, state_off, b.load(sp("c", lin((n, H), (j, 1)))))
    b.ret_void()
    return Kernel(tf.fn.name, D, tf.buffers, label_of(node))

