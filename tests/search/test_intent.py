"""Intent-query selection: safety, retrievability and near-duplicate filters, best first."""

import numpy as np
import pytest

from onefeed.config import ConfigError, from_dict
from onefeed.search.intent import IntentConfig, blocked, jaccard, select_intents, words


def fake_matches(table):
    return lambda queries: np.array([table.get(q, 0) for q in queries])


def test_keeps_the_best_safe_retrievable_distinct_queries():
    hyps = [["red lipstick", "Red  Lipstick!", "lipstick red matte", "cheap knockoff lipstick",
             "zzz", "matte lipstick", "nail polish"],
            ["", "shampoo"]]
    counts = {"red lipstick": 9, "Red  Lipstick!": 9, "lipstick red matte": 3,
              "cheap knockoff lipstick": 4, "zzz": 0, "matte lipstick": 5, "nail polish": 7,
              "shampoo": 2}
    cfg = IntentConfig(n_queries=3, dup_jaccard=0.6, blocklist=["knockoff"])
    got = select_intents(hyps, cfg, fake_matches(counts))
    # "Red  Lipstick!" duplicates "red lipstick" (Jaccard 1); "lipstick red matte" shares 2 of
    # 3 words (0.67 >= 0.6); "knockoff" is blocked; "zzz" retrieves nothing
    assert got == [["red lipstick", "matte lipstick", "nail polish"], ["shampoo"]]
    # a looser duplicate threshold keeps "lipstick red matte"
    got = select_intents(hyps[:1], IntentConfig(n_queries=2, dup_jaccard=0.7), fake_matches(counts))
    assert got == [["red lipstick", "lipstick red matte"]]


def test_helpers_and_config_ranges():
    assert jaccard(words("a b"), words("B c")) == pytest.approx(1 / 3)
    assert blocked("Buy Fake Rolex now", ["fake rolex"]) and not blocked("fakery", ["fake"])
    with pytest.raises(ConfigError, match="dup_jaccard"):
        from_dict(IntentConfig, {"dup_jaccard": 0.0})
