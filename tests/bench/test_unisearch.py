"""``onefeed.bench.unisearch`` on the toy joint world (12 items): every row runs, BM25 equals
the retriever's own ranking, metrics by hand, the trie study, row-name rule, merging rows."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from onefeed.bench import unisearch as bench
from onefeed.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from joint_toy import make_world  # noqa: E402

MODEL = """
[model]
d_model = 16
n_heads = 2
d_ff = 32
query_layers = 1
item_layers = 1
decoder_layers = 1
n_levels = 2
codebook_size = 4
max_query_words = 4
max_item_words = 6
[train]
epochs = 2
warmup_steps = 1
time_limit_min = 5.0
[task]
batch_size = 8
eval_beam = 4
neighbours = 3
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench-unisearch")
    make_world(n_users=10).save(tmp / "data")
    (tmp / "model.toml").write_text(MODEL)
    cfg = bench.load_config(None, [f"data={tmp / 'data'}", f"model_config={tmp / 'model.toml'}",
                                   "rcl=[\"task.hard_negatives=1\"]", "test_cases=0",
                                   "minilm=[\"model.dropout=0.0\"]",  # no MiniLM load here
                                   "valid_cases=0", "beam=8", "trie_beam=4", "bm25_depth=12",
                                   "spo.steps=2", "spo.batch_queries=4", "spo.group=4",
                                   f"rows={json.dumps(list(bench.ROWS))}"])
    out = bench.run_suite(cfg, tmp / "out", progress=lambda s: None)
    return tmp, cfg, json.loads((out / "results.json").read_text())


def test_every_row_scores_and_bm25_is_the_retrievers_own_ranking(suite):
    from onefeed.data.schemas import Dataset
    from onefeed.search.bm25 import BM25Config, BM25Retriever

    tmp, cfg, doc = suite
    assert list(doc["models"]) == list(bench.ROWS)
    assert doc["dataset"]["test_cases"] == 10 and doc["commit"] and doc["machine"]
    ds = Dataset.load(tmp / "data")
    cases = bench.eval_cases(ds, "test", 0)
    bm25 = BM25Retriever()
    bm25.fit(ds, BM25Config())
    top = bm25.retrieve(cases.queries, 10)
    hit = top == cases.targets[:, None]
    want = hit.any(1).mean()
    got = doc["models"]["bm25"]["metrics_search"]
    assert got["recall@10"]["mean"] == pytest.approx(want)
    for row in doc["models"].values():
        for m in bench.METRICS:
            assert 0.0 <= row["metrics_search"][m]["mean"] <= 1.0
        assert row["metrics_search"]["recall@10"]["mean"] <= \
            row["metrics_search"]["recall@100"]["mean"]


def test_trained_rows_record_epochs_cap_trie_study_and_fusion(suite):
    tmp, _, doc = suite
    run = doc["models"]["unisearch"]["runs"]["0"]
    assert run["train"]["epochs_reached"] == 2 and run["train"]["time_limit_min"] == 5.0
    assert run["train"]["overrides"] == ["task.hard_negatives=1"]
    assert (tmp / "out" / "scratch" / "unisearch" / "seed0" / "codes").is_dir()
    trie = run["trie"]
    assert 0.0 <= run["dense_rcl_recall@10"] <= 1.0
    assert 0.0 <= trie["invalid_share"] <= 1.0 and trie["beam"] == 4
    fused = doc["models"]["unisearch-bm25-fused"]["runs"]["0"]["fusion"]
    assert fused["lam"] in fused["valid_ndcg10_per_lam"] or \
        str(fused["lam"]) in fused["valid_ndcg10_per_lam"]
    spo = doc["models"]["unisearch-spo"]["runs"]["0"]
    assert spo["spo"]["steps"] == 2 and spo["base"] == "unisearch"
    assert 0.0 <= spo["spo"]["valid_recall10_after"] <= 1.0
    full = doc["models"]["bm25"]["runs"]["0"]["full_test"]
    assert full["n"] == 10 and full["recall@10"] == doc["models"]["bm25"]["metrics_search"][
        "recall@10"]["mean"]  # test_cases = 0: the subset is the whole split
    report = (tmp / "out" / "report.md").read_text()
    assert "Trie constraint" in report and "`unisearch-bm25-fused`" in report


def test_dense_recall_ranks_by_the_l2_similarity():
    import torch

    class Fake:  # two queries at the 1-d points 0 and 10.4; items at 0, 1, ..., 11
        class cfg:
            max_query_words, similarity = 2, "l2"

        def eval(self):
            return self

        def search_state(self, words):
            return None, None, torch.tensor([[0.0], [10.4]])[:len(words)]

    class Index:
        vectors = torch.arange(12, dtype=torch.float32)[:, None]

    # nearest 10: 0..9 for the first query, 2..11 for the second
    assert bench.dense_recall10(Fake(), Index(), bench.Cases(["a", "b"], np.array([9, 1]))) == 0.5
    assert bench.dense_recall10(Fake(), Index(), bench.Cases(["a", "b"], np.array([0, 2]))) == 1.0
    assert bench.dense_recall10(Fake(), Index(), bench.Cases(["a", "b"], np.array([10, 0]))) == 0.0


def test_search_metrics_by_hand():
    items = np.array([[3, 1, 2] + [-1] * 97, [5] * 1 + [-1] * 99, [-1] * 50 + [7] + [-1] * 49])
    m = bench.search_metrics(items, np.array([1, 4, 7]))
    assert m["recall@10"] == pytest.approx(1 / 3) and m["mrr@10"] == pytest.approx(0.5 / 3)
    assert m["recall@100"] == pytest.approx(2 / 3)


def test_generative_rows_may_not_carry_hybrid_names_and_unknown_rows_fail(monkeypatch):
    with pytest.raises(ConfigError, match="not registered"):
        bench.check_rows(["nope"])
    with pytest.raises(ConfigError, match="fused_base must be one of"):
        bench.load_config(None, ["fused_base=bm25"])
    monkeypatch.setitem(bench.ROWS, "unisearch-dense", bench.Row(bench.row_bm25, "generative"))
    with pytest.raises(ConfigError, match="must not be named like hybrids"):
        bench.check_rows(["bm25"])


def test_a_subset_run_keeps_the_other_rows(suite):
    tmp, cfg, doc = suite
    out = bench.run_suite(cfg, tmp / "out", rows=["bm25"], progress=lambda s: None)
    again = json.loads((out / "results.json").read_text())
    assert list(again["models"]) == list(doc["models"])
    assert again["models"]["unisearch"] == doc["models"]["unisearch"]


def test_the_report_reads_rows_written_before_newer_fields(suite):
    _, _, doc = suite
    old = json.loads(json.dumps(doc))
    for key in ("valid_recall10_before", "valid_recall10_after"):
        del old["models"]["unisearch-spo"]["runs"]["0"]["spo"][key]
    del old["models"]["unisearch"]["runs"]["0"]["dense_rcl_recall@10"]
    del old["models"]["bm25"]["runs"]["0"]["full_test"]
    text = bench.markdown(old)
    assert "SPO steps" in text and "valid Recall@10 0" not in text.split("SPO steps")[1][:200]
