"""Collaborative item embeddings from training interactions only: PMI-SVD of co-occurrence.

An item2vec-style factorisation (Levy & Goldberg 2014: skip-gram with negative sampling is an
implicit shifted-PMI factorisation). Items co-occurring within ``window`` positions of a user's
*train-split* item sequence are counted, the counts become positive PMI, and a truncated SVD
(scipy ARPACK, seeded start vector, fixed signs) gives ``U * sqrt(S)``. Items with no train
interaction get a zero vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds


@dataclass
class CollabConfig:
    RANGES: ClassVar[dict[str, str]] = {"dim": ">= 1", "window": ">= 1", "shift": "> 0",
        "smoothing": "[0, 1]"}
    dim: int = 64  # embedding size (capped at n_items - 2)
    window: int = 10  # co-occurrence window within a user's train sequence
    shift: float = 1.0  # PMI shift: keep max(PMI - log(shift), 0)
    smoothing: float = 0.75  # context-distribution smoothing (word2vec's 3/4 power)


def cooccurrence(sequences: list[np.ndarray], n_items: int, window: int) -> sp.csr_matrix:
    """Symmetric (n_items, n_items) counts of item pairs at distance 1..window in a sequence."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.sum() == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float64)
    items = np.concatenate([s for s in sequences if len(s)]).astype(np.int64)
    owner = np.repeat(np.arange(len(sequences)), lengths)
    rows, cols = [], []
    for k in range(1, window + 1):
        same = owner[:-k] == owner[k:]
        if not same.any():
            break
        rows.append(items[:-k][same])
        cols.append(items[k:][same])
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, np.int64)
    keep = r != c
    r, c = r[keep], c[keep]
    data = np.ones(2 * len(r))
    m = sp.coo_matrix((data, (np.concatenate([r, c]), np.concatenate([c, r]))),
                      shape=(n_items, n_items)).tocsr()
    m.sum_duplicates()
    return m


def ppmi(counts: sp.csr_matrix, shift: float = 1.0, smoothing: float = 0.75) -> sp.csr_matrix:
    """Positive (shifted) PMI of a symmetric count matrix with smoothed context marginals."""
    counts = counts.tocoo()
    total = counts.sum()
    if total == 0:
        return counts.tocsr()
    row = np.asarray(counts.sum(1)).ravel()
    ctx = row ** smoothing
    p_ctx = ctx / ctx.sum()
    pmi = np.log(counts.data * 1.0 / total) - np.log(row[counts.row] / total) - np.log(
        p_ctx[counts.col]) - np.log(shift)
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def _fix_signs(u: np.ndarray) -> np.ndarray:
    """Flip each column so its largest-magnitude entry is positive (SVD sign is arbitrary)."""
    idx = np.abs(u).argmax(axis=0)
    signs = np.sign(u[idx, np.arange(u.shape[1])])
    signs[signs == 0] = 1
    return u * signs


def truncated_svd(m: sp.spmatrix | np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (U, S) of ``m``, largest first, deterministic given ``seed``."""
    n = min(m.shape)
    k = max(1, min(k, n - 1))
    if sp.issparse(m) and m.nnz == 0:
        return np.zeros((m.shape[0], k)), np.zeros(k)
    if n <= 2 * k + 1 or not sp.issparse(m):  # small or dense: exact LAPACK SVD
        dense = m.toarray() if sp.issparse(m) else np.asarray(m)
        u, s, _ = np.linalg.svd(dense.astype(np.float64), full_matrices=False)
        return _fix_signs(u[:, :k]), s[:k]
    v0 = np.random.default_rng(seed).standard_normal(n)
    u, s, _ = svds(m.astype(np.float64), k=k, v0=v0, solver="arpack")
    order = np.argsort(-s, kind="stable")
    return _fix_signs(u[:, order]), s[order]


def collaborative_embeddings(train_sequences: list[np.ndarray], n_items: int,
                             cfg: CollabConfig, seed: int = 0) -> np.ndarray:
    """(n_items, dim) float32 item vectors from train-split sequences only (see module doc)."""
    counts = cooccurrence(train_sequences, n_items, cfg.window)
    u, s = truncated_svd(ppmi(counts, cfg.shift, cfg.smoothing), cfg.dim, seed)
    emb = u * np.sqrt(s)[None, :]
    if emb.shape[1] < cfg.dim:  # tiny catalogues: pad so the width is what the config says
        emb = np.pad(emb, ((0, 0), (0, cfg.dim - emb.shape[1])))
    return emb.astype(np.float32)
