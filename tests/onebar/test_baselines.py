import pytest

from onefeed.onebar.baselines import BASELINES, AnchorCascade, KeywordQuery, QueryPrior
from onefeed.onebar.labels import REJECT


def _fit(cls, world, index, cfg):
    b = cls()
    b.fit(world, index, cfg)
    return b


def test_query_prior_is_the_trigger_then_the_global_next_query_frequency(world, index, make_cfg):
    b = _fit(QueryPrior, world, index, make_cfg())
    # trigger 0: "red shoe"; global: blue boot 2, red shoe 2 (ties alphabetical), red sneaker 1
    assert b.suggest(0, [], 3) == ["red shoe", "blue boot", "red sneaker"]
    assert b.suggest(4, [], 2) == ["blue boot", "red shoe"]  # no pair after item 4: global
    assert b.suggest(5, [], 3) == [REJECT]  # "Weapon Replica Toy": the cascade's risk rule


def test_keyword_query_takes_the_highest_idf_title_words(world, index, make_cfg):
    b = _fit(KeywordQuery, world, index, make_cfg())
    # idf: classic (df 1) > red, shoe (df 2); ties keep title order
    assert b.suggest(0, [], 8) == ["red shoe classic", "red classic", "classic", "red",
                                   "acme red"]
    assert b.suggest(4, [], 8) == ["green hat", "green", "hats"]  # no brand
    assert b.suggest(5, [], 8) == [REJECT]


def test_anchor_cascade_returns_the_anchors_or_abstains(world, index, make_cfg):
    b = _fit(AnchorCascade, world, index, make_cfg())
    assert b.suggest(4, [], 2) == ["blue boot", "red shoe"]
    assert b.suggest(2, [], 8) == [REJECT]  # no anchors: nothing to show


def test_a_blocked_candidate_is_never_suggested(world, index, make_cfg):
    b = _fit(QueryPrior, world, index, make_cfg(block_list=["boot"]))
    assert b.suggest(4, [], 3) == ["red shoe", "red sneaker", "replica"]


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_has_the_same_shape(name, world, index, make_cfg):
    b = _fit(BASELINES[name], world, index, make_cfg())
    for item in range(world.n_items):
        out = b.suggest(item, ["red shoe"], 2)
        assert out == [REJECT] or (0 < len(out) <= 2 and REJECT not in out)
