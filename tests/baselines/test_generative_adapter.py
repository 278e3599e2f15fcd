"""The generative model runs through the bench as an ``external`` row (tiny config, seconds)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onefeed.train.rec")
from onefeed.bench.runner import SuiteConfig, run_suite  # noqa: E402
from onefeed.sid.table import SidTable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_tiny_dataset  # noqa: E402

SEQS = [[(u * 3 + i) % 12 for i in range(5 + u % 4)] for u in range(24)]
CODES = np.array([[i // 4, (i // 2) % 2, i % 2] for i in range(12)])
SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.max_len=8",
         "train.batch_size=8", "train.warmup_steps=2", "train.eval_beam=20",
         "train.epochs=1", "train.eval_every=1"]


def test_tiger_row_through_bench(tmp_path):
    make_tiny_dataset(SEQS, 12).save(tmp_path / "data")
    SidTable(CODES, (3, 2, 2)).save(tmp_path / "sid")
    cfg = SuiteConfig(suite="t", seeds=[0], headline=["tiger"], models={"tiger": {
        "kind": "external", "entry": "onefeed.baselines.generative:GenerativeAdapter",
        "max_k": 10,
        "params": {"sid": str(tmp_path / "sid"), "out": str(tmp_path / "gen"),
                   "overrides": SMALL, "beam": 10}}})
    cfg.protocol.ks = [5, 10]
    out = run_suite(cfg, tmp_path / "bench", data_dir=str(tmp_path / "data"))
    doc = json.loads((out / "results.json").read_text())
    tiger = doc["models"]["tiger"]
    assert set(tiger["metrics"]["recall@10"]) == {"mean", "std", "per_seed"}
    assert 0.0 <= tiger["metrics"]["recall@10"]["mean"] <= 1.0
    assert len(tiger["curves"]["rec"]["recall_at_k"]) == 10
    assert (tmp_path / "gen" / "seed0" / "best" / "model.safetensors").exists()


def test_checkpoint_template_loads_one_trained_run_per_seed(tmp_path):
    """params.checkpoint with {seed}: no training, seed s reads run s (identical metrics to the
    run that trained it)."""
    make_tiny_dataset(SEQS, 12).save(tmp_path / "data")
    SidTable(CODES, (3, 2, 2)).save(tmp_path / "sid")
    row = {"kind": "external", "entry": "onefeed.baselines.generative:GenerativeAdapter",
           "max_k": 10, "params": {"sid": str(tmp_path / "sid"), "out": str(tmp_path / "gen"),
                                   "overrides": SMALL, "beam": 10}}
    cfg = SuiteConfig(suite="t", seeds=[0, 1], headline=["tiger"], models={"tiger": row})
    cfg.protocol.ks = [5, 10]
    trained = json.loads((run_suite(cfg, tmp_path / "a", data_dir=str(tmp_path / "data"))
                          / "results.json").read_text())["models"]["tiger"]
    row = dict(row, params=dict(row["params"], checkpoint=str(tmp_path / "gen" / "seed{seed}" /
                                                              "best"), out=str(tmp_path / "x")))
    cfg = SuiteConfig(suite="t", seeds=[0, 1], headline=["tiger"], models={"tiger": row})
    cfg.protocol.ks = [5, 10]
    loaded = json.loads((run_suite(cfg, tmp_path / "b", data_dir=str(tmp_path / "data"))
                         / "results.json").read_text())["models"]["tiger"]
    assert not (tmp_path / "x").exists()  # nothing was trained
    assert loaded["metrics"]["ndcg@10"]["per_seed"] == trained["metrics"]["ndcg@10"]["per_seed"]


def test_seen_rule_is_picked_on_validation_and_logged(tmp_path):
    make_tiny_dataset(SEQS, 12).save(tmp_path / "data")
    SidTable(CODES, (3, 2, 2)).save(tmp_path / "sid")
    params = {"sid": str(tmp_path / "sid"), "out": str(tmp_path / "gen"), "overrides": SMALL,
              "beam": 10, "seen": "auto"}
    row = {"kind": "external", "entry": "onefeed.baselines.generative:GenerativeAdapter",
           "max_k": 10, "params": params}
    cfg = SuiteConfig(suite="t", seeds=[0], headline=["tiger"], models={"tiger": row})
    cfg.protocol.ks = [5, 10]
    doc = json.loads((run_suite(cfg, tmp_path / "b", data_dir=str(tmp_path / "data"))
                      / "results.json").read_text())
    choices = doc["models"]["tiger"]["training"]["0"]["choices"]
    assert choices["seen"] in ("keep", "exclude")
    ndcg = choices["seen_valid_ndcg@10"]
    assert choices["seen"] == ("exclude" if ndcg["exclude"] > ndcg["keep"] else "keep")

    from onefeed.baselines.generative import GenerativeAdapter
    from onefeed.data.schemas import Dataset

    bad = GenerativeAdapter()
    with pytest.raises(ValueError, match="params.seen 'sometimes'"):
        bad.fit(Dataset.load(tmp_path / "data"),
                dict(params, seen="sometimes", checkpoint=str(tmp_path / "gen/seed0/best")), 0)
