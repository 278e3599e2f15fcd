"""The joint model runs through the bench as one row scored on recommendation, personalised
search and query generation; restricted rows skip the tasks they were not trained for."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from onefeed.bench.runner import SuiteConfig, run_suite
from onefeed.evaluation.metrics import drop_seen
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
    from onefeed.baselines.joint import FusedJointAdapter

    make_world(n_users=8).save(tmp_path / "data")
    from onefeed.data.schemas import Dataset

    params = {"sid": str(sid_dir(tmp_path)), "out": str(tmp_path / "j"),
              "overrides": SMALL + ["train.max_steps=1"], "search_fusion": "borda"}
    with pytest.raises(ValueError, match="search_fusion"):
        FusedJointAdapter().fit(Dataset.load(tmp_path / "data"), params, 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny joint run the seen-item tests load through ``params.checkpoint``."""
    from onefeed.train import joint as tj

    tmp = tmp_path_factory.mktemp("seen")
    ds = make_world(n_users=16)
    sid = sid_dir(tmp)
    tj.train_joint(ds, sid, tj.load_run_config(None, SMALL), tmp / "run")
    return ds, {"sid": str(sid), "checkpoint": str(tmp / "run" / "best"), "beam": 5}


def _fit(trained, cls=None, **params):
    from onefeed.baselines.joint import JointAdapter

    ds, base = trained
    adapter = (cls or JointAdapter)()
    log = adapter.fit(ds, dict(base, **params), 0)
    return adapter, log


def _window_items(adapter, users, split="test"):
    from onefeed.tasks.joint import history_before

    p = adapter.pred
    idx = history_before(p.jd, users, split, p.max_len, max_items=p.max_items)
    return np.where(idx >= 0, p.jd.item[np.maximum(idx, 0)], -1)


def test_keep_is_the_plain_beam_and_exclude_drops_the_history_window(trained):
    from onefeed.data.views import rec_cases
    from onefeed.tasks.joint import history_before

    keep, log = _fit(trained)
    assert keep.seen == "keep" and log.choices == {"seen": "keep"}
    cases = rec_cases(trained[0], "test", 8)
    p = keep.pred
    idx = history_before(p.jd, cases.users, "test", p.max_len, max_items=p.max_items)
    plain = p._decode(idx, "NRIP", "rec", 5, 5)[0]  # the NRIP list as decoded before the rule
    assert np.array_equal(keep.recommend(cases, 5), plain)

    excl, log = _fit(trained, seen="exclude")
    assert log.choices == {"seen": "exclude"}
    out = excl.recommend(cases, 5)
    seen = _window_items(excl, cases.users)
    assert (seen >= 0).sum(1).min() >= 2  # the windows do hold items
    assert out.shape == (len(cases.users), 5) and ((out >= 0) & (out < 12)).all()
    for row, hist in zip(out, seen):
        assert len(set(row.tolist())) == 5 and not set(row.tolist()) & set(hist.tolist())
    # the kept items keep the order of the widened beam (5 + the window length)
    wide = p._decode(idx, "NRIP", "rec", 5 + idx.shape[1], 5 + idx.shape[1])[0]
    assert out.tolist() == drop_seen(wide, seen, 5).tolist()


def test_auto_records_the_choice_and_both_valid_scores(trained):
    from onefeed.train.joint import rec_targets

    adapter, log = _fit(trained, seen="auto")
    choice = log.choices
    assert choice["seen"] in ("keep", "exclude") and adapter.seen == choice["seen"]
    scores = choice["seen_valid_ndcg@10"]
    assert set(scores) == {"keep", "exclude"} and all(0.0 <= v <= 1.0 for v in scores.values())
    assert choice["seen"] == ("exclude" if scores["exclude"] > scores["keep"] else "keep")
    users = np.arange(16)
    assert choice["seen_cases"] == int((rec_targets(adapter.pred.jd, users, "valid") >= 0).sum())
    with pytest.raises(ValueError, match="joint adapter: params.seen 'never'"):
        _fit(trained, seen="never")


