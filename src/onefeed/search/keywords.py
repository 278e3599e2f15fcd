"""Keyword extraction from item text (OneFeed §4.4 "keyword extraction"): an item's query is its
highest-idf title words, kept in title order. Shared by the query baselines of
``baselines.query_baselines`` (from a user's history) and ``onebar.baselines`` (from a trigger).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[a-z][a-z0-9'&-]*[a-z0-9]|[a-z]")
STOPWORDS = frozenset("a an and the of for with in on to by from at or oz ounce fl fluid pack "
                      "count ml new set size inch x pcs piece pieces".split())


def words(text: str | None) -> list[str]:
    """Lowercase word tokens of ``text`` without stopwords or single characters."""
    return [w for w in _WORD.findall((text or "").lower()) if w not in STOPWORDS and len(w) > 1]


def idf_weights(docs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Smoothed idf, log((n + 1) / (df + 1)) + 1, of every word of ``docs`` (token lists)."""
    df = Counter(w for doc in docs for w in set(doc))
    n = max(len(docs), 1)
    return {w: math.log((n + 1) / (c + 1)) + 1.0 for w, c in df.items()}


def keyword_query(tokens: Sequence[str], idf: dict[str, float], n: int) -> str:
    """The ``n`` highest-idf distinct words of ``tokens`` (ties: first in text), in text order."""
    toks = list(dict.fromkeys(tokens))
    keep = set(sorted(toks, key=lambda w: -idf.get(w, 0.0))[:n])
    return " ".join(w for w in toks if w in keep)
