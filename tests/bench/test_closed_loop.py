"""One tiny closed-loop round end to end: served lists, the feedback log, the appended
training events, skipped items as consistency negatives, fine-tuning; feedback vs control."""

import dataclasses
import json

import numpy as np
import polars as pl
import pytest
import torch

from onefeed.train import joint as tj
from onefeed.bench import closed_loop as cl
from onefeed.bench.simulated_user import SimulatedUser
from onefeed.config import ConfigError
from onefeed.feedback.log import open_log
from onefeed.search.bm25 import BM25Config, BM25Retriever


@pytest.fixture(scope="module")
def cfg():
    return cl.load_config(None, ["finetune_steps=3"], quick=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cfg):
    work = tmp_path_factory.mktemp("loop")
    lw = cl.build_world(cfg.world, 0, work)
    run_cfg = tj.load_run_config(None, list(cfg.model) + ["train.seed=0"])
    tj.train_joint(lw.ds, lw.sid_dir, run_cfg, work / "initial", resume=False)
    return work, lw, run_cfg


def weights(run_dir):
    model, _, _ = tj.load_joint(run_dir / "last")
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_world_holds_out_the_live_phase(trained, cfg):
    _, lw, _ = trained
    assert lw.ds.n_users == cfg.world.n_users
    ev = lw.ds.events.filter(pl.col("item").is_not_null())
    u = lw.world_user[ev["user"].to_numpy()]
    leaf = lw.world.item_leaf[lw.world_item[ev["item"].to_numpy()]]
    past = (leaf[:, None] == lw.world.user_interests[u, :-1].reshape(len(u), -1)).any(1)
    live = (leaf[:, None] == lw.world.user_interests[u, -1]).any(1)
    assert past.mean() > 0.8  # the log follows the logged phases' interests ...
    assert (live & ~past).mean() < 0.03  # ... and all but never the newly drifted-in ones
    assert ((lw.world.user_interests[:, -1, :, None]
             != lw.world.user_interests[:, :-1].reshape(cfg.world.n_users, 1, -1)).all(-1)).any()
    # the dataset's items map back to world items; identifiers are the category path
    from onefeed.sid.table import SidTable
    codes = SidTable.load(lw.sid_dir).codes
    leaf = lw.world.item_leaf[lw.world_item]
    np.testing.assert_array_equal(codes[:, 0] * cfg.world.n_subtopics + codes[:, 1], leaf)


def test_one_round_end_to_end(trained, cfg, tmp_path):
    work, lw, run_cfg = trained
    pred = cl.predictor(work / "initial", lw.ds, lw.sid_dir)
    bm25 = BM25Retriever()
    bm25.fit(lw.ds, BM25Config())
    earlier = [np.array([u % lw.ds.n_items]) for u in range(lw.ds.n_users)]
    served, rec = cl.serve(pred, lw.ds, bm25, cfg.serve, earlier)
    k = cfg.serve.k
    assert served.shape == (lw.ds.n_users, k) and (served >= 0).all()
    seen = cl.user_items(lw.ds)
    assert not any(np.isin(served[u], seen[u]).any() or np.isin(served[u], earlier[u]).any()
                   for u in range(lw.ds.n_users))
    assert all(len(set(row)) == k for row in served.tolist())
    sim = SimulatedUser(lw.world, cfg.user)
    witems = lw.world_item[served]
    resp = sim.respond(lw.world_user, witems, np.random.default_rng([0, 0]))
    m = cl.round_metrics(lw, sim, served, rec, resp)
    assert m["hit_rate"] == pytest.approx(resp.clicked.any(1).mean())
    assert m["ctr"] == pytest.approx(resp.clicked.sum() / served.size)
    assert set(m) == set(cl.METRICS) and all(0 <= v <= 1 for v in m.values())

    # feedback -> the log -> training events and negatives
    log = open_log(tmp_path / "fb.sqlite")
    last = cl.log_round(log, lw.ds, served, resp, 0, lw.ds.items.sort("item")["item_id"].to_list())
    n_click, n_skip = int(resp.clicked.sum()), int(resp.skipped.sum())
    assert n_click > 0 and n_skip > 0
    assert log.count() == last == served.size + 2 * n_click + n_skip
    kinds = pl.Series([r.event.kind for r in log.read()]).value_counts()
    assert dict(kinds.iter_rows()) == {"impression": served.size, "click": n_click,
                                       "dwell": n_click, "skip": n_skip}
    grown, skipped = cl.feedback_to_training(log, 0, lw.ds)
    log.close()
    new = grown.events.height - lw.ds.events.height
    assert new == n_click
    added = grown.events.join(lw.ds.events, on=list(lw.ds.events.columns), how="anti",
                              nulls_equal=True)
    assert (added["split"] == "train").all() and (added["behaviour"] == "rec_click").all()
    r, p = np.nonzero(resp.clicked)
    assert sorted(zip(added["user"].to_list(), added["item"].to_list())) == \
        sorted(zip(r.tolist(), served[r, p].tolist()))
    # dwell folded into its click: strength = dwell ms
    assert sorted(added["strength"].to_list()) == sorted(resp.dwell_ms[r, p].astype(float).tolist())
    # appended after each user's last logged event
    last_pos = dict(lw.ds.events.group_by("user").agg(pl.col("position").max()).iter_rows())
    assert all(pos > last_pos[u] for u, pos in zip(added["user"].to_list(),
                                                   added["position"].to_list()))
    ru, rp = np.nonzero(resp.skipped)
    assert sum(len(v) for v in skipped.values()) == n_skip
    assert sorted((u, i) for u, v in skipped.items() for i in v) == \
        sorted(zip(ru.tolist(), served[ru, rp].tolist()))

    # skipped items reach the consistency pool; the fine-tune moves the weights
    pool = cl.negatives_pool(skipped, grown.n_users)
    p_ = tj.prepare(grown, lw.sid_dir, run_cfg)
    task = tj.JointTask(grown, p_, run_cfg, pool)
    for u, items in skipped.items():
        assert set(items) <= set(task.cross.negatives.of(u).tolist())
    model, _, _ = tj.load_joint(work / "initial" / "last")
    before = torch.cat([q.detach().flatten().clone() for q in model.parameters()])
    tj.fine_tune(model, grown, lw.sid_dir, cl._finetune(run_cfg, cfg, 0, 0), tmp_path / "ft",
                 pool)
    after = weights(tmp_path / "ft")
    assert not torch.equal(before, after)
    state = json.loads((tmp_path / "ft" / "last" / "state.json").read_text())
    assert state["step"] == cfg.finetune_steps


