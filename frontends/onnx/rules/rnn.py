"""Import rules for the rnn family (see frontends/onnx/rules/__init__.py).

RNN-1, GRU-1/3 and LSTM-1 carried an ``output_sequence`` attribute (whether
``Y`` is produced), made redundant in opset 7 by optional outputs: we drop it
and produce exactly the outputs the node names.  GRU-1 had no
``linear_before_reset`` (its behaviour is the default 0), and every form
before 14 lacks ``layout`` (default 0), so no other change is needed.
"""

from __future__ import annotations

from . import rule


def _drop_output_sequence(b) -> list:
    b.attrs.pop("output_sequence", None)
    return b.default()


for _op in ("RNN", "GRU", "LSTM"):
    rule(_op, until=7)(_drop_output_sequence)
