"""Non-generative suggesters OneBar is compared with (issue 15 §5), one shape for all:
``fit(ds, index, cfg)`` then ``suggest(trigger, history, k) -> list[str]`` (or ``[REJECT]``).

* ``QueryPrior``    — the most frequent next queries after this trigger in training sessions,
                      then the globally most frequent next queries.
* ``KeywordQuery``  — keyword extraction from the trigger's text: its highest-idf title words
                      (3, 2, 1 of them), its leaf category, brand + leaf.
* ``AnchorCascade`` — the retrieval cascade OneBar replaces (§1 "MCA"): the trigger's
                      collaborative anchors (neighbours' queries by frequency x similarity).

Every baseline ends with the cascade's rule-based risk control: a trigger with blocked text
gets ``[REJECT]``, blocked queries are dropped, and an empty list is ``[REJECT]``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from onefeed.data.schemas import Dataset
from onefeed.evaluation.query_metrics import most_frequent, normalise_query
from onefeed.onebar.config import OneBarConfig
from onefeed.onebar.evidence import EvidenceIndex
from onefeed.onebar.labels import blocked_items, safe_suggestions
from onefeed.onebar.pairs import session_pairs
from onefeed.search.keywords import idf_weights, keyword_query, words

N_GLOBAL = 100  # globally frequent queries kept for the prior's fallback


class Suggester(Protocol):
    def fit(self, ds: Dataset, index: EvidenceIndex, cfg: OneBarConfig) -> None: ...

    def suggest(self, trigger: int, history: list[str], k: int) -> list[str]: ...


class _Guarded:
    """The shared risk control (module docstring); subclasses give ``candidates``."""

    def __init__(self) -> None:
        self.blocked = np.zeros(0, dtype=bool)
        self.block_list: list[str] = []

    def _fit_guard(self, ds: Dataset, cfg: OneBarConfig) -> None:
        self.block_list = list(cfg.block_list)
        self.blocked = blocked_items(ds, self.block_list)

    def candidates(self, trigger: int, history: list[str], k: int) -> list[str]:
        """Candidates best first, uncut: the risk control filters before cutting to k."""
        raise NotImplementedError

    def suggest(self, trigger: int, history: list[str], k: int) -> list[str]:
        if self.blocked[trigger]:
            return safe_suggestions([], self.block_list, k)
        return safe_suggestions(self.candidates(trigger, history, k), self.block_list, k)


class QueryPrior(_Guarded):
    def fit(self, ds: Dataset, index: EvidenceIndex, cfg: OneBarConfig) -> None:
        self._fit_guard(ds, cfg)
        pairs = session_pairs(ds, "train")
        counts = (pairs.group_by("trigger", "query").len()
                  .sort(["trigger", "len", "query"], descending=[False, True, False]))
        self.per_trigger = {int(t): qs for t, qs in counts.group_by(
            "trigger", maintain_order=True).agg("query").iter_rows()}
        self.global_top = most_frequent(pairs["query"].to_list(), N_GLOBAL)

    def candidates(self, trigger: int, history: list[str], k: int) -> list[str]:
        return self.per_trigger.get(trigger, []) + self.global_top


class KeywordQuery(_Guarded):
    words_per_query: tuple[int, ...] = (3, 2, 1)

    def fit(self, ds: Dataset, index: EvidenceIndex, cfg: OneBarConfig) -> None:
        self._fit_guard(ds, cfg)
        items = ds.items.sort("item")
        self.titles = [words(t) for t in items["title"].to_list()]
        self.idf = idf_weights(self.titles)
        cats = items["categories"].to_list()
        self.leaf = [normalise_query(c[-1]) if c else "" for c in cats]
        self.brand = [normalise_query(b or "") for b in items["brand"].to_list()]

    def candidates(self, trigger: int, history: list[str], k: int) -> list[str]:
        kws = [keyword_query(self.titles[trigger], self.idf, n) for n in self.words_per_query]
        leaf, brand = self.leaf[trigger], self.brand[trigger]
        return kws + [leaf, f"{brand} {leaf}".strip() if brand else ""]


class AnchorCascade(_Guarded):
    def fit(self, ds: Dataset, index: EvidenceIndex, cfg: OneBarConfig) -> None:
        self._fit_guard(ds, cfg)
        self.anchors = index.anchors

    def candidates(self, trigger: int, history: list[str], k: int) -> list[str]:
        return self.anchors[trigger]


BASELINES: dict[str, type[_Guarded]] = {"query-prior": QueryPrior, "keyword": KeywordQuery,
                                        "anchor-cascade": AnchorCascade}
