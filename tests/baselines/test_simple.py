"""MostPop and ItemKNN against hand-computed values."""

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from onefeed.baselines.itemknn import ItemKNN, ItemKNNConfig, cosine_similarity, keep_top, user_item_matrix
from onefeed.baselines.pop import MostPop, PopConfig, train_popularity
from onefeed.data.views import RecCases, rec_cases

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_tiny_dataset  # noqa: E402


def test_popularity_counts_train_only(tiny_dataset):
    # train = all but the last two items of each sequence
    counts = train_popularity(tiny_dataset)
    assert counts.tolist() == [1, 2, 3, 3, 2, 2, 1, 1]


def test_mostpop_ranks_by_count_then_id(tiny_dataset):
    m = MostPop()
    m.fit(tiny_dataset, PopConfig(), 0)
    cases = rec_cases(tiny_dataset, "test", 5)
    top = m.recommend(cases, 4)
    assert top.shape == (5, 4)
    assert top[0].tolist() == [2, 3, 1, 4]


def test_mostpop_filter_seen(tiny_dataset):
    m = MostPop()
    m.fit(tiny_dataset, PopConfig(filter_seen=True), 0)
    cases = rec_cases(tiny_dataset, "test", 5)
    top = m.recommend(cases, 3)
    for row, hist in zip(top, cases.history):
        assert not set(row.tolist()) & set(hist[hist >= 0].tolist())


def test_cosine_by_hand():
    # users: {0,1}, {0,1,2}, {2}
    x = user_item_matrix([np.array([0, 1]), np.array([0, 1, 2, 2]), np.array([2])], 3)
    assert x.toarray().tolist() == [[1, 1, 0], [1, 1, 1], [0, 0, 1]]
    sim = cosine_similarity(x).toarray()
    # co(0,1) = 2, |0| = |1| = 2 -> 1.0 ; co(0,2) = 1, |2| = 2 -> 1/2
    assert sim == pytest.approx(np.array([[0, 1, 0.5], [1, 0, 0.5], [0.5, 0.5, 0]]))
    top1 = keep_top(sp.csr_matrix(sim), 1).toarray()
    assert (top1 > 0).sum(axis=1).tolist() == [1, 1, 1]


def test_itemknn_scores_sum_history_similarity():
    ds = make_tiny_dataset([[0, 1, 9, 9], [0, 1, 2, 9, 9], [2, 9, 9]], 10)
    m = ItemKNN()
    m.fit(ds, ItemKNNConfig(neighbours=0), 0)
    cases = RecCases(np.array([0]), np.array([[-1, 0]]), np.array([1]))
    assert m.recommend(cases, 2)[0].tolist() == [1, 2]
