import numpy as np
import polars as pl

from onefeed.baselines.query_baselines import (KeywordConfig, KeywordQueries, PopularQueryPrior,
                                               query_cases, words)
from onefeed.data.schemas import EVAL_QUERY_SCHEMA, QUERY_SCHEMA
from onefeed.data.views import RecCases, rec_cases


def _with_queries(ds):
    q = pl.DataFrame([(0, "blue shoe", "title", "train"), (0, "blue shoe", "tag", "train"),
                      (0, "shoes", "category", "train"), (0, "secret held out", "keyword", "test"),
                      (1, "red shoe", "title", "train")], schema=QUERY_SCHEMA, orient="row")
    eq = pl.DataFrame([(0, "test", 4, "red shoe"), (2, "test", 6, "blue shoe"),
                       (1, "valid", 4, "x")], schema=EVAL_QUERY_SCHEMA, orient="row")
    return ds.__class__(ds.events, ds.items, ds.users, q, eq, ds.manifest)


def test_words_drops_stopwords_and_units():
    assert words("The Red Shoe, 2 oz (for kids)") == ["red", "shoe", "kids"]


def test_popular_prior_uses_train_queries_of_last_item(tiny_dataset):
    ds = _with_queries(tiny_dataset)
    m = PopularQueryPrior()
    m.fit(ds)
    cases = RecCases(np.array([0, 1]), np.array([[1, 0], [-1, 5]]), np.array([2, 6]))
    out = m.generate(cases, 3)
    # last item 0: "blue shoe" (2x) then "shoes"; then item 1's "red shoe"; never the test query
    assert out[0] == ["blue shoe", "shoes", "red shoe"]
    # item 5 has no queries: global most frequent train queries
    assert out[1] == ["blue shoe", "red shoe", "shoes"]
    assert all("secret held out" not in q for q in out)


def test_keyword_queries_from_recent_titles(tiny_dataset):
    m = KeywordQueries()
    m.fit(tiny_dataset, KeywordConfig(words_per_query=2))
    cases = RecCases(np.array([0]), np.array([[2, 3]]), np.array([4]))
    out = m.generate(cases, 3)[0]
    # titles "item 3 red shoe", "item 2 blue shoe": 'item'/'shoe' occur everywhere (low idf)
    assert out[0].split() == [w for w in ["item", "red", "shoe"] if w in out[0].split()]
    assert "red" in out[0] and "blue" in out[1]
    assert len(out) == 3 and len(set(out)) == 3


def test_query_cases_pairs_users_with_their_test_query(tiny_dataset):
    ds = _with_queries(tiny_dataset)
    cases = rec_cases(ds, "test", 4)
    sub, refs = query_cases(ds, cases, "test")
    assert sub.users.tolist() == [0, 2] and refs == ["red shoe", "blue shoe"]
