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
