"""BM25 + dense hybrid retrieval: BM25's top-D candidates re-scored by ``bm25 / max + lam * cos``
(``fusion.score_fusion``), lam tuned on the validation queries. The lexical + semantic baseline
that a generative search model fused with BM25 must also beat (same fusion, same candidates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from onefeed.data.schemas import Dataset
from onefeed.search.bm25 import BM25Config, BM25Retriever
from onefeed.search.dense import DenseConfig, DenseRetriever
from onefeed.search.fusion import score_fusion, tune_lambda


@dataclass
class HybridConfig:
    depth: int = 100  # BM25 candidates re-scored per query
    tune_cases: int = 2000  # valid queries used to pick lam (0 = all)
    bm25: BM25Config = field(default_factory=BM25Config)
    dense: DenseConfig = field(default_factory=DenseConfig)


def valid_queries(ds: Dataset, n: int, seed: int = 0) -> pl.DataFrame:
    """One held-out valid query per user (as the bench scores test), at most ``n`` (seeded)."""
    eq = (ds.eval_queries.filter(pl.col("split") == "valid").sort(["user", "item"])
          .unique(["user"], keep="first", maintain_order=True))
    if n and eq.height > n:
        eq = eq[np.sort(np.random.default_rng(seed).choice(eq.height, n, replace=False))]
    return eq


class HybridRetriever:
    Config = HybridConfig

    def __init__(self) -> None:
        self.cfg = HybridConfig()
        self.bm25, self.dense = BM25Retriever(), DenseRetriever()
        self.lam = 0.0
        self.tuning: dict[str, Any] = {}

    def fit(self, ds: Dataset, cfg: HybridConfig, seed: int = 0) -> dict[str, Any]:
        self.cfg = cfg
        self.bm25.fit(ds, cfg.bm25)
        self.dense.fit(ds, cfg.dense)
        eq = valid_queries(ds, cfg.tune_cases, seed)
        queries = eq["query"].to_list()
        items, scores = self.bm25.retrieve_scores(queries, cfg.depth)
        self.lam, table = tune_lambda(items, scores, self.dense.score(queries, items),
                                      eq["item"].to_numpy().astype(np.int64))
        self.tuning = {"tune_split": "valid", "tune_cases": eq.height, "lam": self.lam,
                       "valid_ndcg@10": table}
        return {"fusion": self.tuning}

    def retrieve(self, queries: list[str], k: int) -> np.ndarray:
        items, scores = self.bm25.retrieve_scores(queries, max(self.cfg.depth, k))
        other = self.dense.score(queries, items) if self.lam else np.zeros_like(scores)
        return score_fusion(items, scores, other, self.lam, k)
