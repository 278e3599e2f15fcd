"""The joint model runs through the bench as one row scored on recommendation, personalised
search and query generation; restricted rows skip the tasks they were not trained for."""

import json
import sys
from pathlib import Path

from onefeed.bench.runner import SuiteConfig, run_suite
from onefeed.search.fusion import LAMBDA_GRID

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world, sid_dir  # noqa: E402

SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.max_len=8",
         "train.batch_size=8", "train.warmup_steps=2", "train.eval_beam=10",
         "train.epochs=1", "train.eval_every=1", "tasks.desc_batch=8"]
ENTRY = "onefeed.baselines.joint:JointAdapter"


def test_joint_rows_through_bench(tmp_path):
    make_world(n_users=16).save(tmp_path / "data")
    sid = sid_dir(tmp_path)
    rows = {
        "onefeed": {"kind": "external", "entry": ENTRY, "max_k": 10,
                    "params": {"sid": str(sid), "out": str(tmp_path / "j"), "overrides": SMALL,
                               "beam": 10, "query_beam": 5}},
        "search-only": {"kind": "external", "entry": ENTRY, "max_k": 10,
                        "params": {"sid": str(sid), "out": str(tmp_path / "s"),
                                   "overrides": SMALL + ["tasks.nrip=0"], "beam": 10,
                                   "tasks": "search"}},
        "bm25": {"kind": "bm25"}}
    cfg = SuiteConfig(suite="t", seeds=[0], headline=["onefeed"], models=rows)
    cfg.protocol.ks = [5, 10]
    cfg.protocol.query_ks = [1, 5]
    out = run_suite(cfg, tmp_path / "bench", data_dir=str(tmp_path / "data"))
    doc = json.loads((out / "results.json").read_text())
    one = doc["models"]["onefeed"]
    assert {"metrics", "metrics_search", "metrics_query"} <= set(one)
    assert 0.0 <= one["metrics_search"]["recall@10"]["mean"] <= 1.0
    assert "hr@5" in one["metrics_query"] or "exact_hr@5" in one["metrics_query"] \
        or any(k.endswith("@5") for k in one["metrics_query"])
    only = doc["models"]["search-only"]
    assert "metrics_search" in only and "metrics" not in only and "metrics_query" not in only
    assert (out / "report.md").read_text().count("search-only") >= 1


def test_fused_row_tunes_on_valid_and_reports_weights(tmp_path):
    make_world(n_users=16).save(tmp_path / "data")
    sid = sid_dir(tmp_path)
    fused = "onefeed.baselines.joint:FusedJointAdapter"
    rows = {"onefeed-bm25": {
        "kind": "external", "entry": fused, "max_k": 10,
        "params": {"sid": str(sid), "out": str(tmp_path / "j"), "overrides": SMALL,
                   "beam": 10, "tasks": "rec,search", "tune_users": 8}},
        "onefeed-hybrid": {
        "kind": "external", "entry": fused, "max_k": 10,
        "params": {"sid": str(sid), "out": str(tmp_path / "j"), "overrides": SMALL,
                   "beam": 10, "tasks": "search", "tune_users": 8, "search_fusion": "score",
                   "feed_fusion": False}}}
    cfg = SuiteConfig(suite="t", seeds=[0], headline=["onefeed-bm25"], models=rows)
    cfg.protocol.ks = [5, 10]
    out = run_suite(cfg, tmp_path / "bench", data_dir=str(tmp_path / "data"))
    doc = json.loads((out / "results.json").read_text())
    row = doc["models"]["onefeed-bm25"]
    fusion = row["training"]["0"]["fusion"]
    assert fusion["tune_split"] == "valid" and fusion["tune_cases"] == 8
    assert fusion["w_search"] in fusion["search"] or str(fusion["w_search"]) in fusion["search"]
    assert fusion["w_feed"] in (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0) and "feed" in fusion
    assert 0.0 <= row["metrics_search"]["recall@10"]["mean"] <= 1.0
    hybrid = doc["models"]["onefeed-hybrid"]
    fusion = hybrid["training"]["0"]["fusion"]
    assert "metrics" not in hybrid and fusion["w_feed"] == 0.0
    assert fusion["w_search"] in LAMBDA_GRID and len(fusion["search"]) == len(LAMBDA_GRID)


def test_fused_row_rejects_unknown_fusion(tmp_path):
    import pytest

    from onefeed.baselines.joint import FusedJointAdapter

    make_world(n_users=8).save(tmp_path / "data")
    from onefeed.data.schemas import Dataset

    params = {"sid": str(sid_dir(tmp_path)), "out": str(tmp_path / "j"),
              "overrides": SMALL + ["train.max_steps=1"], "search_fusion": "borda"}
    with pytest.raises(ValueError, match="search_fusion"):
        FusedJointAdapter().fit(Dataset.load(tmp_path / "data"), params, 0)
