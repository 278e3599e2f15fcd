"""The one loop (``onefeed.train.loop.fit``) on a stub task: a linear model fitting y = 3x."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from safetensors.torch import save

from onefeed import checkpoint
from onefeed.checkpoint import MODEL
from onefeed.train import loop
from onefeed.train.task import Task, rank_shard, steps_for
from onefeed.train.config import TrainConfig

X = torch.linspace(-1, 1, 20)[:, None]
Y = 3 * X


class LineTask:
    """Regress y = 3x with batches of 4 rows; ``scores`` scripts validation (else -MSE)."""

    def __init__(self, scores: list[float] | None = None) -> None:
        self.scores, self.calls, self.snapshots = scores, 0, {}
        self.lrs: list[float] = []
        self.optimizer: torch.optim.Optimizer | None = None

    def steps_per_epoch(self, world: int) -> int:
        return steps_for(len(X), 4, world)

    def batches(self, epoch, rng, rank, world):
        rows = rank_shard(len(X), rng, rank, world)
        for i in range(0, len(rows), 4):
            yield torch.as_tensor(rows[i:i + 4])

    def loss(self, model, batch):
        if self.optimizer is not None:  # the lr the loop set for this step
            self.lrs.append(self.optimizer.param_groups[0]["lr"])
        loss = torch.nn.functional.mse_loss(model(X[batch]), Y[batch])
        return loss, {"line": loss.item()}

    def validate(self, model, rank, world):
        self.calls += 1
        self.snapshots[self.calls] = _sha(model)
        with torch.no_grad():
            mse = torch.nn.functional.mse_loss(model(X), Y).item()
        score = self.scores[self.calls - 1] if self.scores else -mse
        return {"mse": mse, "score": score}


def _sha(model: torch.nn.Module) -> str:
    return hashlib.sha256(save({k: v.detach().contiguous()
                                for k, v in model.state_dict().items()})).hexdigest()


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(1, 1)


CFG = dict(lr=0.1, warmup_steps=3, epochs=6, eval_every=1, patience=2, batch_size=4)


def test_the_stub_is_a_task():
    assert isinstance(LineTask(), Task) and not isinstance(object(), Task)


def test_lr_schedule_is_followed_step_by_step(tmp_path, monkeypatch):
    task, cfg = LineTask(), TrainConfig(**{**CFG, "patience": 100})
    real = loop.make_optimizer

    def spy(model, c):
        task.optimizer = real(model, c)
        return task.optimizer

    monkeypatch.setattr(loop, "make_optimizer", spy)
    state = loop.fit(_model(), task, cfg, tmp_path, {"run": "stub"})
    total = task.steps_per_epoch(1) * cfg.epochs
    assert state["step"] == total == 30 and state["epoch"] == 6
    assert task.lrs == [loop.lr_at(s, total, cfg) for s in range(total)]
    assert task.lrs[2] == pytest.approx(cfg.lr) and task.lrs[-1] < 0.1 * cfg.lr
    assert state["history"][-1]["valid_mse"] < state["history"][0]["valid_mse"]


def test_early_stopping_after_patience_bad_evals_and_best_holds_the_best_epoch(tmp_path):
    task = LineTask(scores=[0.1, 0.5, 0.3, 0.2, 0.9, 0.9])
    state = loop.fit(_model(), task, TrainConfig(**CFG), tmp_path, {"run": "stub"})
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]  # never saw the 0.9
    assert state["stopped"] and state["bad_evals"] == 2
    assert state["best_epoch"] == 2 and state["best_score"] == 0.5
    assert state["best"]["epoch"] == 2 and state["best"]["step"] == 10
    assert checkpoint.file_sha256(tmp_path / "best" / MODEL) == task.snapshots[2]
    assert checkpoint.file_sha256(tmp_path / "last" / MODEL) == task.snapshots[4]
    assert [h["task_loss"].keys() == {"line"} for h in state["history"]] == [True] * 4
    # a finished (stopped) run resumed does nothing more
    again = loop.fit(_model(), LineTask(scores=[1.0]), TrainConfig(**CFG), tmp_path, {})
    assert again["step"] == state["step"] and again["history"] == state["history"]


def test_evaluations_every_n_epochs_and_always_at_the_end(tmp_path):
    task = LineTask()
    state = loop.fit(_model(), task, TrainConfig(**{**CFG, "eval_every": 4, "epochs": 6}),
                     tmp_path, {})
    assert [h["epoch"] for h in state["history"]] == [4, 6]


def test_no_validation_still_leaves_a_best(tmp_path):
    state = loop.fit(_model(), LineTask(), TrainConfig(**{**CFG, "eval_every": 100,
                                                          "max_steps": 7}), tmp_path, {})
    assert state["step"] == 7 and state["history"][-1]["epoch"] == 2  # the last epoch evaluates
    assert (tmp_path / "best" / MODEL).read_bytes() == (tmp_path / "last" / MODEL).read_bytes()


def test_interrupted_run_resumes_from_last_and_ends_identical(tmp_path, commit_crash):
    cfg = TrainConfig(**{**CFG, "patience": 100})
    ref = loop.fit(_model(), LineTask(), cfg, tmp_path / "ref", {})
    commit_crash.arm(3)
    with pytest.raises(KeyboardInterrupt):
        loop.fit(_model(), LineTask(), cfg, tmp_path / "cut", {})
    commit_crash.disarm()
    assert checkpoint.resume(tmp_path / "cut", _model(),
                             loop.make_optimizer(_model(), cfg))["epoch"] == 3
    task = LineTask()
    again = loop.fit(_model(), task, cfg, tmp_path / "cut", {})
    assert task.calls == 3  # epochs 4, 5, 6 only
    assert [h["epoch"] for h in again["history"]] == [1, 2, 3, 4, 5, 6]
    drop = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa
    assert drop(again["history"]) == drop(ref["history"]) and again["best"] == ref["best"]
    for name in ("last", "best"):
        assert (tmp_path / "ref" / name / MODEL).read_bytes() == \
            (tmp_path / "cut" / name / MODEL).read_bytes(), name


def test_rank_shards_are_disjoint_equal_and_agree_on_the_permutation():
    shards = [rank_shard(11, np.random.default_rng([0, 3]), r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert len(np.unique(np.concatenate(shards))) == 9
    assert steps_for(11, 2, 3) == 2 and steps_for(11, 2, 1) == 6
