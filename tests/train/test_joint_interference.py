"""Interference switches of the joint model (issue 13 part 3): PCGrad / PCGrad-last task
balance, per-task adapters / blocks, and the sparse embedding gradients (same losses)."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from onefeed.train import joint as tj
from onefeed.models import build_model
from onefeed.models.transformer import GenerativeRecommender

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).parents[1] / "objectives"))
from joint_toy import make_world, sid_dir  # noqa: E402
from test_balance import reference_pcgrad  # noqa: E402

BASE = ["model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.dropout=0.0",
        "model.max_len=12"]
TINY = BASE + ["train.epochs=3", "train.eval_every=1", "train.batch_size=16",
               "train.warmup_steps=2", "train.eval_beam=4", "tasks.desc_batch=6",
               "tasks.id2desc_batch=3", "tasks.valid_search_users=4", "model.dropout=0.1"]


def setup(tmp_path, extra, seed=0):
    ds = make_world(n_users=8)
    cfg = tj.load_run_config(None, BASE + extra)
    p = tj.prepare(ds, sid_dir(tmp_path), cfg)
    torch.manual_seed(seed)
    cfg = dataclasses.replace(cfg, model=p.model_cfg)
    model = build_model(cfg.model)
    model.set_text_vocab(p.text_tokens)
    task = tj.JointTask(ds, p, cfg)
    return model, p, cfg, task, next(task.batches(0, np.random.default_rng(0), 0, 1))


def grads_of(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}


# ---- sparse embedding gradients: same loss, same gradient ------------------------------------
def test_sparse_embedding_gradients_equal_the_dense_ones(tmp_path):
    model, p, cfg, task, step = setup(tmp_path, ["tasks.align=0.5", "tasks.consistency=0.5"])
    assert not model.tok.sparse  # off unless train_joint runs in a single process
    model.sparse_embedding_grads()
    assert model.tok.sparse and model.item.sparse
    loss, parts = task.loss(model, step)
    sparse = grads_of(model, loss)
    assert all(not g.is_sparse for g in sparse.values())  # made dense for clipping / AdamW
    model.tok.sparse = model.item.sparse = False  # the embedding gradients before the change
    model.out_weight = lambda level: GenerativeRecommender.out_weight(model, level)
    loss2, parts2 = task.loss(model, step)
    dense = grads_of(model, loss2)
    assert loss.item() == loss2.item() and parts == parts2  # identical losses
    assert sparse.keys() == dense.keys()
    for name in dense:
        torch.testing.assert_close(sparse[name], dense[name], rtol=1e-5, atol=1e-7)


# ---- PCGrad --------------------------------------------------------------------------------------
def per_task_grads(model, p, cfg, task, step):
    """Each weighted task loss's gradient of every parameter, by separate backward passes."""
    losses = tj.task_losses(model, p, step, task.codes, task.path_codes, cfg.tasks)
    w = tj.task_weights(cfg.tasks)
    names = list(losses)
    params = [q for q in model.parameters() if q.requires_grad]
    out = []
    for n in names:
        gs = torch.autograd.grad(w[n] * losses[n], params, retain_graph=True, allow_unused=True)
        out.append([torch.zeros_like(q) if g is None else g.to_dense() for q, g in zip(params, gs)])
    return names, params, out


def step_order(task, names, step):
    visit = {n: list(step.order).index(r) for r, n in enumerate(task.scales)}
    return sorted(range(len(names)), key=lambda i: visit[names[i]])


def test_pcgrad_step_is_the_hand_computed_projection_on_shared_parameters(tmp_path):
    model, p, cfg, task, step = setup(tmp_path, ["tasks.balance=pcgrad"])
    assert sorted(step.order) == list(range(len(task.scales)))
    names, params, per = per_task_grads(model, p, cfg, task, step)
    plain, _ = tj.joint_loss(model, p, step, task.codes, task.path_codes, cfg.tasks)
    loss, parts = task.loss(model, step)
    assert loss.item() == plain.item()  # the logged loss is the plain weighted sum
    got = grads_of(model, loss)
    got = [got[n] for n, q in model.named_parameters() if q.requires_grad]
    shared = [sum(bool(g[i].any()) for g in per) >= 2 for i in range(len(params))]
    assert any(shared) and not all(shared)  # e.g. a task token row is one task's only
    flat = np.stack([torch.cat([g[i].flatten() for i in range(len(params)) if shared[i]])
                     .double().numpy() for g in per])
    want = reference_pcgrad(flat, step_order(task, names, step))
    have = torch.cat([got[i].flatten() for i in range(len(params)) if shared[i]]).double()
    np.testing.assert_allclose(have.numpy(), want, rtol=1e-4, atol=1e-7)
    for i in range(len(params)):  # parameters of one task only: the plain sum
        if not shared[i]:
            torch.testing.assert_close(got[i], sum(g[i] for g in per), rtol=1e-5, atol=1e-7)
    summed = flat.sum(0)
    assert np.abs(want - summed).max() > 1e-3 * np.abs(summed).max()  # the switch changes it
    fields = task.history_fields()["pcgrad"]
    assert fields["steps"] == 1 and fields["conflict_rate"] > 0 and fields["seconds"] > 0
    assert task.history_fields()["pcgrad"]["steps"] == 0  # counters restart per entry


