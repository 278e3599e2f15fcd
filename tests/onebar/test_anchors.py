import numpy as np

from onefeed.onebar.anchors import neighbours, neighbours_reference, rank_anchors, unit_rows


def test_faiss_neighbours_match_the_numpy_reference_and_exclude_self():
    unit = unit_rows(np.random.default_rng(0).standard_normal((40, 8)))
    idx, sims = neighbours(unit, 5)
    ref_idx, ref_sims = neighbours_reference(unit, 5)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)
    assert not (idx == np.arange(40)[:, None]).any()
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first


def test_fewer_items_than_k_pad_with_minus_one():
    idx, sims = neighbours(unit_rows(np.eye(3)), 4)
    assert (idx[:, 2:] == -1).all() and np.isneginf(sims[:, 2:]).all()
    assert sorted(idx[0, :2].tolist()) == [1, 2]


def test_unit_rows_keeps_zero_rows_zero():
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_rank_anchors_sums_count_times_similarity_above_threshold():
    pools = [{"a": 1}, {"a": 1, "b": 3}, {"c": 10}]
    # b: 3 * 0.9 = 2.7; a: 1 * 0.9 + 1 * 0.6 = 1.5; c below the threshold
    out = rank_anchors(pools, np.array([1, 0, 2]), np.array([0.9, 0.6, 0.4]), 0.5, 5)
    assert out == ["b", "a"]
    assert rank_anchors(pools, np.array([1, -1]), np.array([0.9, -np.inf]), 0.5, 1) == ["b"]
