"""Import rules for the pool family (see frontends/onnx/rules/__init__.py).

MaxPool-1/8/10/11/12 and AveragePool-1/7/10/11/19 need no rule: each older
form has a subset of the newest attributes with the same meaning and
defaults (dilations 1, ceil_mode 0, count_include_pad 0, storage_order 0;
MaxPool-1 simply has no Indices output).  LpPool-1 and GlobalLpPool-1 took
``p`` as a float; from opset 2 it is an int.
"""

from __future__ import annotations

from . import canonical_since, rule


def _int_p(b) -> list:
    p = float(b.attrs.pop("p", 2.0))
    if p != int(p) or p < 1:
        b.fail("only a positive integral p can be imported", found=str(p),
               hint="LpPool-2 and later take an int p")
    b.attrs["p"] = int(p)
    return b.default()


rule("LpPool", until=2)(_int_p)
rule("GlobalLpPool", until=2)(_int_p)
canonical_since("LpPool", 2)
canonical_since("GlobalLpPool", 2)
