"""The recommender's and the joint model's training both run the one loop, ``loop.fit``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from onefeed.train import joint as tj
from onefeed.train import rec
from onefeed.sid.table import SidTable
from onefeed.train import loop
from onefeed.train.task import Task

TESTS = Path(__file__).parents[1]
sys.path.insert(0, str(TESTS / "tasks"))
from joint_toy import make_world, sid_dir  # noqa: E402


def _conftest():
    spec = importlib.util.spec_from_file_location("_onefeed_root_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHARED = ["train.epochs=6", "train.eval_every=1", "train.patience=2", "train.batch_size=8",
          "train.warmup_steps=2", "train.eval_beam=4"]
SCORES = [0.2, 0.4, 0.3, 0.1, 0.9, 0.9]  # best at epoch 2, then 2 bad evaluations: stop


@pytest.fixture
def spied(monkeypatch):
    """Scripted validation scores for both tasks and a record of the loop's lr calls."""
    seen = {"lr": [], "tasks": []}
    real_lr, real_fit = loop.lr_at, loop.fit

    def lr_at(step, total, cfg):
        seen["lr"].append((step, total))
        return real_lr(step, total, cfg)

    def fit(model, task, *args, **kwargs):
        seen["tasks"].append(task)
        return real_fit(model, task, *args, **kwargs)

    def scripted(task, model, rank, world):
        task.n_valid = getattr(task, "n_valid", 0) + 1
        return {"score": SCORES[task.n_valid - 1]}

    monkeypatch.setattr(loop, "lr_at", lr_at)
    monkeypatch.setattr(rec, "fit", fit)
    monkeypatch.setattr(tj, "fit", fit)
    monkeypatch.setattr(rec.RecTask, "validate", scripted)
    monkeypatch.setattr(tj.JointTask, "validate", scripted)
    return seen


def _check_one_loop(seen, state, best_key):
    (task,) = seen["tasks"]
    assert isinstance(task, Task)
    total = task.steps_per_epoch(1) * 6
    assert seen["lr"] == [(s, total) for s in range(4 * task.steps_per_epoch(1))]
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]
    assert state["step"] == 4 * task.steps_per_epoch(1) and state["stopped"]
    assert state["best_epoch"] == 2 and state[best_key] == 0.4 and state["best"]["epoch"] == 2
    assert [set(h["task_loss"]) for h in state["history"]] == [{"NRIP"}] * 4
    assert all(np.isfinite(h["loss"]) for h in state["history"])


def test_rec_and_nrip_only_joint_runs_share_the_loop(tmp_path, spied):
    t = _conftest()
    seqs = [[(u * 3 + i) % 12 for i in range(5 + u % 4)] for u in range(24)]
    ds = t.make_tiny_dataset(seqs, 12)
    sid = SidTable(np.array([[i // 4, (i // 2) % 2, i % 2] for i in range(12)]), (3, 2, 2))
    small = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.max_len=8"]
    solo = rec.train(ds, sid, rec.load_run_config(None, small + SHARED), tmp_path / "rec")
    _check_one_loop(spied, solo, "best_ndcg10")

    spied["lr"].clear(), spied["tasks"].clear()
    nrip_only = ["tasks.nsip=0", "tasks.nsqp=0", "tasks.desc2id=0", "tasks.id2desc=0"]
    joint = tj.train_joint(make_world(n_users=8), sid_dir(tmp_path),
                           tj.load_run_config(None, small + SHARED + nrip_only),
                           tmp_path / "joint")
    _check_one_loop(spied, joint, "best_score")
    assert set(solo) - {"best_ndcg10"} == set(joint) - {"best_score"}
    assert [set(h) for h in solo["history"]] == [set(h) for h in joint["history"]]