def test_explicit_negatives_need_the_consistency_loss(trained):
    work, lw, run_cfg = trained
    off = dataclasses.replace(run_cfg, tasks=dataclasses.replace(run_cfg.tasks, consistency=0.0))
    p = tj.prepare(lw.ds, lw.sid_dir, off)
    pool = cl.negatives_pool({0: [1]}, lw.ds.n_users)
    with pytest.raises(ValueError, match="used by the consistency loss only"):
        tj.JointTask(lw.ds, p, off, pool)


def test_run_seed_feedback_differs_from_control(tmp_path, cfg):
    one = dataclasses.replace(cfg, rounds=1, finetune_steps=3)
    out = cl.run_seed(one, 0, tmp_path)
    fb, ctl = out["arms"]["feedback"], out["arms"]["control"]
    assert len(fb["rounds"]) == len(ctl["rounds"]) == 2
    assert fb["rounds"][0] == ctl["rounds"][0] == out["arms"]["clicks-only"]["rounds"][0]
    clicks = out["arms"]["clicks-only"]
    assert fb["events_added"] > 0 and ctl["events_added"] == 0 and ctl["logged"] == 0
    assert fb["logged"] > 0 and fb["skip_negatives"] > 0
    # same round-0 lists and clicks: the clicks-only arm logs the same, uses no skips
    assert clicks["events_added"] == fb["events_added"] and clicks["skip_negatives"] == 0
    a, b = weights(tmp_path / "feedback" / "round1"), weights(tmp_path / "control" / "round1")
    start = weights(tmp_path / "initial")
    c = weights(tmp_path / "clicks-only" / "round1")
    assert not torch.equal(a, b) and not torch.equal(a, start) and not torch.equal(b, start)
    assert not torch.equal(a, c)  # the skip negatives changed the fine-tune
    frozen = out["arms"]["frozen"]
    assert len(frozen["rounds"]) == 2 and frozen["logged"] == 0
    assert not (tmp_path / "frozen").exists()  # never fine-tuned
    doc = {"config": {"rounds": 1, "finetune_steps": 3, "serve": {"k": 10},
                      "world": {"n_users": 40, "n_items": 72}},
           "commit": "x", "seeds": [0], "machine": {}, "per_seed": {"0": out},
           "summary": cl.summarise({0: out}, 1)}
    md = cl.markdown(doc, "p.png")
    assert "| feedback |" in md and "![round -> metric](p.png)" in md
    cl.plot(doc, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_config_rules():
    with pytest.raises(ConfigError, match="n_phases must be >= 2"):
        cl.load_config(None, ["world.n_phases=1"])
    with pytest.raises(ConfigError, match="seeds is empty"):
        cl.load_config(None, ["seeds=[]"])
    with pytest.raises(ConfigError, match="must hold feedback and control"):
        cl.load_config(None, ['arms=["feedback"]'])


def test_summary_mean_and_sd():
    rows = lambda v: {"arms": {a: {"rounds": [{m: v for m in cl.METRICS}]} for a in cl.ARMS}}  # noqa: E731
    s = cl.summarise({0: rows(0.2), 1: rows(0.4)}, 0)
    assert s["feedback"]["hit_rate"][0]["mean"] == pytest.approx(0.3)
    assert s["control"]["coverage"][0]["sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))


def test_fine_tune_refuses_new_query_words(trained, tmp_path):
    work, lw, run_cfg = trained
    extra = pl.DataFrame([(0, None, 999, None, "search_query", "xylophone quasar", None,
                           "train")], schema=lw.ds.events.schema, orient="row")
    ds = dataclasses.replace(lw.ds, events=pl.concat([lw.ds.events, extra]))
    model, _, _ = tj.load_joint(work / "initial" / "last")
    with pytest.raises(ValueError, match="changes the model's catalogue or text vocabulary"):
        tj.fine_tune(model, ds, lw.sid_dir, run_cfg, tmp_path / "ft")
