"""Import rules for the attention family (see frontends/onnx/rules/__init__.py).

* Dropout-1/6/7/10 took ``ratio`` (and before 7 ``is_test``) as attributes;
  they become the ``ratio``/``training_mode`` inputs of Dropout-12+.  Before
  opset 10 the mask had the data's type instead of bool.
* Attention-23/24 tolerated ``q_num_heads``/``kv_num_heads`` on 4-D inputs,
  where they are redundant; opset 25 forbids them, so they are dropped.
"""

from __future__ import annotations

import numpy as np

from . import canonical_since, rule


@rule("Dropout", until=12)
def _dropout_legacy(b) -> list:
    b.attrs.pop("consumed_inputs", None)
    ratio = b.const(np.array(b.attrs.pop("ratio", 0.5), np.float32))
    # Before opset 7, is_test=0 (the default) asked for training-mode dropout.
    training = b.version < 7 and not b.attrs.pop("is_test", 0)
    b.attrs.pop("is_test", None)
    x = b.input(0)
    mode = b.const(np.array(True)) if training else None
    inputs = [x, ratio, mode]
    if not b.output_used(1):
        return b.emit("Dropout", inputs, b.attrs)
    if b.version >= 10:
        return b.emit("Dropout", inputs, b.attrs, num_outputs=2)
    # Opset 7-9 (and 1/6): the mask has the data's type.  At inference every
    # element is kept, so a static shape gives a constant of ones.
    if not training and x.type.is_static:
        y = b.emit("Dropout", inputs, b.attrs)[0]
        return [y, b.const(np.ones(x.type.shape, x.type.dtype.np), name=b.node.output[1],
                           dtype=x.type.dtype)]
    y, mask = b.emit("Dropout", inputs, b.attrs, num_outputs=2, final=False)
    b.graph.rename(y, b.node.output[0])
    as_data = b.helper("Cast", mask, to=x.type.dtype.onnx)
    b.graph.rename(as_data, b.node.output[1])
    return [y, as_data]


canonical_since("Dropout", 12)


@rule("Attention", until=25)
def _attention_23(b) -> list:
    if b.input(0) is not None and b.input(0).type.rank == 4:
        b.attrs.pop("q_num_heads", None)
        b.attrs.pop("kv_num_heads", None)
    return b.default()


@rule("FlexAttention", domain="ai.onnx.preview")
def _flex_attention(b) -> list:
    """Modifier subgraphs become closed graphs; their outer reads become trailing inputs."""
    inputs = list(b.inputs[:3])
    attrs = {k: v for k, v in b.attrs.items() if k not in ("score_mod", "prob_mod")}
    n_score = 0
    for name in ("score_mod", "prob_mod"):
        if name in b.attrs:
            graph, captured = b.subgraph(name)
            attrs[name] = graph
            inputs += captured
            if name == "score_mod":
                n_score = len(captured)
    attrs["num_score_captures"] = n_score
    return b.emit("FlexAttention", inputs, attrs, domain="ai.onnx.preview")
