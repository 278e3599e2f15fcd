"""``onefeed bench auto``: the SID rule, the grid, the validation-only choice, the skip rule,
and one end-to-end CLI run on the built-in synthetic world (quick budget)."""

import json
import time

import pytest
from typer.testing import CliRunner

from onefeed.bench.auto import (SidRule, choose, codebook_size, grid_points, load_config,
                                point_name, row_params, search_skip_reason)
from onefeed.bench.runner import ModelSpec
from onefeed.cli import app
from onefeed.data.synthetic import tiny_dataset

RUNNER = CliRunner(env={"COLUMNS": "200"})


@pytest.mark.parametrize("n_items, k", [(1349, 32), (12101, 128), (976, 32), (116, 8),
                                        (1_000_000, 256), (5, 5)])
def test_codebook_size_follows_the_catalogue(n_items, k):
    assert codebook_size(n_items, SidRule()) == k


def test_grid_points_are_the_product_in_file_order():
    grid = {"d_model": [64, 128], "dropout": [0.2, 0.4]}
    assert grid_points(grid) == [{"d_model": 64, "dropout": 0.2}, {"d_model": 64, "dropout": 0.4},
                                 {"d_model": 128, "dropout": 0.2},
                                 {"d_model": 128, "dropout": 0.4}]
    assert grid_points(grid, 2) == grid_points(grid)[:2]
    assert point_name({"model.d_model": 64, "model.dropout": 0.2}) == "d_model=64,dropout=0.2"


def test_choice_reads_only_validation_metrics():
    """The fake trial's test scores rank the points the other way round: the choice must
    follow valid, and the test split must never be asked for."""
    valid = {64: 0.10, 128: 0.30, 256: 0.20}
    test = {64: 0.50, 128: 0.05, 256: 0.40}
    asked = []

    def evaluate(point, split):
        asked.append(split)
        scores = valid if split == "valid" else test
        return {"ndcg@10": scores[point["d_model"]]}, 1.0

    points = grid_points({"d_model": [64, 128, 256]})
    trials, best = choose(points, evaluate, "ndcg@10")
    assert best.point == {"d_model": 128}
    assert [t.score for t in trials] == [0.10, 0.30, 0.20]
    assert asked == ["valid", "valid", "valid"]


def test_choice_takes_the_first_point_on_a_tie_and_names_a_missing_metric():
    _, best = choose(grid_points({"x": [1, 2]}), lambda p, s: ({"ndcg@10": 0.5}, 0.0), "ndcg@10")
    assert best.point == {"x": 1}
    with pytest.raises(KeyError, match="trial x=1: no valid 'mrr@10'"):
        choose([{"x": 1}], lambda p, s: ({"ndcg@10": 0.5}, 0.0), "mrr@10")


def test_search_rows_are_skipped_without_search_sessions():
    reason = search_skip_reason(tiny_dataset(20, 10))  # rec_click events only
    assert reason.startswith("the dataset has no search sessions (no train search_query")


def test_row_params_append_quick_overrides_then_point_then_budget():
    spec = ModelSpec(kind="external", params={"config": "configs/bench/auto/tiger.toml",
                                              "overrides": ["a=1"], "beam": 20},
                     quick={"overrides": ["train.epochs=1"]})
    params = row_params("tiger", spec, {"model.dropout": 0.4}, 1.5, 30, quick=True)
    assert params["overrides"] == ["a=1", "train.epochs=1", "model.max_len=30",
                                   "model.dropout=0.4", "train.time_limit_min=1.5"]
    assert params["config"].endswith("configs/bench/auto/tiger.toml") and params["beam"] == 20
    sas = row_params("sasrec", ModelSpec(kind="sasrec", params={"d_model": 64}),
                     {"d_model": 128}, 2.0, 20, quick=False)
    assert sas == {"d_model": 128, "max_history": 20, "time_limit_min": 2.0}


def test_the_shipped_grid_is_small_and_loads():
    cfg = load_config()
    assert {r: len(grid_points(g)) for r, g in cfg.grid.items()} == \
        {"sasrec": 4, "tiger": 4, "onefeed": 2}
    with pytest.raises(Exception, match="grid.pop: only"):
        load_config(None, ["grid.pop.x=[1]"])


def test_bench_auto_end_to_end_on_the_synthetic_world(tmp_path):
    from onefeed.data.prepare import load_config as prepare_config, prepare_to_dir
    from onefeed.paths import REPO

    data = tmp_path / "data"
    prepare_to_dir(prepare_config(REPO / "configs/prepare/synthetic.toml",
                                  ["options.n_users=80", "options.n_items=60", "name=smoke"]),
                   data)
    t0 = time.perf_counter()
    res = RUNNER.invoke(app, ["bench", "auto", "--data", str(data), "--quick",
                              "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    print(f"onefeed bench auto --quick: {time.perf_counter() - t0:.0f} s")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    auto = doc["auto"]
    assert auto["skipped"] == {} and auto["quick"] and auto["sid"]["codebook_size"] == 8
    assert set(auto["trials"]) == {"sasrec", "tiger", "onefeed"}
    for row, trials in auto["trials"].items():
        assert len(trials) == 2  # quick: the first two points of each grid
        best = max(trials, key=lambda t: t["score"])
        assert auto["chosen"][row] == best["point"]
        assert all("test" not in json.dumps(t["valid"]) for t in trials)
    assert {"pop", "itemknn", "sasrec", "tiger", "onefeed", "bm25"} <= set(doc["models"])
    assert doc["protocol"]["split"] == "test"
    chosen = auto["trials"]["sasrec"][[t["point"] for t in auto["trials"]["sasrec"]]
                                      .index(auto["chosen"]["sasrec"])]["params"]
    assert doc["models"]["sasrec"]["params"]["dropout"] == chosen["dropout"]
    # the test run of the generative row loads the chosen trial's run instead of retraining it
    out = doc["models"]["tiger"]["params"]["out"]
    assert sorted(p.name for p in (tmp_path / "work" / "runs" / "tiger").iterdir()) and \
        (tmp_path / "work" / "runs" / "tiger").joinpath(out.rsplit("/", 1)[-1], "seed0",
                                                        "best").is_dir()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Hyperparameters chosen on validation (`onefeed bench auto`)" in report
    assert (tmp_path / "out" / "recall_at_k.png").exists()


def test_bench_auto_skips_the_search_rows_and_says_why(tmp_path):
    from onefeed.bench.auto import run_auto

    data = tiny_dataset(60, 30).save(tmp_path / "data")  # rec_click events only
    out = run_auto(data, load_config(), tmp_path / "work", tmp_path / "out", quick=True)
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["models"]) == {"pop", "itemknn", "sasrec", "tiger"}
    assert set(doc["auto"]["trials"]) == {"sasrec", "tiger"}
    assert set(doc["auto"]["skipped"]) == {"onefeed", "bm25"}
    report = (out / "report.md").read_text()
    assert "- `onefeed` skipped: the dataset has no search sessions" in report
