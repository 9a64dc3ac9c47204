"""String ops and TfIdfVectorizer against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op


def S(*values, shape=None):
    """An object array of str (what string tensors are at run time)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out.reshape(shape or (len(values),))


WORDS = S("Monday", "tuesday", "MONDAY", "wednesday", "Grüße", "monday")


# ----------------------------------------------------------- StringNormalizer
@pytest.mark.parametrize("action", ["NONE", "LOWER", "UPPER"])
@pytest.mark.parametrize("sensitive", [0, 1])
@pytest.mark.parametrize("stops", [None, ["monday"], ["MONDAY", "wednesday"]])
def test_string_normalizer(action, sensitive, stops):
    # onnxruntime's default locale (en_US.UTF-8) may not be installed; C.UTF-8 always is.
    attrs = {"case_change_action": action, "is_case_sensitive": sensitive, "locale": "C.UTF-8"}
    if stops:
        attrs["stopwords"] = stops
    check_op("StringNormalizer", [WORDS], attrs, opset=10)
    check_op("StringNormalizer", [Const(WORDS.reshape(1, -1))], attrs, opset=10)


@pytest.mark.parametrize("shape", [(2,), (1, 2)])
def test_string_normalizer_everything_dropped(shape):
    x = S("a", "A", shape=shape)
    out = check_op("StringNormalizer", [x], {"stopwords": ["a"], "locale": "C.UTF-8"}, opset=10)
    assert out[0].shape == (1,) * len(shape) and out[0].reshape(-1)[0] == ""


# --------------------------------------------------------------- StringConcat
@pytest.mark.parametrize("x,y", [
    (S("a", "bc", ""), S("x", "", "zz")),
    (S("a", "b", "c", "d", shape=(2, 2)), S("-suffix")),
    (S("ü", "日本"), Const(S("語", "ö"))),
    (S("one", shape=()), S("two", shape=())),
    (np.empty((0, 3), object), S("x", "y", "z")),
])
def test_string_concat(x, y):
    check_op("StringConcat", [x, y], {}, opset=20)


# ---------------------------------------------------------------- StringSplit
@pytest.mark.parametrize("attrs", [{}, {"delimiter": ","}, {"delimiter": "--"}, {"maxsplit": 1},
                                   {"delimiter": ",", "maxsplit": 2}, {"delimiter": ""}])
def test_string_split(attrs):
    x = S("a,b,,c", "  spaced   out  words ", "", "no-delims--here", "x--y--z,w", "single",
          shape=(2, 3))
    check_op("StringSplit", [x], attrs, opset=20, num_outputs=2)


def test_string_split_empty_input():
    out = check_op("StringSplit", [np.empty((0,), object)], {"delimiter": ","}, opset=20,
                   num_outputs=2)
    assert out[0].shape == (0, 0) and out[1].shape == (0,)


# ------------------------------------------------------------- RegexFullMatch
@pytest.mark.parametrize("pattern", [r"\d+", r"[a-z]+@(gmail|yahoo)\.com", r"(ab)*c?", r"\w+\s\w+", ""])
def test_regex_full_match(pattern):
    x = S("123", "12a", "joe@gmail.com", "ann@yahoo.com.au", "ababc", "", "hello world",
          "héllo wörld", shape=(2, 4))
    check_op("RegexFullMatch", [x], {"pattern": pattern}, opset=20)


# ------------------------------------------------------------ TfIdfVectorizer
INT_POOL = dict(ngram_counts=[0, 4], ngram_indexes=[0, 1, 2, 3, 4, 5, 6],
                pool_int64s=[2, 3, 5, 4, 5, 6, 7, 8, 6, 7])  # 4 unigrams, 3 bigrams


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("lo,hi,skip", [(1, 1, 0), (2, 2, 0), (1, 2, 0), (2, 2, 5), (1, 2, 3)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_tfidf_ints(mode, lo, hi, skip, dtype):
    x = np.array([[1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], [8, 8, 5, 6, 7, 5, 6, 4, 2, 3, 5, 6]], dtype)
    attrs = dict(INT_POOL, mode=mode, min_gram_length=lo, max_gram_length=hi, max_skip_count=skip)
    if mode != "TF":
        attrs["weights"] = [0.5, 1.0, 2.0, 0.25, 3.0, 1.5, 4.0]
    check_op("TfIdfVectorizer", [x], attrs, opset=9)
    check_op("TfIdfVectorizer", [Const(x[0])], attrs, opset=9)


def test_tfidf_strings_without_weights():
    pool = ["the", "cat", "sat", "the", "cat", "cat", "sat", "on", "the", "mat"]
    x = S("the", "cat", "sat", "on", "the", "mat", "the", "cat", shape=(2, 4))
    for mode in ("TF", "IDF", "TFIDF"):
        attrs = dict(mode=mode, min_gram_length=1, max_gram_length=3, max_skip_count=1,
                     ngram_counts=[0, 3, 7], ngram_indexes=[4, 3, 2, 1, 0, 5, 6],
                     pool_strings=pool)
        check_op("TfIdfVectorizer", [x], attrs, opset=9)


def test_tfidf_unseen_columns_stay_zero():
    attrs = dict(mode="TF", min_gram_length=1, max_gram_length=1, max_skip_count=0,
                 ngram_counts=[0], ngram_indexes=[0, 5], pool_int64s=[1, 2])
    out = check_op("TfIdfVectorizer", [np.array([1, 1, 2, 9], np.int64)], attrs, opset=9)
    np.testing.assert_array_equal(out[0], [2, 0, 0, 0, 0, 1])


# ------------------------------------------------------------------ errors
def test_normalizer_rejects_rank_3():
    with pytest.raises(CompilerError, match=r"\[C\] or \[1, C\]"):
        check_op("StringNormalizer", [S("a", "b", shape=(1, 1, 2))], {}, opset=10,
                 expected=[S("a")])


def test_normalizer_bad_action():
    with pytest.raises(CompilerError, match="unknown case_change_action"):
        check_op("StringNormalizer", [S("a")], {"case_change_action": "TITLE"}, opset=10,
                 expected=[S("a")])


def test_concat_needs_strings():
    with pytest.raises(CompilerError, match="unsupported element type"):
        check_op("StringConcat", [S("a"), np.array([1], np.int64)], {}, opset=20, expected=[S("a")])


def test_regex_invalid_pattern():
    with pytest.raises(CompilerError, match="invalid regular expression"):
        check_op("RegexFullMatch", [S("a")], {"pattern": "(unclosed"}, opset=20,
                 expected=[np.array([False])])


def test_tfidf_pool_type_mismatch():
    attrs = dict(mode="TF", min_gram_length=1, max_gram_length=1, max_skip_count=0,
                 ngram_counts=[0], ngram_indexes=[0], pool_strings=["a"])
    with pytest.raises(CompilerError, match="pool's type must match"):
        check_op("TfIdfVectorizer", [np.array([1], np.int64)], attrs, opset=9,
                 expected=[np.zeros(1, np.float32)])


def test_tfidf_bad_mode():
    attrs = dict(INT_POOL, mode="BM25", min_gram_length=1, max_gram_length=1, max_skip_count=0)
    with pytest.raises(CompilerError, match="unknown mode"):
        check_op("TfIdfVectorizer", [np.array([1], np.int64)], attrs, opset=9,
                 expected=[np.zeros(1, np.float32)])