def test_fused_feed_under_exclude_has_no_history_items(trained):
    from onefeed.baselines.joint import FusedJointAdapter
    from onefeed.data.views import rec_cases

    adapter, _ = _fit(trained, FusedJointAdapter, seen="exclude", tasks="rec,query",
                      tune_users=8)
    cases = rec_cases(trained[0], "test", 8)
    seen = _window_items(adapter, cases.users)
    titles = trained[0].items.sort("item")["title"].to_list()
    # every generated query names a history item, so BM25's feed candidates start with it
    adapter.pred.generate_queries = lambda users, split, k, beam: [
        [titles[int(h[h >= 0][-1])]] for h in seen]
    adapter.w_feed = 2.0  # fuse whatever validation chose, so the BM25 side counts
    out = adapter.recommend(cases, 10)  # 10 of 12 items: past the unseen ones
    assert (out >= 0).sum() > 0
    for row, hist in zip(out, seen):
        real = row[row >= 0].tolist()
        assert len(set(real)) == len(real) and not set(real) & set(hist.tolist())


def test_query_feed_fuses_bm25_lists_of_the_generated_queries(trained):
    """w/o SID generator: the feed is RRF of BM25's lists for the generated queries only."""
    from onefeed.baselines.joint import QueryFeedAdapter
    from onefeed.data.views import rec_cases
    from onefeed.search.fusion import rrf

    adapter, log = _fit(trained, QueryFeedAdapter, seen="keep", feed_queries=2, feed_depth=6)
    assert adapter.search is None and log.choices == {"seen": "keep"}
    cases = rec_cases(trained[0], "test", 8)
    titles = trained[0].items.sort("item")["title"].to_list()
    fixed = [[titles[u % 12], titles[(u + 5) % 12]] for u in cases.users.tolist()]
    adapter.pred.generate_queries = lambda users, split, k, beam: fixed
    out = adapter.recommend(cases, 4)
    lists = [adapter.bm25.retrieve([q[j] for q in fixed], 6) for j in range(2)]
    assert out.tolist() == rrf(lists, [1.0, 1.0], 4).tolist()
    assert not np.array_equal(out, rrf(lists[:1], [1.0], 4))  # both queries count

    excl, log = _fit(trained, QueryFeedAdapter, seen="exclude", feed_queries=2, feed_depth=12)
    excl.pred.generate_queries = lambda users, split, k, beam: fixed
    seen = _window_items(excl, cases.users)
    for row, hist in zip(excl.recommend(cases, 4), seen):
        assert not set(row[row >= 0].tolist()) & set(hist.tolist())
    auto, log = _fit(trained, QueryFeedAdapter, feed_queries=2)
    assert set(log.choices["seen_valid_ndcg@10"]) == {"keep", "exclude"}
    assert log.choices["seen"] in ("keep", "exclude")


def test_separate_encoders_answer_each_task_from_its_own_model(trained, tmp_path):
    from onefeed.train import joint as tj
    from onefeed.baselines.joint import JointAdapter, SeparateEncodersAdapter
    from onefeed.data.views import rec_cases

    ds, base = trained
    other = tmp_path / "other"
    tj.train_joint(ds, base["sid"], tj.load_run_config(None, SMALL + ["train.seed=7"]), other)
    params = dict(base, rec_checkpoint=base["checkpoint"],
                  search_checkpoint=str(other / "best"))
    sep = SeparateEncodersAdapter()
    sep.fit(ds, params, 0)
    rec_alone, srch_alone = JointAdapter(), JointAdapter()
    rec_alone.fit(ds, base, 0)
    srch_alone.fit(ds, dict(base, checkpoint=str(other / "best")), 0)
    cases = rec_cases(ds, "test", 8)
    assert np.array_equal(sep.recommend(cases, 5), rec_alone.recommend(cases, 5))
    table = ds.queries["query"].to_list()
    queries = [table[i % len(table)] for i in range(len(cases.users))]
    assert np.array_equal(sep.search(cases.users, queries, 5),
                          srch_alone.search(cases.users, queries, 5))
    # the two models differ, so the row really takes search from the second one
    assert not np.array_equal(rec_alone.search(cases.users, queries, 5),
                              srch_alone.search(cases.users, queries, 5))
    with pytest.raises(ValueError, match="params.search_checkpoint .* is not a trained"):
        SeparateEncodersAdapter().fit(ds, dict(params, search_checkpoint=str(tmp_path / "x")), 0)
