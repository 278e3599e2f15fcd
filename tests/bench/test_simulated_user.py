"""The simulated user's position-based click model against hand-computed probabilities."""

import dataclasses

import numpy as np
import pytest

from onefeed.bench.simulated_user import SimulatedUser, UserConfig, examination
from onefeed.data.synthetic import SyntheticConfig, make_world


@pytest.fixture(scope="module")
def world():
    w = make_world(SyntheticConfig(n_users=2, n_items=48, n_phases=2, seed=3))
    # user 0's live interests: leaf 0 (weight 0.5), leaf 1 twice (0.2 + 0.3 = 0.5)
    interests = w.user_interests.copy()
    interests[0, 1] = [0, 1, 1]
    interests[0, 0] = [5, 6, 7]  # the logged phase: other leaves
    weights = w.user_weights.copy()
    weights[0] = [0.5, 0.2, 0.3]
    return dataclasses.replace(w, user_interests=interests, user_weights=weights)


def item_in(world, leaf: int, nth: int = 0) -> int:
    return int(np.flatnonzero(world.item_leaf == leaf)[nth])


def test_examination_is_one_over_log2():
    np.testing.assert_allclose(examination(4), [1.0, 1 / np.log2(3), 0.5, 1 / np.log2(5)])
    assert (np.diff(examination(50)) < 0).all()


def test_click_probabilities_by_hand(world):
    sim = SimulatedUser(world)  # phase 1 (the last) by default
    items = np.array([[item_in(world, 0), item_in(world, 2), item_in(world, 1), -1]])
    # attract: leaf 0: 0.3 + 0.6 * 0.5; leaf 2 off-interest: 0.02; leaf 1: 0.3 + 0.6 * 0.5
    expected = np.array([[1.0 * 0.6, (1 / np.log2(3)) * 0.02, 0.5 * 0.6, 0.0]])
    np.testing.assert_allclose(sim.click_probability(np.array([0]), items), expected)
    np.testing.assert_allclose(sim.relevance(np.array([0]), items), [[0.5, 0.0, 0.5, 0.0]])
    # the earlier phase's interests are not the live ones
    assert SimulatedUser(world, phase=0).relevance(np.array([0]), items).sum() == 0


def test_empirical_click_rates_match(world):
    sim = SimulatedUser(world)
    n = 40_000
    row = [item_in(world, 0), item_in(world, 2), item_in(world, 1), item_in(world, 0, 1)]
    items = np.tile(row, (n, 1))
    users = np.zeros(n, dtype=np.int64)
    resp = sim.respond(users, items, np.random.default_rng(0))
    p = sim.click_probability(users[:1], items[:1])[0]
    rate = resp.clicked.mean(0)
    assert np.all(np.abs(rate - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9), (rate, p)
    # skips: examined but not clicked, P = exam * (1 - attract)
    skip_p = examination(4) * (1 - sim.attractiveness(users[:1], items[:1])[0])
    assert np.all(np.abs(resp.skipped.mean(0) - skip_p) <= 4 * np.sqrt(skip_p / n))
    assert not (resp.clicked & ~resp.examined).any()
    assert ((resp.dwell_ms > 0) == resp.clicked).all()
    # dwell median: 8000 ms * (1 + rel)
    assert np.median(resp.dwell_ms[:, 0][resp.clicked[:, 0]]) == pytest.approx(12_000, rel=0.03)


def test_position_bias_is_monotone(world):
    sim = SimulatedUser(world)
    n, k = 30_000, 8
    items = np.full((n, k), item_in(world, 0))  # the same relevant item at every position
    resp = sim.respond(np.zeros(n, dtype=np.int64), items, np.random.default_rng(1))
    rate = resp.clicked.mean(0)
    assert (np.diff(rate) < 0).all(), rate


def test_seeded_and_pure(world):
    sim = SimulatedUser(world, UserConfig(click_on=0.5))
    items = np.array([[item_in(world, 0), -1], [item_in(world, 3), item_in(world, 1)]])
    users = np.array([0, 1])
    a = sim.respond(users, items, np.random.default_rng(7))
    b = sim.respond(users, items, np.random.default_rng(7))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not a.examined[0, 1] and not a.clicked[0, 1]  # an empty slot is never shown


def test_bad_phase(world):
    with pytest.raises(ValueError, match="phase 5: the world has phases 0..1"):
        SimulatedUser(world, phase=5)
