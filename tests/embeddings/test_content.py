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


def test_a_replaced_cache_file_is_refused_naming_it(tmp_path, caplog):
    import pytest

    from onefeed.artifacts import ArtifactError

    texts = ["Title: red lipstick", "Title: garden hose"]
    emb, _ = content_embeddings(texts, tmp_path, progress=False)
    (cache,) = tmp_path.glob("*.npy")
    assert (tmp_path / f"{cache.name}.json").exists()
    np.save(cache, np.ones_like(emb))  # same shape and size, other vectors
    with pytest.raises(ArtifactError, match=rf"embedding cache .*{cache.name} does not match"):
        content_embeddings(texts, tmp_path, progress=False)
    (tmp_path / f"{cache.name}.json").unlink()  # a cache from before hashes: used, with a warning
    with caplog.at_level("WARNING", logger="onefeed"):
        again, info = content_embeddings(texts, tmp_path, progress=False)
    assert info["cache_hit"] and "has no file hashes" in caplog.text
    np.save(cache, np.ones((3, 384), dtype=np.float32))
    with pytest.raises(ArtifactError, match=r"shape \(3, 384\), expected \(2, dim\)"):
        content_embeddings(texts, tmp_path, progress=False)
