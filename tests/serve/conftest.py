"""A tiny trained joint run and a tiny rec-only run on the toy joint world, with a real content
RQ-KMeans SID build (so POST /items can quantise new items), built once per session."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world  # noqa: E402

SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.max_len=8",
         "train.batch_size=8", "train.eval_every=1", "train.eval_beam=5", "train.threads=1"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    from onefeed.train import joint as tj
    from onefeed.train import rec
    from onefeed.config import load
    from onefeed.data.schemas import Dataset
    from onefeed.sid.build import SidConfig, build

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve")
    make_world(n_users=8).save(root / "data")
    ds = Dataset.load(root / "data")
    cfg = load(SidConfig, None, ["levels=2", "codebook_size=3", f"cache_dir={root / 'cache'}"])
    build(ds, cfg, root / "sid", progress=False, data_dir=root / "data")
    tj.run(root / "data", root / "sid", None, root / "joint",
           SMALL + ["train.max_steps=3", "tasks.desc_batch=8"])
    rec.run(root / "data", root / "sid", None, root / "rec",
            SMALL + ["train.max_steps=3", "train.epochs=1", "train.eval_beam=20"])
    return {"root": root, "joint": root / "joint", "rec": root / "rec", "data": root / "data",
            "sid": root / "sid"}


@pytest.fixture(scope="session")
def joint_pred(runs):
    from onefeed.predict import Predictor

    return Predictor.from_run(runs["joint"])


UNISEARCH_SMALL = ["model.d_model=32", "model.n_heads=2", "model.d_ff=64",
                   "model.query_layers=1", "model.item_layers=1", "model.decoder_layers=1",
                   "model.n_levels=2", "model.codebook_size=8", "model.max_query_words=4",
                   "model.max_item_words=6", "model.dropout=0.0", "model.ema_decay=0.8",
                   "train.epochs=30", "train.warmup_steps=1", "train.lr=0.003",
                   "task.batch_size=8", "task.eval_beam=4", "task.hard_negatives=1",
                   "task.neighbours=3"]


@pytest.fixture(scope="session")
def unisearch_run(tmp_path_factory):
    """A tiny UniSearch run (``onefeed unisearch train``) on the same toy world."""
    from typer.testing import CliRunner

    from onefeed.cli import app

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve-unisearch")
    make_world(n_users=8).save(root / "data")
    args = ["unisearch", "train", "--data", str(root / "data"), "--out", str(root / "run")]
    for s in UNISEARCH_SMALL:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return root / "run"
