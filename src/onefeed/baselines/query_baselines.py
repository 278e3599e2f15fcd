"""Query-generation baselines (OneFeed §4.4 "keyword extraction"): given a user's history, return
the top-K query strings the user is likely to search next.

* ``KeywordQueries``     — for each history item, most recent first, its highest-idf title
                           words (kept in title order) form one query; then leaf categories.
* ``PopularQueryPrior``  — the most frequent *train* weak queries of the last history item,
                           then of earlier items, then the globally most frequent train queries.

Both use only train-split weak queries / item text, never held-out (test) queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from onefeed.data.schemas import Dataset
from onefeed.data.views import RecCases
from onefeed.search.keywords import STOPWORDS, idf_weights, keyword_query, words

__all__ = ["STOPWORDS", "KeywordQueries", "PopularQueryPrior", "query_cases", "words"]


def _dedupe_top(candidates: list[str], k: int) -> list[str]:
    out, seen = [], set()
    for q in candidates:
        if q and q not in seen:
            seen.add(q)
            out.append(q)
        if len(out) == k:
            break
    return out


@dataclass
class KeywordConfig:
    words_per_query: int = 3


class KeywordQueries:
    Config = KeywordConfig

    def __init__(self) -> None:
        self.cfg = KeywordConfig()
        self.titles: list[list[str]] = []
        self.leaf: list[str] = []
        self.idf: dict[str, float] = {}

    def fit(self, ds: Dataset, cfg: KeywordConfig, seed: int = 0) -> None:
        self.cfg = cfg
        items = ds.items.sort("item")
        self.titles = [words(t) for t in items["title"].to_list()]
        cats = items["categories"].to_list() if "categories" in items.columns else []
        self.leaf = [(c[-1].lower() if c else "") for c in cats] or [""] * items.height
        self.idf = idf_weights(self.titles)

    def item_query(self, item: int) -> str:
        """The ``words_per_query`` highest-idf title words of ``item``, in title order."""
        return keyword_query(self.titles[item], self.idf, self.cfg.words_per_query)

    def generate(self, cases: RecCases, k: int) -> list[list[str]]:
        out = []
        for hist in cases.history:
            recent = [int(i) for i in hist[::-1] if i >= 0]
            cands = [self.item_query(i) for i in recent] + [self.leaf[i] for i in recent]
            out.append(_dedupe_top(cands, k))
        return out


@dataclass
class PriorConfig:
    pass


class PopularQueryPrior:
    Config = PriorConfig

    def __init__(self) -> None:
        self.per_item: list[list[str]] = []
        self.global_top: list[str] = []

    def fit(self, ds: Dataset, cfg: PriorConfig | None = None, seed: int = 0) -> None:
        train = ds.queries.filter(pl.col("split") == "train").with_columns(
            pl.col("query").map_elements(lambda q: " ".join(q.lower().split()),
                                         return_dtype=pl.Utf8))
        counts = (train.group_by("item", "query").len()
                  .sort(["item", "len", "query"], descending=[False, True, False]))
        self.per_item = [[] for _ in range(ds.n_items)]
        for item, group in counts.group_by("item", maintain_order=True):
            self.per_item[int(item[0])] = group["query"].to_list()
        self.global_top = (train.group_by("query").len().sort(["len", "query"],
                                                               descending=[True, False])
                           ["query"].head(100).to_list())

    def generate(self, cases: RecCases, k: int) -> list[list[str]]:
        out = []
        for hist in cases.history:
            recent = [int(i) for i in hist[::-1] if i >= 0]
            cands = [q for i in recent for q in self.per_item[i][:k]] + self.global_top[:k]
            out.append(_dedupe_top(cands, k))
        return out


def query_cases(ds: Dataset, cases: RecCases, split: str = "test") -> tuple[RecCases, list[str]]:
    """Restrict ``cases`` to users with a held-out eval query in ``split``: (cases, references).

    The reference is the query of the user's ``split`` search case (``ds.eval_queries``)."""
    eq = ds.eval_queries.filter(pl.col("split") == split).unique("user", keep="first").sort("user")
    ref = dict(zip(eq["user"].to_list(), eq["query"].to_list()))
    pick = np.array([i for i, u in enumerate(cases.users) if int(u) in ref], dtype=np.int64)
    sub = RecCases(cases.users[pick], cases.history[pick], cases.targets[pick])
    return sub, [ref[int(u)] for u in sub.users]
