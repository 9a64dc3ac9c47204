"""Import rules for the text family (see frontends/onnx/rules/__init__.py).

None are needed: TfIdfVectorizer (9), StringNormalizer (10), StringConcat,
StringSplit and RegexFullMatch (20) each have a single version.
"""

from __future__ import annotations
