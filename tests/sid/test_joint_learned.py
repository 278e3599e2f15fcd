import numpy as np

from onefeed.sid.joint import JointConfig, fit_joint, load_joint
from onefeed.sid.joint_learned import LearnedJoint, LearnedJointConfig


def clustered(n=240, seed=0):
    """4 semantic clusters x 3 collaborative clusters, independent of each other."""
    rng = np.random.default_rng(seed)
    g_s, g_c = np.arange(n) % 4, (np.arange(n) // 4) % 3
    v_s = np.eye(16)[g_s] * 3 + rng.standard_normal((n, 16)) * 0.05
    v_c = np.eye(8)[g_c] * 3 + rng.standard_normal((n, 8)) * 0.05
    return v_s.astype(np.float32), v_c.astype(np.float32), g_s, g_c


def cfg(**kw):
    return JointConfig(method="learned", shared_levels=1, specific_levels=1, codebook_size=8,
                       dim=8, seed=3, learned=LearnedJointConfig(
                           hidden=[32], epochs=kw.pop("epochs", 30), batch_size=64,
                           reset_every=kw.pop("reset_every", 10)), **kw)


def test_shared_prefix_is_shared_and_specific_levels_differ():
    v_s, v_c, _, _ = clustered()
    q, log = fit_joint(v_s, v_c, cfg())
    assert isinstance(q, LearnedJoint) and log["method"] == "learned"
    sem, col = q.encode(v_s, v_c)
    assert sem.shape == col.shape == (240, 2)
    assert np.array_equal(sem[:, 0], col[:, 0])
    assert not np.array_equal(sem[:, 1], col[:, 1])
    assert q.codebook_sizes() == ((8, 8), (8, 8))


def test_codes_deterministic_for_a_seed_and_after_save_load(tmp_path):
    v_s, v_c, _, _ = clustered()
    a, _ = fit_joint(v_s, v_c, cfg(epochs=5))
    b, _ = fit_joint(v_s, v_c, cfg(epochs=5))
    for x, y in zip(a.encode(v_s, v_c), b.encode(v_s, v_c)):
        assert np.array_equal(x, y)
    a.save(tmp_path / "j")
    loaded = load_joint(tmp_path / "j")
    assert isinstance(loaded, LearnedJoint)
    for x, y in zip(a.encode(v_s, v_c), loaded.encode(v_s, v_c)):
        assert np.array_equal(x, y)


def test_loss_decreases():
    v_s, v_c, _, _ = clustered()
    _, log = fit_joint(v_s, v_c, cfg(epochs=40, reset_every=0))
    assert log["loss_last_epoch"] < 0.8 * log["loss_first_epoch"]
    assert log["recon_by_epoch"][-1] < log["recon_by_epoch"][0]
    assert len(log["rq_by_epoch"]) == 40


def test_full_identifiers_separate_their_own_side():
    v_s, v_c, g_s, g_c = clustered()
    sem, col = fit_joint(v_s, v_c, cfg(epochs=40))[0].encode(v_s, v_c)
    full_s, full_c = sem[:, 0] * 8 + sem[:, 1], col[:, 0] * 8 + col[:, 1]
    # items from different semantic clusters never share a full semantic identifier
    for a in range(4):
        for b in range(a + 1, 4):
            assert not set(full_s[g_s == a]) & set(full_s[g_s == b])
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(full_c[g_c == a]) & set(full_c[g_c == b])
