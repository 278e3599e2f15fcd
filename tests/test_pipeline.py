"""End-to-end smoke run of the main job on a small synthetic world (CPU, well under a minute)."""

import json

from onefeed.pipeline import PipelineConfig, run_pipeline
from onefeed.sid.build import SidConfig


def test_main_job_end_to_end(tmp_path):
    cfg = PipelineConfig(
        prepare_overrides=["options.n_users=150", "options.n_items=120", "name=smoke"],
        sid=SidConfig(levels=2, codebook_size=8, seed=0),
        models=["pop", "sasrec", "tiger", "bm25"],
        quick=True)
    summary = run_pipeline(cfg, tmp_path, log=lambda msg: None)
    assert set(summary["results"]) == {"pop", "sasrec", "tiger"}
    assert set(summary["search"]) == {"bm25"}
    assert all(v == "pass" for v in summary["leakage"].values())
    for row in summary["results"].values():
        assert 0.0 <= row["recall@10"] <= 1.0 and row["ndcg@10"] <= row["recall@10"] + 1e-9
    # popularity cannot be beaten by chance alone on this world: the learned models should see
    # the structure the generator planted (users walk topic clusters)
    assert summary["results"]["sasrec"]["recall@10"] > summary["results"]["pop"]["recall@10"]
    doc = json.loads((tmp_path / "report" / "results.json").read_text())
    assert doc["suite"] == "synthetic" and doc["models"]["tiger"]["metrics"]["recall@10"]["per_seed"]
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "sid" / "content-rq_kmeans" / "sid_table.parquet").exists()
