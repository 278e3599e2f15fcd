import numpy as np

from onefeed.search.bm25 import BM25Config, BM25Retriever

TEXTS = ["red nail polish", "blue nail polish", "red lipstick matte", "shampoo for dry hair",
         "conditioner for dry hair"]


def test_retrieve_matches_plain_score_argsort():
    r = BM25Retriever()
    r.fit_texts(TEXTS, BM25Config())
    queries = ["red polish", "dry hair shampoo", "lipstick"]
    top = r.retrieve(queries, 5)
    scores = r.scores(queries)
    for row, q in enumerate(queries):
        positive = np.flatnonzero(scores[row] > 0)
        expect = sorted(positive, key=lambda i: (-scores[row][i], i))
        assert top[row, :len(expect)].tolist() == expect
        assert (top[row, len(expect):] == -1).all()
    assert top[0, 0] == 0 and top[1, 0] == 3 and top[2, 0] == 2


def test_unmatched_query_and_n_matches():
    r = BM25Retriever()
    r.fit_texts(TEXTS)
    assert r.retrieve(["zzz unknown"], 3).tolist() == [[-1, -1, -1]]
    assert r.n_matches(["zzz", "nail", "dry hair"]).tolist() == [0, 2, 2]
    assert r.retrieve([], 3).shape == (0, 3)


def test_no_item_text_is_a_clear_error():
    import pytest

    from onefeed.data.schemas import DataError

    with pytest.raises(DataError, match="none of the 3 item texts has a word"):
        BM25Retriever().fit_texts(["", "", "the"])  # "the" is a stopword