def test_pcgrad_last_mixes_tasks_by_the_last_blocks_projection(tmp_path):
    model, p, cfg, task, step = setup(tmp_path, ["tasks.balance=pcgrad-last"])
    names, params, per = per_task_grads(model, p, cfg, task, step)
    last = {id(q) for q in tj._last_shared(model)}
    idx = [i for i, q in enumerate(params) if id(q) in last]
    plain, _ = tj.joint_loss(model, p, step, task.codes, task.path_codes, cfg.tasks)
    loss, _ = task.loss(model, step)
    assert loss.item() == pytest.approx(plain.item(), rel=1e-6)
    got = grads_of(model, loss)
    got = [got.get(n, torch.zeros_like(q)) for n, q in model.named_parameters()
           if q.requires_grad]
    flat = np.stack([torch.cat([g[i].flatten() for i in idx]).double().numpy() for g in per])
    want = reference_pcgrad(flat, step_order(task, names, step))
    have = torch.cat([got[i].flatten() for i in idx]).double().numpy()
    np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-7)
    assert np.abs(want - flat.sum(0)).max() > 1e-3 * np.abs(flat.sum(0)).max()


def test_pcgrad_last_every_n_steps_reuses_the_measured_coefficients(tmp_path):
    model, p, cfg, task, _ = setup(tmp_path, ["tasks.balance=pcgrad-last", "tasks.pcgrad_every=2",
                                              "train.batch_size=4"])
    steps = list(task.batches(0, np.random.default_rng(0), 0, 1))
    assert len(steps) >= 2 and [s.measure for s in steps] == [i % 2 == 0 for i in range(len(steps))]
    task.loss(model, steps[0])
    first = dict(task._coef)
    loss, _ = task.loss(model, steps[1])  # not measured: the step's loss mixes by `first`
    losses = tj.task_losses(model, p, steps[1], task.codes, task.path_codes, cfg.tasks)
    w = tj.task_weights(cfg.tasks)
    mixed = sum(first.get(n, 1.0) * w[n] * losses[n] for n in losses)
    g1 = grads_of(model, loss)
    g2 = grads_of(model, mixed)
    assert task._coef == first and any(v != 1.0 for v in first.values())
    for n in g2:
        torch.testing.assert_close(g1[n], g2[n], rtol=1e-5, atol=1e-7)
    fields = task.history_fields()["pcgrad"]
    assert fields["steps"] == 2 and fields["measured"] == 1


def test_pcgrad_changes_the_update_and_off_draws_nothing_more(tmp_path):
    model, p, cfg, off, s_off = setup(tmp_path, [])
    model2, _, _, on, s_on = setup(tmp_path, ["tasks.balance=pcgrad"])
    assert s_off.order is None and s_on.order is not None
    assert torch.equal(s_on.batch.target_item, s_off.batch.target_item)
    assert torch.equal(s_on.text_at, s_off.text_at) and torch.equal(s_on.items, s_off.items)
    for m, t, s in ((model, off, s_off), (model2, on, s_on)):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        loss, _ = t.loss(m, s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    a = torch.cat([q.detach().flatten() for q in model.parameters()])
    b = torch.cat([q.detach().flatten() for q in model2.parameters()])
    assert (a - b).abs().max() > 1e-4  # same start (seed), same batch, different update


# ---- task adapters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["adapter", "block"])
def test_task_adapters_give_each_task_its_own_states(tmp_path, kind):
    model, p, cfg, task, step = setup(tmp_path, [f"model.task_adapters={kind}",
                                                 "model.adapter_dim=8"])
    ev = step.batch.events
    h = model.encode(ev)[:, -1]
    if kind == "adapter":
        for a in model.adapters.values():  # an untrained adapter is the identity
            torch.testing.assert_close(a(h), h)
            torch.nn.init.normal_(a.up.weight, std=0.5)
        ins = {t: model.head_input(h, t) - model.task_vec(t, len(h)) for t in ("NRIP", "NSIP")}
    else:
        ins = {t: model.states(ev, t)[:, -1] for t in ("NRIP", "NSIP")}
        torch.testing.assert_close(model.last_state(ev, "NRIP"), ins["NRIP"], rtol=1e-5,
                                   atol=1e-5)  # last-only decoding reads the same state
    assert (ins["NRIP"] - ins["NSIP"]).abs().max() > 1e-3
    assert (ins["NRIP"] - h).abs().max() > 1e-3
    loss, parts = task.loss(model, step)
    loss.backward()
    mods = model.adapters if kind == "adapter" else model.task_blocks
    for t in ("NRIP", "NSIP", "NSQP", "DESC2ID", "ID2DESC"):  # every task trains its own
        assert any(q.grad is not None and q.grad.abs().sum() > 0
                   for q in mods[t].parameters()), t


def test_default_has_no_adapters_and_no_surgery():
    from onefeed.models import ModelConfig

    assert ModelConfig().task_adapters == "none" and tj.TaskConfig().balance == "none"


@pytest.mark.parametrize("override", ["model.task_adapters=lora", "model.adapter_dim=0",
                                      "tasks.balance=pcgrad2", "tasks.pcgrad_every=0"])
def test_switch_fields_are_checked(override):
    from onefeed.config import ConfigError

    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1]):
        tj.load_run_config(None, [override])


