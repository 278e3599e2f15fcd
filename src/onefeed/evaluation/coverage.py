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


def search_supplement(final: np.ndarray, feed: np.ndarray, k: int) -> np.ndarray:
    """(n,) share of each final top-k list introduced by query retrieval (OneFeed §4.5
    "search supplement ratio"): items of ``final[:, :k]`` absent from that case's ``feed``
    candidates (the SID generator's own list, any depth), over the list's real items; 0 for an
    empty list. -1 entries are padding in both."""
    top = np.asarray(final)[:, :k]
    feed = np.asarray(feed)
    real = top >= 0
    inside = (top[:, :, None] == feed[:, None, :]).any(2)
    new = (real & ~inside).sum(1)
    n = real.sum(1)
    return np.where(n > 0, new / np.maximum(n, 1), 0.0).astype(np.float64)


def replay_ndcg(final: np.ndarray, positives: np.ndarray, k: int) -> np.ndarray:
    """(n,) NDCG@k of each list against all of the case's held-out positives (OneFeed §4.6
    offline replay): binary gains, DCG = sum over hits of 1 / log2(rank + 2), divided by the
    ideal DCG of min(|positives|, k) hits; ``positives`` (n, P) is -1 padded. NaN for a case
    with no positive."""
    top = np.asarray(final)[:, :k]
    pos = np.asarray(positives)
    hit = (top[:, :, None] == pos[:, None, :]).any(2) & (top >= 0)
    disc = 1.0 / np.log2(np.arange(top.shape[1]) + 2.0)
    dcg = (hit * disc).sum(1)
    n_pos = np.minimum((pos >= 0).sum(1), top.shape[1])
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[n_pos]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pos > 0, dcg / ideal, np.nan)
