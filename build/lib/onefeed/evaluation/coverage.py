"""Candidate-set metrics (OneFeed §4.5): catalogue coverage and long-tail recall, pure functions.

Tail items are those outside the top ``head_frac`` (20%) of items by train popularity.
"""

from __future__ import annotations

import numpy as np


def catalogue_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue appearing in at least one (n, K) top-K list (ids < 0 ignored)."""
    items = np.unique(np.asarray(topk).ravel())
    return float((items >= 0).sum()) / n_items if n_items else 0.0


def tail_mask(popularity: np.ndarray, head_frac: float = 0.2) -> np.ndarray:
    """(n_items,) True for tail items: not among the ceil(head_frac * n) most popular
    (ties broken by lower item id)."""
    n = len(popularity)
    n_head = int(np.ceil(head_frac * n))
    order = np.lexsort((np.arange(n), -np.asarray(popularity)))
    mask = np.ones(n, dtype=bool)
    mask[order[:n_head]] = False
    return mask


def long_tail_hits(ranks: np.ndarray, targets: np.ndarray, tail: np.ndarray,
                   k: int) -> np.ndarray:
    """Hit@k of the cases whose target is a tail item: (n_tail_cases,) array of 0/1.

    Its mean is long-tail Recall@k (empty when no target is a tail item)."""
    is_tail = tail[np.asarray(targets)]
    r = np.asarray(ranks)[is_tail]
    return ((r >= 0) & (r < k)).astype(np.float64)
