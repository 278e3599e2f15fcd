import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from onefeed.checkpoint import NonFiniteError
from onefeed.train import loop, rec
from onefeed.train.config import TrainConfig
from onefeed.sid.table import SidTable



def _load_root_conftest():
    """tests/conftest.py by path (a bare ``import conftest`` could find another conftest)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_onefeed_tests_conftest",
                                                  Path(__file__).parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_tiny_dataset = _load_root_conftest().make_tiny_dataset

SEQS = [[(u * 3 + i) % 12 for i in range(5 + u % 4)] for u in range(24)]
CODES = np.array([[i // 4, (i // 2) % 2, i % 2] for i in range(12)])
SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.max_len=8",
         "train.batch_size=8", "train.warmup_steps=2", "train.eval_beam=20"]




@pytest.fixture
def inputs(tmp_path):
    ds = make_tiny_dataset(SEQS, 12)
    sid = SidTable(CODES, (3, 2, 2))
    ds.save(tmp_path / "data")
    sid.save(tmp_path / "sid")
    return tmp_path


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [loop.lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] >= 0.1


def test_train_checkpoint_resume_and_reload(inputs):
    out = inputs / "run"
    state = rec.run(inputs / "data", inputs / "sid", None, out,
                         SMALL + ["train.epochs=2", "train.eval_every=1"])
    assert state["epoch"] == 2 and len(state["history"]) == 2
    for name in ("model.safetensors", "config.json", "optimizer.safetensors", "state.json"):
        assert (out / "last" / name).exists()
    model, run_cfg, vocab = rec.load_model(out / "best")
    assert run_cfg.model.d_model == 16 and vocab.codebook_sizes == (3, 2, 2)
    # resuming continues from epoch 2 with the saved optimizer state
    state = rec.run(inputs / "data", inputs / "sid", None, out,
                         SMALL + ["train.epochs=3", "train.eval_every=1"])
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]


def test_same_seed_same_weights(inputs):
    args = SMALL + ["train.max_steps=4", "train.eval_every=100"]
    rec.run(inputs / "data", inputs / "sid", None, inputs / "a", args, resume=False)
    rec.run(inputs / "data", inputs / "sid", None, inputs / "b", args, resume=False)
    a = load_file(inputs / "a" / "last" / "model.safetensors")
    b = load_file(inputs / "b" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_processes_agree(inputs, free_port):
    out = inputs / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(rec.__file__).parents[2]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port), "-m", "onefeed.train.rec", "--data", str(inputs / "data"),
           "--sid", str(inputs / "sid"), "--out", str(out), "--no-resume",
           *[a for s in SMALL + ["train.max_steps=3", "train.eval_every=100"]
             for a in ("--set", s)]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["step"] == 3
    # resumed under DDP: rank 0 checks (and could repair) the checkpoints, then all ranks load
    cmd = [a for a in cmd if a != "--no-resume"]
    cmd[cmd.index("train.max_steps=3")] = "train.max_steps=5"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert json.loads((out / "last" / "state.json").read_text())["step"] == 5


def test_cli_train_evaluate_recommend(inputs, monkeypatch):
    from typer.testing import CliRunner

    from onefeed.cli import app

    monkeypatch.setenv("ONEFEED_RESULTS", str(inputs / "results"))
    runner = CliRunner()
    out = inputs / "cli_run"
    args = ["train", "--data", str(inputs / "data"), "--sid", str(inputs / "sid"),
            "--out", str(out)]
    for s in SMALL + ["train.epochs=2", "train.eval_every=1"]:
        args += ["--set", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", "--run", str(out), "--record", "tiny_gen"])
    assert res.exit_code == 0, res.output
    assert "protocol: split=valid history<=8 seen-items=not filtered" in res.output
    assert "protocol: split=test" in res.output
    import polars as pl
    per_user = pl.read_parquet(out / "eval" / "per_user_test.parquet")
    assert per_user.height == len(SEQS) and {"user", "rank", "ndcg@10"} <= set(per_user.columns)
    recorded = json.loads((inputs / "results" / "tiny_gen.json").read_text())
    assert recorded["metrics"]["test"]["recall@10"] == pytest.approx(per_user["recall@10"].mean())
    # 12 items, K=10, history 8: a model that ranks by anything gets recall@20 == 1
    assert recorded["metrics"]["test"]["recall@20"] == 1.0
    res = runner.invoke(app, ["recommend", "--run", str(out), "--user", "u3", "-k", "5"])
    assert res.exit_code == 0, res.output
    assert res.output.count("shoe") >= 5
    res = runner.invoke(app, ["recommend", "--run", str(out), "--user", "u3", "-k", "5",
                              "--exclude-seen", "--json"])
    assert res.exit_code == 0, res.output
    ranked = [row["title"] for row in json.loads(res.output)["items"]]
    assert sorted(int(t.split()[1]) for t in ranked) == [5, 6, 7, 8]  # all u3 has not seen

    # a run whose manifest names no data / SID dir (bench adapters train from memory)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["data"], manifest["sid"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    wide = CliRunner(env={"COLUMNS": "300"})
    res = wide.invoke(app, ["evaluate", "--run", str(out)])
    assert res.exit_code != 0 and "names no data dir" in res.output and "--data" in res.output
    res = wide.invoke(app, ["evaluate", "--run", str(out), "--data", str(inputs / "data"),
                            "--sid", str(inputs / "sid")])
    assert res.exit_code == 0, res.output
    again = pl.read_parquet(out / "eval" / "per_user_test.parquet")
    assert again["rank"].to_list() == per_user["rank"].to_list()
    res = wide.invoke(app, ["evaluate", "--run", str(out), "--data", str(inputs / "nope"),
                            "--sid", str(inputs / "sid")])
    assert res.exit_code != 0 and "does not exist" in res.output
    res = wide.invoke(app, ["evaluate", "--run", str(inputs / "no_run")])
    assert res.exit_code != 0 and "no trained run here" in res.output
    res = wide.invoke(app, ["evaluate", "--run", str(out), "--split", "train"])
    assert res.exit_code != 0 and "expected valid or test" in res.output


def test_drop_seen_and_evaluation_ranks(inputs):
    from onefeed.data.schemas import Dataset
    from onefeed.data.views import rec_cases
    from onefeed.decoding.trie import Trie
    from onefeed.evaluation.generative import RunProtocol, evaluate_cases, recommend
    from onefeed.evaluation.metrics import drop_seen
    from onefeed.tasks.rec import sid_tensor

    rec.run(inputs / "data", inputs / "sid", None, inputs / "r",
                 SMALL + ["train.max_steps=2", "train.eval_every=100"])
    model, run_cfg, vocab = rec.load_model(inputs / "r" / "best")
    ds, sid = Dataset.load(inputs / "data"), SidTable.load(inputs / "sid")
    cases = rec_cases(ds, "test", 8)
    trie = Trie.from_table(sid.codes, sid.codebook_sizes)
    top, _ = recommend(model, cases.history, sid_tensor(sid), vocab, trie, 20, 20)
    res = evaluate_cases(model, cases.users, cases.history, cases.targets, sid_tensor(sid), vocab,
                         trie, RunProtocol("test", 8))
    expected = [list(row).index(t) if t in row else -1 for row, t in zip(top, cases.targets)]
    assert res.per_user["rank"].to_list() == expected
    filtered = evaluate_cases(model, cases.users, cases.history, cases.targets, sid_tensor(sid),
                              vocab, trie, RunProtocol("test", 8, filter_seen=True))
    assert filtered.metrics["recall@10"] >= res.metrics["recall@10"]

    from onefeed.evaluation.generative import choose_seen_rule, recommend_unseen
    from onefeed.evaluation.metrics import ndcg_at_k, target_ranks

    codes = sid_tensor(sid)
    unseen, unseen_scores = recommend_unseen(model, cases.history, codes, vocab, trie, 10, 5)
    for row, hist in zip(unseen, cases.history):
        assert not set(row[row >= 0].tolist()) & set(hist[hist >= 0].tolist())
    wide, wide_scores = recommend(model, cases.history, codes, vocab, trie, 18, 18)  # 10 + 8
    assert unseen.tolist() == drop_seen(wide, cases.history, 5).tolist()
    for items, scores, w_items, w_scores in zip(unseen, unseen_scores, wide, wide_scores):
        score_of = dict(zip(w_items.tolist(), w_scores.tolist()))
        assert scores.tolist() == [score_of[i] if i >= 0 else -np.inf for i in items.tolist()]
    # targets taken from the history: excluding history items can only lose -> keep
    planted = cases.history[:, -1]
    rule = choose_seen_rule(model, cases.history, planted, codes, vocab, trie, 20)
    keep, _ = recommend(model, cases.history, codes, vocab, trie, 20, 10)
    expected = float(ndcg_at_k(target_ranks(keep, planted), 10).mean())
    assert rule["seen_valid_ndcg@10"] == {"keep": pytest.approx(expected), "exclude": 0.0}
    assert rule["seen"] == "keep" and rule["seen_cases"] == len(planted)
    sub = choose_seen_rule(model, cases.history, cases.targets, codes, vocab, trie, 20,
                           max_cases=3)
    assert sub["seen_cases"] == 3
    assert sub["seen"] == max(sub["seen_valid_ndcg@10"], key=sub["seen_valid_ndcg@10"].get)


def test_encoder_decoder_trains_and_evaluates(inputs):
    state = rec.run(inputs / "data", inputs / "sid", None, inputs / "ed",
                         SMALL + ["model.arch=encoder_decoder", "train.max_steps=3",
                                  "train.eval_every=1"])
    assert state["step"] == 3 and state["history"]
    model, run_cfg, _ = rec.load_model(inputs / "ed" / "best")
    assert run_cfg.model.arch == "encoder_decoder" and type(model).__name__.startswith("Encoder")


# ---- guards against non-finite losses and gradients ---------------------------------------
def _linear_step(cfg, poison=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    if poison == "grad":
        model.weight.register_hook(lambda g: g * float("inf"))
    loss = model(torch.ones(2, 3)).sum() * (float("nan") if poison == "loss" else 1.0)
    before = [p.detach().clone() for p in model.parameters()]
    return model, opt, loss, before


@pytest.mark.parametrize("poison", ["loss", "grad"])
def test_guarded_step_stops_or_skips_on_non_finite(poison):
    stop = TrainConfig(grad_clip=1.0)
    model, opt, loss, before = _linear_step(stop, poison)
    with pytest.raises(NonFiniteError, match="step 5: non-finite"):
        loop.guarded_step(loss, model, opt, stop, {"step": 5})
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    skip = TrainConfig(grad_clip=0.0, nonfinite="skip", max_skipped_steps=1)
    state = {"step": 5}
    model, opt, loss, before = _linear_step(skip, poison)
    assert loop.guarded_step(loss, model, opt, skip, state) is False
    assert state["skipped_steps"] == 1 and not opt.state  # no AdamW moment was touched
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    model, opt, loss, _ = _linear_step(skip, poison)
    with pytest.raises(NonFiniteError, match="max_skipped_steps=1"):
        loop.guarded_step(loss, model, opt, skip, state)


def test_guarded_step_steps_on_finite_loss():
    cfg = TrainConfig(grad_clip=0.0)  # 0 = no clipping (gradients are kept)
    model, opt, loss, before = _linear_step(cfg)
    assert loop.guarded_step(loss, model, opt, cfg, {"step": 0})
    assert not torch.equal(before[0], model.weight)
    with pytest.raises(ValueError, match="nonfinite"):
        loop.guarded_step(loss, model, opt, TrainConfig(nonfinite="ignore"), {})


def _nan_loss_at(monkeypatch, step):
    calls = {"n": 0}
    real = rec.sid_nll

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs) * (float("nan") if calls["n"] == step else 1.0)

    monkeypatch.setattr(rec, "sid_nll", poisoned)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(inputs, monkeypatch):
    from onefeed import checkpoint

    _nan_loss_at(monkeypatch, 5)  # in epoch 2 (3 steps per epoch)
    out = inputs / "nan"
    with pytest.raises(NonFiniteError, match="step 4: non-finite loss"):
        rec.run(inputs / "data", inputs / "sid", None, out,
                     SMALL + ["train.epochs=3", "train.eval_every=1"])
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["step"] == 3 and state["epoch"] == 1
    checkpoint.verify(out / "last")
    weights = load_file(out / "last" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_nan_loss_is_skipped_and_counted(inputs, monkeypatch):
    _nan_loss_at(monkeypatch, 5)
    out = inputs / "skip"
    state = rec.run(inputs / "data", inputs / "sid", None, out,
                         SMALL + ["train.epochs=3", "train.eval_every=1",
                                  "train.nonfinite=skip"])
    assert state["skipped_steps"] == 1 and state["step"] == 9
    assert [h["skipped_steps"] for h in state["history"]] == [0, 1, 1]
    assert all(np.isfinite(h["loss"]) for h in state["history"])
    weights = load_file(out / "last" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
