"""Intent queries (OneFeed §3.6): from a user's generated query hypotheses, keep the top M
that are safe, retrievable and not near-duplicates of a better one.

The generator proposes hypotheses best first (beam order, with log-probabilities); selection
walks them in that order (relevance) and drops a hypothesis when

* it contains a blocked term (safety: whole words, or a multi-word phrase),
* it retrieves fewer than ``min_matches`` corpus items (retrievability against the fixed
  corpus: a query that fetches nothing cannot enhance the feed), or
* its word set overlaps an already kept query's by Jaccard >= ``dup_jaccard`` (diversity).

Pure: the retriever comes in as a function ``n_matches(queries) -> (n,) int``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from onefeed.evaluation.query_metrics import blocked, query_tokens as tokens  # one rule for
# blocked terms, shared with OneBar's exposure metric (evaluation.query_metrics.blocked_exposed)


@dataclass
class IntentConfig:
    RANGES: ClassVar[dict[str, str]] = {"n_queries": ">= 1", "min_matches": ">= 0",
                                        "dup_jaccard": "(0, 1]"}
    n_queries: int = 5  # M, queries kept per user
    min_matches: int = 1  # corpus items a query must retrieve
    dup_jaccard: float = 0.75  # word-set Jaccard at which two queries are near-duplicates
    blocklist: list[str] = field(default_factory=list)  # blocked words or phrases


def words(query: str) -> frozenset[str]:
    return frozenset(tokens(query))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def select_intents(hypotheses: Sequence[Sequence[str]], cfg: IntentConfig,
                   n_matches: Callable[[list[str]], np.ndarray]) -> list[list[str]]:
    """Per user, up to ``cfg.n_queries`` of their hypotheses (best first) that pass the
    safety, retrievability and near-duplicate filters (module docstring)."""
    unique = sorted({q for hs in hypotheses for q in hs if q.strip()})
    counts = dict(zip(unique, np.asarray(n_matches(unique)).tolist())) if unique else {}
    out: list[list[str]] = []
    for hs in hypotheses:
        kept: list[str] = []
        kept_words: list[frozenset[str]] = []
        for q in hs:
            if len(kept) == cfg.n_queries:
                break
            if not q.strip() or blocked(q, cfg.blocklist) or counts[q] < cfg.min_matches:
                continue
            w = words(q)
            if any(jaccard(w, k) >= cfg.dup_jaccard for k in kept_words):
                continue
            kept.append(q)
            kept_words.append(w)
        out.append(kept)
    return out
