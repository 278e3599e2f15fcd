import numpy as np
import pytest

from onefeed.data.schemas import dataset_fingerprint
from onefeed.onebar.labels import (REJECT, Example, blocked_items, build_examples,
                                   example_evidence, filter_blocked, is_blocked, plant_unsafe,
                                   reject_items, safe_suggestions)
from onefeed.tokens import SPECIALS


def test_reject_is_the_vocabulary_token():
    assert REJECT in SPECIALS


@pytest.mark.parametrize("text, blocked", [
    ("Weapon replica", True), ("cheap WEAPON", True), ("weapons", False), ("aweapon", False),
    ("buy a fire arm", True), ("firearm", False), ("", False)])
def test_block_list_matches_whole_words_and_phrases_any_case(text, blocked):
    assert is_blocked(text, ["weapon", "fire arm"]) is blocked


def test_filter_and_safe_suggestions_never_expose_a_blocked_term():
    qs = ["red shoe", "weapon toy", "Red  Shoe", "[REJECT]", "blue boot"]
    assert filter_blocked(qs, ["weapon"]) == ["red shoe", "Red  Shoe", "[REJECT]", "blue boot"]
    assert safe_suggestions(qs, ["weapon"], 8) == ["red shoe", "blue boot"]
    assert safe_suggestions(qs, ["weapon"], 1) == ["red shoe"]
    assert safe_suggestions(["weapon"], ["weapon"], 8) == [REJECT]  # nothing safe left
    assert safe_suggestions([REJECT, "red shoe"], [], 8) == [REJECT]  # the model abstained
    assert safe_suggestions([], [], 8) == [REJECT]


def test_plant_unsafe_appends_a_blocked_term_to_a_seeded_share(world):
    planted_ds, planted = plant_unsafe(world, ["gambling"], 0.5, seed=1)
    assert len(planted) == 3 and list(planted) == sorted(planted)
    assert np.flatnonzero(blocked_items(planted_ds, ["gambling"])).tolist() == planted.tolist()
    titles = planted_ds.items["title"].to_list()
    assert all(titles[i].endswith(" gambling") for i in planted)
    assert plant_unsafe(world, ["gambling"], 0.5, seed=1)[1].tolist() == planted.tolist()
    assert dataset_fingerprint(planted_ds) is None  # not the saved dataset's bytes any more
    assert planted_ds.manifest["onebar_planted"] == {"share": 0.5, "seed": 1, "n": 3}
    assert world.items["title"].to_list()[0] == "Red Shoe Classic"  # the input is untouched
    with pytest.raises(ValueError, match="empty block list"):
        plant_unsafe(world, [], 0.5, 0)


def test_reject_items_are_blocked_text_or_thin_evidence(world, index, make_cfg):
    assert np.flatnonzero(reject_items(world, index, make_cfg())).tolist() == [5]
    # n_evidence = [2, 2, 1, 1, 3, 1]
    thin = reject_items(world, index, make_cfg(min_evidence=2, block_list=[]))
    assert np.flatnonzero(thin).tolist() == [2, 3, 5]


def test_examples_follow_the_split_protocol(world, index, make_cfg):
    ex = build_examples(world, index, make_cfg())
    assert ex == [
        Example(0, 0, "red shoe", False, "train", (), "red shoe"),
        Example(0, 2, "blue boot", False, "train", ("red shoe",), "blue boot"),
        Example(1, 0, "red shoe", False, "train", (), "red shoe"),
        Example(1, 1, "red sneaker", False, "train", ("red shoe",), "red sneaker"),
        Example(2, 2, "blue boot", False, "train", (), "blue boot"),
        Example(2, 5, REJECT, True, "train", ("blue boot",), "replica"),
        Example(0, 3, "green hat", False, "valid", ("red shoe", "blue boot"), "green hat"),
        Example(2, 5, REJECT, True, "valid", ("blue boot", "replica"), "hat"),
        Example(0, 4, "red shoe classic", False, "test", ("red shoe", "blue boot"),
                "red shoe classic"),
        # not "blue rain boot": u1 searched it after watching the trigger, on the way to the
        # test target (it would leak the answer)
        Example(1, 2, "blue boot rain", False, "test", ("red shoe", "red sneaker"),
                "blue boot rain"),
    ]
    held_out = set(world.queries.filter(world.queries["split"] == "test")["query"])
    assert not {e.query for e in ex if e.split == "train"} & held_out
    assert [e.split for e in build_examples(world, index, make_cfg(), ["test"])] == ["test"] * 2


def test_example_evidence_leaves_a_training_target_out_of_its_own_rag(world, index, make_cfg):
    train = build_examples(world, index, make_cfg(), ["train"])
    # item 1's only RAG query is this example's own target
    assert example_evidence(index, train[3], make_cfg()).rag == []
    assert example_evidence(index, train[0], make_cfg()).rag == ["red shoe"]  # 2 -> 1
    test = Example(0, 4, "red shoe", False, "test", (), "red shoe")
    assert "red shoe" in example_evidence(index, test, make_cfg()).anchors
    clean = example_evidence(index, test, make_cfg(decontaminate=True))
    assert clean.anchors == ["blue boot", "red sneaker"]
