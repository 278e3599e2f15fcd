"""Ranking metrics as pure functions of the target's rank.

Every recommender and retriever is reduced to ``ranks``: the 0-based position of the single
held-out target in the model's ranked item list, or ``-1`` when the target is not in the list
at all. Codes are always mapped to items before ranks are computed (colliding codes must not
count as hits).
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


def target_ranks(topk: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n, K) ranked item ids, (n,) targets -> (n,) 0-based rank of the target, -1 if absent."""
    topk = np.asarray(topk)
    hit = topk == np.asarray(targets)[:, None]
    found = hit.any(axis=1)
    return np.where(found, hit.argmax(axis=1), -1)


def unseen_positions(topk: np.ndarray, histories: np.ndarray, k: int | None = None,
                     chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Where each row's first ``k`` items outside its history sit in ``topk``.

    topk: (n, K') ranked item ids (-1 = empty); histories: (n, H) item ids (-1 = padding).
    Returns (positions (n, k) into topk's columns, valid (n, k)): kept items keep their order;
    ``valid`` is False where fewer than k remain. ``chunk`` rows at a time bound the
    (rows, K', H) comparison.
    """
    topk, histories = np.asarray(topk), np.asarray(histories)
    if len(topk) != len(histories):
        raise ValueError(f"{len(topk)} ranked lists but {len(histories)} histories")
    k = topk.shape[1] if k is None else k
    pos = np.zeros((len(topk), k), dtype=np.int64)
    valid = np.zeros((len(topk), k), dtype=bool)
    width = min(k, topk.shape[1])
    for start in range(0, len(topk), chunk):
        ranked, hist = topk[start:start + chunk], histories[start:start + chunk]
        drop = (ranked[:, :, None] == hist[:, None, :]).any(2) | (ranked < 0)
        order = np.argsort(drop, axis=1, kind="stable")[:, :width]  # kept first, in order
        pos[start:start + chunk, :width] = order
        valid[start:start + chunk, :width] = ~np.take_along_axis(drop, order, 1)
    return pos, valid


def take_kept(values: np.ndarray, pos: np.ndarray, valid: np.ndarray, fill: float) -> np.ndarray:
    """Row-wise ``values[pos]`` with ``fill`` where not ``valid`` (``unseen_positions``' output)."""
    return np.where(valid, np.take_along_axis(np.asarray(values), pos, 1), fill)


def drop_seen(topk: np.ndarray, histories: np.ndarray, k: int | None = None) -> np.ndarray:
    """(n, K') ranked item ids minus each row's history items, cut to (n, k), -1 padded."""
    pos, valid = unseen_positions(topk, histories, k)
    return take_kept(topk, pos, valid, -1).astype(np.int64)


def hit_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per case 1.0 when the target is in the top k. With one target, Recall@K == HR@K."""
    ranks = np.asarray(ranks)
    return ((ranks >= 0) & (ranks < k)).astype(np.float64)


def ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per case 1/log2(rank+2) inside the top k, else 0 (one relevant item, so IDCG = 1)."""
    ranks = np.asarray(ranks)
    inside = (ranks >= 0) & (ranks < k)
    return np.where(inside, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)


def mrr_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.asarray(ranks)
    inside = (ranks >= 0) & (ranks < k)
    return np.where(inside, 1.0 / (np.maximum(ranks, 0) + 1.0), 0.0)


def per_case_metrics(ranks: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """All ranking metrics per case, keyed ``recall@k``, ``ndcg@k``, ``hr@k``, ``mrr@k``."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"recall@{k}"] = hit_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
        out[f"hr@{k}"] = hit_at_k(ranks, k)
        out[f"mrr@{k}"] = mrr_at_k(ranks, k)
    return out


def summarise(per_case: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.mean(values)) if len(values) else 0.0
            for name, values in per_case.items()}
