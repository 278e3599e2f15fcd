"""The batched Suggester adapters on the hand-built toy world (tests/onebar/conftest.py)."""

import pytest

from onefeed.onebar.baselines import AnchorCascade
from onefeed.onebar.evidence import parse, serialise
from onefeed.onebar.labels import REJECT
from onefeed.onebar.suggesters import BaselineSuggester, ModelSuggester, SafeSuggester


class FakeModel:
    """Records what it was asked and answers from a table keyed by the evidence's title."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def suggest(self, evidence_texts, k, beam):
        self.calls.append((list(evidence_texts), k, beam))
        return [self.answers[parse(t).trigger_title] for t in evidence_texts]


def test_model_suggester_serialises_cached_evidence_and_passes_k_and_beam(index, make_cfg):
    cfg = make_cfg()
    model = FakeModel({"Red Shoe Classic": ["red shoe", "red sneaker"],
                       "Blue Boot Winter": ["blue boot"]})
    s = ModelSuggester(model, index, cfg, beam=4)
    out = s.suggest([0, 2], [["red sneaker", "blue boot"], []], 8)
    assert out == [["red shoe", "red sneaker"], ["blue boot"]]
    texts, k, beam = model.calls[0]
    assert (k, beam) == (8, 8)  # the beam is widened to k
    assert texts[0] == serialise(index.evidence(0, ["red sneaker", "blue boot"]))
    assert texts[1] == serialise(index.evidence(2))
    assert set(s._cached) == {0, 2}
    s.suggest([0], [[]], 2)
    assert model.calls[-1][1:] == (2, 4)
    assert s.item_evidence(0) is s._cached[0]  # a lookup, not a rebuild


def test_model_suggester_uses_the_configured_format(index, make_cfg):
    model = FakeModel({})
    model.suggest = lambda texts, k, beam: [[t] for t in texts]
    out = ModelSuggester(model, index, make_cfg(format="verbose")).suggest([4], [[]], 8)
    assert out[0][0].startswith("You are the search assistant") and '"Green Hat"' in out[0][0]


def test_model_suggester_refuses_a_wrong_number_of_lists(index, make_cfg):
    model = FakeModel({})
    model.suggest = lambda texts, k, beam: []
    with pytest.raises(ValueError, match="0 lists for 1 triggers"):
        ModelSuggester(model, index, make_cfg()).suggest([0], [[]], 8)


def test_safe_suggester_drops_blocked_queries_and_keeps_rejects(index, make_cfg):
    model = FakeModel({"Red Shoe Classic": ["weapon shoe", "red shoe", "red shoe", "x"],
                       "Weapon Replica Toy": [REJECT, "replica"],
                       "Blue Boot Winter": ["weapon"]})
    s = SafeSuggester(ModelSuggester(model, index, make_cfg()), ["weapon"])
    assert s.suggest([0, 5, 2], [[], [], []], 8) == [["red shoe", "x"], [REJECT], [REJECT]]
    assert s.suggest([0], [[]], 1) == [["red shoe"]]


def test_baseline_suggester_is_the_baseline_per_trigger(world, index, make_cfg):
    b = AnchorCascade()
    b.fit(world, index, make_cfg())
    got = BaselineSuggester(b).suggest([0, 5], [[], []], 8)
    assert got == [b.suggest(0, [], 8), b.suggest(5, [], 8)] and got[1] == [REJECT]


def test_model_suggester_accepts_query_score_pairs(index, make_cfg):
    model = FakeModel({})
    model.suggest = lambda texts, k, beam: [[("red shoe", -0.1), (REJECT, -2.0)] for _ in texts]
    assert ModelSuggester(model, index, make_cfg()).suggest([0], [[]], 8) == [["red shoe",
                                                                                REJECT]]
