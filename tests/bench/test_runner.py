"""End-to-end: the `quick` suite on the in-memory synthetic dataset, results.json schema,
subset re-runs merging, report and plots. One run shared by the module (a few seconds)."""

import json

import polars as pl
import pytest

from onefeed.config import ConfigError
from onefeed.bench.runner import load_suite, run_suite
from onefeed.paths import REPO

QUICK = REPO / "configs" / "bench" / "quick.toml"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = load_suite(QUICK, ["seeds=[0,1]"])
    run_suite(cfg, out, quick=False, suite_path=str(QUICK))
    return out


def test_results_schema(quick_run):
    doc = json.loads((quick_run / "results.json").read_text())
    for key in ("suite", "dataset", "protocol", "commit", "machine", "seeds", "models"):
        assert key in doc
    assert doc["suite"] == "quick" and doc["seeds"] == [0, 1]
    assert doc["protocol"]["filter_seen"] is False
    models = doc["models"]
    assert {"pop", "itemknn", "sasrec", "gru4rec", "bert4rec", "bm25", "keyword"} <= set(models)
    assert all(name == name.lower() for name in models)
    sas = models["sasrec"]
    assert len(sas["metrics"]["recall@10"]["per_seed"]) == 2  # headline: all seeds
    assert len(models["pop"]["metrics"]["recall@10"]["per_seed"]) == 1
    for stat in (sas["metrics"]["ndcg@10"], sas["train_seconds"], sas["infer_seconds"]):
        assert set(stat) == {"mean", "std", "per_seed"}
    assert "recall@10" in models["bm25"]["metrics_search"]
    assert "metrics" not in models["bm25"]
    assert {"hr@10", "mrr@10", "ed_hr@10", "bleu@10", "retrievability@1"} <= \
        set(models["keyword"]["metrics_query"])
    best = [n for n, m in models.items() if m.get("is_best", {}).get("metrics")]
    assert len(best) == 1
    others = [n for n in models if "metrics" in models[n] and n != best[0]]
    assert all("ttest_p" in models[n]["significance"]["metrics"] for n in others)


def test_per_case_file_matches_summary(quick_run):
    doc = json.loads((quick_run / "results.json").read_text())
    pc = pl.read_parquet(quick_run / "per_case.parquet")
    pop = pc.filter((pl.col("model") == "pop") & (pl.col("task") == "rec"))
    assert pop.height == doc["dataset"]["n_cases"]
    assert pop["ndcg@10"].mean() == pytest.approx(doc["models"]["pop"]["metrics"]["ndcg@10"]["mean"],
                                                  rel=1e-5)


def test_report_and_plots(quick_run):
    report = (quick_run / "report.md").read_text()
    assert report.index("## Protocol") < report.index("## Results")
    assert "Full ranking" in report and "not** filtered" in report
    assert "| `sasrec` | 2 |" in report
    assert (quick_run / "recall_at_k.png").stat().st_size > 1000
    assert (quick_run / "training_curves.png").exists()


def test_subset_run_merges_into_existing_results(quick_run):
    cfg = load_suite(QUICK)
    run_suite(cfg, quick_run, quick=True, models=["pop"])  # quick mode differs: not merged
    doc = json.loads((quick_run / "results.json").read_text())
    assert list(doc["models"]) == ["pop"]
    run_suite(cfg, quick_run, quick=True, models=["bm25"])
    doc = json.loads((quick_run / "results.json").read_text())
    assert list(doc["models"]) == ["pop", "bm25"]  # merged, in suite order
    del cfg.models["pop"]  # a row taken out of the suite leaves its results at the next run
    run_suite(cfg, quick_run, quick=True, models=["bm25"])
    doc = json.loads((quick_run / "results.json").read_text())
    assert list(doc["models"]) == ["bm25"]
    assert set(pl.read_parquet(quick_run / "per_case.parquet")["model"].unique()) == {"bm25"}


