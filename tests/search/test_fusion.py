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
