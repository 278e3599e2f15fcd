import numpy as np
import polars as pl

from onefeed.embeddings.biencoder import (BiEncoderConfig, fine_tune, item_pairs, sample,
                                          search_pairs)
from onefeed.embeddings.content import content_embeddings


def test_pairs_use_train_queries_and_train_sequences_only():
    texts = ["a", "b", "", "d"]
    queries = pl.DataFrame({"item": [0, 1, 2, 3], "query": ["qa", "qb", "qc", "qd"],
                            "source": ["t"] * 4, "split": ["train", "test", "train", "train"]})
    assert search_pairs(queries, texts) == [("qa", "a"), ("qd", "d")]
    assert item_pairs([np.array([0, 1, 0, 3]), np.array([1, 0])], texts) == [("a", "b"),
                                                                            ("a", "d")]
    assert sample([("x", "y")] * 5, 3, 0) == [("x", "y")] * 3


def test_multitask_fine_tune_runs_and_saves(tmp_path):
    cfg = BiEncoderConfig(batch_size=2, max_seq_length=16)
    search = [("red lipstick", "Title: Lip colour red"), ("hose", "Title: Garden hose")]
    items = [("Title: Lip colour red", "Title: Lip gloss"), ("Title: Garden hose", "Title: Rake")]
    _, log = fine_tune([search, items], cfg, tmp_path / "model", progress=False)
    assert log["steps"] == 1 and log["pairs"] == [2, 2]
    emb, _ = content_embeddings(["Title: Rake"], None, tmp_path / "model", progress=False)
    assert np.isclose(np.linalg.norm(emb[0]), 1, atol=1e-5)
