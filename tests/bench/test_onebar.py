"""The beauty-onebar suite on a small synthetic world: record shape, paired tests vs the best
baseline, latency, row registry (unknown rows refused, a plugged-in row merged with old ones)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from onefeed.bench import onebar
from onefeed.config import ConfigError
from onefeed.onebar.labels import REJECT

_spec = importlib.util.spec_from_file_location(
    "_onebar_world", Path(__file__).parents[1] / "onebar" / "world.py")
world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(world)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    data, emb = world.save_world(root)
    cfg = onebar.load_config(onebar.REPO / "configs" / "bench" / "onebar" / "beauty.toml", [
        f"data={data}", f"artifact={root / 'onebar'}", f"embeddings={emb}",
        'onebar_overrides=["plant_share=0.05"]', "latency_triggers=500",
        'rows=["query-prior", "keyword", "anchor-cascade"]'])  # model rows: test_onebar_train
    out = onebar.run_suite(cfg, root / "results", progress=lambda s: None)
    return root, cfg, out, json.loads((out / "results.json").read_text())


def test_results_record_rows_metrics_latency_and_provenance(suite):
    root, cfg, out, doc = suite
    assert list(doc["models"]) == ["query-prior", "keyword", "anchor-cascade"]
    assert {"commit", "machine", "seeds", "config", "onebar_config", "format"} <= set(doc)
    assert doc["format"] == "schema" and doc["seeds"] == [0]
    assert doc["artifact"]["n_planted"] == 3 and (root / "onebar" / "manifest.json").exists()
    for row in doc["models"].values():
        mq = row["metrics_query"]
        assert set(mq) == set(onebar.METRICS)
        assert mq["blocked_exposed"]["mean"] == 0.0
        assert mq["hr@1"]["mean"] <= mq["hr@4"]["mean"] <= mq["hr@8"]["mean"]
        lat = row["latency_ms"]
        assert lat["n"] == 500 and 0 < lat["p50"] <= lat["p99"]
    text = (out / "report.md").read_text()
    assert "| `anchor-cascade` | 1 |" in text and "p99 ms" in text


def test_paired_tests_are_against_the_best_baseline(suite):
    _, _, out, doc = suite
    rows = doc["models"]
    best = max(rows, key=lambda n: rows[n]["metrics_query"]["hr@8"]["mean"])
    assert doc["best_baseline"] == best
    for name, row in rows.items():
        sig = row["significance"]
        assert sig["vs"] == best and set(sig) == {"vs", "hr@8", "mrr@8"}
        assert sig["hr@8"]["mean_a"] == pytest.approx(row["metrics_query"]["hr@8"]["mean"])
        assert sig["hr@8"]["n"] == doc["dataset"]["n_cases"] - doc["dataset"]["n_reject"]
    cases = pl.read_parquet(out / "per_case.parquet")
    assert cases.filter(pl.col("row") == best)["hr@8"].mean() == pytest.approx(
        rows[best]["metrics_query"]["hr@8"]["mean"])


def test_unknown_rows_are_refused():
    with pytest.raises(ConfigError, match=r"rows \['gpt'\] not registered; known: "):
        onebar.load_config(onebar.REPO / "configs" / "bench" / "onebar" / "beauty.toml",
                           ['rows=["gpt"]'])
    with pytest.raises(ConfigError, match="not registered"):
        onebar.run_suite(onebar.OneBarSuiteConfig(), rows=["nope"])


def test_a_checkpoint_row_without_a_checkpoint_fails_clearly(suite, tmp_path, monkeypatch):
    _, cfg, _, _ = suite
    monkeypatch.setitem(onebar.ROWS, "onebar", onebar.Row(onebar.checkpoint_row("elsewhere")))
    with pytest.raises(ConfigError, match=r"row elsewhere: no trained model at "
                       r".*models/elsewhere/seed0"):
        onebar.run_suite(cfg, tmp_path, rows=["onebar"], progress=lambda s: None)


def test_a_plugged_in_row_runs_every_seed_and_keeps_the_earlier_rows(suite, monkeypatch):
    root, cfg, out, _ = suite
    seen = []

    def oracle(ctx, seed):  # the target first for seed 1, a miss for seed 0
        seen.append(seed)
        target = {(e.trigger, e.history): e.target for e in ctx.examples}
        return lambda t, h, k: ([target[(t, tuple(h))]] if seed else ["zzz"]) + ["filler"]

    monkeypatch.setitem(onebar.ROWS, "onebar", onebar.Row(oracle))
    onebar.run_suite(cfg, out, rows=["onebar"], seeds=[0, 1], progress=lambda s: None)
    doc = json.loads((out / "results.json").read_text())
    assert seen == [0, 1] and list(doc["models"])[-1] == "onebar"
    assert set(doc["models"]) == {"query-prior", "keyword", "anchor-cascade", "onebar"}
    hr = doc["models"]["onebar"]["metrics_query"]["hr@1"]
    assert hr["per_seed"][0] == 0.0 and hr["mean"] == pytest.approx(hr["per_seed"][1] / 2)
    sig = doc["models"]["onebar"]["significance"]["hr@8"]
    assert sig["mean_a"] == pytest.approx(hr["mean"]) and sig["ttest_p"] < 0.05
    assert doc["models"]["onebar"]["metrics_query"]["blocked_exposed"]["mean"] == 0.0
    alone = onebar.run_suite(cfg, root / "alone", rows=["onebar"], progress=lambda s: None)
    doc = json.loads((alone / "results.json").read_text())
    assert list(doc["models"]) == ["onebar"] and doc["best_baseline"] is None
    assert "no baseline row" in (alone / "report.md").read_text()


def test_latency_cycles_triggers_and_reports_quantiles():
    from onefeed.onebar.labels import Example

    exs = [Example(0, t, "q", False, "test") for t in range(3)]
    calls = []
    lat = onebar.latency_ms(lambda t, h, k: calls.append(t) or [REJECT], exs, 8, 7)
    assert calls == [0, 1, 2, 0, 1, 2, 0] and lat["n"] == 7
    assert 0 <= lat["p50"] <= lat["p99"] and np.isfinite(lat["mean"])
