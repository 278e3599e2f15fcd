import numpy as np

from onefeed.evaluation.coverage import catalogue_coverage, long_tail_hits, tail_mask


def test_catalogue_coverage():
    topk = np.array([[0, 1], [1, -1], [3, 0]])
    assert catalogue_coverage(topk, 10) == 0.3


def test_tail_mask_top_20_percent_is_head():
    pop = np.array([5, 9, 1, 9, 0, 2, 2, 3, 0, 0])  # 10 items -> 2 head items: 1 and 3
    tail = tail_mask(pop, 0.2)
    assert np.flatnonzero(~tail).tolist() == [1, 3]
    # ties broken by lower id: among the 9s and the 5, head = {1, 3}
    assert tail_mask(np.array([1, 1, 1, 1, 1]), 0.2).tolist() == [False, True, True, True, True]


def test_long_tail_hits():
    tail = np.array([False, True, True])
    ranks = np.array([0, 3, -1, 1])
    targets = np.array([0, 1, 2, 1])
    assert long_tail_hits(ranks, targets, tail, k=2).tolist() == [0.0, 0.0, 1.0]
    assert long_tail_hits(ranks, targets, tail, k=5).tolist() == [1.0, 0.0, 1.0]


def test_popularity_recalls_split_cases_by_target_popularity():
    from onefeed.bench.runner import popularity_recalls

    tail = np.array([False, False, True, True, True])  # items 0, 1 head; 2..4 tail
    targets = np.array([0, 1, 2, 3, 4])
    ranks = np.array([0, 7, 2, -1, 4])  # head: hit@5, miss; tail: hit, miss, hit@5
    out = popularity_recalls(ranks, targets, tail, [1, 5])
    assert out["head_recall@5"] == 0.5 and out["head_recall@1"] == 0.5
    assert out["tail_recall@5"] == 2 / 3 and out["tail_recall@1"] == 0.0


def test_search_supplement_counts_items_the_feed_did_not_have():
    from onefeed.evaluation.coverage import search_supplement

    final = np.array([[1, 2, 9, 8], [3, -1, -1, -1], [-1, -1, -1, -1]])
    feed = np.array([[1, 2, 3], [3, 4, -1], [5, 6, 7]])
    # row 0: 9 and 8 are new -> 2/4 at k=4, 1/3 at k=3; row 1: 0/1; row 2: empty -> 0
    assert search_supplement(final, feed, 4).tolist() == [0.5, 0.0, 0.0]
    assert np.allclose(search_supplement(final, feed, 3), [1 / 3, 0.0, 0.0])


def test_replay_ndcg_against_several_positives():
    from onefeed.evaluation.coverage import replay_ndcg

    final = np.array([[5, 1, 7], [2, 3, 4], [1, 2, 3]])
    positives = np.array([[1, 7], [9, -1], [-1, -1]])
    got = replay_ndcg(final, positives, 3)
    # row 0: hits at ranks 1, 2 -> (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    want0 = (1 / np.log2(3) + 0.5) / (1 + 1 / np.log2(3))
    assert np.isclose(got[0], want0) and got[1] == 0.0 and np.isnan(got[2])
    # a perfect list scores 1
    assert replay_ndcg(np.array([[7, 1, 5]]), np.array([[1, 7]]), 3)[0] == 1.0
