"""End to end on the built-in synthetic world: prepare -> plant -> evidence -> examples ->
baselines -> metrics, in a few seconds."""

import numpy as np
import pytest

from onefeed.data.prepare import PrepareConfig, prepare
from onefeed.data.synthetic import SyntheticConfig, generate
from onefeed.data.views import train_sequences
from onefeed.embeddings.collaborative import CollabConfig, collaborative_embeddings
from onefeed.evaluation.query_metrics import blocked
from onefeed.onebar.baselines import BASELINES
from onefeed.onebar.config import load_config
from onefeed.onebar.evaluate import evaluate
from onefeed.onebar.evidence import EvidenceIndex, parse, serialise
from onefeed.onebar.labels import build_examples, example_evidence, plant_unsafe
from onefeed.paths import REPO
from onefeed.search.bm25 import BM25Retriever


@pytest.fixture(scope="module")
def pipeline():
    _, raw = generate(SyntheticConfig(n_users=150, n_items=120, events_per_user=15, seed=3),
                      progress=False)
    cfg = load_config(REPO / "configs" / "onebar" / "default.toml", ["plant_share=0.05"])
    ds, planted = plant_unsafe(prepare(PrepareConfig(name="s", k_core=2), raw),
                               cfg.block_list, cfg.plant_share, cfg.seed)
    emb = collaborative_embeddings(train_sequences(ds), ds.n_items, CollabConfig(dim=16))
    index = EvidenceIndex.build(ds, emb, cfg)
    return ds, planted, cfg, index, build_examples(ds, index, cfg)


def test_examples_cover_every_split_and_plant_rejects(pipeline):
    ds, planted, cfg, index, examples = pipeline
    splits = {e.split for e in examples}
    assert splits == {"train", "valid", "test"}
    rejected = {e.trigger for e in examples if e.reject}
    planted_triggers = {e.trigger for e in examples} & set(planted.tolist())
    assert planted_triggers and planted_triggers <= rejected
    assert all(e.target == "[REJECT]" for e in examples if e.reject)
    for e in examples[:200]:
        ev = example_evidence(index, e, cfg)
        assert parse(serialise(ev)) == ev  # the schema keeps its six slots
        assert not any(blocked(q, cfg.block_list) for q in ev.anchors + ev.rag)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_score_and_never_expose_a_blocked_term(pipeline, name):
    ds, _, cfg, index, examples = pipeline
    test = [e for e in examples if e.split == "test"]
    model = BASELINES[name]()
    model.fit(ds, index, cfg)
    bm25 = BM25Retriever()
    bm25.fit(ds, BM25Retriever.Config())
    out = evaluate(model.suggest, test, cfg, bm25.n_matches)
    m = out["metrics"]
    assert m["blocked_exposed"] == 0.0
    assert all(0.0 <= v <= 1.0 for v in m.values())
    assert m["hr@1"] <= m["hr@4"] <= m["hr@8"] <= m["edit_hr@8"]
    assert len(out["per_case"]["user"]) == out["n"]["answerable"] > 0
    assert np.all(np.diff(out["per_case"]["user"]) > 0)  # one test case per user: pairable
