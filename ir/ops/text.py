"""String ops and n-gram features: StringNormalizer, StringConcat, StringSplit,
RegexFullMatch, TfIdfVectorizer.

Strings at run time are NumPy object arrays of Python ``str``.  Text ops are
inherently per-element; they use NumPy's object-array ufuncs where they can
and plain loops where the work is string processing anyway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType
from ._common import broadcast_type, check_dtype

STR = frozenset({DType.STR})


def _strings(shape: tuple, values: Sequence[str] = ()) -> np.ndarray:
    """An object array of ``str`` (``np.array`` would make a fixed-width unicode array)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out.reshape(shape)


# ----------------------------------------------------------- StringNormalizer
normalizer = define("StringNormalizer", inputs=["X"], outputs=["Y"], kind=OPAQUE,
                    attrs={"case_change_action": Attr.string("NONE"), "is_case_sensitive": Attr.int(0),
                           "locale": Attr.string(), "stopwords": Attr.strings()},
                    doc="Drops stopword elements of a [C] or [1, C] tensor, then changes case.")


@normalizer.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, STR)
    action = ctx.attr("case_change_action")
    if action not in ("NONE", "LOWER", "UPPER"):
        ctx.fail("unknown case_change_action", expected="NONE, LOWER or UPPER", found=repr(action))
    shape = ctx.shape(0)
    if shape is None:
        return [TensorType(DType.STR, None)]
    if len(shape) == 1:
        return [TensorType(DType.STR, (None,))]
    if len(shape) == 2 and (shape[0] == 1 or not isinstance(shape[0], int)):
        return [TensorType(DType.STR, (1, None))]
    ctx.fail("input must be [C] or [1, C]", found=str(ctx.input_type(0)))


def _simple_case(word: str, upper: bool) -> str:
    """Character-by-character case mapping, as C's towupper/towlower in a UTF-8 locale:
    characters whose full mapping has several letters (German sharp s) stay as they are."""
    if word.isascii():
        return word.upper() if upper else word.lower()
    out = []
    for ch in word:
        mapped = ch.upper() if upper else ch.lower()
        out.append(mapped if len(mapped) == 1 else ch)
    return "".join(out)


@normalizer.reference
def _(x: np.ndarray, *, case_change_action: str, is_case_sensitive: int, locale: Optional[str],
      stopwords: Optional[Sequence[str]]) -> np.ndarray:
    # The locale attribute is not modelled: casing is Unicode's, as in any UTF-8 locale.
    words = list(x.reshape(-1))
    if stopwords:
        if is_case_sensitive:
            stops = set(stopwords)
            words = [w for w in words if w not in stops]
        else:
            stops = {_simple_case(s, upper=False) for s in stopwords}
            words = [w for w in words if _simple_case(w, upper=False) not in stops]
    if case_change_action != "NONE":
        words = [_simple_case(w, upper=case_change_action == "UPPER") for w in words]
    if not words:  # everything dropped: one empty string, as the spec says
        words = [""]
    return _strings((len(words),) if x.ndim == 1 else (1, len(words)), words)


# --------------------------------------------------------------- StringConcat
concat = define("StringConcat", inputs=["X", "Y"], outputs=["Z"], kind=OPAQUE,
                doc="Elementwise concatenation with NumPy broadcasting.")


@concat.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, STR)
    check_dtype(ctx, 1, STR)
    return [broadcast_type(ctx, dtype=DType.STR)]


@concat.reference
def _(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # asarray: on 0-d operands np.add returns a bare str.
    return np.asarray(np.add(x.astype(object), y.astype(object), dtype=object), dtype=object)


# ---------------------------------------------------------------- StringSplit
split = define("StringSplit", inputs=["X"], outputs=["Y", "Z"], kind=OPAQUE,
               attrs={"delimiter": Attr.string(), "maxsplit": Attr.int()},
               doc="Splits each string; Y pads to the longest split with '', Z counts the parts.")


@split.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, STR)
    shape = ctx.shape(0)
    m = ctx.attr("maxsplit")
    if m is not None and m < 0:
        ctx.fail("maxsplit must be non-negative", found=str(m))
    return [TensorType(DType.STR, None if shape is None else tuple(shape) + (None,)),
            TensorType(DType.I64, shape)]


def _split_one(s: str, sep: Optional[str], maxsplit: int) -> list[str]:
    """One string's parts, as onnxruntime splits it.

    No (or an empty) delimiter splits on runs of whitespace and ignores leading
    and trailing whitespace (also after the last allowed split); an empty
    string has no parts.
    """
    if not s:
        return []
    parts = s.split(sep, maxsplit)
    if sep is None and parts:
        parts[-1] = parts[-1].rstrip()
    return parts


@split.reference
def _(x: np.ndarray, *, delimiter: Optional[str], maxsplit: Optional[int]) -> tuple:
    parts = [_split_one(s, delimiter or None, -1 if maxsplit is None else maxsplit)
             for s in x.reshape(-1)]
    counts = np.array([len(p) for p in parts], np.int64)
    width = int(counts.max(initial=0))
    y = _strings((len(parts), width), [w for p in parts for w in p + [""] * (width - len(p))])
    return y.reshape(x.shape + (width,)), counts.reshape(x.shape)


# ------------------------------------------------------------- RegexFullMatch
regex = define("RegexFullMatch", inputs=["X"], outputs=["Y"], kind=OPAQUE,
               attrs={"pattern": Attr.string(required=True)},
               doc="True where the whole string matches the pattern.")


