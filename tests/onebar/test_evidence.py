import json

import numpy as np
import pytest

from onefeed.artifacts import ArtifactError
from onefeed.onebar.evidence import FIELDS, Evidence, EvidenceIndex, parse, serialise

EV = Evidence("Red Shoe", ["shoes", "red"], "acme", ["red sneaker", "red boot"], ["red shoe"], [])


def test_schema_is_one_sep_delimited_line_with_every_slot():
    assert serialise(EV) == ("title: Red Shoe [SEP] categories: shoes > red [SEP] brand: acme "
                             "[SEP] anchors: red sneaker ; red boot [SEP] rag: red shoe [SEP] "
                             "history: <none>")
    empty = serialise(Evidence())
    assert empty.count("[SEP]") == len(FIELDS) - 1 and empty.count("<none>") == len(FIELDS)


def test_schema_round_trips_and_values_cannot_break_it():
    assert parse(serialise(EV)) == EV
    nasty = Evidence("a [SEP] b", ["x > y"], "", ["q ; r"], [], ["h"])
    text = serialise(nasty)
    assert text.count("[SEP]") == len(FIELDS) - 1
    assert parse(text) == Evidence("a b", ["x y"], "", ["q r"], [], ["h"])
    with pytest.raises(ValueError, match="not an evidence schema"):
        parse("title: x")


def test_verbose_prompt_carries_the_same_evidence_as_an_instruction():
    text = serialise(EV, "verbose")
    for value in ("Red Shoe", "shoes > red", "acme", "red sneaker ; red boot", "red shoe"):
        assert value in text
    assert "[SEP]" not in text and "[REJECT]" in text and "recently searched for: nothing" in text
    assert len(text) > 2 * len(serialise(EV))
    with pytest.raises(ValueError, match="'schema' or 'verbose'"):
        serialise(EV, "json")


def test_index_precomputes_anchors_and_rag_from_training_sessions(index):
    # hand-computed in conftest's world: item 4 (0.7, 0.7) has all four shoe/boot items as
    # neighbours; red shoe and blue boot both score 2 x 0.707, red sneaker 1 x 0.78
    assert index.anchors == [["red sneaker"], ["red shoe"], [], ["blue boot"],
                             ["blue boot", "red shoe", "red sneaker"], []]
    assert [index.rag_queries(i) for i in range(6)] == [["red shoe"], ["red sneaker"],
                                                      ["blue boot"], [], [], ["replica"]]
    assert [index.n_evidence(i) for i in range(6)] == [2, 2, 1, 1, 3, 1]
    assert index.titles[5] == "Weapon Replica Toy" and index.categories[0] == ["shoes", "red"]


def test_threshold_drops_dissimilar_neighbours(world, emb, make_cfg):
    strict = EvidenceIndex.build(world, emb, make_cfg(anchor_threshold=0.9))
    assert strict.anchors[4] == [] and strict.anchors[0] == ["red sneaker"]


def test_leave_one_out_rag_and_decontamination(index):
    assert index.rag_queries(0, own="red shoe") == ["red shoe"]  # 2 -> 1
    assert index.rag_queries(1, own="Red Sneaker") == []  # 1 -> 0: gone
    ev = index.evidence(4, exclude="red shoe")
    assert ev.anchors == ["blue boot", "red sneaker"]


def test_history_keeps_recent_queries_similar_to_the_trigger(index):
    # "red shoe" sits on items 1 and 0 (close to 0); "blue boot" on item 3 (cos 0.11 to item 0);
    # "old shoe" was never seen in training but shares "shoe" with the title
    history = ["red shoe", "blue boot", "red shoe", "old shoe"]
    assert index.evidence(0, history).history == ["old shoe", "red shoe"]
    assert index.evidence(2, history).history == ["blue boot"]
    assert index.evidence(0, []).history == [] and index.evidence(0).history == []
    with pytest.raises(IndexError, match="item 6 outside"):
        index.evidence(6)


def test_evidence_only_reads_training_events(world, emb, make_cfg, index):
    """Dropping every valid/test event changes nothing: no held-out data enters the cache."""
    from dataclasses import replace

    import polars as pl

    train_only = replace(world, events=world.events.filter(pl.col("split") == "train"))
    other = EvidenceIndex.build(train_only, emb, make_cfg())
    assert (other.anchors, other.rag, other.query_items) == (index.anchors, index.rag,
                                                             index.query_items)


def test_save_load_round_trip_and_tamper_check(index, tmp_path):
    index.save(tmp_path / "ev")
    back = EvidenceIndex.load(tmp_path / "ev")
    assert (back.titles, back.categories, back.brands, back.anchors, back.rag,
            back.query_items, back.cfg) == (index.titles, index.categories, index.brands,
                                            index.anchors, index.rag, index.query_items,
                                            index.cfg)
    np.testing.assert_array_equal(back.embeddings, index.embeddings)
    assert back.evidence(0, ["red shoe"]) == index.evidence(0, ["red shoe"])
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert manifest["kind"] == "onebar-evidence" and manifest["config"]["anchor_k"] == 4
    np.save(tmp_path / "ev" / "embeddings.npy", index.embeddings * 2)
    with pytest.raises(ArtifactError, match="embeddings.npy"):
        EvidenceIndex.load(tmp_path / "ev")


def test_build_checks_the_embedding_rows(world, emb, make_cfg):
    with pytest.raises(ValueError, match="5 item embeddings for 6 items"):
        EvidenceIndex.build(world, emb[:5], make_cfg())
