"""``onefeed run --quick`` from a clean directory with default paths, then every serving command
on the models it trained with no extra flags (issue 19). One quick main job (~1.5 min on 2
shared cores) serves the whole module."""

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onefeed.cli import app

RUNNER = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """(cwd, summary output) of ``onefeed run --quick`` in an empty cwd, $ONEFEED_RUNS unset."""
    cwd = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.delenv("ONEFEED_RUNS", raising=False)
        t0 = time.perf_counter()
        res = RUNNER.invoke(app, ["run", "--quick"])
        seconds = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    print(f"onefeed run --quick: {seconds:.0f} s")
    return cwd, res.output


def _in(cwd: Path, args: list[str]):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        return RUNNER.invoke(app, args)


def test_run_writes_runs_synthetic_under_the_cwd(main_job):
    cwd, out = main_job
    root = cwd / "runs" / "synthetic"
    for rel in ("data/manifest.json", "sid/content-rq_kmeans", "report/report.md",
                "report/results.json", "report/recall_at_k.png",
                "model/tiger/seed0/best", "model/onefeed/seed0/best"):
        assert (root / rel).exists(), rel
    # the summary says what tiger is, points to the report and plots, shows onefeed's own
    # search and query-suggestion rows, and prints readable progress lines (no dict reprs)
    assert "onefeed generative core (tiger)" in out
    assert "report: runs/synthetic/report/report.md" in out
    assert "plot: runs/synthetic/report/recall_at_k.png" in out
    summary = out[out.index("onefeed — summary"):]
    search_block = summary[summary.index("search on held-out queries"):
                           summary.index("query suggestion:")]
    assert "onefeed joint model" in search_block and "bm25" in search_block
    assert "suggested next queries" in out and "onefeed joint suggest --run" in out
    assert "{'recall@10'" not in out and "recommendation: recall@10 " in out


def test_main_job_models_name_their_inputs(main_job):
    cwd, _ = main_job
    for row in ("tiger", "onefeed"):
        manifest = json.loads((cwd / f"runs/synthetic/model/{row}/seed0/manifest.json")
                              .read_text())
        assert Path(manifest["data"]) == (cwd / "runs/synthetic/data").resolve()
        assert Path(manifest["sid"]) == (cwd / "runs/synthetic/sid/content-rq_kmeans").resolve()


def test_recommend_and_evaluate_on_the_main_job_model_without_flags(main_job):
    cwd, _ = main_job
    run = "runs/synthetic/model/tiger/seed0"
    res = _in(cwd, ["recommend", "--run", run, "--user", "u3", "-k", "4", "--json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert rec["user"] == "u3" and [r["rank"] for r in rec["items"]] == [1, 2, 3, 4]
    assert {"item_id", "title", "score"} <= set(rec["items"][0])
    table = _in(cwd, ["recommend", "--run", run, "--user", "u3", "-k", "4"])
    assert table.exit_code == 0 and "user u3" in table.output
    assert rec["items"][0]["item_id"] in table.output
    res = _in(cwd, ["evaluate", "--run", run, "--split", "valid", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "ndcg@10" in res.output.lower() and (cwd / run / "eval").is_dir()


def test_recommend_serves_a_joint_run(main_job):
    cwd, _ = main_job
    run = "runs/synthetic/model/onefeed/seed0"
    via_recommend = _in(cwd, ["recommend", "--run", run, "--user", "u5", "-k", "3", "--json"])
    via_joint = _in(cwd, ["joint", "recommend", "--run", run, "--user", "u5", "-k", "3",
                          "--json"])
    assert via_recommend.exit_code == 0, via_recommend.output
    assert json.loads(via_recommend.output) == json.loads(via_joint.output)
    assert len(json.loads(via_recommend.output)["items"]) == 3


def test_evaluate_names_a_joint_run(main_job):
    cwd, _ = main_job
    res = _in(cwd, ["evaluate", "--run", "runs/synthetic/model/onefeed/seed0"])
    assert res.exit_code != 0
    assert "is a joint run" in res.output and "onefeed joint recommend" in res.output
    assert "unknown key" not in res.output


def test_joint_commands_on_the_main_job_model(main_job):
    cwd, _ = main_job
    run = "runs/synthetic/model/onefeed/seed0"
    found = _in(cwd, ["joint", "search", "--run", run, "--user", "u1", "--query", "watches",
                      "-k", "2", "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["query"] == "watches"
    sug = _in(cwd, ["joint", "suggest", "--run", run, "--user", "u1", "-k", "2"])
    assert sug.exit_code == 0 and "user u1" in sug.output and "query" in sug.output


def test_recall_plot_ticks_are_the_ks(main_job):
    from onefeed.evaluation.report import recall_figure

    cwd, _ = main_job
    doc = json.loads((cwd / "runs/synthetic/report/results.json").read_text())
    fig = recall_figure(doc)
    ticks = fig.axes[0].get_xticks()
    assert list(ticks) == [1, 5, 10, 20]  # curve_k 20, ks 5/10/20: whole numbers only
