import numpy as np
import pytest

from onefeed.sid.joint import JointConfig, JointQuantiser
from onefeed.sid.variants import prefix_share, separate


def embeddings(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 24)).astype(np.float32),
            rng.standard_normal((n, 12)).astype(np.float32))


def test_joint_ids_share_prefix_and_differ_after(tmp_path):
    v_s, v_c = embeddings()
    cfg = JointConfig(shared_levels=2, specific_levels=2, codebook_size=8, dim=8, seed=1)
    q = JointQuantiser.fit(v_s, v_c, cfg)
    sem, col = q.encode(v_s, v_c)
    assert sem.shape == col.shape == (200, 4)
    assert np.array_equal(sem[:, :2], col[:, :2])
    assert not np.array_equal(sem[:, 2:], col[:, 2:])
    q.save(tmp_path / "joint")
    sem2, col2 = JointQuantiser.load(tmp_path / "joint").encode(v_s, v_c)
    assert np.array_equal(sem, sem2) and np.array_equal(col, col2)
    assert q.codebook_sizes() == ((8, 8, 8, 8), (8, 8, 8, 8))


def test_specific_codes_follow_their_own_side():
    # the semantic side has 2 clear groups, the collaborative side 2 other groups
    rng = np.random.default_rng(0)
    g_s, g_c = np.repeat([0, 1], 40), np.tile([0, 1], 40)
    v_s = np.eye(2)[g_s] * 5 + rng.standard_normal((80, 2)) * 0.01
    v_c = np.eye(2)[g_c] * 5 + rng.standard_normal((80, 2)) * 0.01
    cfg = JointConfig(shared_levels=1, specific_levels=1, codebook_size=2, dim=2, seed=0)
    sem, col = JointQuantiser.fit(v_s.astype(np.float32), v_c.astype(np.float32), cfg).encode(
        v_s.astype(np.float32), v_c.astype(np.float32))
    full_s = sem[:, 0] * 2 + sem[:, 1]
    full_c = col[:, 0] * 2 + col[:, 1]
    # each full identifier separates its own side's groups
    assert all(len(set(full_s[g_s == g]) & set(full_s[g_s != g])) == 0 for g in (0, 1))
    assert all(len(set(full_c[g_c == g]) & set(full_c[g_c != g])) == 0 for g in (0, 1))


def test_separate_and_prefix_share_layouts():
    a, b = np.array([[1, 2], [3, 4]]), np.array([[5], [6]])
    codes, sizes = separate(a, (4, 5), b, (7,))
    assert codes.tolist() == [[1, 2, 5], [3, 4, 6]] and sizes == (4, 5, 7)
    sem, col = np.array([[1, 2], [1, 3]]), np.array([[1, 0], [1, 1]])
    codes, sizes = prefix_share(sem, col, 1, (2, 4), (2, 3))
    assert codes.tolist() == [[1, 2, 0], [1, 3, 1]] and sizes == (2, 4, 3)
    with pytest.raises(ValueError):
        prefix_share(sem, np.array([[0, 0], [1, 1]]), 1, (2, 4), (2, 3))
