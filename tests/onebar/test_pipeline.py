"""build -> load round trip of the OneBar artifact on a small synthetic world."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from onefeed.artifacts import ArtifactError
from onefeed.onebar import pipeline
from onefeed.onebar.evidence import serialise
from onefeed.onebar.labels import build_examples, plant_unsafe


def _world():
    spec = importlib.util.spec_from_file_location("_onebar_world", Path(__file__).parent / "world.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


world = _world()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("onebar")
    data, emb = world.save_world(root)
    cfg = world.onebar_config()
    run = pipeline.build(data, cfg, root / "onebar", embeddings=emb)
    return root, data, emb, cfg, run


def test_build_saves_planted_items_index_examples_and_a_manifest(built):
    root, data, emb, cfg, run = built
    m = json.loads((root / "onebar" / "manifest.json").read_text())
    assert m["kind"] == "onebar" and m["seed"] == cfg.seed and m["config"]["plant_share"] == 0.05
    assert m["embeddings"]["source"] == str(emb) and len(m["embeddings"]["sha256"]) == 64
    assert {"items.parquet", "embeddings.npy", "evidence/evidence.parquet",
            "examples/train.parquet", "examples/test.parquet"} <= set(m["files"])
    from onefeed.data.schemas import Dataset, dataset_fingerprint
    raw = Dataset.load(data)
    assert m["data_sha256"] == dataset_fingerprint(raw)
    ds, planted = plant_unsafe(raw, cfg.block_list, cfg.plant_share, cfg.seed)
    assert run.planted.tolist() == planted.tolist() and len(planted) == 3  # round(0.05 * 60)
    assert run.dataset().items["title"].to_list() == ds.items["title"].to_list()
    assert np.allclose(run.index.embeddings, pipeline.load(root / "onebar").index.embeddings)


def test_saved_examples_equal_a_fresh_build(built):
    _, _, _, cfg, run = built
    ds = run.dataset()
    fresh = build_examples(ds, run.index, cfg)
    loaded = [e for s in pipeline.SPLITS for e in run.examples(s)]
    assert loaded == fresh and {e.split for e in loaded} == {"train", "valid", "test"}
    counts = run.manifest["examples"]
    assert counts["test"]["examples"] == len(run.examples("test"))
    assert counts["test"]["reject"] == sum(e.reject for e in run.examples("test"))
    ex = run.examples("test")[0]
    assert serialise(run.index.evidence(ex.trigger, list(ex.history))).startswith("title: ")


def test_load_refuses_a_changed_file_and_a_foreign_dir(built, tmp_path):
    root = built[0]
    with pytest.raises(ArtifactError, match="not a OneBar artifact"):
        pipeline.load(tmp_path)
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(root / "onebar", copy)
    np.save(copy / "embeddings.npy", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ArtifactError, match="embeddings.npy"):
        pipeline.load(copy)


def test_read_embeddings_checks_the_row_count(built, tmp_path):
    _, _, emb, _, run = built
    np.save(tmp_path / "bad.npy", np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ArtifactError, match=r"shape \(3, 4\)"):
        pipeline.read_embeddings(tmp_path / "bad.npy", run.index.n_items)
    x, info = pipeline.read_embeddings(emb, run.index.n_items)
    assert x.dtype == np.float32 and info["source"] == str(emb)


def test_example_texts_are_the_examples_serialised_evidence_and_target(built):
    _, _, _, cfg, run = built
    from onefeed.onebar.labels import example_evidence

    train = run.examples("train")
    pairs = run.example_texts("train")
    assert len(pairs) == len(train)
    for (text, target), ex in list(zip(pairs, train))[:50]:
        assert text == serialise(example_evidence(run.index, ex, cfg))
        assert target == ex.target
    assert any(t == "[REJECT]" for _, t in pairs)
    assert run.example_texts("test", "verbose")[0][0].startswith("You are the search assistant")
