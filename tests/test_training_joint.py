"""The joint model learns all of its tasks on a hand-made world (tests/tasks/joint_toy.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from onefeed import training_joint as tj
from onefeed.evaluation.metrics import target_ranks

sys.path.insert(0, str(Path(__file__).parent / "tasks"))
from joint_toy import make_world, sid_dir  # noqa: E402

OVERRIDES = ["model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.dropout=0.0",
             "model.max_len=12", "train.epochs=60", "train.eval_every=20", "train.patience=5",
             "train.batch_size=16", "train.warmup_steps=20", "train.lr=3e-3",
             "train.eval_beam=6", "tasks.desc_batch=12", "tasks.id2desc_batch=12",
             "tasks.max_history_items=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("joint")
    ds = make_world(n_users=40)
    out = {}
    for name, joint in (("single", False), ("joint", True)):
        sid = sid_dir(tmp, joint)
        cfg = tj.load_run_config(None, OVERRIDES)
        state = tj.train_joint(ds, sid, cfg, tmp / name)
        model, run_cfg, _ = tj.load_joint(tmp / name / "best")
        out[name] = (tj.predictor(model, run_cfg, ds, sid), state, tmp / name)
    return ds, out


@pytest.mark.parametrize("name", ["single", "joint"])
def test_learns_recommendation_and_search(trained, name):
    ds, runs = trained
    pred, state, _ = runs[name]
    eq = ds.eval_queries.filter(ds.eval_queries["split"] == "test").sort("user")
    users, targets = eq["user"].to_numpy(), eq["item"].to_numpy()
    rec = target_ranks(pred.recommend(users, "test", 3), targets)
    search = target_ranks(pred.search(users, eq["query"].to_list(), "test", 3), targets)
    # the next item is determined by the history (chance Recall@3 = 0.25)
    assert ((rec >= 0) & (rec < 3)).mean() >= 0.7
    assert ((search >= 0) & (search < 3)).mean() >= 0.7
    assert state["best_valid"]["rec_ndcg@10"] > 0.5


def test_generates_training_like_queries(trained):
    ds, runs = trained
    pred, _, _ = runs["single"]
    queries = pred.generate_queries(np.arange(10), "test", 3)
    train_q = set(ds.queries["query"].to_list())
    assert all(len(q) == 3 and len(set(q)) == 3 for q in queries)
    assert all(q.strip() and not q.startswith("##") for qs in queries for q in qs)
    from onefeed.tokens import wordpiece_tokenizer
    pieces = [wordpiece_tokenizer().id_to_token(t - pred.vocab.word_offset)
              for t in pred.model.text_vocab[1:].tolist()]
    assert pred._continuation_pieces()[1:].tolist() == [p.startswith("##") for p in pieces]
    # output words are real word pieces: no [PAD] (word piece 0) in the text vocabulary
    assert (pred.model.text_vocab[1:] > pred.vocab.word_offset).all()
    assert np.mean([q[0] in train_q for q in queries]) >= 0.8


def test_checkpoint_round_trip_and_manifest(trained):
    ds, runs = trained
    pred, _, out = runs["single"]
    again, run_cfg, _ = tj.load_joint(out / "best")
    for (k, a), b in zip(pred.model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(again.text_local[again.text_vocab], torch.arange(len(again.text_vocab)))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layout"]["kind"] == "single" and manifest["kind"] == "joint-generative"
    joint_manifest = json.loads((runs["joint"][2] / "manifest.json").read_text())
    assert joint_manifest["layout"]["rec_cols"] == [0, 3]


def test_ablated_tasks_are_not_trained(tmp_path):
    ds = make_world(n_users=8)
    cfg = tj.load_run_config(None, OVERRIDES[:5] + ["train.max_steps=2", "train.eval_every=1",
                                                    "tasks.nsip=0", "tasks.nsqp=0",
                                                    "tasks.desc2id=0", "tasks.id2desc=0"])
    state = tj.train_joint(ds, sid_dir(tmp_path), cfg, tmp_path / "rec-only")
    assert set(state["history"][-1]["task_loss"]) == {"NRIP"}
    assert "search_ndcg@10" not in state["best_valid"]


@pytest.mark.parametrize("name", ["single", "joint"])
def test_score_search_matches_beam_scores(trained, name):
    """Teacher-forced NSIP scoring of the beam's own items reproduces the beam's scores."""
    from onefeed.tasks.joint import history_before, query_index

    ds, runs = trained
    pred, _, _ = runs[name]
    eq = ds.eval_queries.filter(ds.eval_queries["split"] == "test").sort("user")[:12]
    users, queries = eq["user"].to_numpy(), eq["query"].to_list()
    idx = history_before(pred.jd, users, "test", pred.max_len, query_index(pred.jd, queries),
                         pred.max_items)
    items, beam_scores = pred._decode(idx, "NSIP", "search", 6, 4)
    cands = np.concatenate([items, np.full((len(items), 1), -1)], axis=1)
    got = pred.score_search(users, queries, "test", cands)
    np.testing.assert_allclose(got[:, :4], beam_scores, rtol=1e-5, atol=1e-5)
    assert np.isneginf(got[:, 4]).all()


def test_text_loss_on_kept_positions_equals_the_full_loss(trained):
    from onefeed.objectives.generation import text_nll

    _, runs = trained
    model = runs["single"][0].model
    words = torch.tensor([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [9, 10, 0, 0, 0]])
    words = model.text_vocab[1:][torch.remainder(words, len(model.text_vocab) - 1)] * (words > 0)
    cond = torch.randn(3, model.cfg.d_model)
    full = text_nll(model.text_logits(cond, words), model.text_targets(words))
    logits, targets = model.text_loss_inputs(cond, words)
    assert logits.shape[0] == 3 + 1 + 2 + 3  # words + one EOS per row, no padding
    torch.testing.assert_close(text_nll(logits[None], targets[None]), full)


TINY = OVERRIDES[:5] + ["train.epochs=3", "train.eval_every=1", "train.batch_size=16",
                        "train.warmup_steps=2", "train.eval_beam=4", "tasks.desc_batch=6",
                        "tasks.id2desc_batch=3", "tasks.valid_search_users=4",
                        "model.dropout=0.1"]  # dropout draws on torch's RNG: resume restores it


def test_interrupted_and_resumed_joint_run_is_bit_identical(tmp_path, monkeypatch):
    """Exact resume (RNG, optimizer, data order) of the joint loop, interrupted right after
    its second checkpoint; the SIGKILL variants are in tests/test_training_resume.py."""
    from safetensors.torch import load_file

    from onefeed import checkpoint

    ds, sid = make_world(n_users=8), sid_dir(tmp_path)
    cfg = tj.load_run_config(None, TINY)
    ref = tj.train_joint(ds, sid, cfg, tmp_path / "ref")
    real, calls = checkpoint.commit, []

    def commit_then_crash(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "commit", commit_then_crash)
    with pytest.raises(KeyboardInterrupt):
        tj.train_joint(ds, sid, cfg, tmp_path / "cut")
    monkeypatch.setattr(checkpoint, "commit", real)
    again = tj.train_joint(ds, sid, cfg, tmp_path / "cut")
    assert again["step"] == ref["step"] and again["best"] == ref["best"]
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in ref["history"]]
    for name in ("last", "best"):
        a = load_file(tmp_path / "ref" / name / "model.safetensors")
        b = load_file(tmp_path / "cut" / name / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_joint_loop_stops_on_nan_loss_and_refuses_a_corrupted_checkpoint(tmp_path, monkeypatch):
    from onefeed.artifacts import ArtifactError
    from onefeed.checkpoint import NonFiniteError

    ds, sid = make_world(n_users=8), sid_dir(tmp_path)
    cfg = tj.load_run_config(None, TINY + ["train.epochs=1"])
    real, calls = tj.joint_loss, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss, parts = real(*args, **kwargs)
        return loss * float("nan"), parts

    monkeypatch.setattr(tj, "joint_loss", poisoned)
    with pytest.raises(NonFiniteError, match="step 0: non-finite loss"):
        tj.train_joint(ds, sid, cfg, tmp_path / "nan")
    assert not (tmp_path / "nan" / "last").exists() and not (tmp_path / "nan" / "best").exists()
    monkeypatch.setattr(tj, "joint_loss", real)
    tj.train_joint(ds, sid, cfg, tmp_path / "ok")
    path = tmp_path / "ok" / "best" / "model.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x10
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="model.safetensors"):
        tj.load_joint(tmp_path / "ok" / "best")


def test_label_smoothing_reaches_the_identifier_losses_only(tmp_path):
    import dataclasses

    from onefeed.models import build_model
    from onefeed.tasks.joint import path_code_tensors

    ds = make_world(n_users=8)
    cfg = tj.load_run_config(None, OVERRIDES[:5])
    p = tj.prepare(ds, sid_dir(tmp_path), cfg)
    torch.manual_seed(0)
    cfg = dataclasses.replace(cfg, model=p.model_cfg)
    model = build_model(cfg.model)
    model.set_text_vocab(p.text_tokens)
    task = tj.JointTask(ds, p, cfg)
    step = next(task.batches(0, np.random.default_rng(0), 0, 1))
    codes = path_code_tensors(p.layout)
    plain = tj.joint_loss(model, p, step, codes, task.path_codes, cfg.tasks)
    same = tj.joint_loss(model, p, step, codes, task.path_codes, cfg.tasks, 0.0)
    smooth = tj.joint_loss(model, p, step, codes, task.path_codes, cfg.tasks, 0.2)
    assert plain[1] == same[1]
    for name in ("NRIP", "NSIP", "DESC2ID"):
        assert smooth[1][name] != plain[1][name], name
    for name in ("NSQP", "ID2DESC"):
        assert smooth[1][name] == plain[1][name], name
