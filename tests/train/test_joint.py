"""The joint model learns all of its tasks on a hand-made world (tests/tasks/joint_toy.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from onefeed.train import joint as tj
from onefeed.evaluation.metrics import target_ranks

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
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


def test_interrupted_and_resumed_joint_run_is_bit_identical(tmp_path, commit_crash):
    """Exact resume (RNG, optimizer, data order) of the joint loop, interrupted right after
    its second checkpoint; the SIGKILL variants are in tests/train/test_resume.py."""
    from safetensors.torch import load_file


    ds, sid = make_world(n_users=8), sid_dir(tmp_path)
    cfg = tj.load_run_config(None, TINY)
    ref = tj.train_joint(ds, sid, cfg, tmp_path / "ref")
    commit_crash.arm(2)
    with pytest.raises(KeyboardInterrupt):
        tj.train_joint(ds, sid, cfg, tmp_path / "cut")
    commit_crash.disarm()
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


# ---- OneFeed cross-task objectives (§3.7-3.9) and gradient-norm balancing ---------------------
def toy_model_and_task(tmp_path, extra: list[str]):
    import dataclasses

    from onefeed.models import build_model

    ds = make_world(n_users=8)
    cfg = tj.load_run_config(None, OVERRIDES[:5] + extra)
    p = tj.prepare(ds, sid_dir(tmp_path), cfg)
    torch.manual_seed(0)
    cfg = dataclasses.replace(cfg, model=p.model_cfg)
    model = build_model(cfg.model)
    model.set_text_vocab(p.text_tokens)
    return model, p, cfg, tj.JointTask(ds, p, cfg)


@pytest.mark.parametrize("switch,name", [("align", "ALIGN"), ("consistency", "CONSIST")])
def test_cross_task_switches_change_the_loss_and_off_is_bit_identical(tmp_path, switch, name):
    model, p, off_cfg, off = toy_model_and_task(tmp_path, [])
    _, _, on_cfg, on = toy_model_and_task(tmp_path, [f"tasks.{switch}=0.5"])
    s_off = next(off.batches(0, np.random.default_rng(0), 0, 1))
    s_on = next(on.batches(0, np.random.default_rng(0), 0, 1))
    # the switch draws its samples after every other draw: the rest of the step is unchanged
    assert torch.equal(s_on.batch.target_item, s_off.batch.target_item)
    assert torch.equal(s_on.text_at, s_off.text_at) and torch.equal(s_on.items, s_off.items)
    assert s_off.align is None and s_off.consist_at is None
    base = tj.joint_loss(model, p, s_off, off.codes, off.path_codes, off_cfg.tasks)
    ignored = tj.joint_loss(model, p, s_on, off.codes, off.path_codes, off_cfg.tasks)
    assert base[0].item() == ignored[0].item() and base[1] == ignored[1]  # weight 0: bit-identical
    total, parts = tj.joint_loss(model, p, s_on, on.codes, on.path_codes, on_cfg.tasks)
    assert set(parts) == set(base[1]) | {name} and parts[name] > 0
    assert {k: parts[k] for k in base[1]} == base[1]
    assert abs(total.item() - (base[0].item() + 0.5 * parts[name])) < 1e-5


def test_nrip_all_adds_the_search_clicked_items_to_the_nrip_loss(tmp_path):
    from onefeed.objectives.generation import sid_nll

    model, p, feed_cfg, feed = toy_model_and_task(tmp_path, [])
    _, _, all_cfg, every = toy_model_and_task(tmp_path, ["tasks.nrip_targets=all"])
    model.eval()
    s_feed = next(feed.batches(0, np.random.default_rng(0), 0, 1))
    s_all = next(every.batches(0, np.random.default_rng(0), 0, 1))
    b = s_all.batch
    extra = (b.rec_item >= 0) & (b.task != tj.NRIP)
    assert extra.any() and torch.equal(b.rec_item[b.task == tj.NRIP],
                                       s_feed.batch.rec_item[b.task == tj.NRIP])
    base = tj.task_losses(model, p, s_feed, feed.codes, feed.path_codes, feed_cfg.tasks)
    parts = tj.task_losses(model, p, s_all, every.codes, every.path_codes, all_cfg.tasks)
    assert {k: v.item() for k, v in parts.items() if k != "NRIP"} == \
        {k: v.item() for k, v in base.items() if k != "NRIP"}
    # NRIP's loss is the mean over the feed targets and the extra ones (per level)
    h = model.head_input(model.encode(b.events)[extra], "NRIP")
    target = every.path_codes["rec"][b.rec_item[extra]]
    n_feed, n_extra = int((b.task == tj.NRIP).sum()), int(extra.sum())
    per_level_extra = [torch.nn.functional.cross_entropy(lg, target[:, j]).item()
                       for j, lg in enumerate(model.sid_logits(h, target, "rec"))]
    h_feed = model.head_input(model.encode(b.events)[b.task == tj.NRIP], "NRIP")
    t_feed = every.path_codes["rec"][b.rec_item[b.task == tj.NRIP]]
    per_level_feed = [torch.nn.functional.cross_entropy(lg, t_feed[:, j]).item()
                      for j, lg in enumerate(model.sid_logits(h_feed, t_feed, "rec"))]
    want = sum((n_feed * f + n_extra * e) / (n_feed + n_extra)
               for f, e in zip(per_level_feed, per_level_extra))
    assert abs(parts["NRIP"].item() - want) < 1e-4
    assert abs(base["NRIP"].item() - sid_nll(model.sid_logits(h_feed, t_feed, "rec"),
                                             t_feed).item()) < 1e-5
    with pytest.raises(Exception, match="nrip_targets"):
        tj.load_run_config(None, ["tasks.nrip_targets=search"])


def test_alignment_pairs_queries_with_their_clicked_items(tmp_path):
    from onefeed.objectives.alignment import info_nce

    model, p, cfg, task = toy_model_and_task(tmp_path, ["tasks.align=1", "tasks.nsqp=0"])
    step = next(task.batches(0, np.random.default_rng(0), 0, 1))
    pairs = step.align.numpy()
    held = set(zip(task.ds.eval_queries["query"].to_list(), task.ds.eval_queries["item"].to_list()))
    assert len(pairs) >= 2 and len(set(pairs[:, 1])) == len(pairs)
    for q, item in pairs:  # "<colour> <kind>" clicked on an item of that colour and kind
        assert p.jd.query_text[q] == f"{'red' if item < 6 else 'blue'} " \
            f"{['lipstick', 'polish', 'cream'][item % 3]}"
        assert (p.jd.query_text[q], int(item)) not in held
    beh_q, beh_i = p.vocab.behaviour("search_query"), p.vocab.behaviour("search_click")
    h_s = model.item_state(step.align[:, 1], task.codes["search"][step.align[:, 1]], beh_i)
    h_q = model.text_state(torch.as_tensor(p.jd.query_words)[step.align[:, 0]], beh_q)
    _, parts = tj.joint_loss(model, p, step, task.codes, task.path_codes, cfg.tasks)
    assert abs(parts["ALIGN"] - info_nce(h_s, h_q, cfg.tasks.align_temperature).item()) < 1e-6


def test_consistency_pairs_a_next_train_item_with_an_unseen_bm25_candidate(tmp_path):
    from onefeed.tasks.joint import NRIP

    model, p, cfg, task = toy_model_and_task(tmp_path, ["tasks.consistency=1"])
    rng = np.random.default_rng(0)
    windows = task.windows
    step = tj.joint_step(windows[:8], p, task.codes, cfg.tasks, rng, task.cross)
    at, neg = step.consist_at, step.consist_neg
    assert at is not None and len(at) == len(neg) > 0
    assert (step.batch.task[at[:, 0], at[:, 1]] == NRIP).all()
    for (row, _), n in zip(at.tolist(), neg.tolist()):
        first = windows[row][windows[row] >= 0][0]
        u = int(np.searchsorted(p.jd.user_start, first, side="right") - 1)
        lo, hi = p.jd.user_start[u], p.jd.user_start[u + 1]
        train_items = set(p.jd.item[lo:hi][(p.jd.split[lo:hi] == 0)].tolist())
        assert n not in train_items and n in set(task.cross.negatives.of(u).tolist())


def test_gradnorm_equalises_the_weighted_encoder_gradient_norms(tmp_path):
    model, p, cfg, task = toy_model_and_task(tmp_path, ["tasks.balance=gradnorm",
                                                        "tasks.balance_every=1",
                                                        "tasks.balance_momentum=1.0"])
    step = next(task.batches(0, np.random.default_rng(0), 0, 1))
    total, parts = task.loss(model, step)
    weights = tj.task_weights(cfg.tasks)
    losses = tj.task_losses(model, p, step, task.codes, task.path_codes, cfg.tasks)
    norms = tj.task_grad_norms(losses, list(model.blocks.parameters()))
    balanced = torch.tensor([weights[k] * task.scales[k] for k in losses], dtype=torch.float64)
    assert set(task.scales) == set(losses) == set(parts)
    assert torch.allclose(balanced * norms, (balanced * norms).mean().expand(len(losses)),
                          rtol=1e-4)
    assert not np.allclose(list(task.scales.values()), 1.0)  # the raw norms differed
    want = sum(weights[k] * task.scales[k] * losses[k] for k in losses)
    assert abs(total.item() - want.item()) < 1e-4
    assert task.history_fields() == {"task_scale": task.scales}
    model.eval()  # validation-time calls do not rebalance
    before = dict(task.scales)
    task.loss(model, step)
    assert task.scales == before


def test_all_onefeed_objectives_train_end_to_end_and_stay_finite(tmp_path):
    ds = make_world(n_users=8)
    cfg = tj.load_run_config(None, TINY + ["tasks.align=0.5", "tasks.consistency=0.5",
                                           "tasks.balance=gradnorm", "tasks.balance_every=1"])
    state = tj.train_joint(ds, sid_dir(tmp_path), cfg, tmp_path / "all")
    assert state["step"] == 3 and len(state["history"]) == 3
    for h in state["history"]:
        assert np.isfinite(h["loss"]) and {"ALIGN", "CONSIST"} <= set(h["task_loss"])
        assert all(np.isfinite(v) for v in h["task_loss"].values())
        assert all(np.isfinite(s) and s > 0 for s in h["task_scale"].values())
    scales = state["history"][-1]["task_scale"]
    assert set(scales) == set(state["history"][-1]["task_loss"]) and scales != dict.fromkeys(
        scales, 1.0)


@pytest.mark.parametrize("override", ["tasks.align=-1", "tasks.align_temperature=0",
                                      "tasks.align_batch=1", "tasks.consistency=-0.1",
                                      "tasks.consistency_k=0", "tasks.consistency_batch=0",
                                      "tasks.balance=uncertainty", "tasks.balance_every=0",
                                      "tasks.balance_momentum=0", "tasks.balance_momentum=1.5"])
def test_objective_config_fields_are_range_checked(override):
    from onefeed.config import ConfigError

    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1]):
        tj.load_run_config(None, [override])


def test_default_config_has_every_onefeed_objective_off():
    t = tj.TaskConfig()
    assert t.align == 0 and t.consistency == 0 and t.balance == "none"
