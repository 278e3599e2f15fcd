"""Examples of the cross-task objectives: training split only, hand-made event lists."""

import numpy as np

from onefeed.tasks.cross_task import (Pool, align_pairs, consistency_negatives, merge_pools,
                                      pool_from_lists, sample_distinct_pairs, sample_negatives)
from onefeed.tasks.joint import R_I, S_I, S_Q, JointData


def flat(users: list[list[tuple]], texts: list[str]) -> JointData:
    """users: per user, events (behaviour, item, query row, split)."""
    ev = [e for u in users for e in u]
    return JointData(np.array([e[0] for e in ev], np.int8), np.array([e[1] for e in ev]),
                     np.array([e[2] for e in ev]), np.array([e[3] for e in ev], np.int8),
                     np.concatenate([np.arange(len(u)) for u in users]),
                     np.concatenate([[0], np.cumsum([len(u) for u in users])]),
                     np.zeros((len(texts), 2), np.int64), texts)


TEXTS = ["red lipstick", "blue polish", "green cream"]
JD = flat([
    [(R_I, 0, -1, 0), (S_Q, -1, 0, 0), (S_I, 3, -1, 0), (S_Q, -1, 1, 1), (S_I, 4, -1, 1)],
    [(S_Q, -1, 1, 0)],  # a query whose "click" would be the next user's first event
    [(S_I, 5, -1, 0), (S_Q, -1, 2, 0), (R_I, 6, -1, 0), (S_Q, -1, 0, 0), (S_I, 3, -1, 0)],
], TEXTS)


def test_align_pairs_are_train_search_clicks_only():
    # user 0's valid pair (blue polish, 4) is held out; user 1's query has no click of its own
    assert align_pairs(JD).tolist() == [[0, 3]]  # deduplicated over users 0 and 2


def test_align_pairs_drop_held_out_query_item_pairs():
    assert align_pairs(JD, {("red lipstick", 3)}).tolist() == []
    assert align_pairs(JD, {("red lipstick", 4)}).tolist() == [[0, 3]]


def test_sample_distinct_pairs_never_repeats_an_item_or_a_query():
    pairs = np.array([[0, 1], [0, 2], [1, 1], [2, 3], [3, 3], [4, 5]])
    for seed in range(20):
        got = sample_distinct_pairs(pairs, 10, np.random.default_rng(seed))
        assert len(set(got[:, 0])) == len(got) and len(set(got[:, 1])) == len(got)
        assert {tuple(r) for r in got} <= {tuple(r) for r in pairs}
        assert len(got) >= 3  # e.g. items 1|2, 3, 5 are always reachable
    assert len(sample_distinct_pairs(pairs, 2, np.random.default_rng(0))) == 2


def test_consistency_negatives_are_retrieved_and_never_interacted_in_training():
    hits = {"red lipstick": [3, 7, 0, -1], "blue polish": [4, 8, 9, 5], "green cream": [6, 2, 1, 5]}
    asked = []

    def retrieve(texts, k):
        asked.append(list(texts))
        return np.array([hits[t][:k] for t in texts])

    pool = consistency_negatives(JD, retrieve, 3)
    assert asked == [["red lipstick", "blue polish", "green cream"]]  # each text once
    # user 0: train query "red lipstick" -> {3, 7, 0} minus train items {0, 3}; the valid
    # query "blue polish" is not used (its item 4 and candidates stay unseen by this term)
    assert pool.of(0).tolist() == [7]
    assert pool.of(1).tolist() == [4, 8, 9]  # no train items at all
    # user 2: "green cream" {6, 2, 1} + "red lipstick" {3, 7, 0} minus {5, 6, 3}
    assert pool.of(2).tolist() == [0, 1, 2, 7]


def test_sample_negatives_draws_from_the_users_pool():
    pool = Pool(np.array([0, 1, 1, 4]), np.array([7, 0, 1, 2]))
    got = sample_negatives(pool, np.array([0, 1, 2, 2, 2, 0]), np.random.default_rng(0))
    assert got[0] == 7 and got[5] == 7 and got[1] == -1 and set(got[2:5]) <= {0, 1, 2}
    empty = Pool(np.zeros(3, np.int64), np.zeros(0, np.int64))
    assert sample_negatives(empty, np.array([0, 1]), np.random.default_rng(0)).tolist() == [-1, -1]


def test_explicit_negatives_merge_into_the_pool_minus_train_items():
    bm25 = Pool(np.array([0, 1, 1, 2]), np.array([7, 9]))
    skipped = pool_from_lists({0: np.array([8, 0, 8]), 2: np.array([5, 1])}, 3)
    assert skipped.of(0).tolist() == [0, 8] and skipped.of(1).tolist() == []
    merged = merge_pools(JD, bm25, skipped)
    # user 0 trained on items 0 and 3: the skip of 0 is no negative; user 2 on 5, 6, 3
    assert merged.of(0).tolist() == [7, 8]
    assert merged.of(1).tolist() == []
    assert merged.of(2).tolist() == [1, 9]
