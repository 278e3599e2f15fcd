"""Rank fusion of candidate lists (OneFeed §3.7: generated IDs + index-retrieved candidates).

Weighted reciprocal-rank fusion (Cormack et al. 2009): an item's fused score is
``sum_j w_j / (c + rank_j(item) + 1)`` over the lists that contain it (rank 0 = best). The
weights are the only knob and are chosen on the validation split (``tune_weight``), never on
test; weight 0 for a list reproduces the other list exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onefeed.evaluation.metrics import ndcg_at_k, target_ranks


def rrf(lists: Sequence[np.ndarray], weights: Sequence[float], k: int, c: float = 60.0
        ) -> np.ndarray:
    """(n, K_j) ranked item lists (-1 = empty) -> (n, k) fused ranking (-1 padded).

    Ties break by the order of the lists, then by rank in the first list that has the item.
    """
    if len(lists) != len(weights) or not lists:
        raise ValueError(f"{len(lists)} lists but {len(weights)} weights")
    n = lists[0].shape[0]
    if any(x.shape[0] != n for x in lists):
        raise ValueError("every list needs one row per case")
    items = np.concatenate(lists, axis=1)
    scores = np.concatenate([np.broadcast_to(w / (c + np.arange(x.shape[1]) + 1.0), x.shape)
                             for x, w in zip(lists, weights)], axis=1).astype(np.float64)
    scores = np.where(items >= 0, scores, 0.0)
    out = np.full((n, k), -1, dtype=np.int64)
    for row in range(n):
        uniq, first, inv = np.unique(items[row], return_index=True, return_inverse=True)
        total = np.bincount(inv.reshape(-1), weights=scores[row], minlength=len(uniq))
        keep = (uniq >= 0) & (total > 0)
        uniq, total, first = uniq[keep], total[keep], first[keep]
        order = np.lexsort((first, -total))[:k]  # best score, then earliest position
        out[row, :len(order)] = uniq[order]
    return out


def tune_weight(base: np.ndarray, other: np.ndarray, targets: np.ndarray,
                grid: Sequence[float] = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
                metric: Callable[[np.ndarray], np.ndarray] = lambda r: ndcg_at_k(r, 10)
                ) -> tuple[float, dict[float, float]]:
    """The weight of ``other`` (``base`` has weight 1) maximising mean ``metric`` on the given
    (validation) cases; ties go to the smaller weight. Returns (weight, score per weight)."""
    k = max(base.shape[1], other.shape[1])
    table = {}
    for w in grid:
        fused = rrf([base, other], [1.0, w], k)
        table[float(w)] = float(metric(target_ranks(fused, targets)).mean())
    best = max(table.values())
    return min(w for w, s in table.items() if s == best), table


LAMBDA_GRID = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
SCORE_FLOOR = -50.0  # log-probs below this (and -inf) count as this in score fusion


def score_fusion(items: np.ndarray, base: np.ndarray, other: np.ndarray, lam: float, k: int
                 ) -> np.ndarray:
    """Re-rank each row's candidates by ``base / max(base) + lam * other``.

    items (n, D) candidate ids (-1 = empty slot, always last), base (n, D) first-stage scores
    (e.g. BM25, > 0), other (n, D) a second scorer on the same candidates (a model's
    log-probability, a cosine), floored at ``SCORE_FLOOR``. The first-stage score is
    max-normalised per row so ``lam`` does not depend on the query's BM25 scale. Ties keep the
    first-stage order; lam = 0 reproduces it. -> (n, k) item ids (-1 padded).
    """
    items = np.asarray(items)
    if items.shape != np.shape(base) or items.shape != np.shape(other):
        raise ValueError(f"items {items.shape}, base {np.shape(base)} and other "
                         f"{np.shape(other)} must have one shape")
    base = np.asarray(base, dtype=np.float64)
    top = np.max(np.where(items >= 0, base, -np.inf), axis=1, keepdims=True)
    norm = np.where(np.isfinite(top) & (top > 0), base / np.where(top > 0, top, 1.0), 0.0)
    fused = norm + lam * np.maximum(np.asarray(other, dtype=np.float64), SCORE_FLOOR)
    fused = np.where(items >= 0, fused, -np.inf)
    order = np.argsort(-fused, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(items, order, axis=1)
    if out.shape[1] < k:
        out = np.concatenate([out, np.full((len(out), k - out.shape[1]), -1, out.dtype)], 1)
    return out


def tune_lambda(items: np.ndarray, base: np.ndarray, other: np.ndarray, targets: np.ndarray,
                grid: Sequence[float] = LAMBDA_GRID,
                metric: Callable[[np.ndarray], np.ndarray] = lambda r: ndcg_at_k(r, 10)
                ) -> tuple[float, dict[float, float]]:
    """The ``score_fusion`` weight maximising mean ``metric`` on the given (validation) cases;
    ties go to the smaller weight. Returns (lam, score per lam)."""
    table = {float(lam): float(metric(target_ranks(
        score_fusion(items, base, other, lam, items.shape[1]), targets)).mean()) for lam in grid}
    best = max(table.values())
    return min(lam for lam, s in table.items() if s == best), table