def test_bad_configs_are_rejected(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('suite = "x"\n[models.sasrec]\nkind = "nope"\n')
    with pytest.raises(ValueError, match="unknown model kind 'nope'"):
        load_suite(bad)
    bad.write_text('suite = "x"\n[models.sasrec]\nkind = "sasrec"\nparams = { depth = 3 }\n'
                   '[dataset]\nsynthetic = true\n')
    with pytest.raises(ConfigError, match="depth"):
        run_suite(load_suite(bad), tmp_path / "out")
    with pytest.raises(ConfigError, match="models.Bad: model names must be lowercase"):
        bad.write_text('suite = "x"\n[models.Bad]\nkind = "pop"\n')
        load_suite(bad)


def test_seeds_run_one_at_a_time_accumulate(tmp_path, monkeypatch):
    from onefeed.bench import runner

    calls = []  # a fake git: each call is a new commit, so a late or repeated read shows
    monkeypatch.setattr(runner, "git_commit", lambda: calls.append(1) or f"c{len(calls)}")
    cfg = load_suite(QUICK)
    run_suite(cfg, tmp_path, models=["sasrec"], seeds=[0])
    run_suite(cfg, tmp_path, models=["sasrec"], seeds=[1])
    doc = json.loads((tmp_path / "results.json").read_text())
    sas = doc["models"]["sasrec"]
    assert sas["seeds"] == [0, 1]
    # each seed keeps the commit of the run that made it, read once at its start
    assert sas["commits"] == {"0": "c1", "1": "c2"} and doc["commit"] == "c2"
    report = (tmp_path / "report.md").read_text()  # the report names both, not only the last
    assert "- `c1`: `sasrec` 0" in report and "- `c2`: `sasrec` 1" in report
    assert len(sas["metrics"]["ndcg@10"]["per_seed"]) == 2
    pc = pl.read_parquet(tmp_path / "per_case.parquet")
    assert sorted(pc["seed"].unique().to_list()) == [0, 1]
    # seed-by-seed equals all seeds in one run
    run_suite(cfg, tmp_path / "all", models=["sasrec"], seeds=[0, 1])
    both = json.loads((tmp_path / "all" / "results.json").read_text())["models"]["sasrec"]
    assert both["metrics"]["ndcg@10"]["per_seed"] == pytest.approx(
        sas["metrics"]["ndcg@10"]["per_seed"])


def test_query_cases_subsample_is_fixed_and_shared():
    import numpy as np

    from onefeed.data.views import RecCases
    from onefeed.bench.runner import subsample_query_cases

    cases = RecCases(np.arange(10), np.zeros((10, 2), dtype=np.int64), np.arange(10) + 100)
    refs = [f"q{i}" for i in range(10)]
    a, ra = subsample_query_cases(cases, refs, 4)
    b, rb = subsample_query_cases(cases, refs, 4)
    assert ra == rb and len(ra) == 4 and (a.users == b.users).all()
    assert [f"q{u}" for u in a.users] == ra and (a.targets == a.users + 100).all()
    full, rf = subsample_query_cases(cases, refs, 0)
    assert rf == refs and full is cases


def test_eval_query_reports_the_share_of_users_off_the_global_list():
    """A suggester that shows everyone the global list scores personal_share 0; one user of
    four with another list scores 0.25 (hand-computed)."""
    import numpy as np

    from onefeed.bench.runner import eval_query
    from onefeed.data.views import RecCases
    from onefeed.evaluation.protocol import Protocol

    glob = ["red lipstick", "blue mascara", "nail polish"]

    class Fixed:
        def __init__(self, lists):
            self.lists = lists

        def generate(self, cases, k):
            return self.lists

    class AllMatch:
        def n_matches(self, queries):
            return np.ones(len(queries), dtype=np.int64)

    cases = RecCases(np.arange(4), np.zeros((4, 2), dtype=np.int64), np.zeros(4, dtype=np.int64))
    proto = Protocol(query_ks=[1, 2])
    refs = ["red lipstick"] * 4
    same = eval_query(Fixed([glob[:2]] * 4), cases, refs, proto, AllMatch(), glob)[0]
    assert same["personal_share@2"] == 0.0 and same["hr@1"] == 1.0
    one_off = [glob[:2]] * 3 + [["green soap", "red lipstick"]]
    assert eval_query(Fixed(one_off), cases, refs, proto, AllMatch(), glob)[0][
        "personal_share@2"] == 0.25
    assert "personal_share@2" not in eval_query(Fixed(one_off), cases, refs, proto, AllMatch())[0]


def test_a_model_reporting_its_loop_time_is_credited_with_it(tmp_path, monkeypatch):
    """A resumed run's fit takes seconds; the loop's time summed over resumes is what counts."""
    from onefeed.bench import runner

    real = runner.resolve

    class Resumed(real("pop")):
        def fit(self, ds, cfg, seed):
            log = super().fit(ds, cfg, seed)
            log.train_seconds = 1234.5
            return log

    monkeypatch.setattr(runner, "resolve", lambda kind: Resumed if kind == "pop" else real(kind))
    run_suite(load_suite(QUICK), tmp_path, models=["pop", "itemknn"], seeds=[0])
    models = json.loads((tmp_path / "results.json").read_text())["models"]
    assert models["pop"]["train_seconds"]["per_seed"] == [1234.5]
    assert models["pop"]["training"]["0"]["fit_seconds"] < 1234.5
    knn = models["itemknn"]  # no loop time reported: the wall time of fit
    assert knn["train_seconds"]["per_seed"][0] == pytest.approx(
        knn["training"]["0"]["fit_seconds"], abs=1e-3)


def test_compare_pairs_are_tested_head_to_head(tmp_path):
    import numpy as np

    from onefeed.evaluation.significance import paired_ttest

    cfg = load_suite(QUICK)
    cfg.compare = [["itemknn", "pop"], ["pop", "bm25"]]  # the second shares no task: skipped
    run_suite(cfg, tmp_path, models=["pop", "itemknn", "bm25"], seeds=[0])
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["compare"] == cfg.compare
    [row] = doc["comparisons"]
    assert (row["a"], row["b"], row["task"], row["metric"]) == ("itemknn", "pop", "metrics",
                                                                "ndcg@10")
    assert row["mean_a"] == doc["models"]["itemknn"]["metrics"]["ndcg@10"]["mean"]
    pc = pl.read_parquet(tmp_path / "per_case.parquet").filter(pl.col("task") == "rec")
    a = pc.filter(pl.col("model") == "itemknn").sort("user")["ndcg@10"].to_numpy()
    b = pc.filter(pl.col("model") == "pop").sort("user")["ndcg@10"].to_numpy()
    assert row["n"] == len(a) and row["ttest_p"] == pytest.approx(paired_ttest(a, b))
    assert row["mean_a"] - row["mean_b"] == pytest.approx(float(np.mean(a - b)), abs=1e-6)
    assert "### Head to head" in (tmp_path / "report.md").read_text()
