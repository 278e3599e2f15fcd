"""The trained rows of the onebar suite on the toy world: each stage trains, saves under
<artifact>/models/<row>/seed<seed> and is reused when its config matches (retrained when not);
simulated-feedback candidate lists by hand; pseudo-epochs; batched == per-call scoring."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from onefeed.bench import onebar
from onefeed.bench.onebar_train import (Chunked, ModelRow, OneBarTrainConfig, candidate_lists,
                                        decide, reject_threshold, repeat_rejects,
                                        trigger_queries)
from onefeed.config import ConfigError
from onefeed.onebar.labels import REJECT, Example
from onefeed.onebar.model import QuerySuggester
from onefeed.onebar.stages import CandidateList, Pair, SftTask

_spec = importlib.util.spec_from_file_location(
    "_onebar_world", Path(__file__).parents[1] / "onebar" / "world.py")
world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(world)

TINY = ["train.model.d_model=32", "train.model.d_ff=64", "train.model.n_heads=2",
        "train.model.enc_layers=1", "train.model.dec_layers=1", "train.model.dropout=0.0",
        "train.model.max_evidence_len=64", "train.verbose_evidence_len=96",
        "train.rows_per_epoch=0", "train.sft.epochs=2", "train.sft.lr=3e-3",
        "train.listwise.train.epochs=1", "train.teacher.epochs=1", "train.piopd.train.epochs=1",
        "train.max_lists=40", "train.valid_cases=30"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    data, emb = world.save_world(root)
    cfg = onebar.load_config(onebar.REPO / "configs" / "bench" / "onebar" / "ml-100k.toml", [
        f"data={data}", f"artifact={root / 'onebar'}", f"embeddings={emb}",
        'onebar_overrides=["plant_share=0.05"]', "latency_triggers=5", "max_cases=40", *TINY])
    log: list[str] = []
    out = onebar.run_suite(cfg, root / "results", rows=["anchor-cascade", "onebar-stage1",
                           "onebar-stage2", "onebar"], progress=log.append)
    return root, cfg, out, json.loads((out / "results.json").read_text()), log


def test_the_ml100k_training_section_loads_typed():
    cfg = onebar.load_config(onebar.REPO / "configs" / "bench" / "onebar" / "ml-100k.toml")
    assert isinstance(cfg.train, OneBarTrainConfig)
    assert cfg.train.model.d_model == 64 and cfg.train.sft.time_limit_min == 8.0
    assert cfg.train.piopd.divergence == "fkl+rkl" and cfg.train.listwise.train.batch_size == 32
    with pytest.raises(ConfigError, match="divergences"):
        onebar.load_config(onebar.REPO / "configs" / "bench" / "onebar" / "ml-100k.toml",
                           ['train.divergences=["kl"]'])


def test_every_stage_trains_once_saves_and_records_its_training(trained):
    root, _, out, doc, log = trained
    assert [m for m in log if m.startswith("  training")] == [
        f"  training {n} seed 0 ..." for n in ("onebar-stage1", "onebar-stage2",
                                              "onebar-teacher", "onebar")]
    models = root / "onebar" / "models"
    for name in ("onebar-stage1", "onebar-stage2", "onebar-teacher", "onebar"):
        info = json.loads((models / name / "seed0" / "row.json").read_text())
        assert info["row"] == name and info["key"]["seed"] == 0 and info["epochs"] >= 1
        QuerySuggester.load(models / name / "seed0")  # what `onefeed suggest` could serve
    assert json.loads((models / "onebar-teacher" / "seed0" / "row.json").read_text())[
        "valid_hr@8"] is None  # no validator: the loop's count is not a score
    train = doc["models"]["onebar"]["train"]["0"]
    assert train["divergence"] == "fkl+rkl" and set(train["stages"]) == {
        "onebar-stage1", "onebar-stage2", "onebar-teacher", "onebar"}
    assert all(np.isfinite(doc["models"][n]["train"]["0"]["reject_at"]) or
               doc["models"][n]["train"]["0"]["reject_at"] == float("inf")
               for n in ("onebar-stage1", "onebar"))  # chosen on valid, recorded
    for name in ("onebar-stage2", "onebar"):  # validated from their start, kept if no better
        info = doc["models"][name]["train"]["0"]
        assert info["valid_hr@8"] >= info["start_valid_hr@8"]
        assert info["kept_start"] == (info["valid_hr@8"] == info["start_valid_hr@8"])
    for name in ("onebar-stage1", "onebar-stage2", "onebar"):
        row = doc["models"][name]
        assert row["kind"] == "model" and row["metrics_query"]["blocked_exposed"]["mean"] == 0
        assert row["train"]["0"]["train_seconds"] > 0
    assert "significance" in doc["models"]["onebar"]  # vs anchor-cascade
    report = (out / "report.md").read_text()
    assert "## Training" in report and "| `onebar` | 0 | onebar-teacher |" in report


def test_a_matching_checkpoint_is_reused_and_a_changed_config_retrains(trained):
    root, cfg, out, doc, _ = trained
    stage1 = root / "onebar" / "models" / "onebar-stage1" / "seed0" / "model.safetensors"
    before = stage1.stat().st_mtime_ns
    log: list[str] = []
    onebar.run_suite(cfg, out, rows=["onebar-stage1"], progress=log.append)
    assert any("onebar-stage1 seed 0: reusing" in m for m in log)
    assert not any(m.startswith("  training") for m in log)
    assert stage1.stat().st_mtime_ns == before
    again = json.loads((out / "results.json").read_text())["models"]["onebar-stage1"]
    assert again["metrics_query"]["hr@8"] == doc["models"]["onebar-stage1"]["metrics_query"][
        "hr@8"]  # same weights, same scores
    changed = onebar.load_config(onebar.REPO / "configs" / "bench" / "onebar" / "ml-100k.toml",
                                 [f"{k}={v}" for k, v in (("data", cfg.data),
                                  ("artifact", cfg.artifact), ("embeddings", cfg.embeddings))]
                                 + ["latency_triggers=5", "max_cases=40", *TINY,
                                    "train.sft.epochs=1"])
    log = []
    onebar.run_suite(changed, root / "changed", rows=["onebar-stage1"], progress=log.append)
    assert "  training onebar-stage1 seed 0 ..." in log
    assert json.loads((stage1.parent / "row.json").read_text())["epochs"] == 1


def test_batched_scoring_gives_the_per_call_lists(trained):
    root, cfg, _, _, _ = trained
    from onefeed.onebar import pipeline

    run = pipeline.load(root / "onebar")
    model = QuerySuggester.load(root / "onebar" / "models" / "onebar" / "seed0")
    row = ModelRow(model, run.index, run.cfg, beam=4, batch=7)
    examples = run.examples("test")[:20]
    assert row.many(examples, 4) == [row(e.trigger, list(e.history), 4) for e in examples]


def test_decide_abstains_by_threshold_or_by_rank():
    beams = [("red shoes", -1.0), (REJECT, -2.0), ("shoes", -3.0)]
    assert decide(beams, None) == ["red shoes", "shoes"]  # [REJECT] not first: shown without
    assert decide([beams[1], beams[0]], None) == [REJECT]
    assert decide(beams, -2.5) == [REJECT] and decide(beams, -2.0) == [REJECT]
    assert decide(beams, -1.5 + 0.0) == ["red shoes", "shoes"]
    assert decide([beams[1], beams[0]], float("inf")) == ["red shoes"]  # never abstains
    assert decide([("a", -1.0)], -9.0) == ["a"]  # no [REJECT] beam: nothing to abstain on


def test_reject_threshold_maximises_f1_on_the_given_cases():
    lp = np.array([-1.0, -2.0, -3.0, -np.inf, -0.5])
    labels = np.array([True, True, False, True, False])
    # thresholds -0.5: F1 0; -1: tp 1, pred 2 -> 2/5; -2: tp 2, pred 3 -> 4/6; -3: 4/7
    assert reject_threshold(lp, labels) == -2.0
    assert reject_threshold(np.array([-1.0, -np.inf]), np.array([False, True])) == float("inf")
    assert reject_threshold(np.full(3, -np.inf), np.array([True, False, False])) == float("inf")


class _Beams:
    """A stand-in model: fixed beams per evidence; "##x" is outside its vocabulary."""

    def __init__(self, beams):
        self.beams = beams

    def suggest(self, evidence, k, beam):
        return [[(q, -float(i)) for i, q in enumerate(self.beams[e][:k])] for e in evidence]

    def encode_targets(self, texts):
        if any(t.startswith("##") for t in texts):
            raise ValueError("outside")
        return torch.zeros(len(texts), 1)


def test_candidate_lists_put_the_click_first_and_drop_matches_rejects_and_unscorable():
    model = _Beams({"e1": ["red shoes", "red shoe", REJECT, "##x", "blue shoes", "blue shoes"],
                    "e2": ["tent", "tents"], "e3": ["anything"]})
    pairs = [Pair("e1", "red shoes"), Pair("e2", "tent"), Pair("e3", REJECT)]
    lists = candidate_lists(model, pairs, n=6, beam=6, max_distance=1)
    # e1: the click, then the beams farther than 1 edit ("red shoe" matches it), once each;
    # e2 has no negative left; e3 is a safety label, not a click
    assert lists == [CandidateList("e1", ("red shoes", "blue shoes"), 0)]
    assert candidate_lists(model, pairs[:2], n=6, beam=6, max_distance=0) == [
        CandidateList("e1", ("red shoes", "red shoe", "blue shoes"), 0),
        CandidateList("e2", ("tent", "tents"), 0)]
    # a beam logged after the same trigger by another session is no exposure without click
    assert candidate_lists(model, pairs, n=6, beam=6, max_distance=0, also_clicked=[
        {"blue shoes"}, {"tents"}, set()]) == [CandidateList("e1", ("red shoes", "red shoe"), 0)]


def test_trigger_queries_and_repeated_rejects():
    exs = [Example(0, 5, "Red Shoes", False, "train"), Example(1, 5, "tent", False, "train"),
           Example(2, 6, REJECT, True, "train"), Example(3, 6, "boots", False, "train")]
    assert trigger_queries(exs) == [frozenset({"red shoes", "tent"})] * 2 + [
        frozenset({"boots"})] * 2
    pairs = [Pair("a", "q"), Pair("b", REJECT), Pair("c", "r")]
    assert repeat_rejects(pairs, 3) == [pairs[0], pairs[1], pairs[1], pairs[1], pairs[2]]
    assert repeat_rejects(pairs, 1) == pairs


def test_chunked_epochs_take_a_fresh_sample_of_rows():
    pairs = [Pair(f"evidence {i}", f"query {i}") for i in range(10)]
    model = QuerySuggester.build([p.target for p in pairs])
    task = Chunked(SftTask(model, pairs, 2, None), 4)
    assert task.steps_per_epoch(1) == 2
    seen = [np.concatenate([b[0] for b in task.batches(e, np.random.default_rng(e), 0, 1)])
            for e in range(2)]
    assert [len(s) for s in seen] == [4, 4] and len(set(seen[0])) == 4
    assert set(seen[0]) != set(seen[1])
    assert Chunked(SftTask(model, pairs, 3, None), 0).steps_per_epoch(1) == 4  # 0 = all rows
    assert task.validate(model, 0, 1) == {"score": 1.0}  # delegated to the stage's task