def _compile(pattern: str) -> re.Pattern:
    # ONNX specifies RE2 syntax; Python's re accepts the common subset, and ASCII
    # mode gives \\w, \\d, \\s and \\b RE2's ASCII meaning.
    return re.compile(pattern, re.ASCII)


@regex.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, STR)
    pattern = ctx.attr("pattern")
    if pattern is None:
        ctx.fail("needs a pattern attribute")
    try:
        _compile(pattern)
    except re.error as exc:
        ctx.fail(f"invalid regular expression: {exc}", found=repr(pattern))
    return [TensorType(DType.BOOL, ctx.shape(0))]


@regex.reference
def _(x: np.ndarray, *, pattern: str) -> np.ndarray:
    rx = _compile(pattern)
    return np.array([rx.fullmatch(s) is not None for s in x.reshape(-1)], bool).reshape(x.shape)


# ------------------------------------------------------------ TfIdfVectorizer
tfidf = define("TfIdfVectorizer", inputs=["X"], outputs=["Y"], kind=OPAQUE,
               attrs={"mode": Attr.string(required=True), "min_gram_length": Attr.int(required=True),
                      "max_gram_length": Attr.int(required=True),
                      "max_skip_count": Attr.int(required=True),
                      "ngram_counts": Attr.ints(required=True), "ngram_indexes": Attr.ints(required=True),
                      "pool_int64s": Attr.ints(), "pool_strings": Attr.strings(), "weights": Attr.floats()},
               doc="Counts the pool's n-grams (with skips) in each row; TF, IDF or TF-IDF weights.")


@tfidf.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, {DType.STR, DType.I32, DType.I64})
    a = ctx.attrs
    if a["mode"] not in ("TF", "IDF", "TFIDF"):
        ctx.fail("unknown mode", expected="TF, IDF or TFIDF", found=repr(a["mode"]))
    if (a["pool_strings"] is None) == (a["pool_int64s"] is None):
        ctx.fail("needs exactly one of pool_strings and pool_int64s")
    if (a["pool_strings"] is not None) != (ctx.dtype(0) == DType.STR):
        ctx.fail("the pool's type must match the input's", found=f"input {ctx.dtype(0).short}, "
                 f"{'pool_strings' if a['pool_strings'] is not None else 'pool_int64s'}")
    if not 1 <= a["min_gram_length"] <= a["max_gram_length"] or a["max_skip_count"] < 0:
        ctx.fail("need 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0",
                 found=f"{a['min_gram_length']}, {a['max_gram_length']}, {a['max_skip_count']}")
    if not a["ngram_indexes"]:
        ctx.fail("ngram_indexes must not be empty")
    weights = a["weights"]
    size = max(a["ngram_indexes"]) + 1
    if weights and len(weights) < size:
        ctx.fail("weights must give one value per output column", expected=str(size),
                 found=str(len(weights)))
    shape = ctx.shape(0)
    if shape is None:
        return [TensorType(DType.F32, None)]
    if len(shape) not in (1, 2):
        ctx.fail("input must be [C] or [N, C]", found=str(ctx.input_type(0)))
    return [TensorType(DType.F32, (size,) if len(shape) == 1 else (shape[0], size))]


def _ngram_table(pool: Sequence, counts: Sequence[int], indexes: Sequence[int], lo: int, hi: int
                 ) -> dict[tuple, int]:
    """n-gram (as a tuple) -> output column, for the n-grams of lengths in [lo, hi].

    The pool holds the 1-grams, then the 2-grams... from offsets ``counts``;
    n-grams are numbered through all lengths (kept or not) to index ``indexes``.
    """
    table: dict[tuple, int] = {}
    ordinal = 0
    for n, start in enumerate(counts, 1):
        end = counts[n] if n < len(counts) else len(pool)
        for k in range(start, end, n):
            if lo <= n <= hi:
                table[tuple(pool[k:k + n])] = indexes[ordinal]
            ordinal += 1
    return table


def _count_row(row: list, table: dict[tuple, int], lo: int, hi: int, max_skip: int,
               out: np.ndarray) -> None:
    """Add one row's n-gram counts to ``out``.

    An n-gram with skip s takes every (s+1)-th item; 1-grams are counted once,
    not once per skip distance.
    """
    length = len(row)
    for skip in range(max_skip + 1):
        step = skip + 1
        for n in range(max(lo, 1 if skip == 0 else 2), hi + 1):
            span = (n - 1) * step
            for start in range(length - span):
                col = table.get(tuple(row[start:start + span + 1:step]))
                if col is not None:
                    out[col] += 1


@tfidf.reference
def _(x: np.ndarray, *, mode, min_gram_length, max_gram_length, max_skip_count, ngram_counts,
      ngram_indexes, pool_int64s, pool_strings, weights) -> np.ndarray:
    pool = list(pool_strings) if pool_strings is not None else [int(v) for v in pool_int64s]
    table = _ngram_table(pool, ngram_counts, ngram_indexes, min_gram_length, max_gram_length)
    size = max(ngram_indexes) + 1
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    tf = np.zeros((rows.shape[0], size), np.float64)
    for r, row in enumerate(rows):
        items = row.tolist() if x.dtype == object else [int(v) for v in row]
        _count_row(items, table, min_gram_length, max_gram_length, max_skip_count, tf[r])
    w = np.asarray(weights[:size] if weights else np.ones(size), np.float64)
    if mode == "IDF":
        tf = (tf > 0) * w
    elif mode == "TFIDF":
        tf = tf * w
    return tf.astype(np.float32).reshape((size,) if x.ndim == 1 else (rows.shape[0], size))
