import numpy as np

from onefeed.embeddings.collaborative import (CollabConfig, collaborative_embeddings,
                                              cooccurrence, ppmi)


def test_cooccurrence_hand_case():
    seqs = [np.array([0, 1, 2]), np.array([2, 1])]
    m = cooccurrence(seqs, 4, window=1).toarray()
    assert m[0, 1] == m[1, 0] == 1 and m[1, 2] == m[2, 1] == 2 and m[0, 2] == 0
    m2 = cooccurrence(seqs, 4, window=2).toarray()
    assert m2[0, 2] == 1 and m2[3].sum() == 0  # pairs never cross users; item 3 unseen


def test_embeddings_group_co_consumed_items_and_are_deterministic():
    rng = np.random.default_rng(0)
    # two communities: items 0-9 and 10-19 consumed together
    seqs = [rng.choice(np.arange(10) + 10 * (u % 2), size=6, replace=False) for u in range(200)]
    cfg = CollabConfig(dim=4, window=5)
    emb = collaborative_embeddings(seqs, 21, cfg, seed=0)
    assert emb.shape == (21, 4) and not emb[20].any()  # item 20: no train events -> zero
    norm = emb[:20] / np.linalg.norm(emb[:20], axis=1, keepdims=True)
    sim = norm @ norm.T
    within = (sim[:10, :10].sum() - 10) / 90
    across = sim[:10, 10:].mean()
    assert within > across + 0.5
    assert np.array_equal(emb, collaborative_embeddings(seqs, 21, cfg, seed=0))


def test_ppmi_is_non_negative():
    m = cooccurrence([np.array([0, 1, 2, 0, 1])], 3, 2)
    assert (ppmi(m).data > 0).all()
