import numpy as np
import pytest

from onefeed.sid.collisions import (collision_rate, disambiguate, max_group_size, perplexity,
                                    utilisation)


def test_collision_rate_hand_case():
    # 5 items, 3 distinct identifiers -> (1 - 3/5) * 100 = 40%  (GenSAR §4.4.2)
    codes = np.array([[0, 1], [0, 1], [0, 2], [3, 1], [3, 1]])
    assert collision_rate(codes) == pytest.approx(40.0)
    assert collision_rate(np.array([[0], [1]])) == 0.0
    assert max_group_size(codes) == 2


def test_disambiguate_makes_rows_unique_in_item_order():
    codes = np.array([[0, 1], [0, 1], [0, 2], [3, 1], [0, 1]])
    out, size = disambiguate(codes)
    assert out.shape == (5, 3) and size == 3
    assert out[:, 2].tolist() == [0, 1, 0, 0, 2]
    assert np.array_equal(out[:, :2], codes)
    assert np.unique(out, axis=0).shape[0] == 5


def test_disambiguate_random_is_unique():
    codes = np.random.default_rng(0).integers(0, 3, size=(500, 2))
    out, size = disambiguate(codes)
    assert np.unique(out, axis=0).shape[0] == 500
    assert size == max_group_size(codes) == out[:, -1].max() + 1


def test_utilisation_and_perplexity():
    codes = np.array([[0, 0], [1, 0], [2, 0], [3, 0]])
    assert utilisation(codes, (8, 4)) == [0.5, 0.25]
    ppl = perplexity(codes, (8, 4))
    assert ppl[0] == pytest.approx(4.0) and ppl[1] == pytest.approx(1.0)
