import numpy as np
import pytest

from onefeed.evaluation.metrics import ndcg_at_k, mrr_at_k, hit_at_k, target_ranks


def test_ranks_and_metrics_by_hand():
    topk = np.array([[5, 3, 9], [1, 2, 4], [7, 8, 0]])
    ranks = target_ranks(topk, np.array([3, 4, 6]))
    assert ranks.tolist() == [1, 2, -1]
    assert hit_at_k(ranks, 2).tolist() == [1.0, 0.0, 0.0]
    assert ndcg_at_k(ranks, 3) == pytest.approx([1 / np.log2(3), 1 / np.log2(4), 0.0])
    assert mrr_at_k(ranks, 3) == pytest.approx([0.5, 1 / 3, 0.0])


def _drop_seen_loop(topk, histories, k):
    out = np.full((len(topk), k), -1)
    for row, (ranked, hist) in enumerate(zip(topk, histories)):
        kept = [i for i in ranked.tolist() if i >= 0 and i not in set(hist.tolist())][:k]
        out[row, :len(kept)] = kept
    return out


def test_drop_seen_by_hand():
    from onefeed.evaluation.metrics import drop_seen, unseen_positions

    topk = np.array([[3, 1, 2, 5], [7, -1, 8, 9], [4, 4, 6, 6]])
    hist = np.array([[-1, 1, 3], [-1, -1, -1], [6, 4, -1]])
    assert drop_seen(topk, hist, 3).tolist() == [[2, 5, -1], [7, 8, 9], [-1, -1, -1]]
    assert drop_seen(topk, hist, 6).tolist()[1] == [7, 8, 9, -1, -1, -1]  # k > K' pads
    assert drop_seen(topk, hist).shape == (3, 4)
    pos, valid = unseen_positions(topk, hist, 2)
    assert pos[0].tolist() == [2, 3] and valid.tolist() == [[True, True], [True, True],
                                                            [False, False]]
    with pytest.raises(ValueError, match="3 ranked lists but 2 histories"):
        drop_seen(topk, hist[:2])


def test_drop_seen_matches_a_loop_across_chunks():
    from onefeed.evaluation.metrics import unseen_positions

    rng = np.random.default_rng(0)
    topk = rng.integers(-1, 30, size=(50, 12))
    hist = rng.integers(-1, 30, size=(50, 6))
    pos, valid = unseen_positions(topk, hist, 8, chunk=7)  # several chunks, a ragged last one
    got = np.where(valid, np.take_along_axis(topk, pos, 1), -1)
    assert got.tolist() == _drop_seen_loop(topk, hist, 8).tolist()