# ---- each switch through the one loop: trains, saves, loads, predicts ------------------------------
@pytest.mark.parametrize("switch", ["tasks.balance=pcgrad", "tasks.balance=pcgrad-last",
                                    "model.task_adapters=adapter", "model.task_adapters=block"])
def test_each_switch_trains_on_the_tiny_world_and_round_trips(tmp_path, switch):
    ds, sid = make_world(n_users=8), sid_dir(tmp_path)
    cfg = tj.load_run_config(None, TINY + [switch, "tasks.align=0.5", "tasks.consistency=0.5"])
    state = tj.train_joint(ds, sid, cfg, tmp_path / "run")
    assert state["step"] == 3 and len(state["history"]) == 3
    for h in state["history"]:
        assert np.isfinite(h["loss"]) and all(np.isfinite(v) for v in h["task_loss"].values())
        if switch.startswith("tasks.balance"):
            assert h["pcgrad"]["steps"] == h["pcgrad"]["measured"] == 1
            assert 0 <= h["pcgrad"]["conflict_rate"] <= 1
    model, run_cfg, _ = tj.load_joint(tmp_path / "run" / "last")
    assert run_cfg.model.task_adapters == cfg.model.task_adapters
    if switch.startswith("model"):
        mods = model.adapters if "adapter" == cfg.model.task_adapters else model.task_blocks
        assert mods is not None and set(mods) == {"NRIP", "NSIP", "NSQP", "DESC2ID", "ID2DESC"}
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "run" / "last" / "model.safetensors")
    for k, v in model.state_dict().items():
        if k in saved:
            assert torch.equal(saved[k], v), k
    assert any("adapters." in k or "task_blocks." in k for k in saved) == \
        switch.startswith("model")
    pred = tj.predictor(model, run_cfg, ds, sid)
    users = np.arange(4)
    rec = pred.recommend(users, "test", 3)
    assert rec.shape == (4, 3) and (rec >= 0).all()
    if switch.startswith("model"):  # the predictor reads the task's own states
        before = pred._states(pred._history(users, "test"), "NRIP")
        mods = model.adapters if cfg.model.task_adapters == "adapter" else model.task_blocks
        with torch.no_grad():
            for q in mods["NRIP"].parameters():
                q.add_(0.3)
        after = pred._states(pred._history(users, "test"), "NRIP")
        assert (before - after).abs().max() > 1e-3


def test_interrupted_and_resumed_pcgrad_run_is_bit_identical(tmp_path, commit_crash):
    """The task order is drawn from the epoch's RNG: resume repeats it."""
    from safetensors.torch import load_file


    ds, sid = make_world(n_users=8), sid_dir(tmp_path)
    cfg = tj.load_run_config(None, TINY + ["tasks.balance=pcgrad"])
    ref = tj.train_joint(ds, sid, cfg, tmp_path / "ref")
    commit_crash.arm(2)
    with pytest.raises(KeyboardInterrupt):
        tj.train_joint(ds, sid, cfg, tmp_path / "cut")
    commit_crash.disarm()
    again = tj.train_joint(ds, sid, cfg, tmp_path / "cut")
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in ref["history"]]
    a = load_file(tmp_path / "ref" / "last" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("switch", ["tasks.balance=pcgrad", "model.task_adapters=block"])
def test_switch_under_torchrun_keeps_ranks_identical(tmp_path, free_port, switch):
    """Under DDP each rank projects its own task gradients; the loop averages the combined
    gradient once, so the ranks stay identical."""
    import json
    import os
    import subprocess

    import onefeed
    sys.path.insert(0, str(Path(__file__).parent))
    from test_ddp import DRIVER

    assert sid_dir(tmp_path) == tmp_path / "sid"
    (tmp_path / "driver.py").write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(onefeed.__file__).parents[1]))
    args = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.dropout=0.0",
            "model.max_len=12", "train.max_steps=3", "train.eval_every=100",
            "train.batch_size=8", "train.warmup_steps=1", "train.eval_beam=4",
            "tasks.desc_batch=6", "tasks.id2desc_batch=3", "tasks.valid_search_users=4", switch]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port), str(tmp_path / "driver.py"),
           str(Path(__file__).parents[1] / "tasks"), str(tmp_path / "run"), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / "ranks" / f"rank{r}.json").read_text())
             for r in (0, 1)]
    assert ranks[0] == ranks[1]
    state = json.loads((tmp_path / "run" / "last" / "state.json").read_text())
    assert state["step"] == 3 and np.isfinite(state["history"][-1]["loss"])
