"""Collaborative query anchors (OneBar §3.2): the training queries of a trigger's nearest items.

Offline, every item retrieves its ``k`` nearest other items by cosine (faiss inner product
over unit vectors); neighbours below the similarity threshold are dropped ("low-similarity
anchors may mislead the generator"), and the neighbours' queries are ranked by
count x similarity summed over neighbours. ``neighbours_reference`` is the plain numpy version
the faiss path is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """(n, d) float32 rows scaled to unit length; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"item embeddings must be (n_items, dim), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def _drop_self(idx: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(idx)
    is_self = (idx == np.arange(n)[:, None]) | (idx < 0)
    order = np.argsort(is_self, axis=1, kind="stable")[:, :k]  # others first, in rank order
    out_idx = np.take_along_axis(idx, order, 1).astype(np.int64)
    out_sim = np.take_along_axis(sims, order, 1).astype(np.float32)
    bad = np.take_along_axis(is_self, order, 1)
    out_idx[bad], out_sim[bad] = -1, -np.inf
    if out_idx.shape[1] < k:  # fewer than k other items exist
        pad = k - out_idx.shape[1]
        out_idx = np.pad(out_idx, ((0, 0), (0, pad)), constant_values=-1)
        out_sim = np.pad(out_sim, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_idx, out_sim


def neighbours(unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) unit vectors -> ((n, k) neighbour ids, (n, k) cosines), best first, the item
    itself excluded; -1 / -inf where fewer than k other items exist. Exact faiss search."""
    import faiss

    n, d = unit.shape
    if n == 0:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    index = faiss.IndexFlatIP(d)
    index.add(unit)
    sims, idx = index.search(unit, min(k + 1, n))
    return _drop_self(idx, sims, k)


def neighbours_reference(unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``neighbours`` by a full numpy similarity matrix (for tests)."""
    sims = unit @ unit.T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k + 1]
    return _drop_self(idx, np.take_along_axis(sims, idx, 1), k)


def rank_anchors(pools: Sequence[dict[str, int]], nbrs: np.ndarray, sims: np.ndarray,
                 threshold: float, n: int) -> list[str]:
    """The ``n`` queries with the highest sum of count x similarity over the neighbours with
    similarity >= ``threshold`` (ties: alphabetical). pools[j]: query -> count for item j."""
    score: dict[str, float] = {}
    for j, s in zip(nbrs.tolist(), sims.tolist()):
        if j < 0 or s < threshold:
            continue
        for q, c in pools[j].items():
            score[q] = score.get(q, 0.0) + c * s
    return [q for q, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
