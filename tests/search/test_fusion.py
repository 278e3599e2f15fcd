import numpy as np
import pytest

from onefeed.search.fusion import rrf, tune_weight


def test_rrf_hand_computed():
    a = np.array([[1, 2, 3]])
    b = np.array([[3, 4, -1]])
    # c = 0: 1 -> 1/1; 2 -> 1/2; 3 -> 1/3 + 1/1; 4 -> 1/2
    assert rrf([a, b], [1.0, 1.0], 4, c=0.0).tolist() == [[3, 1, 2, 4]]
    # weight 0 reproduces the first list; items only in b drop out
    assert rrf([a, b], [1.0, 0.0], 4, c=0.0).tolist() == [[1, 2, 3, -1]]


def test_rrf_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="weights"):
        rrf([np.zeros((1, 2), int)], [1.0, 2.0], 2)
    with pytest.raises(ValueError, match="one row per case"):
        rrf([np.zeros((1, 2), int), np.zeros((2, 2), int)], [1.0, 1.0], 2)


def test_tune_weight_picks_the_helpful_list_and_prefers_small_weights():
    base = np.array([[5, 6, 7]] * 4)
    other = np.array([[1, 5, 6], [2, 5, 6], [3, 5, 6], [4, 5, 6]])
    w, table = tune_weight(base, other, np.array([1, 2, 3, 4]))
    assert w > 0 and table[w] > table[0.0]
    w0, _ = tune_weight(base, base.copy(), np.array([5, 5, 5, 5]))
    assert w0 == 0.0  # no gain -> the smallest weight


def test_score_fusion_hand_computed():
    from onefeed.search.fusion import score_fusion

    items = np.array([[7, 8, 9, -1]])
    base = np.array([[4.0, 2.0, 1.0, 0.0]])  # normalised: 1, .5, .25
    other = np.array([[-3.0, -1.0, -np.inf, 0.0]])
    # lam 0.1: 7 -> 0.7, 8 -> 0.4, 9 -> .25 - 5 (floored at -50); the empty slot stays last
    assert score_fusion(items, base, other, 0.1, 4).tolist() == [[7, 8, 9, -1]]
    # lam 0.5: 7 -> -0.5, 8 -> 0.0
    assert score_fusion(items, base, other, 0.5, 3).tolist() == [[8, 7, 9]]
    assert score_fusion(items, base, other, 0.0, 6).tolist() == [[7, 8, 9, -1, -1, -1]]
    with pytest.raises(ValueError, match="one shape"):
        score_fusion(items, base[:, :2], other, 0.1, 2)


def test_tune_lambda_prefers_zero_without_gain():
    from onefeed.search.fusion import tune_lambda

    items = np.array([[1, 2, 3]] * 2)
    base = np.array([[3.0, 2.0, 1.0]] * 2)
    helpful = np.array([[-5.0, -5.0, 0.0]] * 2)  # points at item 3
    lam, table = tune_lambda(items, base, helpful, np.array([3, 3]))
    assert lam > 0 and table[lam] == 1.0 and table[0.0] < 1.0
    lam0, _ = tune_lambda(items, base, helpful, np.array([1, 1]))
    assert lam0 == 0.0
