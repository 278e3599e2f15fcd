"""``onefeed unisearch train`` and ``onefeed search`` on the toy joint world (12 items, search
clicks + title queries): progress, the run summary, JSON hits, Predictor dispatch, errors."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from onefeed.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world  # noqa: E402

SMALL = ["model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.query_layers=1",
         "model.item_layers=1", "model.decoder_layers=1", "model.n_levels=2",
         "model.codebook_size=4", "model.max_query_words=4", "model.max_item_words=6",
         "train.epochs=2", "train.warmup_steps=1", "task.batch_size=8", "task.eval_beam=4",
         "task.hard_negatives=1", "task.neighbours=3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unisearch-cli")
    make_world(n_users=8).save(tmp / "data")
    args = ["unisearch", "train", "--data", str(tmp / "data"), "--out", str(tmp / "run")]
    for s in SMALL:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return tmp, res.output


def _json(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.output[res.output.index("{"):])


def test_train_prints_progress_and_a_summary_and_records_the_data(trained):
    tmp, output = trained
    assert "epoch 2: valid" in output  # the training loop's per-epoch line
    summary = json.loads(output[output.rindex("{\n"):])
    assert summary["run"] == str(tmp / "run") and summary["epochs"] == 2
    assert summary["best_epoch"] in (1, 2) and 0.0 <= summary["collision_rate"] <= 100.0
    manifest = json.loads((tmp / "run" / "manifest.json").read_text())
    assert manifest["kind"] == "unisearch"
    assert manifest["data"] == str((tmp / "data").resolve()) and manifest["data_sha256"]
    assert (tmp / "run" / "codes" / "sid_table.parquet").is_file()


def test_search_prints_json_hits_the_same_as_the_library_call(trained):
    from onefeed.predict import Predictor
    from onefeed.tasks.unisearch import load_frozen, search

    tmp, _ = trained
    out = _json(CliRunner().invoke(app, ["search", "--run", str(tmp / "run"), "--query",
                                         "red lipstick", "-k", "3", "--beam", "6"]))
    assert out["query"] == "red lipstick" and out["user"] is None
    assert [r["rank"] for r in out["items"]] == [1, 2, 3]
    model, index = load_frozen(tmp / "run" / "codes")
    want = search(model, index, ["red lipstick"], k=3, beam=6)
    pred = Predictor.from_run(tmp / "run")
    assert [r["item_id"] for r in out["items"]] == [pred.item_ids[i] for i in
                                                    want.items[0].tolist()]
    assert [r["score"] for r in out["items"]] == [round(float(s), 4) for s in want.scores[0]]
    # a known user is accepted (and not read); an unknown one is a usage error
    same = _json(CliRunner().invoke(app, ["search", "--run", str(tmp / "run"), "--query",
                                          "red lipstick", "-k", "3", "--beam", "6",
                                          "--user", "u0"]))
    assert same["items"] == out["items"]
    bad = CliRunner().invoke(app, ["search", "--run", str(tmp / "run"), "--query", "red",
                                   "--user", "nobody"])
    assert bad.exit_code == 2 and "unknown user 'nobody'" in bad.output


def test_predictor_scores_match_the_beam_and_fusion_and_unsupported_tasks(trained):
    from onefeed.predict import Predictor, Unsupported

    tmp, _ = trained
    pred = Predictor.from_run(tmp / "run")
    assert pred.kind == "unisearch" and pred.describe()["tasks"] == ["search", "score"]
    hits = pred.search(["blue cream"], [None], k=4, beam=8)[0]
    scores = pred.score([None], [[h.item for h in hits]], queries=["blue cream"])
    assert np.allclose(scores[0], [h.score for h in hits], atol=1e-4)  # beam == teacher forcing
    fused = pred.search(["blue cream"], [None], k=4, fuse_bm25=0.0)[0]
    bm25_only = pred._bm25_candidates(["blue cream"], 4)[0][0]
    assert [h.item for h in fused] == [pred.item_ids[i] for i in bm25_only if i >= 0]
    with pytest.raises(Unsupported, match="UniSearch run .* search"):
        pred.recommend(["u0"], 3)
    with pytest.raises(Unsupported, match="UniSearch run"):
        pred.suggest(["u0"], 3)
    with pytest.raises(Unsupported, match="without a query"):
        pred.score(["u0"], [[hits[0].item]])


def test_train_and_search_errors_are_one_line(tmp_path):
    r = CliRunner()
    res = r.invoke(app, ["unisearch", "train", "--data", str(tmp_path), "--out",
                         str(tmp_path / "run")])
    assert res.exit_code == 2 and "not a prepared dataset" in res.output
    res = r.invoke(app, ["search", "--run", str(tmp_path), "--query", "red"])
    assert res.exit_code == 2 and "no trained run here" in res.output
    res = r.invoke(app, ["search", "--run", str(tmp_path), "--query", "  "])
    assert res.exit_code == 2 and "query is empty" in res.output
