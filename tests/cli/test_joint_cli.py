"""``onefeed joint train|recommend|search|suggest`` on the toy joint world: tables, JSON with
``--json``, clear errors."""

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onefeed.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world, sid_dir  # noqa: E402

SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.max_len=8",
         "train.batch_size=8", "train.max_steps=3", "train.eval_every=1", "train.eval_beam=5",
         "tasks.desc_batch=8"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    make_world(n_users=8).save(tmp / "data")
    sid = sid_dir(tmp)
    args = ["joint", "train", "--data", str(tmp / "data"), "--sid", str(sid),
            "--out", str(tmp / "run")]
    for s in SMALL:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{"):])["run"] == str(tmp / "run")
    return tmp / "run"


def _json(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_recommend_search_suggest(run_dir):
    r = CliRunner(env={"COLUMNS": "300"})
    rec = _json(r.invoke(app, ["joint", "recommend", "--run", str(run_dir), "--user", "u0",
                               "-k", "3", "--beam", "5", "--json"]))
    assert len(rec["items"]) == 3 and {"rank", "item_id", "title"} <= set(rec["items"][0])
    table = r.invoke(app, ["joint", "recommend", "--run", str(run_dir), "--user", "u0",
                           "-k", "3", "--beam", "5"])
    assert table.exit_code == 0 and "user u0" in table.output
    assert rec["items"][0]["item_id"] in table.output
    new_query = "a query nobody typed before"
    found = _json(r.invoke(app, ["joint", "search", "--run", str(run_dir), "--user", "u1",
                                 "--query", new_query, "-k", "4", "--beam", "5", "--json"]))
    assert found["query"] == new_query and len(found["items"]) == 4
    sug = _json(r.invoke(app, ["joint", "suggest", "--run", str(run_dir), "--user", "u2",
                               "-k", "2", "--json"]))
    assert len(sug["queries"]) <= 2
    assert all(isinstance(q["query"], str) for q in sug["queries"])
    assert [q["rank"] for q in sug["queries"]] == list(range(1, len(sug["queries"]) + 1))


def test_bad_input_is_named(run_dir, tmp_path):
    r = CliRunner(env={"COLUMNS": "300"})
    res = r.invoke(app, ["joint", "recommend", "--run", str(run_dir), "--user", "nobody"])
    assert res.exit_code != 0 and "unknown user 'nobody'" in res.output
    res = r.invoke(app, ["joint", "search", "--run", str(run_dir), "--user", "u0",
                         "--query", "   "])
    assert res.exit_code != 0 and "query is empty" in res.output
    res = r.invoke(app, ["joint", "search", "--run", str(run_dir), "--user", "u0",
                         "--query", "x" * 5000])
    assert res.exit_code != 0 and "at most 1000" in res.output
    res = r.invoke(app, ["joint", "suggest", "--run", str(tmp_path), "--user", "u0"])
    assert res.exit_code != 0 and "not a joint run" in res.output


def test_search_fused_with_bm25(run_dir):
    """--bm25-lam 0 is BM25's own ranking; a positive lam re-ranks BM25's candidates only."""
    from onefeed.data.schemas import Dataset
    from onefeed.search.bm25 import BM25Config, BM25Retriever

    ds = Dataset.load(run_dir.parent / "data")
    query = ds.items.sort("item")["title"][3]
    bm25 = BM25Retriever()
    bm25.fit(ds, BM25Config())
    ids = ds.items.sort("item")["item_id"]
    cands = [ids[int(i)] for i in bm25.retrieve([query], 5)[0] if i >= 0]
    r = CliRunner(env={"COLUMNS": "300"})
    base = ["joint", "search", "--run", str(run_dir), "--user", "u1", "--query", query,
            "-k", "3", "--bm25-depth", "5", "--json"]
    plain = _json(r.invoke(app, base + ["--bm25-lam", "0"]))
    assert [x["item_id"] for x in plain["items"]] == cands[:3]
    fused = _json(r.invoke(app, base + ["--bm25-lam", "0.5"]))
    assert {x["item_id"] for x in fused["items"]} <= set(cands)


def test_recommend_exclude_seen_drops_the_history_window(run_dir):
    """``joint recommend --exclude-seen`` (and ``onefeed recommend`` on a joint run) returns k
    distinct items outside the user's history window; ``--keep-seen`` is the default list."""
    import numpy as np

    from onefeed.cli.joint import _load

    pred = _load(run_dir)  # the onefeed.predict.Predictor the bench and the service use
    ids = pred.item_ids
    seen = {ids[int(i)] for i in pred.joint.seen_items(np.array([0]), "test")[0] if i >= 0}
    assert seen  # u0 (user 0) has items in its window
    r = CliRunner(env={"COLUMNS": "300"})
    base = ["--run", str(run_dir), "--user", "u0", "-k", "4", "--beam", "5", "--json"]

    def listed(*args):
        return [x["item_id"] for x in _json(r.invoke(app, list(args)))["items"]]

    excl = listed("joint", "recommend", *base, "--exclude-seen")
    assert len(excl) == len(set(excl)) == 4 and not set(excl) & seen
    assert listed("recommend", *base, "--exclude-seen") == excl
    assert listed("joint", "recommend", *base, "--keep-seen") == \
        listed("joint", "recommend", *base) == listed("recommend", *base, "--keep-seen")
