import numpy as np

from onefeed.embeddings.content import content_embeddings, model_path


def test_packaged_minilm_offline_gives_unit_vectors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (model_path() / "model.safetensors").exists()  # checksum verified inside
    texts = ["Title: red lipstick", "Title: crimson lip colour", "Title: garden hose", ""]
    emb, info = content_embeddings(texts, tmp_path, progress=False)
    assert emb.shape == (4, 384) and not info["cache_hit"]
    assert np.allclose(np.linalg.norm(emb[:3], axis=1), 1, atol=1e-5) and not emb[3].any()
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    again, info = content_embeddings(texts, tmp_path, progress=False)
    assert info["cache_hit"] and np.array_equal(again, emb)
